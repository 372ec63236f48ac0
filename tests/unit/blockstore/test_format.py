"""The protected block format: confidentiality, integrity, freshness, crash safety."""
import hashlib
import os
import shutil
import struct

import pytest

from tclouds_openstack.blockstore import errors
from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.blockstore import header
from tclouds_openstack.blockstore import merkle
from tclouds_openstack.blockstore import storage

SECTOR = fmt.SECTOR_SIZE


@pytest.fixture
def vol_env(tmp_path):
    kek = os.urandom(32)
    path = str(tmp_path / 'vol')
    anchor = storage.FileAnchor(str(tmp_path / 'anchor.json'))
    opened = []

    def close_writers():
        # One writer at a time (flock): a reopen for writing ends the earlier one, like a
        # server that was stopped (or killed: nothing is flushed here).
        for st in opened:
            st.close()

    def make(size=600 * SECTOR, **kwargs):
        close_writers()
        st = storage.FileStorage(path)
        opened.append(st)
        return fmt.Volume.create(st, kek, anchor, size, **kwargs)

    def reopen(key=None, readonly=False, **kwargs):
        if not readonly:
            close_writers()
        st = storage.FileStorage(path, readonly=readonly)
        opened.append(st)
        return fmt.Volume.open(st, key or kek, anchor, readonly=readonly, **kwargs)

    yield make, reopen, path, kek, anchor
    close_writers()


def pattern(sector, n=1, salt=0):
    return b''.join(hashlib.sha256(b'%d-%d' % (s, salt)).digest() * (SECTOR // 32)
                    for s in range(sector, sector + n))


def patch(path, offset, data):
    with open(path, 'r+b') as f:
        f.seek(offset)
        f.write(data)


def read_raw(path, offset, length):
    with open(path, 'rb') as f:
        f.seek(offset)
        return f.read(length)


def _mth(leaves):
    """RFC 9162 2.1.1 recursive definition, to check the flat implementation."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle.hash_children(_mth(leaves[:k]), _mth(leaves[k:]))


@pytest.mark.parametrize('n', [1, 2, 3, 5, 8, 13, 300])
def test_tree_matches_rfc9162_and_updates(n):
    leaves = [merkle.hash_leaf(b'%d' % i) for i in range(n)]
    tree = merkle.Tree(b''.join(leaves))
    assert tree.root() == _mth(leaves)
    leaves[n // 2] = merkle.hash_leaf(b'changed')
    leaves[n - 1] = merkle.hash_leaf(b'last')
    assert tree.update({n // 2: leaves[n // 2], n - 1: leaves[n - 1]}) == _mth(leaves)


def test_roundtrip_unaligned_and_never_written(vol_env):
    make, reopen, path, _, _ = vol_env
    vol = make()
    vol.write(3 * SECTOR + 100, b'a' * 9000)
    vol.write(300 * SECTOR, pattern(300, 40))     # crosses the group boundary at 256
    vol.flush()
    vol = reopen()
    assert vol.read(3 * SECTOR + 100, 9000) == b'a' * 9000
    assert vol.read(3 * SECTOR, 100) == bytes(100)
    assert vol.read(300 * SECTOR, 40 * SECTOR) == pattern(300, 40)
    assert vol.read(500 * SECTOR, SECTOR) == bytes(SECTOR)
    assert vol.scrub() == []
    # Confidentiality: the plaintext is nowhere in the file.
    with open(path, 'rb') as f:
        assert pattern(300)[:64] not in f.read()


def test_flipped_bit_names_the_sector(vol_env):
    make, reopen, path, _, _ = vol_env
    vol = make()
    vol.write(7 * SECTOR, pattern(7, 3))
    vol.flush()
    byte = read_raw(path, fmt.data_offset(8) + 123, 1)
    patch(path, fmt.data_offset(8) + 123, bytes([byte[0] ^ 0x10]))
    vol = reopen()
    assert vol.read(7 * SECTOR, SECTOR) == pattern(7)
    with pytest.raises(errors.IntegrityError) as exc:
        vol.read(8 * SECTOR, SECTOR)
    assert exc.value.sector == 8 and exc.value.check == 'tag'
    bad = vol.scrub()
    assert [(e.sector, e.check) for e in bad] == [(8, 'tag')]


def test_swapped_sectors_fail(vol_env):
    make, reopen, path, _, _ = vol_env
    vol = make()
    vol.write(10 * SECTOR, pattern(10, 2))
    vol.flush()
    a = read_raw(path, fmt.data_offset(10), SECTOR)
    b = read_raw(path, fmt.data_offset(11), SECTOR)
    patch(path, fmt.data_offset(10), b)
    patch(path, fmt.data_offset(11), a)
    vol = reopen()
    assert [(e.sector, e.check) for e in vol.scrub()] == [(10, 'tag'), (11, 'tag')]


def _snapshot_sector(path, sector):
    return (read_raw(path, fmt.record_offset(sector), fmt.RECORD_SIZE),
            read_raw(path, fmt.data_offset(sector), SECTOR))


def _restore_sector(path, sector, snap):
    patch(path, fmt.record_offset(sector), snap[0])
    patch(path, fmt.data_offset(sector), snap[1])


def test_sector_rollback_located(vol_env):
    make, reopen, path, _, _ = vol_env
    vol = make()
    vol.write(20 * SECTOR, pattern(20, 2, salt=1))
    vol.flush()
    old = _snapshot_sector(path, 20)
    vol.write(20 * SECTOR, pattern(20, 2, salt=2))
    vol.flush()
    _restore_sector(path, 20, old)
    vol = reopen()
    with pytest.raises(errors.IntegrityError) as exc:
        vol.read(20 * SECTOR, SECTOR)
    assert (exc.value.sector, exc.value.check) == (20, 'rollback')
    assert vol.read(21 * SECTOR, SECTOR) == pattern(21, salt=2)
    assert [(e.sector, e.check) for e in vol.scrub()] == [(20, 'rollback')]
    # A full rewrite heals the sector and the volume verifies again after a flush.
    vol.write(20 * SECTOR, pattern(20, salt=3))
    vol.flush()
    assert reopen().scrub() == []


def test_data_only_rollback_is_a_tag_failure(vol_env):
    make, reopen, path, _, _ = vol_env
    vol = make()
    vol.write(5 * SECTOR, pattern(5, salt=1))
    vol.flush()
    old = read_raw(path, fmt.data_offset(5), SECTOR)
    vol.write(5 * SECTOR, pattern(5, salt=2))
    patch(path, fmt.data_offset(5), old)     # while still open: the in-memory tag catches it
    with pytest.raises(errors.IntegrityError) as exc:
        vol.read(5 * SECTOR, SECTOR)
    assert exc.value.sector == 5


def test_whole_file_rollback_refused(vol_env, tmp_path):
    make, reopen, path, _, _ = vol_env
    vol = make()
    vol.write(0, pattern(0, 4, salt=1))
    vol.flush()
    shutil.copy(path, str(tmp_path / 'old'))
    vol.write(0, pattern(0, 4, salt=2))
    vol.flush()
    shutil.copy(str(tmp_path / 'old'), path)
    vol = reopen()
    with pytest.raises(errors.IntegrityError) as exc:
        vol.read(SECTOR * 100, SECTOR)       # even a never-written sector: nothing is trusted
    assert exc.value.sector is None and exc.value.check == 'tree'
    assert 'rolled back' in str(exc.value)
    with pytest.raises(errors.IntegrityError):
        vol.write(0, pattern(0))


def test_wrong_key_refused_and_header_checked(vol_env):
    make, reopen, path, _, _ = vol_env
    make()
    with pytest.raises(errors.WrongKeyError):
        reopen(key=os.urandom(32))
    with pytest.raises(errors.WrongKeyError):
        reopen(key=b'short')
    patch(path, 20, b'\xff')                  # sector count field, slot A
    patch(path, fmt.HEADER_SLOT_SIZE + 20, b'\xff')
    with pytest.raises(errors.HeaderError) as exc:
        reopen()
    assert exc.value.field == 'checksum'


def test_header_parse_errors_name_the_field():
    h = fmt.Header(sector_count=10, uuid=os.urandom(16))
    raw = bytearray(h.pack())
    with pytest.raises(errors.HeaderError) as exc:
        fmt.Header.unpack('A', b'XXXXXXXX' + bytes(raw[8:]))
    assert exc.value.field == 'magic'
    with pytest.raises(errors.HeaderError) as exc:
        fmt.Header.unpack('A', bytes(raw[:40]))
    assert exc.value.field == 'length'
    raw[8:10] = struct.pack('>H', 9)
    with pytest.raises(errors.HeaderError) as exc:
        fmt.Header.unpack('A', bytes(raw))
    assert exc.value.field == 'format_version' and 'reads 1 and 2' in str(exc.value)
    raw[8:10] = struct.pack('>H', 2)
    raw[12:16] = struct.pack('>I', 512)
    body = bytes(raw[:header.FIELDS.size + header.WRAP[2].size - 32])
    raw[len(body):len(body) + 32] = hashlib.sha256(body).digest()
    with pytest.raises(errors.HeaderError) as exc:
        fmt.Header.unpack('A', bytes(raw))
    assert exc.value.field == 'sector_size'


def test_crash_between_journal_and_data_reads_old(vol_env):
    make, reopen, path, _, anchor = vol_env
    vol = make()
    vol.write(30 * SECTOR, pattern(30, salt=1))
    vol.flush()
    old_data = read_raw(path, fmt.data_offset(30), SECTOR)
    vol.write(30 * SECTOR, pattern(30, salt=2))
    vol.write(31 * SECTOR, pattern(31, salt=2))
    vol.write(32 * SECTOR, pattern(32, salt=2))
    vol.write(32 * SECTOR, pattern(32, salt=3))
    # Simulate kill -9 after the journal write but before the data write of sector 30.
    patch(path, fmt.data_offset(30), old_data)
    version = anchor.load(vol.uuid)['version']
    checked = reopen(readonly=True)
    assert checked.recovered and checked.scrub() == []
    assert anchor.load(vol.uuid)['version'] == version      # read-only: nothing anchored
    vol = reopen()
    assert vol.recovered
    assert vol.read(30 * SECTOR, SECTOR) == pattern(30, salt=1)
    assert vol.read(31 * SECTOR, SECTOR) == pattern(31, salt=2)
    assert vol.read(32 * SECTOR, SECTOR) == pattern(32, salt=3)
    assert anchor.load(vol.uuid)['version'] == version + 2
    # The recovery is anchored: opening again (twice) needs no recovery and reads the same.
    for _ in range(2):
        vol = reopen()
        assert not vol.recovered and vol.scrub() == []
        expected = pattern(30, salt=1) + pattern(31, salt=2) + pattern(32, salt=3)
        assert vol.read(30 * SECTOR, 3 * SECTOR) == expected
    vol.write(30 * SECTOR, pattern(30, salt=4))
    vol.flush()
    assert reopen().read(30 * SECTOR, SECTOR) == pattern(30, salt=4)


def test_crash_before_the_anchor_commit_keeps_the_committed_tree(vol_env):
    """A flush that wrote records and tree copies but died before its anchor commit."""
    make, reopen, path, _, anchor = vol_env
    vol = make()
    vol.write(0, pattern(0, 40, salt=1))
    vol.flush()
    vol.write(0, pattern(0, 20, salt=2))
    real_commit = anchor.commit

    def dies(*args):
        raise errors.AnchorError('commit lost')
    anchor.commit = dies
    with pytest.raises(errors.AnchorError):
        vol.flush()
    with pytest.raises(errors.BlockstoreError) as exc:
        vol.write(0, pattern(0))               # the tree in memory is ahead: no more writes
    assert 'reopen' in str(exc.value)
    anchor.commit = real_commit
    vol = reopen()
    assert vol.recovered                       # the journal still has the writes
    assert vol.read(0, 40 * SECTOR) == pattern(0, 20, salt=2) + pattern(20, 20, salt=1)
    assert reopen().scrub() == []


def test_anchor_is_monotonic_and_authenticated(vol_env):
    make, reopen, path, _, anchor = vol_env
    vol = make()
    state = dict(anchor.load(vol.uuid))
    with pytest.raises(errors.AnchorError):
        anchor.commit(vol.uuid, dict(state, version=0), state['version'])
    with pytest.raises(errors.AnchorError):
        anchor.commit(vol.uuid, dict(state, version=9), state['version'] - 1)
    anchor.commit(vol.uuid, dict(state, version=state['version'] + 1, root='00' * 32),
                  state['version'])
    with pytest.raises(errors.AnchorError) as exc:
        reopen()
    assert 'MAC' in str(exc.value)


def test_anchor_file_slots_torn_write_and_old_json(tmp_path):
    path = str(tmp_path / 'anchor')
    state = {'uuid': 'u', 'version': 1, 'root': 'ab', 'sector_count': 1, 'mac': 'm'}
    # A file of the earlier format (one JSON object) is read, then converted by a commit.
    with open(path, 'w') as f:
        f.write('{"u": {"uuid": "u", "version": 1, "root": "ab", "sector_count": 1, '
                '"mac": "m"}}')
    anchor = storage.FileAnchor(path)
    assert anchor.load('u') == state
    anchor.commit('u', dict(state, version=3), 1)
    raw = read_raw(path, 0, 2 * storage.ANCHOR_SLOT)
    assert raw.startswith(storage.ANCHOR_MAGIC) and len(raw) == 2 * storage.ANCHOR_SLOT
    ino = os.stat(path).st_ino
    anchor.commit('u', dict(state, version=5), 3)      # in place from now on
    anchor.commit('u', dict(state, version=7), 5)
    assert os.stat(path).st_ino == ino
    assert anchor.load('u')['version'] == 7
    # A commit torn by a crash: the file reads as the state before it.
    slot = storage.ANCHOR_SLOT
    newest = 0 if read_raw(path, 0, slot)[8:16] > read_raw(path, slot, slot)[8:16] else 1
    before = read_raw(path, 0, 2 * slot)
    anchor.commit('u', dict(state, version=9), 7)
    patch(path, (1 - newest) * slot + 100, b'\xff' * 8)
    assert anchor.load('u')['version'] == 7
    with pytest.raises(errors.AnchorError):
        anchor.commit('u', dict(state, version=9), 9)   # CAS against what the file says
    anchor.commit('u', dict(state, version=9), 7)
    assert anchor.load('u')['version'] == 9
    # Both slots damaged: refused, never an empty anchor.
    patch(path, 0, before[:20] + b'x' + before[21:slot + 20] + b'x')
    with pytest.raises(errors.AnchorError) as exc:
        anchor.load('u')
    assert 'both slots' in str(exc.value)


def test_anchor_file_grows_its_slots(tmp_path):
    anchor = storage.FileAnchor(str(tmp_path / 'anchor'))
    for i in range(40):            # ~40 states do not fit in 4 KiB slots
        anchor.commit('volume-%02d' % i, {'version': 1, 'pad': 'x' * 64}, None)
    assert os.path.getsize(anchor.path) > 2 * storage.ANCHOR_SLOT
    anchor.commit('volume-07', {'version': 3, 'pad': 'y'}, 1)
    states = anchor.states()
    assert len(states) == 40 and states['volume-07']['version'] == 3
    assert states['volume-39']['version'] == 1


def test_anchor_rolled_back_behind_the_records_is_refused(vol_env, tmp_path):
    """Journal entries of an epoch after the anchored version: the anchor went back.

    Open refuses, naming it (rather than only failing the tree check).
    """
    make, reopen, path, _, anchor = vol_env
    vol = make()
    vol.write(0, pattern(0))
    vol.flush()
    saved = str(tmp_path / 'anchor.saved')
    shutil.copy(anchor.path, saved)
    vol.write(SECTOR, pattern(1))
    vol.flush()
    vol.write(2 * SECTOR, pattern(2))      # epoch after the second flush
    vol.flush()
    shutil.copy(saved, anchor.path)
    with pytest.raises(errors.AnchorError) as exc:
        reopen()
    assert 'rolled back' in str(exc.value)


def test_rotate_kek_rewrites_only_the_header(vol_env):
    make, reopen, path, kek, _ = vol_env
    vol = make()
    vol.write(0, pattern(0, 3))
    vol.flush()
    before = read_raw(path, fmt.JOURNAL_START, 4 * SECTOR + fmt.SEG_START + fmt.SEG_META)
    new = os.urandom(32)
    vol.rotate_kek(new)
    assert read_raw(path, fmt.JOURNAL_START,
                    4 * SECTOR + fmt.SEG_START + fmt.SEG_META) == before
    with pytest.raises(errors.WrongKeyError):
        reopen(key=kek)
    assert reopen(key=new).read(0, 3 * SECTOR) == pattern(0, 3)


def test_resize_grow_and_shrink(vol_env):
    make, reopen, path, kek, _ = vol_env
    vol = make(size=10 * SECTOR)
    vol.write(9 * SECTOR, pattern(9))
    vol.resize(300 * SECTOR, kek)
    vol.write(299 * SECTOR, pattern(299))
    vol.flush()
    vol = reopen()
    assert vol.size == 300 * SECTOR
    assert vol.read(9 * SECTOR, SECTOR) == pattern(9)
    assert vol.read(200 * SECTOR, SECTOR) == bytes(SECTOR)
    assert vol.read(299 * SECTOR, SECTOR) == pattern(299)
    vol.resize(5 * SECTOR, kek)
    vol = reopen()
    assert vol.size == 5 * SECTOR and vol.scrub() == []
    with pytest.raises(errors.BlockstoreError):
        vol.read(5 * SECTOR, 1)


def test_format2_always_keeps_the_tree(vol_env):
    make, reopen, path, _, _ = vol_env
    with pytest.raises(errors.BlockstoreError) as exc:
        make(merkle_tree=False)
    assert 'always keep the Merkle tree' in str(exc.value)


@pytest.mark.parametrize('n', [1, 255, 256, 257, 1000])
def test_capacity_is_the_inverse_of_file_size(n):
    assert fmt.sectors_for_capacity(fmt.file_size(n)) == n
    assert fmt.sectors_for_capacity(fmt.file_size(n) - 1) == n - 1
    assert fmt.sectors_for_capacity(100) == 0
