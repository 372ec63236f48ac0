"""Run the benchmarks: ``python -m benchmarks [name ...] [--quick]``.

With no name, every ``benchmarks/bench_*.py`` runs. Each module's ``run(quick)`` prints
its own table, baseline and ratio; ``--quick`` shortens the runs (for smoke tests).
"""
import argparse
import importlib
import pathlib
import sys


def main(argv=None):
    here = pathlib.Path(__file__).parent
    available = sorted(p.stem[len('bench_'):] for p in here.glob('bench_*.py'))
    parser = argparse.ArgumentParser(prog='python -m benchmarks')
    parser.add_argument('names', nargs='*', choices=available + [[]], metavar='name',
                        help='benchmarks to run (default: all): %s' % ', '.join(available))
    parser.add_argument('--quick', action='store_true', help='short runs, for smoke tests')
    args = parser.parse_args(argv)
    for name in args.names or available:
        module = importlib.import_module('benchmarks.bench_' + name)
        print('=== %s: %s' % (name, (module.__doc__ or '').strip().splitlines()[0]))
        module.run(quick=args.quick)
        print()
    return 0


if __name__ == '__main__':
    sys.exit(main())
