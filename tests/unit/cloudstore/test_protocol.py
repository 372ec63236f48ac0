import concurrent.futures
import os

import hypothesis
from hypothesis import strategies as st
import pytest

from tclouds_openstack.cloudstore import coding
from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import metadata
from tclouds_openstack.cloudstore import protocol
from tclouds_openstack.cloudstore import shamir

DATA = os.urandom(200 * 1024 + 3)


def test_round_trip_and_layout(depsky, clouds):
    result = depsky.write('unit', DATA, 10)
    assert result.acked == ['cloud0', 'cloud1', 'cloud2', 'cloud3']
    for cloud in clouds:
        assert sorted(cloud.objects) == ['unit/meta', 'unit/v%020d' % 10]
    read = depsky.read('unit')
    assert read.data == DATA and read.metadata.version == 10 and read.faults == {}


def test_empty_object(depsky):
    depsky.write('empty', b'', 1)
    assert depsky.read('empty').data == b''


def test_thread_pool_executor(clouds, writer_key):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        depsky = protocol.DepSkyCA(clouds, 1, writer_key.public_key(), writer_key, pool)
        depsky.write('unit', DATA, 1)
        assert depsky.read('unit').data == DATA


def test_storage_is_about_twice_the_plaintext(depsky, clouds):
    depsky.write('unit', DATA, 1)
    stored = sum(len(value) for cloud in clouds for value in cloud.objects.values())
    assert 2.0 <= stored / len(DATA) < 2.1


def test_one_cloud_down_reads_and_writes(depsky, clouds):
    depsky.write('unit', b'old', 1)
    clouds[1].down = True
    result = depsky.write('unit', DATA, 2)
    assert 'cloud1' not in result.acked and result.faults['cloud1'].kind == protocol.UNAVAILABLE
    read = depsky.read('unit')
    assert read.data == DATA
    assert read.faults['cloud1'].kind == protocol.UNAVAILABLE


def test_corrupted_value_object_is_detected_and_reported(depsky, clouds):
    depsky.write('unit', DATA, 3)
    key = protocol.value_key('unit', 3)
    value = bytearray(clouds[0].objects[key])
    value[-1] ^= 0x01
    clouds[0].objects[key] = bytes(value)
    reported = []
    depsky.fault_listener = lambda unit, fault: reported.append((unit, fault.cloud))
    read = depsky.read('unit')
    assert read.data == DATA
    assert read.faults['cloud0'].kind == protocol.FAULTY
    assert 'does not match the signed metadata' in read.faults['cloud0'].reason
    assert ('unit', 'cloud0') in reported


def test_value_object_of_another_cloud_is_refused(depsky, clouds):
    depsky.write('unit', DATA, 3)
    key = protocol.value_key('unit', 3)
    clouds[0].objects[key] = clouds[1].objects[key]
    read = depsky.read('unit')
    assert read.data == DATA and read.faults['cloud0'].kind == protocol.FAULTY


def test_stale_cloud_is_reported_and_latest_returned(depsky, clouds):
    depsky.write('unit', b'version one', 1)
    old = dict(clouds[0].objects)
    depsky.write('unit', DATA, 2)
    clouds[0].objects = old           # cloud0 replays the old metadata and value object
    read = depsky.read('unit')
    assert read.data == DATA and read.metadata.version == 2
    assert read.faults['cloud0'].kind == protocol.FAULTY
    assert 'stale metadata: version 1, newest is 2' in read.faults['cloud0'].reason


def test_forged_metadata_is_reported(depsky, clouds):
    depsky.write('unit', DATA, 2)
    clouds[2].objects['unit/meta'] = b'{"body": {}, "signature": ""}'
    read = depsky.read('unit')
    assert read.data == DATA
    assert 'bad metadata' in read.faults['cloud2'].reason


def test_two_clouds_down_write_fails_cleanly(depsky, clouds):
    depsky.write('unit', b'previous', 1)
    clouds[0].down = clouds[3].down = True
    with pytest.raises(errors.QuorumError) as info:
        depsky.write('unit', DATA, 2)
    assert 'needs 3 correct clouds' in str(info.value)
    assert 'cloud0: cloud cloud0: put failed: connection refused' in str(info.value)
    clouds[0].down = clouds[3].down = False
    # Nothing of version 2 is left behind; version 1 is still what readers get.
    for cloud in clouds:
        assert protocol.value_key('unit', 2) not in cloud.objects
    assert depsky.read('unit').data == b'previous'


def test_two_clouds_down_read_fails_with_reasons(depsky, clouds):
    depsky.write('unit', DATA, 1)
    clouds[0].down = clouds[1].down = True
    with pytest.raises(errors.QuorumError, match='cloud0.*connection refused'):
        depsky.read('unit')


def test_not_found_and_stale_errors(depsky):
    with pytest.raises(errors.NotFoundError):
        depsky.read('nothing')
    depsky.write('unit', DATA, 5)
    with pytest.raises(errors.StaleError, match='newest valid version on a quorum is 5, 6'):
        depsky.read('unit', min_version=6)


def test_no_single_cloud_can_recover_the_plaintext(depsky, clouds, writer_key):
    secret = b'patient record: ' + os.urandom(64) * 64
    depsky.write('unit', secret, 1)
    meta = depsky.read_metadata('unit')
    for index, cloud in enumerate(clouds):
        blob = b''.join(cloud.objects.values())
        for offset in range(0, len(secret) - 16, 16):
            assert secret[offset:offset + 16] not in blob
        share, fragment = coding.parse_value_object(
            cloud.objects[protocol.value_key('unit', 1)], index)
        # One share is below the threshold, one fragment below k: both fail.
        with pytest.raises(errors.FragmentError):
            shamir.combine([share], coding.KEY_BYTES)
        with pytest.raises(errors.FragmentError):
            coding.decode({index: cloud.objects[protocol.value_key('unit', 1)]}, 1, meta)


def test_repair_rebuilds_missing_and_bad_objects(depsky, clouds):
    depsky.write('unit', b'old', 1)
    depsky.write('unit', DATA, 2)
    del clouds[1].objects[protocol.value_key('unit', 2)]
    clouds[2].objects['unit/meta'] = b'garbage'
    result = depsky.repair('unit')
    assert result.failed == {}
    assert 'value object' in result.repaired['cloud1']
    assert 'metadata' in result.repaired['cloud2']
    for cloud in clouds:
        assert sorted(cloud.objects) == ['unit/meta', protocol.value_key('unit', 2)]
    # The rebuilt objects are the originals: reads from the repaired clouds alone work.
    clouds[0].down = True
    assert depsky.read('unit').data == DATA


def test_delete_of_known_versions(depsky, clouds):
    depsky.write('unit', DATA, 1)
    depsky.delete('unit', versions=[1])
    assert all(not cloud.objects for cloud in clouds)


def test_delete_removes_everything(depsky, clouds):
    depsky.write('unit', DATA, 1)
    depsky.write('other', b'x', 1)
    depsky.delete('unit')
    assert all(not key.startswith('unit/') for cloud in clouds for key in cloud.objects)
    assert depsky.list_data_units() == (['other'], {})


def test_configuration_errors(clouds, writer_key):
    with pytest.raises(errors.CloudStoreError, match='n >= 3f'):
        protocol.DepSkyCA(clouds[:3], 1, writer_key.public_key())
    reader = protocol.DepSkyCA(clouds, 1, writer_key.public_key())
    with pytest.raises(errors.CloudStoreError, match='no writer private key'):
        reader.write('unit', b'x', 1)


@hypothesis.given(st.binary(max_size=300), st.integers(min_value=0, max_value=3))
@hypothesis.settings(max_examples=300, deadline=None)
def test_value_object_parser_raises_only_fragment_error(data, index):
    try:
        coding.parse_value_object(data, index)
    except errors.FragmentError:
        pass


@hypothesis.given(st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=200))
@hypothesis.settings(max_examples=100, deadline=None)
def test_signed_but_corrupted_value_objects_never_escape(garbage, cut):
    # Even a value object whose digest is (wrongly) vouched for by the signed metadata
    # must fail with FragmentError, never a pyeclib or struct exception.
    key, nonce, ciphertext = coding.encrypt(b'data' * 100, 'u', 1)
    values = coding.encode_value_objects(key, ciphertext, 4, 1)
    meta = metadata.Metadata('u', 1, 4, 1, len(ciphertext), nonce,
                             tuple(coding.digest(v) for v in values), '0' * 64)
    broken = values[1][:coding.VALUE_HEADER_BYTES + cut] + garbage
    try:
        data = coding.decode({0: values[0], 1: broken}, 1, meta)
    except errors.FragmentError:
        return
    assert data == b'data' * 100
