"""``tclouds-demo``: the all-in-one demo on embedded defaults.

Runs each chapter on local swtpm hosts and in-process services in a scratch directory,
prints a readable report, and exits 0 when every step had its expected outcome (a tampered
host must be found untrusted, a tampered block or fragment detected), 1 otherwise. The
last chapter audits the demo's own secure log, into which the others sealed their
security-relevant outcomes.
"""
import argparse
import shutil
import sys
import tempfile

from tclouds_openstack.demo import context
from tclouds_openstack.demo import report as report_mod
from tclouds_openstack.demo import securelog_audit
from tclouds_openstack.demo import tpm_core

#: (name, module) in the order they run; each module has ``run(demo)``.
CHAPTERS = [
    ('tpm', tpm_core),
    ('audit', securelog_audit),
]


def main(argv=None):
    names = [name for name, _ in CHAPTERS]
    parser = argparse.ArgumentParser(prog='tclouds-demo', description=__doc__.split('\n')[0])
    parser.add_argument('--hosts', type=int, default=3,
                        help='number of simulated compute hosts (default 3, at least 2)')
    parser.add_argument('--chapter', action='append', choices=names, dest='chapters',
                        help='run only this chapter (repeatable; default: all of %s)'
                             % ', '.join(names))
    parser.add_argument('--workdir', help='keep state in this directory (default: a '
                                          'temporary directory, removed afterwards)')
    args = parser.parse_args(argv)
    if args.hosts < 2:
        parser.error('--hosts must be at least 2 (one of them is tampered with)')
    workdir = args.workdir or tempfile.mkdtemp(prefix='tclouds-demo-')
    report = report_mod.Report()
    report.out.write('tclouds-openstack all-in-one demo (state in %s)\n' % workdir)
    demo = context.Demo(report, workdir)
    demo.hosts = args.hosts
    try:
        number = 0
        for name, module in CHAPTERS:
            if args.chapters and name not in args.chapters:
                continue
            number += 1
            report.chapter('%d. %s' % (number, module.TITLE))
            module.run(demo)
    finally:
        demo.close()
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
