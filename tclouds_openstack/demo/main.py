"""``tclouds-demo``: the all-in-one demo on embedded defaults.

Runs each chapter on local swtpm hosts and in-process services in a scratch directory,
prints a readable report, and exits 0 when every step had its expected outcome (a tampered
host must be found untrusted, a tampered block or fragment detected), 1 otherwise. The
last chapter audits the demo's own secure log, into which the others sealed their
security-relevant outcomes.
"""
import argparse
import importlib
import shutil
import sys
import tempfile
import warnings

from tclouds_openstack.demo import context
from tclouds_openstack.demo import report as report_mod

#: (name, module under tclouds_openstack.demo) in the order they run; each module has
#: ``TITLE`` and ``run(demo)``.
CHAPTERS = [
    ('tpm', 'tpm_core'),
    ('keys', 'attested_keys'),
    ('volume', 'protected_volume'),
    ('objects', 'cloud_of_clouds'),
    ('audit', 'securelog_audit'),
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
    # oslo.messaging and keystonemiddleware import eventlet, which announces its own
    # deprecation on stderr: not something a demo user can act on.
    warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')
    if args.hosts < 2:
        parser.error('--hosts must be at least 2 (one of them is tampered with)')
    workdir = args.workdir or tempfile.mkdtemp(prefix='tclouds-demo-')
    report = report_mod.Report()
    report.out.write('tclouds-openstack all-in-one demo (state in %s)\n' % workdir)
    demo = context.Demo(report, workdir)
    demo.hosts = args.hosts
    try:
        number = 0
        for name, module_name in CHAPTERS:
            if args.chapters and name not in args.chapters:
                continue
            module = importlib.import_module('tclouds_openstack.demo.' + module_name)
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
