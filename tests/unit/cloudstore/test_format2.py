"""Objects written by the previous release (value objects and metadata of format 2) still
read, check and repair.

``data/format2`` holds what the previous release's writer stored on four clouds for a
20,000-byte object in 4,096-byte segments (generated with its code at commit f2b5e19, the
writer's test key beside it): one SHA-256 per whole value object, the header in front,
no cloud names in the metadata.
"""
import hashlib
import pathlib

from cryptography.hazmat.primitives import serialization
import pytest

from tclouds_openstack.cloudstore import coding
from tclouds_openstack.cloudstore import metadata
from tclouds_openstack.cloudstore import protocol
from tests.unit.cloudstore import conftest

DATA = pathlib.Path(__file__).parent / 'data' / 'format2'
UNIT = (DATA / 'data_unit').read_text().strip()
SHA256 = (DATA / 'plaintext.sha256').read_text().split()[0]
VERSION = 1767225600000000
SIZE = 20000


@pytest.fixture
def old_clouds():
    clouds = [conftest.MemoryBackend('cloud%d' % index) for index in range(4)]
    for index, cloud in enumerate(clouds):
        cloud.objects[protocol.metadata_key(UNIT)] = (DATA / ('cloud%d.meta' % index)).read_bytes()
        cloud.objects[protocol.value_key(UNIT, VERSION)] = (
            DATA / ('cloud%d.v%020d' % (index, VERSION))).read_bytes()
    return clouds


@pytest.fixture
def reader(old_clouds):
    key = serialization.load_pem_private_key((DATA / 'writer.pem').read_bytes(), None)
    return protocol.DepSkyCA(old_clouds, 1, key.public_key(), key)


def test_the_fixture_is_format_2(old_clouds, reader):
    meta = reader.read_metadata(UNIT)
    assert meta.format == metadata.FORMAT_2 and meta.value_format == coding.FORMAT_2
    assert meta.clouds is None and meta.size == SIZE and meta.segment_size == 4096
    value = old_clouds[0].objects[protocol.value_key(UNIT, VERSION)]
    assert value[:5] == b'DSCA\x02' and coding.digest(value) == meta.digests[0]


@pytest.mark.parametrize('expected', [False, True])
def test_old_objects_still_read(reader, expected):
    kwargs = {'expected_version': VERSION, 'expected_size': SIZE} if expected else {}
    result = reader.read(UNIT, **kwargs)
    assert hashlib.sha256(result.data).hexdigest() == SHA256 and result.faults == {}
    opened = reader.open(UNIT)
    assert b''.join(opened.reader.read(5000, 9000)) == result.data[5000:9000]


def test_old_objects_check_and_repair_in_their_own_format(old_clouds, reader):
    assert reader.check(UNIT).faults == {}
    key = protocol.value_key(UNIT, VERSION)
    original = old_clouds[2].objects.pop(key)
    corrupted = bytearray(old_clouds[0].objects[key])
    corrupted[-1] ^= 1
    old_clouds[0].objects[key] = bytes(corrupted)
    faults = reader.check(UNIT).faults
    assert sorted(faults) == ['cloud0', 'cloud2']
    assert 'does not match the signed metadata' in faults['cloud0'].reason
    result = reader.repair(UNIT)
    assert result.failed == {} and sorted(result.repaired) == ['cloud0', 'cloud2']
    # Rebuilt byte for byte: the old format, matching the old signed digests.
    assert old_clouds[2].objects[key] == original
    assert reader.check(UNIT).faults == {}


def test_an_overwrite_of_an_old_object_is_written_in_format_3(reader, old_clouds):
    reader.write(UNIT, b'new contents', VERSION + 1)
    meta = reader.read_metadata(UNIT)
    assert meta.format == metadata.FORMAT and meta.clouds == tuple(reader.names)
    assert reader.read(UNIT).data == b'new contents'
