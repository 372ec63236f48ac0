"""Issue 12 points 6 and 7: no GCM (key, nonce) reuse under any rollback; key rotation.

The first two tests are black-box on purpose (plaintext, ciphertext on disk, the CLI), so
they also run against the first release (format 1), where they fail: its nonces were
(sector, anchor epoch, sequence), which a rollback of the anchor and the volume together
repeats, and its ``rotate-key`` kept the data key.
"""
import hashlib
import os
import shutil

import pytest

from tclouds_openstack.blockstore import errors
from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.blockstore import storage
from tclouds_openstack.cmd import blockstore as cli

SECTOR = fmt.SECTOR_SIZE


def pattern(sector, n=1, salt=0):
    return b''.join(hashlib.sha256(b'%d-%d' % (s, salt)).digest() * (SECTOR // 32)
                    for s in range(sector, sector + n))


def read_raw(path, offset, length):
    with open(path, 'rb') as f:
        f.seek(offset)
        return f.read(length)


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def _open(path, kek, anchor):
    st = storage.FileStorage(path)
    try:
        return st, fmt.Volume.open(st, kek, anchor)
    except BaseException:
        st.close()
        raise


def test_rollback_of_anchor_and_volume_never_repeats_a_keystream(tmp_path):
    """Roll back the anchor AND the volume (a restored backup of both), write again.

    The new ciphertexts must not share a keystream (same key and nonce) with the writes made
    after the backup, else XOR of two ciphertexts is XOR of the plaintexts.
    """
    kek = os.urandom(32)
    path = str(tmp_path / 'vol')
    anchor = storage.FileAnchor(str(tmp_path / 'anchor'))
    st = storage.FileStorage(path)
    vol = fmt.Volume.create(st, kek, anchor, 64 * SECTOR)
    vol.write(0, pattern(0, 6, salt=1))
    vol.flush()
    st.close()
    shutil.copy(path, str(tmp_path / 'vol.backup'))
    shutil.copy(anchor.path, str(tmp_path / 'anchor.backup'))
    keystreams = {}
    for history, salt in enumerate((2, 3, 4)):
        shutil.copy(str(tmp_path / 'vol.backup'), path)          # both rolled back
        shutil.copy(str(tmp_path / 'anchor.backup'), anchor.path)
        st, vol = _open(path, kek, anchor)
        # Same sectors, same order as every other history; sector 1 written twice.
        vol.write(0, pattern(0, 4, salt=salt))
        vol.write(SECTOR, pattern(1, 1, salt=salt + 10))
        vol.flush()
        assert vol.read(0, 2 * SECTOR) == pattern(0, 1, salt=salt) + pattern(1, 1, salt + 10)
        plain = [pattern(0, 1, salt), pattern(1, 1, salt + 10), pattern(2, 1, salt),
                 pattern(3, 1, salt)]
        for sector in range(4):
            ks = xor(plain[sector], read_raw(path, fmt.data_offset(sector), SECTOR))
            assert ks not in keystreams, (
                'sector %d of history %d reuses the keystream of %s: XOR of the two '
                'ciphertexts is XOR of the plaintexts' % (sector, history, keystreams[ks]))
            keystreams[ks] = 'sector %d of history %d' % (sector, history)
        st.close()
    assert len(keystreams) == 12


def test_no_two_entries_share_key_and_nonce_across_rollbacks_and_crashes(tmp_path):
    """White-box: no (key, nonce) twice, across rollbacks and crashes.

    Every sector entry ever journaled, across histories that roll back the anchor and the
    volume and crash without a flush, has its own (key, nonce).
    """
    from tclouds_openstack.blockstore import header

    kek = os.urandom(32)
    path = str(tmp_path / 'vol')
    anchor = storage.FileAnchor(str(tmp_path / 'anchor'))
    st = storage.FileStorage(path)
    fmt.Volume.create(st, kek, anchor, 4096 * SECTOR)
    st.close()
    shutil.copy(path, str(tmp_path / 'vol.backup'))
    shutil.copy(anchor.path, str(tmp_path / 'anchor.backup'))
    seen = {}
    for history in range(4):
        if history % 2 == 0:
            shutil.copy(str(tmp_path / 'vol.backup'), path)
            shutil.copy(str(tmp_path / 'anchor.backup'), anchor.path)
        st, vol = _open(path, kek, anchor)
        dek = header.unwrap(vol.header, kek).current
        for rnd in range(3):
            vol.write(0, pattern(0, 40, salt=history * 10 + rnd))
            vol.write(2000 * SECTOR, pattern(2000, 100, salt=rnd))   # crosses a segment
            raw = read_raw(path, fmt.JOURNAL_START, 140 * fmt.JOURNAL_ENTRY.size)
            for sector, counter, epoch, sid, tag in fmt.JOURNAL_ENTRY.iter_unpack(raw):
                key = fmt.session_key(dek, sid)
                nonce = (sector, counter)
                assert (key, nonce) not in seen, 'reused: %s and history %d' % (
                    seen[key, nonce], history)
                seen[key, nonce] = 'history %d round %d' % (history, rnd)
            if history != 2 or rnd != 2:
                vol.flush()
        st.close()            # history 2 ends like kill -9: history 3 recovers it
    assert len(seen) == 4 * 3 * 140


def _forged_open(path, kek, real_anchor):
    """Open as an attacker holding an old header and its key-encryption key.

    They can unwrap the old data key, so they can also MAC any anchor state under it.
    """
    st = storage.FileStorage(path, readonly=True)
    head, _ = fmt.Volume.read_header(st)
    try:
        from tclouds_openstack.blockstore import header
        dek = header.unwrap(head, kek).current
        mac = lambda state: header.anchor_mac(dek, state)     # noqa: E731
    except ImportError:                                       # the first release's code
        dek = fmt.unwrap_key(head, kek)
        mac = lambda state: fmt._anchor_mac(dek, state)       # noqa: E731

    class Forged(storage.Anchor):
        def load(self, volume_uuid):
            state = dict(real_anchor.load(volume_uuid))
            state['mac'] = mac(state)
            return state

        def commit(self, volume_uuid, state, expected):
            raise AssertionError('read-only')

    return st, fmt.Volume.open(st, kek, Forged(), readonly=True)


def test_rotate_key_old_header_and_old_key_read_nothing_written_after(tmp_path):
    """After ``rotate-key`` an old header copy and the old key read nothing new.

    An old copy of the header plus the old key-encryption key must not read data written
    after the rotation (nor, once it finished, any sector).
    """
    path = str(tmp_path / 'vol')
    anchor_path = str(tmp_path / 'anchor')
    old_key, new_key = str(tmp_path / 'old.key'), str(tmp_path / 'new.key')
    old_kek, new_kek = os.urandom(32), os.urandom(32)
    with open(old_key, 'w') as f:
        f.write(old_kek.hex())
    with open(new_key, 'w') as f:
        f.write(new_kek.hex())
    anchor = storage.FileAnchor(anchor_path)
    st = storage.FileStorage(path)
    vol = fmt.Volume.create(st, old_kek, anchor, 600 * SECTOR)
    vol.write(0, pattern(0, 300, salt=1))
    vol.flush()
    st.close()
    old_header = read_raw(path, 0, 2 * fmt.HEADER_SLOT_SIZE)
    assert cli.main(['rotate-key', path, '--anchor', anchor_path, '--key-file', old_key,
                     '--new-key-file', new_key]) == 0
    st, vol = _open(path, new_kek, anchor)
    assert vol.read(0, 300 * SECTOR) == pattern(0, 300, salt=1)
    vol.write(400 * SECTOR, pattern(400, 8, salt=2))
    vol.flush()
    st.close()
    # The attacker's copy: the current volume with the old header slots put back.
    stolen = str(tmp_path / 'stolen')
    shutil.copy(path, stolen)
    with open(stolen, 'r+b') as f:
        f.write(old_header)
    st, old_view = _forged_open(stolen, old_kek, anchor)
    for sector in (400, 407, 0, 299):
        try:
            data = old_view.read(sector * SECTOR, SECTOR)
        except errors.BlockstoreError:
            continue
        assert data not in (pattern(sector, 1, salt=2), pattern(sector, 1, salt=1)), (
            'the old header and the old key read sector %d after rotate-key' % sector)
    st.close()
    # The owner, with the new key, reads everything.
    st, vol = _open(path, new_kek, anchor)
    assert vol.read(400 * SECTOR, 8 * SECTOR) == pattern(400, 8, salt=2)
    assert vol.scrub() == []
    st.close()


def test_rotation_interrupted_anywhere_reads_right_and_resumes(tmp_path):
    """An interrupted rotation leaves a volume that reads right and then finishes.

    Here the interruption is an exception from the progress callback (the functional test
    uses kill -9): the volume opens with the new key, reads every sector right, and the
    rotation finishes when started again.
    """
    path = str(tmp_path / 'vol')
    anchor = storage.FileAnchor(str(tmp_path / 'anchor'))
    old_kek, new_kek = os.urandom(32), os.urandom(32)
    st = storage.FileStorage(path)
    vol = fmt.Volume.create(st, old_kek, anchor, 5000 * SECTOR)
    model = bytearray(5000 * SECTOR)
    for first, n in ((0, 300), (2040, 20), (4090, 10)):
        data = pattern(first, n, salt=7)
        vol.write(first * SECTOR, data)
        model[first * SECTOR:(first + n) * SECTOR] = data
    vol.flush()

    class Stop(Exception):
        pass

    calls = []

    def progress(position, total, done):
        calls.append(done)
        if done >= 100:
            raise Stop()
    with pytest.raises(Stop):
        vol.rotate_keys(new_kek, progress=progress, flush_every=64 * SECTOR)
    st.close()                       # no final flush: like a killed process
    with pytest.raises(errors.WrongKeyError):
        _open(path, old_kek, anchor)
    st, vol = _open(path, new_kek, anchor)
    assert vol.info()['rotation_in_progress']
    assert vol.read(0, len(model)) == model
    assert vol.scrub() == []
    done = vol.rotate_keys(new_kek)                     # resume
    assert 0 < done < 330
    info = vol.info()
    assert not info['rotation_in_progress'] and info['data_key_generation'] == 2
    st.close()
    st, vol = _open(path, new_kek, anchor)
    assert vol.read(0, len(model)) == model and vol.scrub() == []
    st.close()


def test_rotate_kek_only_says_what_it_protects(tmp_path, capsys):
    """``rotate-key --kek-only`` only rewraps.

    An old header copy with the old key still opens the data (the command says so).
    """
    path = str(tmp_path / 'vol')
    anchor_path = str(tmp_path / 'anchor')
    old_key, new_key = str(tmp_path / 'old.key'), str(tmp_path / 'new.key')
    old_kek = os.urandom(32)
    for name, key in ((old_key, old_kek), (new_key, os.urandom(32))):
        with open(name, 'w') as f:
            f.write(key.hex())
    st = storage.FileStorage(path)
    vol = fmt.Volume.create(st, old_kek, storage.FileAnchor(anchor_path), 64 * SECTOR)
    vol.write(0, pattern(0, 2))
    vol.flush()
    st.close()
    old_header = read_raw(path, 0, 2 * fmt.HEADER_SLOT_SIZE)
    assert cli.main(['rotate-key', path, '--anchor', anchor_path, '--key-file', old_key,
                     '--new-key-file', new_key, '--kek-only']) == 0
    assert 'an older copy of the header with the old key-encryption key still decrypts ' \
        'every sector' in capsys.readouterr().out
    with open(path, 'r+b') as f:
        f.write(old_header)
    st, vol = _forged_open(path, old_kek, storage.FileAnchor(anchor_path))
    assert vol.read(0, 2 * SECTOR) == pattern(0, 2)     # documented: KEK-only rewrap
    st.close()
