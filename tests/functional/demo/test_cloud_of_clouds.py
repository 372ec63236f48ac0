"""The demo's cloud-of-clouds chapter, run alone as an operator would."""
from tests.functional import demo as demo_tests


def test_objects_chapter(tmp_path):
    result = demo_tests.run_demo('--chapter', 'objects', '--workdir', str(tmp_path), timeout=120)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert 'Traceback' not in out + result.stderr
    assert '1. Cloud of clouds' in out and 'TPM' not in out
    for name in ('provider_a', 'provider_b', 'provider_c', 'provider_d'):
        assert '%s holds 2 objects' % name in out
    assert 'plaintext on its disk: FOUND' not in out
    assert "provider_a's value object alone cannot be decoded" in out
    assert ('provider_b reported FAULTY: bad value object of version 1: value object at '
            'offset 0 (piece): piece of segment 0 does not match its hash') in out
    assert "fault(s) sealed into the demo's secure log as cloudstore.fault" in out
    assert ('write of version 2 refused: QuorumError in the value phase, needs 3 correct '
            'clouds, failed: provider_c, provider_d') in out
    assert 'cloud provider_c: put failed: ' in out and 'Not a directory' in out
    assert 'nothing half-committed' in out
    assert 'a reader gets version 1, unchanged' in out
    assert 'repair (no writer key): provider_b: value object rebuilt' in out
    assert 'decoded from provider_b and provider_c alone: the right' in out
    assert 'full read after repair: the right bytes, no cloud reported' in out
    assert 'Every step had its expected outcome.' in out
    # The clouds are directories under the work directory; a second run reuses it.
    assert sorted(p.name for p in (tmp_path / 'clouds').iterdir()) == [
        'provider_a', 'provider_b', 'provider_c', 'provider_d']
    again = demo_tests.run_demo('--chapter', 'objects', '--workdir', str(tmp_path), timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
