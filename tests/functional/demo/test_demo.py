"""The README's main job, run as a user would: every step has its expected outcome."""
from tests.functional import demo as demo_tests


def test_demo_reports_trusted_and_tampered_hosts(tmp_path):
    result = demo_tests.run_demo('--hosts', '3', '--workdir', str(tmp_path))
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
    # The verdicts were sealed into the demo's secure log, which the auditor verifies and
    # in which each kind of tampering is found at its index.
    assert ('events sealed (attestation.host.trusted, attestation.host.untrusted, '
            'blockstore.integrity.failed, cloudstore.fault, keymgr.key.refused, '
            'keymgr.key.released)') in out
    for number, title in enumerate(['TPM 2.0 evidence core', 'Attested hosts',
                                    'Protected volume', 'Cloud of clouds', 'Secure log'], 1):
        assert '\n%d. %s' % (number, title) in out
    assert 'entries verified from genesis against the signed checkpoint' in out
    for tampering in ('an entry changed at index 1: detected at index 1 (modified)',
                      'an entry deleted at index', 'two entries swapped at index 0: '
                      'detected at index 0 (moved)'):
        assert tampering in out
    assert 'Every step had its expected outcome.' in out


def test_demo_refuses_a_single_host():
    result = demo_tests.run_demo('--hosts', '1')
    assert result.returncode == 2
    assert '--hosts must be at least 2' in result.stderr


def test_one_chapter_alone(tmp_path):
    result = demo_tests.run_demo('--chapter', 'audit', '--workdir', str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert '1. Secure log' in result.stdout and 'TPM' not in result.stdout
