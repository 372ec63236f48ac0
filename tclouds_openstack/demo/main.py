"""``tclouds-demo``: the all-in-one demo on embedded defaults.

Runs each chapter on local swtpm hosts and in-process services in a scratch directory,
prints a readable report, and exits 0 when every step had its expected outcome (a tampered
host must be found untrusted), 1 otherwise.
"""
import argparse
import shutil
import sys
import tempfile

from tclouds_openstack.demo import report as report_mod
from tclouds_openstack.demo import tpm_core


def main(argv=None):
    parser = argparse.ArgumentParser(prog='tclouds-demo', description=__doc__.split('\n')[0])
    parser.add_argument('--hosts', type=int, default=3,
                        help='number of simulated compute hosts (default 3, at least 2)')
    parser.add_argument('--workdir', help='keep state in this directory (default: a '
                                          'temporary directory, removed afterwards)')
    args = parser.parse_args(argv)
    if args.hosts < 2:
        parser.error('--hosts must be at least 2 (one of them is tampered with)')
    workdir = args.workdir or tempfile.mkdtemp(prefix='tclouds-demo-')
    report = report_mod.Report()
    report.out.write('tclouds-openstack all-in-one demo (state in %s)\n' % workdir)
    try:
        tpm_core.run(report, workdir, hosts=args.hosts)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if report.expectation_failures:
        report.out.write('\n%d step(s) did not have the expected outcome.\n'
                         % report.expectation_failures)
        return 1
    report.out.write('\nEvery step had its expected outcome.\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
