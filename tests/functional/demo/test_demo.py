"""The README's main job, run as a user would: every step has its expected outcome."""
import subprocess
import sys


def test_demo_reports_trusted_and_tampered_hosts(tmp_path):
    result = subprocess.run([sys.executable, '-m', 'tclouds_openstack.demo.main',
                             '--hosts', '3', '--workdir', str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert 'Traceback' not in out + result.stderr
    assert 'compute1: quote signature, nonce and PCR digest verified; verdict trusted' in out
    assert 'compute3: quote signature, nonce and PCR digest verified; verdict untrusted' in out
    assert 'PCR 4 (boot loader and kernel images) differs from the reference boot' in out
    for forgery in ('replayed quote (stale nonce): rejected (nonce:',
                    'PCR value altered after quoting: rejected (pcr_digest:',
                    'attest bytes altered: rejected (signature:',
                    "quote signed by another host's AK: rejected (signature:"):
        assert forgery in out
    assert 'Every step had its expected outcome.' in out


def test_demo_refuses_a_single_host():
    result = subprocess.run([sys.executable, '-m', 'tclouds_openstack.demo.main', '--hosts', '1'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert '--hosts must be at least 2' in result.stderr
