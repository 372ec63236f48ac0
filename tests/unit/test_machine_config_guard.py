"""The guard that fails a test reading machine configuration (tests/hermetic_site)."""
import os
import subprocess
import sys

import pytest

from tests import conftest

PROBE = '''
import os, sys
from oslo_config import cfg
mode = sys.argv[1]
if mode == "open":
    open(os.path.expanduser("~/.nova/nova.conf")).read()
elif mode == "lookup":
    cfg.ConfigOpts()([], project="tclouds")
elif mode == "hermetic":
    cfg.ConfigOpts()([], project="tclouds", default_config_files=[], default_config_dirs=[])
    open(os.path.expanduser("~/.novarc-not-config"), "w").close()
'''


def _run(tmp_path, mode):
    """Run PROBE in a process as a test would start it, with a home of its own."""
    log = tmp_path / 'guard.log'
    log.write_text('')
    home = tmp_path / 'home'
    (home / '.nova').mkdir(parents=True, exist_ok=True)
    (home / '.nova' / 'nova.conf').write_text('[DEFAULT]\n')
    env = dict(os.environ, HOME=str(home), TCLOUDS_MACHINE_CONFIG_LOG=str(log))
    assert str(conftest.GUARD_SITE) in env['PYTHONPATH'].split(os.pathsep)
    subprocess.run([sys.executable, '-c', PROBE, mode], env=env, check=True,
                   capture_output=True)
    return log.read_text().splitlines()


def test_an_open_in_a_child_process_is_recorded(tmp_path):
    lines = _run(tmp_path, 'open')
    assert len(lines) == 1
    assert lines[0].startswith('open %s/home/.nova/nova.conf' % tmp_path)


def test_an_oslo_config_lookup_is_recorded_even_where_no_file_exists(tmp_path):
    lines = _run(tmp_path, 'lookup')
    assert any(line.startswith('oslo.config reads default config files: ') and '/etc/tclouds'
               in line for line in lines), lines


def test_hermetic_configuration_is_not_recorded(tmp_path):
    assert _run(tmp_path, 'hermetic') == []


def test_forbidden_locations():
    site = conftest.GUARD_SITE / 'sitecustomize.py'
    namespace = {}
    exec(compile(site.read_text().replace("if os.environ.get('TCLOUDS_MACHINE_CONFIG_LOG')",
                                          'if False'), str(site), 'exec'), namespace)
    forbidden = namespace['forbidden']
    for path in ('/etc/nova/nova.conf', '/etc/tclouds', '/etc/swift/swift.conf',
                 '/etc/keystone/../keystone/policy.yaml', b'/etc/cinder/cinder.conf'):
        assert forbidden(path), path
    for path in ('/etc/novarc', '/etc/hosts', '/tmp/etc/nova/nova.conf', 3, None):
        assert not forbidden(path), path


def test_hermetic_helpers_look_nowhere(tmp_path):
    script = '''
import sys
sys.path.insert(0, %r)
from oslo_config import cfg
from oslo_policy import policy
from tests import hermetic
conf = hermetic.parse(cfg.ConfigOpts())
policy.Enforcer(conf).load_rules()
with hermetic.NoDefaultConfigDirs():
    cfg.ConfigOpts()([], project='nova')
''' % str(conftest.REPO)
    log = tmp_path / 'guard.log'
    log.write_text('')
    subprocess.run([sys.executable, '-c', script], check=True, capture_output=True,
                   env=dict(os.environ, TCLOUDS_MACHINE_CONFIG_LOG=str(log)))
    assert log.read_text() == ''


def test_swift_imports_past_a_garbage_swift_conf(tmp_path):
    """On a machine whose /etc/swift/swift.conf is garbage (tools/with-machine-config.sh)."""
    tool = str(conftest.REPO / 'tools' / 'with-machine-config.sh')
    # the plain import below does read it: its guard lines go to a log of their own
    env = dict(os.environ, TCLOUDS_MACHINE_CONFIG_LOG=str(tmp_path / 'guard.log'))
    probe = [tool, sys.executable, '-c', 'import sys; sys.path.insert(0, %r); ' % str(
        conftest.REPO) + 'from tests import hermetic; print(hermetic.import_swift().__name__)']
    result = subprocess.run(probe, capture_output=True, text=True, env=env)
    if 'unshare' in result.stderr and result.returncode != 0:
        pytest.skip('no private mount namespaces here: %s' % result.stderr.strip()[-200:])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'swift.common.utils'
    plain = subprocess.run([tool, sys.executable, '-c', 'import swift.common.utils'],
                           capture_output=True, text=True, env=env)
    assert plain.returncode != 0 and 'swift.conf' in plain.stderr + plain.stdout
