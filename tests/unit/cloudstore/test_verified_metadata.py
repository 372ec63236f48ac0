"""Signed metadata verified once per document (metadata.Verified, used by a GET's open).

What it remembers must never stand in for a check: bytes differing anywhere from a
document it verified are parsed and verified afresh, a refused document is refused every
time, a document verified for one data unit or under one writer key is not accepted for
another, and a stub replaced by a newer version is read as the newer version.
"""
from cryptography.hazmat.primitives.asymmetric import ed25519
import hypothesis
from hypothesis import strategies as st
import pytest

from tclouds_openstack.cloudstore.backends import directory
from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import metadata
from tclouds_openstack.cloudstore import protocol
from tests.unit.cloudstore import test_metadata

KEY = test_metadata.KEY
SIGNED = metadata.sign(test_metadata._meta(), KEY)


def test_a_verified_document_reads_as_parse_reads_it():
    verified = metadata.Verified(KEY.public_key())
    first = verified.parse(SIGNED, 'unit1')
    assert first == metadata.parse(SIGNED, KEY.public_key(), 'unit1')
    assert verified.parse(bytearray(SIGNED), 'unit1') is first


@hypothesis.given(st.integers(min_value=0, max_value=10000), st.binary(min_size=1, max_size=4))
@hypothesis.settings(max_examples=200, deadline=None)
def test_a_corrupted_copy_of_a_verified_document_is_verified_afresh(position, replacement):
    verified = metadata.Verified(KEY.public_key())
    verified.parse(SIGNED, 'unit1')
    position %= len(SIGNED)
    corrupted = SIGNED[:position] + replacement + SIGNED[position + len(replacement):]
    hypothesis.assume(corrupted != SIGNED)
    try:
        parsed = verified.parse(corrupted, 'unit1')
    except errors.MetadataError:
        return
    # Only a semantically identical document (e.g. whitespace) may still verify.
    assert parsed == test_metadata._meta()


def test_other_data_unit_other_key_and_refusals_are_not_remembered():
    verified = metadata.Verified(KEY.public_key())
    verified.parse(SIGNED, 'unit1')
    verified.parse(SIGNED)
    with pytest.raises(errors.MetadataError, match=r'metadata\.data_unit.*unit2'):
        verified.parse(SIGNED, 'unit2')
    other = metadata.Verified(ed25519.Ed25519PrivateKey.generate().public_key())
    for _ in range(2):
        with pytest.raises(errors.MetadataError, match=r'metadata\.writer'):
            other.parse(SIGNED, 'unit1')
    forged = SIGNED.replace(b'"version":7', b'"version":8')
    for _ in range(2):
        with pytest.raises(errors.MetadataError, match=r'metadata\.signature'):
            verified.parse(forged, 'unit1')


def test_only_the_most_recent_documents_are_kept():
    verified = metadata.Verified(KEY.public_key(), size=2)
    documents = [metadata.sign(test_metadata._meta(version=version), KEY)
                 for version in range(3)]
    for document in documents:
        verified.parse(document, 'unit1')
    assert [key[0] for key in verified._known] == documents[1:]
    by_bytes = metadata.Verified(KEY.public_key(), max_bytes=2 * len(documents[0]) + 1)
    for document in documents:
        by_bytes.parse(document, 'unit1')
    assert [key[0] for key in by_bytes._known] == documents[1:]


def _depsky(tmp_path):
    clouds = []
    for index in range(4):
        (tmp_path / str(index)).mkdir()
        clouds.append(directory.DirectoryBackend('c%d' % index, str(tmp_path / str(index))))
    return protocol.DepSkyCA(clouds, 1, KEY.public_key(), KEY)


def test_a_replaced_stub_is_read_as_its_new_version(tmp_path):
    """The stub's signed metadata of version 1, then of version 2 (an overwrite)."""
    depsky = _depsky(tmp_path)
    first = depsky.write('unit', b'first version', 1)
    second = depsky.write('unit', b'second version, longer', 2)
    opened = depsky.open('unit', signed_metadata=first.signed)
    assert (opened.metadata.version, b''.join(opened.segments)) == (1, b'first version')
    subset = depsky.subset(depsky.clouds)
    assert subset.verified is depsky.verified
    opened = subset.open('unit', signed_metadata=second.signed)
    assert (opened.metadata.version, b''.join(opened.segments)) == \
        (2, b'second version, longer')
    # the old stub's document, still remembered, never passes for a newer version
    with pytest.raises(errors.StaleError):
        depsky.open('unit', min_version=2, signed_metadata=first.signed)
