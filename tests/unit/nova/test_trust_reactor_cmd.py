"""tclouds-trust-reactor: a configuration error exits 2 with the reason, no traceback."""
import subprocess
import sys


def test_missing_config_file_exits_2():
    proc = subprocess.run([sys.executable, '-m', 'tclouds_openstack.cmd.trust_reactor',
                           '--config-file', '/nonexistent/tclouds.conf'],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert 'tclouds-trust-reactor:' in proc.stderr
    assert '/nonexistent/tclouds.conf' in proc.stderr
    assert 'Traceback' not in proc.stderr
