import json

from cryptography.hazmat.primitives.asymmetric import ed25519
import hypothesis
from hypothesis import strategies as st
import pytest

from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import metadata

KEY = ed25519.Ed25519PrivateKey.generate()


def _meta(**changes):
    fields = dict(data_unit='unit1', version=7, n=4, f=1, size=100, segment_size=65536,
                  nonce=b'\x01' * 12, digests=tuple('%064x' % i for i in range(4)),
                  writer=metadata.key_id(KEY.public_key()), clouds=('c0', 'c1', 'c2', 'c3'))
    fields.update(changes)
    return metadata.Metadata(**fields)


def _resign(document):
    body = document['body']
    canonical = json.dumps(body, sort_keys=True, separators=(',', ':')).encode()
    version_format = body.get('format')
    context = metadata.SIGNING_CONTEXTS.get(
        version_format if isinstance(version_format, str) else None, metadata.SIGNING_CONTEXT)
    document['signature'] = KEY.sign(context + canonical).hex()
    return json.dumps(document).encode()


def test_round_trip():
    meta = _meta()
    assert metadata.parse(metadata.sign(meta, KEY), KEY.public_key(), 'unit1') == meta


def test_tampered_body_fails_signature():
    document = json.loads(metadata.sign(_meta(), KEY))
    document['body']['version'] = 8
    with pytest.raises(errors.MetadataError, match=r'metadata\.signature'):
        metadata.parse(json.dumps(document).encode(), KEY.public_key())


def test_other_writer_is_refused():
    other = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(errors.MetadataError, match=r'metadata\.writer'):
        metadata.parse(metadata.sign(_meta(), KEY), other.public_key())


def test_other_data_unit_is_refused():
    with pytest.raises(errors.MetadataError, match=r'metadata\.data_unit.*unit2'):
        metadata.parse(metadata.sign(_meta(), KEY), KEY.public_key(), 'unit2')


@pytest.mark.parametrize('field,value,message', [
    ('version', True, 'expected an integer'),
    ('version', -1, 'outside'),
    ('n', 3, 'n=3 < 3f\\+1'),
    ('ec_type', 'liberasurecode_rs_vand', 'expected'),
    ('nonce', 'zz' * 12, '24 lowercase hex'),
    ('digests', ['00' * 32] * 3, 'list of n=4'),
    ('size', -1, 'outside'),
    ('segment_size', 4095, 'outside'),
    ('segment_size', 2 ** 27, 'outside'),
    ('format', 'other/1', 'expected'),
    ('clouds', ['c0', 'c1', 'c2'], 'list of n=4 cloud names'),
    ('clouds', 'c0,c1,c2,c3', 'list of n=4 cloud names'),
    ('clouds', ['c0', 'c1', 'c2', 'c0'], 'names a cloud twice'),
])
def test_signed_but_invalid_fields_are_named(field, value, message):
    document = json.loads(metadata.sign(_meta(), KEY))
    document['body'][field] = value
    with pytest.raises(errors.MetadataError, match=r'metadata\.%s: .*%s' % (field, message)):
        metadata.parse(_resign(document), KEY.public_key())


@pytest.mark.parametrize('name', ['', 'a/b', 'x' * 65, 7, None])
def test_bad_cloud_names_are_named(name):
    document = json.loads(metadata.sign(_meta(), KEY))
    document['body']['clouds'][2] = name
    with pytest.raises(errors.MetadataError, match=r'metadata\.clouds\[2\]: expected 1-64'):
        metadata.parse(_resign(document), KEY.public_key())


def test_format_2_is_still_read_and_has_no_cloud_names():
    old = _meta(format=metadata.FORMAT_2, clouds=None)
    raw = metadata.sign(old, KEY)
    assert b'"clouds"' not in raw
    parsed = metadata.parse(raw, KEY.public_key())
    assert parsed == old and parsed.value_format == 2 and parsed.clouds is None
    # A format 2 body with format 3's field (or the reverse) is not a valid record.
    document = json.loads(raw)
    document['body']['clouds'] = ['c0', 'c1', 'c2', 'c3']
    with pytest.raises(errors.MetadataError, match='unknown fields clouds'):
        metadata.parse(_resign(document), KEY.public_key())
    document = json.loads(metadata.sign(_meta(), KEY))
    del document['body']['clouds']
    with pytest.raises(errors.MetadataError, match='missing fields clouds'):
        metadata.parse(_resign(document), KEY.public_key())


def test_a_format_2_signature_does_not_verify_as_format_3():
    # The signing context names the format: a body cannot be moved between formats.
    document = json.loads(metadata.sign(_meta(), KEY))
    canonical = json.dumps(document['body'], sort_keys=True, separators=(',', ':')).encode()
    document['signature'] = KEY.sign(metadata.SIGNING_CONTEXTS[metadata.FORMAT_2]
                                     + canonical).hex()
    with pytest.raises(errors.MetadataError, match='signature'):
        metadata.parse(json.dumps(document).encode(), KEY.public_key())


def test_missing_and_extra_fields():
    document = json.loads(metadata.sign(_meta(), KEY))
    del document['body']['nonce']
    with pytest.raises(errors.MetadataError, match='missing fields nonce'):
        metadata.parse(_resign(document), KEY.public_key())
    document = json.loads(metadata.sign(_meta(), KEY))
    document['body']['extra'] = 1
    with pytest.raises(errors.MetadataError, match='unknown fields extra'):
        metadata.parse(_resign(document), KEY.public_key())


def test_not_utf8_names_the_offset():
    with pytest.raises(errors.MetadataError, match='offset 2'):
        metadata.parse(b'{"\xff', KEY.public_key())


@hypothesis.given(st.binary(max_size=400))
@hypothesis.settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_raise_only_metadata_error(data):
    with pytest.raises(errors.MetadataError):
        metadata.parse(data, KEY.public_key())


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                      max_size=4),
    max_leaves=20)


@hypothesis.given(st.dictionaries(st.sampled_from(sorted(metadata._FIELDS[metadata.FORMAT])
                                                  + ['x']), _json),
                  st.data())
@hypothesis.settings(max_examples=300, deadline=None)
def test_arbitrary_signed_documents_raise_only_metadata_error(changes, data):
    # Mutate a valid body with arbitrary JSON values and re-sign it: the parser must
    # either accept a fully valid record or name the bad field, nothing else.
    document = json.loads(metadata.sign(_meta(), KEY))
    document['body'].update(changes)
    raw = _resign(document)
    try:
        parsed = metadata.parse(raw, KEY.public_key())
    except errors.MetadataError:
        return
    assert parsed.body() == document['body']


@hypothesis.given(st.integers(min_value=0, max_value=10000), st.binary(min_size=1, max_size=4))
@hypothesis.settings(max_examples=200, deadline=None)
def test_byte_corruption_is_always_caught(position, replacement):
    raw = bytearray(metadata.sign(_meta(), KEY))
    position %= len(raw)
    corrupted = bytes(raw[:position]) + replacement + bytes(raw[position + len(replacement):])
    hypothesis.assume(corrupted != bytes(raw))
    try:
        parsed = metadata.parse(corrupted, KEY.public_key())
    except errors.MetadataError:
        return
    # Only a semantically identical document (e.g. whitespace) may still verify.
    assert parsed == _meta()
