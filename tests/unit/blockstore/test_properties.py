"""Property tests: the volume behaves like a plain disk, and corruption anywhere in the
file is either detected (a BlockstoreError naming it) or harmless, never wrong data."""
import os
import tempfile

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from tclouds_openstack.blockstore import errors
from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.blockstore import storage

SECTORS = 300                      # crosses a group boundary (256)
SIZE = SECTORS * fmt.SECTOR_SIZE

writes = st.lists(st.tuples(st.integers(0, SIZE - 1), st.integers(1, 3 * fmt.SECTOR_SIZE),
                            st.integers(0, 255), st.booleans()),
                  min_size=1, max_size=12)


def _volume(tmp, kek):
    path = os.path.join(tmp, 'vol')
    anchor = storage.FileAnchor(os.path.join(tmp, 'anchor'))
    st_ = storage.FileStorage(path)
    return path, anchor, fmt.Volume.create(st_, kek, anchor, SIZE)


def _apply(vol, model, ops):
    for offset, length, byte, flush in ops:
        length = min(length, SIZE - offset)
        data = bytes([byte]) * length
        vol.write(offset, data)
        model[offset:offset + length] = data
        if flush:
            vol.flush()


@settings(max_examples=25, deadline=None)
@given(writes)
def test_behaves_like_a_disk_across_reopen(ops):
    kek = os.urandom(32)
    with tempfile.TemporaryDirectory() as tmp:
        path, anchor, vol = _volume(tmp, kek)
        model = bytearray(SIZE)
        _apply(vol, model, ops)
        assert vol.read(0, SIZE) == model
        vol.flush()
        vol.storage.close()
        st_ = storage.FileStorage(path)
        again = fmt.Volume.open(st_, kek, anchor)
        assert again.read(0, SIZE) == model
        assert again.scrub() == []
        st_.close()


def _regions():
    """Where a volume of SECTORS keeps what: flips are aimed at each region in turn."""
    return [(0, 2 * fmt.HEADER_SLOT_SIZE),                              # header slots
            (fmt.JOURNAL_START, 16 * fmt.JOURNAL_ENTRY.size),           # journal head
            (fmt.page_offset(0), -(-SECTORS // 16) * fmt.PAGE_META),    # leaves, records
            (fmt.node_offset(1, 0), fmt.DEPTH * 2 * fmt.NODE_BYTES),   # tree nodes
            (fmt.data_offset(0), SECTORS * fmt.SECTOR_SIZE)]            # data


@settings(max_examples=40, deadline=None)
@given(writes, st.lists(st.tuples(st.integers(0, 4), st.integers(0, 10 ** 9),
                                  st.integers(1, 255)), min_size=1, max_size=4))
def test_corruption_is_detected_or_harmless(ops, flips):
    kek = os.urandom(32)
    with tempfile.TemporaryDirectory() as tmp:
        path, anchor, vol = _volume(tmp, kek)
        model = bytearray(SIZE)
        _apply(vol, model, ops)
        vol.flush()
        vol.storage.close()
        regions = _regions()
        with open(path, 'r+b') as f:
            for region, where, mask in flips:
                start, length = regions[region]
                f.seek(start + where % length)
                byte = f.read(1)[0]
                f.seek(start + where % length)
                f.write(bytes([byte ^ mask]))
        st_ = storage.FileStorage(path)
        try:
            vol = fmt.Volume.open(st_, kek, anchor)
        except (errors.HeaderError, errors.AnchorError, errors.WrongKeyError):
            return            # refused at open, with the reason
        bad = set()
        for exc in vol.scrub():             # a failing subtree is one error for its range
            bad.update(range(exc.sector, exc.last + 1) if exc.sector is not None else [])
        for sector in range(SECTORS):
            offset = sector * fmt.SECTOR_SIZE
            try:
                data = vol.read(offset, fmt.SECTOR_SIZE)
            except errors.IntegrityError as exc:
                assert exc.sector in bad or exc.sector is None
                continue
            assert sector not in bad
            assert data == model[offset:offset + fmt.SECTOR_SIZE], 'wrong data at %d' % sector
        st_.close()


BIG = 3 * 2048 + 100                 # sectors: three segments and a bit, sparse
ops = st.lists(st.one_of(
    st.tuples(st.just('write'), st.integers(0, BIG - 1), st.integers(1, 40),
              st.integers(0, 255)),
    st.tuples(st.just('flush'), st.just(0), st.just(0), st.just(0)),
    st.tuples(st.just('crash'), st.just(0), st.just(0), st.just(0)),
    st.tuples(st.just('read'), st.integers(0, BIG - 1), st.integers(1, 300), st.just(0))),
    min_size=1, max_size=30)


@settings(max_examples=30, deadline=None)
@given(ops)
def test_small_cache_flushes_and_crashes_behave_like_a_disk(steps):
    """A small cache, flushes and crashes: reads always match a model.

    The cache is far smaller than the written data (evictions and reloads everywhere);
    crashes are kill -9 equivalents (reopen without flush).
    """
    kek = os.urandom(32)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'vol')
        anchor = storage.FileAnchor(os.path.join(tmp, 'anchor'))
        st_ = storage.FileStorage(path)
        vol = fmt.Volume.create(st_, kek, anchor, BIG * fmt.SECTOR_SIZE, cache_bytes=1)
        model = bytearray(BIG * fmt.SECTOR_SIZE)
        for op, sector, n, byte in steps:
            if op == 'write':
                n = min(n, BIG - sector)
                offset = sector * fmt.SECTOR_SIZE + (byte % 7) * 300
                data = bytes([byte]) * min(n * fmt.SECTOR_SIZE, len(model) - offset)
                vol.write(offset, data)
                model[offset:offset + len(data)] = data
            elif op == 'flush':
                vol.flush()
            elif op == 'crash':
                st_.close()
                st_ = storage.FileStorage(path)
                vol = fmt.Volume.open(st_, kek, anchor, cache_bytes=1)
            else:
                n = min(n, BIG - sector)
                offset = sector * fmt.SECTOR_SIZE
                assert vol.read(offset, n * fmt.SECTOR_SIZE) == \
                    model[offset:offset + n * fmt.SECTOR_SIZE]
            assert len(vol._pages) <= vol._max_pages + 64
        st_.close()
        st_ = storage.FileStorage(path)
        vol = fmt.Volume.open(st_, kek, anchor, cache_bytes=1)
        assert vol.read(0, len(model)) == model
        assert vol.scrub() == []
        st_.close()
