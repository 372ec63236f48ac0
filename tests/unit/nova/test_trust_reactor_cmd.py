"""tclouds-trust-reactor: a configuration error exits 2 with the reason, no traceback."""
import sys

from tests import hermetic
from tests import watchdog


def test_missing_config_file_exits_2(tmp_path):
    proc = watchdog.run([sys.executable, '-m', 'tclouds_openstack.cmd.trust_reactor']
                        + hermetic.service_args('/nonexistent/tclouds.conf', tmp_path),
                        capture_output=True, text=True)
    assert proc.returncode == 2
    assert 'tclouds-trust-reactor:' in proc.stderr
    assert '/nonexistent/tclouds.conf' in proc.stderr
    assert 'Traceback' not in proc.stderr
