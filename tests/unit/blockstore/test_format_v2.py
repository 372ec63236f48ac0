"""Format 2 at size: bounded memory, O(1) open, the on-disk tree's checks; format 1 volumes
(written by the first release, in tests/unit/blockstore/data) still read and upgrade."""
import gzip
import hashlib
import os
import shutil

import pytest

from tclouds_openstack.blockstore import errors
from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.blockstore import format_v1
from tclouds_openstack.blockstore import storage
from tclouds_openstack.cmd import blockstore as cli

SECTOR = fmt.SECTOR_SIZE
DATA = os.path.join(os.path.dirname(__file__), 'data')
V1_KEK = bytes.fromhex('5a' * 32)


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


@pytest.fixture
def opened():
    stores = []

    def open_(path, kek, anchor, readonly=False, **kwargs):
        st = storage.FileStorage(path, readonly=readonly)
        stores.append(st)
        return fmt.Volume.open(st, kek, anchor, readonly=readonly, **kwargs)

    def close():
        while stores:
            stores.pop().close()
    open_.close = close
    yield open_
    close()


def test_terabyte_volume_opens_in_o1_and_keeps_the_cache_bounded(tmp_path, opened):
    """A sparse 1 TiB volume.

    Create and open read O(1) bytes; scattered writes across the whole volume with a small
    cache never hold more pages or nodes than the cache allows, and everything reads back after
    reopening (through evictions and reloads).
    """
    kek = os.urandom(32)
    path = str(tmp_path / 'vol')
    anchor = storage.FileAnchor(str(tmp_path / 'anchor'))
    st = storage.FileStorage(path)
    fmt.Volume.create(st, kek, anchor, 1 << 40)
    st.close()
    assert os.path.getsize(path) > 1 << 40
    assert os.stat(path).st_blocks * 512 < 1 << 20          # sparse: nothing of it written
    vol = opened(path, kek, anchor, cache_bytes=1 << 20)     # the floors: 256 pages, 64 nodes
    n = vol.header.sector_count
    spread = [(k * 7919 * 1048573) % (n - 8) for k in range(700)]
    for k, sector in enumerate(spread):
        vol.write(sector * SECTOR, pattern(sector, 1, salt=k))
        assert len(vol._pages) <= vol._max_pages and len(vol._nodes) <= vol._max_nodes
    vol.flush()
    for k, sector in enumerate(spread):
        assert vol.read(sector * SECTOR, SECTOR) == pattern(sector, 1, salt=k)
        assert len(vol._pages) <= vol._max_pages and len(vol._nodes) <= vol._max_nodes
    opened.close()
    vol = opened(path, kek, anchor, readonly=True, cache_bytes=1 << 20)
    for k, sector in enumerate(spread[::-1]):
        assert vol.read(sector * SECTOR, SECTOR) == pattern(sector, 1, salt=699 - k)
    assert vol.scrub() == []
    assert vol.scrubbed == len(set(spread))     # only the written sectors are decrypted
    assert os.stat(path).st_blocks * 512 < 64 << 20          # still sparse


def test_journal_full_and_dirty_pages_force_a_flush(tmp_path, opened):
    kek = os.urandom(32)
    path = str(tmp_path / 'vol')
    anchor = storage.FileAnchor(str(tmp_path / 'anchor'))
    st = storage.FileStorage(path)
    fmt.Volume.create(st, kek, anchor, 80000 * SECTOR)
    st.close()
    vol = opened(path, kek, anchor, cache_bytes=1 << 20)
    version = vol.info()['anchor_version']
    for sector in range(0, 80000, 16):                     # 5000 pages > the dirty limit
        vol.write(sector * SECTOR, pattern(sector))
        assert len(vol._queued) <= vol._max_dirty
    assert vol.info()['anchor_version'] > version           # flushed on its own
    opened.close()
    vol = opened(path, kek, anchor, cache_bytes=32 << 20)    # dirty limit above the journal
    version = vol.info()['anchor_version']
    chunk = bytes(256 * SECTOR)
    for first in range(0, 70144, 256):                       # more than the journal holds
        vol.write_sectors(first, chunk)
        assert vol._jpos <= fmt.JOURNAL_ENTRIES
    assert vol.info()['anchor_version'] == version + 2       # one flush: the journal was full
    opened.close()
    vol = opened(path, kek, anchor)                          # a crash: no final flush
    assert vol.recovered
    assert vol.read(0, SECTOR) == bytes(SECTOR)
    assert vol.read(70000 * SECTOR, SECTOR) == bytes(SECTOR)
    assert vol.read(75008 * SECTOR, SECTOR) == pattern(75008)
    assert vol.scrub() == []


def test_damaged_leaf_page_or_node_fails_its_subtree_only(tmp_path, opened):
    kek = os.urandom(32)
    path = str(tmp_path / 'vol')
    anchor = storage.FileAnchor(str(tmp_path / 'anchor'))
    st = storage.FileStorage(path)
    vol = fmt.Volume.create(st, kek, anchor, 3 * fmt.SEG_SECTORS * SECTOR)
    vol.write(0, pattern(0, 64, salt=1))
    vol.write(fmt.SEG_SECTORS * SECTOR, pattern(fmt.SEG_SECTORS, 32, salt=1))
    vol.flush()
    st.close()
    # Both copies of leaf page 1 (sectors 16-31) damaged.
    patch(path, fmt.page_offset(1) + 3, b'\x01')
    patch(path, fmt.page_offset(1) + fmt.PAGE_META - 3, b'\x01')
    # Both copies of the level 1 node of segment 1.
    patch(path, fmt.node_offset(1, 1, 0) + 100, b'\x02')
    patch(path, fmt.node_offset(1, 1, 1) + 100, b'\x02')
    vol = opened(path, kek, anchor)
    assert vol.read(0, 16 * SECTOR) == pattern(0, 16, salt=1)
    assert vol.read(32 * SECTOR, 32 * SECTOR) == pattern(32, 32, salt=1)
    for sector in (16, 31, fmt.SEG_SECTORS, fmt.SEG_SECTORS + 31):
        with pytest.raises(errors.IntegrityError) as exc:
            vol.read(sector * SECTOR, SECTOR)
        assert exc.value.check == 'tree' and exc.value.sector == sector
        assert 'matches neither of its two copies' in exc.value.detail
    with pytest.raises(errors.IntegrityError):
        vol.write(20 * SECTOR, pattern(20))                  # no write under a bad subtree
    found = vol.scrub()
    assert [e.sector for e in found][:1] == [16]
    assert {e.check for e in found} == {'tree'}
    assert 'level 1 index 1' in ' '.join(e.detail for e in found)


def test_resize_shrink_then_grow_reads_zeros_past_the_old_end(tmp_path, opened):
    kek = os.urandom(32)
    path = str(tmp_path / 'vol')
    anchor = storage.FileAnchor(str(tmp_path / 'anchor'))
    st = storage.FileStorage(path)
    vol = fmt.Volume.create(st, kek, anchor, 5000 * SECTOR)
    vol.write(0, pattern(0, 5000, salt=3))
    vol.flush()
    vol.resize(2049 * SECTOR, kek)                           # just past a segment
    vol.resize(5000 * SECTOR, kek)
    assert vol.read(0, 2049 * SECTOR) == pattern(0, 2049, salt=3)
    assert vol.read(2049 * SECTOR, 2951 * SECTOR) == bytes(2951 * SECTOR)
    st.close()
    vol = opened(path, kek, anchor)
    assert vol.size == 5000 * SECTOR and vol.scrub() == []
    assert vol.read(2048 * SECTOR, 2 * SECTOR) == pattern(2048, 1, salt=3) + bytes(SECTOR)


def _v1(tmp_path, name):
    path = str(tmp_path / (name + '.vol'))
    with gzip.open(os.path.join(DATA, name + '.vol.gz')) as f, open(path, 'wb') as out:
        shutil.copyfileobj(f, out)
    anchor = str(tmp_path / (name + '.anchor'))
    shutil.copy(os.path.join(DATA, name + '.anchor'), anchor)
    return path, anchor


# What tests/unit/blockstore/data/v1-*.vol.gz hold (written by the first release's code).
V1_CONTENT = [(0, pattern(0, 2, salt=1)), (2 * SECTOR, pattern(2, 1, salt=2)),
              (3 * SECTOR, pattern(3, 1, salt=1)[:100] + b'x' * 50
               + pattern(3, 1, salt=1)[150:]),
              (254 * SECTOR, pattern(254, 4, salt=1)), (100 * SECTOR, bytes(SECTOR))]


@pytest.mark.parametrize('name', ['v1-tree', 'v1-notree'])
def test_format1_volumes_read_check_and_refuse_writes(tmp_path, name, opened):
    path, anchor_path = _v1(tmp_path, name)
    anchor = storage.FileAnchor(anchor_path)
    vol = opened(path, V1_KEK, anchor, readonly=True)
    assert vol.info()['format_version'] == 1 and vol.info()['read_only']
    for offset, data in V1_CONTENT:
        assert vol.read(offset, len(data)) == data
    assert vol.scrub() == []
    with pytest.raises(errors.BlockstoreError) as exc:
        vol.write(0, b'x')
    assert 'upgrade' in str(exc.value)
    with pytest.raises(errors.FormatVersionError):
        opened(path, V1_KEK, anchor)                         # read-write: refused
    # Format 1 checks still hold: a flipped data bit is named.
    patch(path, format_v1.data_offset(254) + 9, b'\x00\x01')
    assert [e.sector for e in opened(path, V1_KEK, anchor, readonly=True).scrub()] == [254]


def test_upgrade_copies_a_format1_volume_into_format2(tmp_path, capsys):
    path, anchor = _v1(tmp_path, 'v1-tree')
    key = tmp_path / 'key'
    key.write_text(V1_KEK.hex())
    new = str(tmp_path / 'new.vol')
    assert cli.main(['upgrade', path, '--anchor', anchor, '--key-file', str(key),
                     '--to', new]) == 0
    assert '"upgraded_from"' in capsys.readouterr().out
    st = storage.FileStorage(new)
    vol = fmt.Volume.open(st, V1_KEK, storage.FileAnchor(anchor))
    assert vol.info()['format_version'] == 2 and vol.size == 300 * SECTOR
    for offset, data in V1_CONTENT:
        assert vol.read(offset, len(data)) == data
    vol.write(5 * SECTOR, pattern(5))                        # and it takes writes
    vol.flush()
    st.close()
    assert cli.main(['check', new, '--anchor', anchor, '--key-file', str(key)]) == 0
    # A damaged source is refused, nothing is created.
    patch(path, format_v1.data_offset(0) + 9, b'\x00\x01')
    assert cli.main(['upgrade', path, '--anchor', anchor, '--key-file', str(key),
                     '--to', str(tmp_path / 'other.vol')]) == 1
    assert not os.path.exists(str(tmp_path / 'other.vol'))


def test_a_lone_page_flush_writes_its_free_copy_and_records_only(tmp_path, opened):
    """A flush writes a lone leaf page's records and free copy, never its committed copy.

    Adjacent pages are still written whole (merged). A flush that dies before its anchor
    commit leaves every committed copy as it was: the reopened volume loads the pages
    against the old root and recovers the writes from the journal.
    """
    kek = os.urandom(32)
    path = str(tmp_path / 'vol')
    anchor = storage.FileAnchor(str(tmp_path / 'anchor'))
    st = storage.FileStorage(path)
    vol = fmt.Volume.create(st, kek, anchor, 2 * fmt.SEG_SECTORS * SECTOR)
    lone = [3, 10 * 16 + 7, fmt.SEG_SECTORS + 5 * 16]      # pages 0, 10 and 133: no neighbours
    for salt in (1, 2):
        for sector in lone:
            vol.write(sector * SECTOR, pattern(sector, salt=salt))
        vol.flush()
    committed = {}
    for sector in lone:
        page = vol._pages[sector >> 4]
        start = fmt.page_offset(sector >> 4) + page.copy * (fmt.PAGE_META - fmt.PAGE_LEAVES)
        committed[sector] = (start, read_raw(path, start, fmt.PAGE_LEAVES))
        assert fmt.node_hash(0, sector >> 4, committed[sector][1]) != fmt.ZERO_HASH
    for sector in lone:
        vol.write(sector * SECTOR, pattern(sector, salt=3))
    real_commit = anchor.commit

    def dies(*args):
        raise errors.AnchorError('commit lost')
    anchor.commit = dies
    with pytest.raises(errors.AnchorError):
        vol.flush()
    anchor.commit = real_commit
    st.close()
    for sector, (start, raw) in committed.items():
        assert read_raw(path, start, fmt.PAGE_LEAVES) == raw     # the committed copy kept
    # The pages load against the old root (their committed copies) and the journal
    # replays the unanchored writes.
    vol = opened(path, kek, anchor, readonly=True)
    assert vol.recovered and vol.scrub() == []
    for sector in lone:
        assert vol.read(sector * SECTOR, SECTOR) == pattern(sector, salt=3)
    opened.close()
    vol = opened(path, kek, anchor)
    for sector in lone:
        vol.write(sector * SECTOR, pattern(sector, salt=4))
    vol.write(40 * 16 * SECTOR, pattern(40 * 16, 48, salt=4))     # three adjacent pages
    vol.flush()
    opened.close()
    vol = opened(path, kek, anchor, readonly=True)
    assert vol.scrub() == [] and vol.scrubbed == len(lone) + 48
    for sector in lone:
        assert vol.read(sector * SECTOR, SECTOR) == pattern(sector, salt=4)
    assert vol.read(40 * 16 * SECTOR, 48 * SECTOR) == pattern(40 * 16, 48, salt=4)
