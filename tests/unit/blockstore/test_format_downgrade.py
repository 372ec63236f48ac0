"""A volume is never opened in an older block format than it was known in (issue 12, 6).

Format 1 draws GCM nonces from the anchor version: a rollback of the volume and its
anchor together could make a writer repeat them. Format 2 cannot. Storage that puts a
format 1 header back on a format 2 volume (same blockstore UUID, even wrapping the same
data key: the worst case) must not get the volume read under format 1 rules. The trusted
side knows the format: the anchor state (MAC'd with its format) and the key service's
format mark. Here: the anchor check, the key store's mark and marks.py's reading of it.
"""
import os
import sqlite3

import pytest

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tclouds_openstack.blockstore import errors
from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.blockstore import header as hdr
from tclouds_openstack.blockstore import marks
from tclouds_openstack.blockstore import storage
from tclouds_openstack.keymgr import store


def put_back_format1_header(path, kek):
    """Replace both header slots of the format 2 volume at ``path`` with format 1 ones.

    Same UUID, size and data key (what an older copy, or a writer holding the key, could
    have left): only the format differs.
    """
    st = storage.FileStorage(path, readonly=True)
    try:
        header, _ = hdr.read_header(st)
        keys = hdr.unwrap(header, kek)
    finally:
        st.close()
    old = hdr.Header(sector_count=header.sector_count, uuid=header.uuid, flags=header.flags,
                     generation=header.generation + 1, key_ref=header.key_ref,
                     format_version=1)
    old.key_check = hdr._key_check(kek, old.uuid)
    old.wrap_nonce = os.urandom(12)
    old.wrapped_key = AESGCM(kek).encrypt(old.wrap_nonce, keys.current, old.fields())
    raw = old.pack()
    with open(path, 'r+b') as f:
        f.write(raw)
        f.write(raw)
    return header.uuid_str


@pytest.fixture
def volume(tmp_path):
    kek = os.urandom(32)
    path = str(tmp_path / 'vol')
    anchor = storage.FileAnchor(str(tmp_path / 'anchor'))
    st = storage.FileStorage(path)
    vol = fmt.Volume.create(st, kek, anchor, 4 << 20)
    vol.write(0, b'\x5a' * fmt.SECTOR_SIZE)
    vol.flush()
    st.close()
    return path, kek, anchor


@pytest.mark.parametrize('readonly', [True, False], ids=['read-only', 'read-write'])
def test_a_format1_header_on_a_format2_volume_is_a_downgrade(volume, readonly):
    """The anchor state knows format 2: the open names the downgrade, reads nothing."""
    path, kek, anchor = volume
    uuid = put_back_format1_header(path, kek)
    st = storage.FileStorage(path, readonly=True)
    try:
        assert hdr.read_header(st)[0].format_version == 1      # it parses as format 1
        with pytest.raises(errors.FormatVersionError) as exc:
            fmt.Volume.open(st, kek, anchor, readonly=True)
    finally:
        st.close()
    assert str(exc.value) == ('volume %s: its header is format 1, but its anchor state is '
                              'for format 2: refusing a format downgrade' % uuid)


def test_a_forged_newer_format_in_the_anchor_is_only_a_mac_failure(volume):
    """Only an anchor state whose MAC verifies under its format says "downgrade"."""
    path, kek, anchor = volume
    st = storage.FileStorage(path, readonly=True)
    header, _ = hdr.read_header(st)
    keys = hdr.unwrap(header, kek)
    st.close()
    state = dict(anchor.load(header.uuid_str), format=3)
    with pytest.raises(errors.AnchorError) as exc:
        hdr.check_anchor_state(state, keys, header.uuid_str, 2)
    assert not isinstance(exc.value, errors.FormatVersionError)


# -- the key service's mark ---------------------------------------------------------------

@pytest.fixture
def keystore(tmp_path):
    return store.LocalKeyStore(str(tmp_path / 'keys.sqlite'), os.urandom(32))


def test_the_mark_records_the_format_and_never_lowers_it(keystore):
    claimed, mark = keystore.claim_format_mark('vol-1', 'bs-1', 'h1', 2)
    assert claimed and mark['format_version'] == 2
    assert keystore.record_format('vol-1', 'bs-1', 'h2', 1)['format_version'] == 2
    assert keystore.record_format('vol-1', 'other', 'h2', 3) == mark   # another volume's
    assert keystore.record_format('vol-1', 'bs-1', 'h2', 3)['format_version'] == 3
    # a volume formatted before marks existed: its first verified open creates the mark
    assert keystore.record_format('vol-2', 'bs-2', 'h1', 2)['blockstore_uuid'] == 'bs-2'


def test_a_store_from_before_formats_is_migrated_and_its_marks_recorded_once(tmp_path):
    path = str(tmp_path / 'old.sqlite')
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE format_marks (volume TEXT PRIMARY KEY, blockstore_uuid TEXT NOT NULL,
                                   host TEXT, created REAL NOT NULL);
        INSERT INTO format_marks VALUES ('vol-1', 'bs-1', 'h1', 1.0);""")
    db.close()
    keystore = store.LocalKeyStore(path, os.urandom(32))
    assert keystore.format_mark('vol-1')['format_version'] is None
    assert keystore.record_format('vol-1', 'bs-1', 'h1', 2)['format_version'] == 2
    assert keystore.record_format('vol-1', 'bs-1', 'h1', 1)['format_version'] == 2
    store.LocalKeyStore(path, os.urandom(32))          # a second start changes nothing
    assert keystore.format_mark('vol-1')['format_version'] == 2


class _KeyManager:
    def __init__(self, mark):
        self.mark = mark

    def format_mark(self, context, volume_id):
        return self.mark

    def claim_format_mark(self, context, volume_id, blockstore_uuid, format_version):
        return False

    def record_format(self, context, volume_id, blockstore_uuid, format_version):
        return self.mark


@pytest.mark.parametrize('version', ['2', 0, -1, 2.0, True, [2]])
def test_a_malformed_recorded_format_is_unknown(version):
    mark = {'blockstore_uuid': 'u', 'format_version': version}
    with pytest.raises(marks.Unknown) as exc:
        marks.FormatMarks(_KeyManager(mark), None, 'vol-1').get()
    assert 'malformed format version in the format mark of volume vol-1' in str(exc.value)


@pytest.mark.parametrize('answer', [None, {'blockstore_uuid': 'other', 'format_version': 2},
                                    {'blockstore_uuid': 'u', 'format_version': None},
                                    {'blockstore_uuid': 'u', 'format_version': 1}])
def test_a_record_the_key_service_did_not_make_is_unknown(answer):
    with pytest.raises(marks.Unknown) as exc:
        marks.FormatMarks(_KeyManager(answer), None, 'vol-1').record_format('u', 2)
    assert 'did not record format 2 of volume vol-1' in str(exc.value)
