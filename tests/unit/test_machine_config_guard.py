"""The guard that fails a test reading machine configuration (tests/hermetic_site)."""
import os
import subprocess
import sys

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
