"""First use of the auditor CLI with the default configuration (issue 12, point 10).

``tclouds-securelog append`` then ``tclouds-securelog verify`` on a fresh machine, no
configuration file: the log's state (``[securelog] state_dir``) and the sources' state
(``source_state_dir``) are different directories by default, and the verifier must find the
CLI source's key where ``append`` put it. The defaults are re-rooted under the test's
directory through oslo.config's environment variables (``OS_SECURELOG__<OPTION>``), so
the layout is exactly the default one, and nothing of the machine is read or written.
"""
import json
import os
import sys

from tclouds_openstack.conf import securelog as securelog_conf
from tests import watchdog

CLI = os.path.join(os.path.dirname(sys.executable), 'tclouds-securelog')


def fresh_machine(tmp_path):
    """The environment of a first-time user: empty HOME, default paths under tmp_path."""
    defaults = {o.name: o.default for o in securelog_conf.securelog_opts}
    env = dict(os.environ, HOME=str(tmp_path / 'home'))
    (tmp_path / 'home').mkdir()
    for name in ('connection', 'state_dir', 'source_state_dir'):
        env['OS_SECURELOG__%s' % name.upper()] = defaults[name].replace(
            '/var/lib/tclouds', str(tmp_path / 'var' / 'lib' / 'tclouds'))
    assert env['OS_SECURELOG__STATE_DIR'] != env['OS_SECURELOG__SOURCE_STATE_DIR']
    return env


def cli(env, *args, stdin=None):
    return watchdog.run([CLI] + list(args), input=stdin, capture_output=True, text=True,
                        env=env, cwd=env['HOME'])


def test_append_then_verify_says_ok_on_a_fresh_machine(tmp_path):
    env = fresh_machine(tmp_path)
    lines = '\n'.join(json.dumps({'event_type': 'identity.authenticate', 'n': n,
                                  'project_id': 'p%d' % (n % 2)}) for n in range(5))
    res = cli(env, 'append', stdin=lines + '\n')
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)['appended'] == 5
    res = cli(env, 'verify')
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert res.stderr.startswith('OK: 5 records from 1 source(s)'), res.stderr
    out = json.loads(res.stdout)
    assert out['ok'] and out['checkpoints_verified'] >= 1
    # a second append (new process, same machine) continues and still verifies
    assert cli(env, 'append', stdin='{"event_type": "x"}\n').returncode == 0
    res = cli(env, 'verify')
    assert res.returncode == 0 and res.stderr.startswith('OK: 6 records'), res.stderr
