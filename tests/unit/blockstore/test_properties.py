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


@settings(max_examples=40, deadline=None)
@given(writes, st.lists(st.tuples(st.integers(0, 10 ** 9), st.integers(1, 255)),
                        min_size=1, max_size=4))
def test_corruption_is_detected_or_harmless(ops, flips):
    kek = os.urandom(32)
    with tempfile.TemporaryDirectory() as tmp:
        path, anchor, vol = _volume(tmp, kek)
        model = bytearray(SIZE)
        _apply(vol, model, ops)
        vol.flush()
        vol.storage.close()
        length = os.path.getsize(path)
        with open(path, 'r+b') as f:
            for where, mask in flips:
                f.seek(where % length)
                byte = f.read(1)[0]
                f.seek(where % length)
                f.write(bytes([byte ^ mask]))
        st_ = storage.FileStorage(path)
        try:
            vol = fmt.Volume.open(st_, kek, anchor)
        except (errors.HeaderError, errors.AnchorError, errors.WrongKeyError):
            return            # refused at open, with the reason
        bad = {e.sector for e in vol.scrub()}
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
