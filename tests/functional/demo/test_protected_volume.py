"""The demo's protected volume chapter, run alone as a user would (real nbdkit and qemu-io)."""
import os

from tclouds_openstack.demo import context
from tclouds_openstack.securelog import store as store_mod
from tests.functional import demo as demo_tests


def test_volume_chapter_detects_every_attack(tmp_path):
    result = demo_tests.run_demo('--chapter', 'volume', '--workdir', str(tmp_path))
    out = result.stdout
    try:
        assert result.returncode == 0, out + result.stderr
        assert 'Traceback' not in out + result.stderr
        assert '1. Protected volume' in out and 'TPM' not in out
        assert '[FAIL]' not in out
        for line in (
                'qemu-io wrote pattern 0x5a over sectors 0-255',
                'after a restart of the server qemu-io read both patterns back',
                'attack 1, a bit flipped in data sector 9: detected. Reading sector 9 gives an '
                'I/O error',
                'check exits 1: sector 9: tag check failed',
                'attack 2, data sectors 20 and 768 swapped: detected. Reading sectors 20 and '
                '768 gives I/O errors',
                'check exits 1: sector 20: tag check failed, sector 768: tag check failed',
                'attack 3, sector 12 rolled back to its earlier version: detected. Reading '
                'sector 12 gives an I/O error',
                'check exits 1: sector 12: rollback check failed',
                'does not match the Merkle leaf anchored at version',
                'same rollback on a plain LUKS1 image (qemu, AES-XTS): sector 12 silently '
                'reads its old contents 0x5a, no error',
                'a wrong key is refused at open, before any sector is read: serve exits 2: '
                'wrong key: it does not open volume',
                'a backup of the volume and of its anchor put back, then sector 40 written '
                'again: the new ciphertext shares nothing with the keystream of the write made '
                'after the backup',
                'check on an untouched copy: exit 0',
                'all 2048 sectors verified'):
            assert line in out, line
        assert 'Every step had its expected outcome.' in out
        # Each detected sector was sealed into the demo's secure log.
        log_dir = str(tmp_path / 'securelog')
        log = store_mod.SecureLogStore('sqlite:///%s' % os.path.join(log_dir, 'log.sqlite'),
                                       log_dir, origin=context.ORIGIN, migrate=False)
        try:
            rows = log.list(event_type='blockstore.integrity.failed')
        finally:
            log.close()
        assert len(rows) == 4, rows
    finally:
        # No server the chapter started is left running (any leftover fails the test and is
        # ended here, by its PID).
        leftover = demo_tests.processes('nbdkit', str(tmp_path))
        for pid in leftover:
            os.kill(pid, 9)
    assert not leftover, 'nbdkit left running: %s' % leftover
