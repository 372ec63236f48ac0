"""``python -m tclouds_openstack.scenarios healthcare|lighting`` (``tools/scenario.sh``).

Runs a scenario against a deployed cloud as its tenant (a project and user created for
the run with the admin credentials, deleted afterwards), writes into ``--output``:
``observations.json`` (what was observed), ``transcript.json`` (every command, as typed,
no passwords), the project's report and ``report.html`` with its pictures, checked in
headless Chromium (``report.png``, ``report-check.json``). Exit 0 only when every expected
outcome was observed and the report passed the browser check (``--no-browser-check``: the
outcomes only); 1 otherwise; 2 for unusable input. ``--dry-run`` lists the steps and
expected outcomes and touches nothing; ``--render FILE`` renders (and checks) the report
of a recorded observation file.
"""
import argparse
import json
import os
import sys
import time

from tclouds_openstack.scenarios import browser
from tclouds_openstack.scenarios import core
from tclouds_openstack.scenarios import report


# Deployment values given on the command line (each overrides tempest.conf's).
OPTIONS = (
    ('--image', 'image of the servers (default [compute] image_ref)'),
    ('--flavor', 'flavor of the servers (default [compute] flavor_ref)'),
    ('--tamper-command', 'command that turns host {host} untrusted'),
    ('--restore-command', 'command that makes host {host} trusted again'),
    ('--openstack-cli', 'the openstack command (with the tclouds plugin)'),
)
INSTANCE_ACTION_HELP = ('what the trust reactor is configured to do to servers of an '
                        'untrusted host (the migration outcome expects it)')
NO_BROWSER_HELP = ('do not check the report in Chromium (where there is none): the exit '
                   'status then says whether every expected outcome was observed, and the '
                   'report is checked elsewhere with --render')


def _parser():
    p = argparse.ArgumentParser(prog='tools/scenario.sh', description=__doc__.split('\n')[0])
    p.add_argument('scenario', choices=core.SCENARIOS)
    p.add_argument('--dry-run', action='store_true',
                   help='list the steps and the expected outcomes; touch nothing')
    p.add_argument('--render', metavar='OBSERVATIONS',
                   help='render and check the report of a recorded observation file')
    p.add_argument('--output', metavar='DIR',
                   help='where the run\'s files go (default scenario-runs/<run id>)')
    p.add_argument('--cloud', help='clouds.yaml cloud of the operator\'s admin credentials '
                   '(default OS_CLOUD, else the OS_* variables)')
    p.add_argument('--tempest-config', metavar='FILE',
                   help='tempest.conf whose [tclouds] section describes the deployment '
                        '(DevStack writes it; default $TEMPEST_CONFIG)')
    p.add_argument('--log-vkey', metavar='FILE',
                   help='the secure log\'s public key (log.vkey of the auditor bundle)')
    for flag, helptext in OPTIONS:
        p.add_argument(flag, help=helptext)
    p.add_argument('--instance-action', choices=('none', 'live-migrate', 'stop'),
                   help=INSTANCE_ACTION_HELP)
    p.add_argument('--no-browser-check', action='store_true', help=NO_BROWSER_HELP)
    return p


def dry_run(scenario, out=None):
    out = out or sys.stdout
    print('Scenario %s: steps' % scenario, file=out)
    for n, (sid, title, how) in enumerate(core.steps(scenario), 1):
        print('%2d. [%s] %s\n      %s' % (n, sid, title, how), file=out)
    print('Expected outcomes (the run exits 0 only when every one is observed, and the '
          'HTML report passes the Chromium check):', file=out)
    for oid, text, _check in core.EXPECTED[scenario]:
        print('  - [%s] %s' % (oid, text), file=out)


def write_report(obs, out_dir, check_browser=True, echo=print):
    """Evaluate, render, check; returns (passed, outcomes, browser check result)."""
    outcomes = core.evaluate(obs)
    page = os.path.join(out_dir, 'report.html')
    with open(page, 'w') as f:
        f.write(report.render(obs, outcomes))
    result = None
    if check_browser:
        try:
            result = browser.check_report(page, os.path.join(out_dir, 'report.png'),
                                          report.expected_elements(obs, outcomes))
        except browser.BrowserError as e:
            result = {'ok': False, 'problems': [str(e)]}
        with open(os.path.join(out_dir, 'report-check.json'), 'w') as f:
            json.dump(result, f, indent=1, sort_keys=True)
    for o in outcomes:
        echo('%s  %-18s %s\n      %s' % ('ok ' if o.ok else 'NOT', o.id, o.text, o.evidence))
    if result is not None:
        echo('%s  report in Chromium: %s' % ('ok ' if result['ok'] else 'NOT', '; '.join(
            result['problems']) or '%d elements present and laid out, screenshot %s' % (
                result['elements_checked'], result['screenshot']['file'])))
    ok = core.passed(outcomes) and (result is None or result['ok'])
    return ok, outcomes, result


def _deployment(args):
    from tclouds_openstack.scenarios import cloud
    overrides = {'image': args.image, 'flavor': args.flavor, 'log_vkey': args.log_vkey,
                 'tamper_command': args.tamper_command,
                 'restore_command': args.restore_command,
                 'instance_action': args.instance_action, 'openstack_cli': args.openstack_cli}
    path = args.tempest_config or os.environ.get('TEMPEST_CONFIG')
    if path:
        return cloud.Deployment.from_tempest_config(path, **overrides)
    return cloud.Deployment(**overrides)


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.dry_run:
        dry_run(args.scenario)
        return 0
    if args.render:
        try:
            with open(args.render) as f:
                obs = core.Observations.from_json(f.read())
        except (OSError, core.ScenarioError) as e:
            print('scenario: %s' % e, file=sys.stderr)
            return 2
        out_dir = args.output or os.path.dirname(os.path.abspath(args.render))
        os.makedirs(out_dir, exist_ok=True)
        ok, _o, _r = write_report(obs, out_dir, not args.no_browser_check)
        return 0 if ok else 1
    from tclouds_openstack.scenarios import cloud
    from tclouds_openstack.scenarios import healthcare
    from tclouds_openstack.scenarios import lighting
    from tclouds_openstack.scenarios import run as run_mod
    try:
        dep = _deployment(args)
        admin = cloud.Creds.from_cloud(args.cloud)
    except core.ScenarioError as e:
        print('scenario: %s' % e, file=sys.stderr)
        return 2
    run_id = '%s-%s' % (args.scenario, time.strftime('%Y%m%dT%H%M%SZ', time.gmtime()))
    out_dir = args.output or os.path.join('scenario-runs', run_id)
    os.makedirs(out_dir, exist_ok=True)
    r = run_mod.Run(args.scenario, dep, admin, out_dir, run_id=run_id)
    flow = {'healthcare': healthcare.run, 'lighting': lighting.run}[args.scenario]
    failure = None
    try:
        flow(r)
    except core.ScenarioError as e:
        failure = str(e)
    except KeyboardInterrupt:
        failure = 'interrupted'
    finally:
        r.stop_sampling()
        try:
            r.history(r.obs['started'])
        except Exception as e:
            r.say('   (verdict history not read: %s)' % e)
        r.say('== cleanup')
        errors = r.cleanup()
        r.obs.step('cleanup', not errors, {'errors': errors})
        r.obs.finish()
        if failure:
            r.obs.fact('stopped_by', failure)
        with open(os.path.join(out_dir, 'observations.json'), 'w') as f:
            f.write(r.obs.to_json())
        with open(os.path.join(out_dir, 'transcript.json'), 'w') as f:
            json.dump(r.transcript.lines, f, indent=1)
    ok, _outcomes, _check = write_report(r.obs, out_dir, not args.no_browser_check)
    print('%s: %s (files in %s)' % (args.scenario, 'every expected outcome observed' if ok
                                    else 'NOT every expected outcome observed%s' % (
                                        ': stopped by %s' % failure if failure else ''),
                                    out_dir))
    if errors:
        # what the run changed on the cloud is not all undone: never a pass
        print('%s: clean-up incomplete: %s' % (args.scenario, '; '.join(errors)))
    return 0 if ok and not errors else 1


if __name__ == '__main__':
    sys.exit(main())
