"""What a flush writes for a lone leaf page (issue 14 point 6): the free copy of its leaves
and the entries written since the last flush, as one write from the free copy to the
farthest such entry; nothing else of the page's block, never its committed copy.

Every 4 KiB block a flush dirties is one more block the volume's ``fdatasync`` writes back
before the anchor commit. What a lone page's write leaves out must never be needed: the
records of sectors not written since the last flush are on disk already (or belong to
never-written sectors, whose zero leaves make any bytes there unread). The tests reopen the
volume from disk after every flush, so an entry the flush failed to write fails them.
"""
import hashlib
import os

from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.blockstore import storage

SECTOR = fmt.SECTOR_SIZE
SIZE = 2 * fmt.SEG_SECTORS
# Lone pages (no neighbour written in the same flush) and the sectors of each written:
# the first, the last, two inside, both ends, all sixteen.
CASES = {3: [0], 10: [15], 20: [3, 9], 133: [0, 15], 140: list(range(16))}


def pattern(sector, salt):
    return hashlib.sha256(b'%d-%d' % (sector, salt)).digest() * (SECTOR // 32)


class Recording:
    """Records the ranges written through it."""

    def __init__(self, real):
        self.real = real
        self.writes = []

    def pwrite(self, data, offset):
        self.writes.append((offset, offset + len(data)))
        self.real.pwrite(data, offset)

    def __getattr__(self, name):
        return getattr(self.real, name)


def read_raw(path, offset, length):
    with open(path, 'rb') as f:
        f.seek(offset)
        return f.read(length)


def expected_range(page, copy, written, cslot):
    """The bytes of page's block (absolute offsets) a lone page's flush must write."""
    block = fmt.page_offset(page)
    if copy == 0:
        i = max(written)
        end = fmt.PAGE_LEAVES + i * fmt.RECORD_SIZE + ((cslot >> i & 1) + 1) * fmt.ENTRY_SIZE
        return block, block + end
    i = min(written)
    start = fmt.PAGE_LEAVES + i * fmt.RECORD_SIZE + (cslot >> i & 1) * fmt.ENTRY_SIZE
    return block + start, block + fmt.PAGE_META


def _reopened_reads(path, kek, anchor, contents):
    st = storage.FileStorage(path, readonly=True)
    try:
        vol = fmt.Volume.open(st, kek, anchor, readonly=True)
        assert not vol.recovered
        for sector, data in contents.items():
            assert vol.read(sector * SECTOR, SECTOR) == data, sector
        assert vol.scrub() == []
        assert vol.scrubbed == sum(1 for data in contents.values() if any(data))
    finally:
        st.close()


def _new_volume(tmp_path):
    """(path, key, anchor, storage, volume) of a new format 2 volume of SIZE sectors."""
    kek = os.urandom(32)
    path = str(tmp_path / 'vol')
    anchor = storage.FileAnchor(str(tmp_path / 'anchor'))
    st = storage.FileStorage(path)
    return path, kek, anchor, st, fmt.Volume.create(st, kek, anchor, SIZE * SECTOR)


def _write_cases(vol, contents, salt):
    """Write every sector of CASES with ``salt``'s pattern, noted in ``contents``."""
    for page, written in CASES.items():
        for i in written:
            sector = page * 16 + i
            contents[sector] = pattern(sector, salt)
            vol.write(sector * SECTOR, contents[sector])


def test_a_lone_page_flush_writes_its_free_copy_and_written_entries_only(tmp_path):
    path, kek, anchor, st, vol = _new_volume(tmp_path)
    contents = {}
    for salt in range(1, 5):       # both copies, each over a committed one from salt 2 on
        _write_cases(vol, contents, salt)
        pages = {page: vol._pages[page] for page in CASES}
        copies = {page: 1 - pg.copy for page, pg in pages.items()}
        cslots = {page: pg.cslot for page, pg in pages.items()}
        blocks = {page: read_raw(path, fmt.page_offset(page), fmt.PAGE_META)
                  for page in CASES}
        recording = vol.storage = Recording(st)
        vol.flush()
        vol.storage = st
        for page, written in CASES.items():
            block = fmt.page_offset(page)
            inside = [w for w in recording.writes
                      if w[0] < block + fmt.PAGE_META and w[1] > block]
            start, end = expected_range(page, copies[page], written, cslots[page])
            assert inside == [(start, end)], (salt, page, inside)
            after = read_raw(path, block, fmt.PAGE_META)
            # Nothing outside that range changed, the committed copy included.
            assert after[:start - block] == blocks[page][:start - block], (salt, page)
            assert after[end - block:] == blocks[page][end - block:], (salt, page)
            committed = 1 - copies[page]
            lo = committed * (fmt.PAGE_META - fmt.PAGE_LEAVES)
            assert after[lo:lo + fmt.PAGE_LEAVES] == blocks[page][lo:lo + fmt.PAGE_LEAVES]
        # From disk alone: every write of every flush so far, nothing flagged.
        _reopened_reads(path, kek, anchor, contents)
    st.close()


def test_stale_bytes_a_lone_page_flush_leaves_are_never_read(tmp_path):
    """Records never written sit beside the written ones: zero leaves, so never used.

    A block device is not zeroed when a volume is created on it, and a shrink leaves the old
    records past the end: the page's block holds random bytes before its first write.
    """
    path, kek, anchor, st, vol = _new_volume(tmp_path)
    page = 77
    with open(path, 'r+b') as f:
        f.seek(fmt.page_offset(page))
        f.write(os.urandom(fmt.PAGE_META))
    contents = {page * 16 + i: bytes(SECTOR) for i in range(16)}
    for salt, i in enumerate((5, 0, 15, 9, 5), 1):
        sector = page * 16 + i
        contents[sector] = pattern(sector, salt)
        vol.write(sector * SECTOR, contents[sector])
        vol.flush()
        _reopened_reads(path, kek, anchor, contents)
    st.close()
    st = storage.FileStorage(path)
    vol = fmt.Volume.open(st, kek, anchor)
    for i in (1, 14):               # slots still holding the random bytes
        sector = page * 16 + i
        contents[sector] = pattern(sector, 9)
        vol.write(sector * SECTOR, contents[sector])
    vol.flush()
    st.close()
    _reopened_reads(path, kek, anchor, contents)


class Plain:
    """A storage with only the calls the format requires (no ``start_writeback``)."""

    def __init__(self, real):
        for name in ('pread', 'preadv', 'pwrite', 'sync', 'truncate', 'size'):
            setattr(self, name, getattr(real, name))


def test_a_storage_without_early_writeback_flushes_the_same(tmp_path):
    """Starting the writeback early is optional: its absence changes nothing on disk."""
    path, kek, anchor, st, vol = _new_volume(tmp_path)
    vol.storage = Plain(st)
    contents = {}
    for salt in (1, 2):
        _write_cases(vol, contents, salt)
        vol.flush()
        _reopened_reads(path, kek, anchor, contents)
    st.close()
