import concurrent.futures
import dataclasses
import os
import threading

import hypothesis
from hypothesis import strategies as st
import pytest

from tclouds_openstack.cloudstore import coding
from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import metadata
from tclouds_openstack.cloudstore import protocol
from tclouds_openstack.cloudstore import shamir
from tests.unit.cloudstore import conftest

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
        share, _ = coding.parse_value_object(
            cloud.objects[protocol.value_key('unit', 1)], index, meta)
        # One share is below the threshold, one fragment below k: both fail.
        with pytest.raises(errors.FragmentError):
            shamir.combine([share], coding.KEY_BYTES)
        with pytest.raises(errors.FragmentError):
            coding.decode({index: cloud.objects[protocol.value_key('unit', 1)]}, meta)


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


def _encoded(data, segment_size=4096):
    nonce, values = coding.encode_value_objects(data, 'u', 1, 4, 1, segment_size)
    where = coding.layout(len(data), segment_size, 4, 1)
    meta = metadata.Metadata('u', 1, 4, 1, len(data), nonce,
                             tuple(coding.digest(v[where.pieces_end:]) for v in values),
                             '0' * 64, segment_size=segment_size,
                             clouds=('c0', 'c1', 'c2', 'c3'))
    return meta, values


def _vouched(meta, values, pieces_of):
    """Value objects made of other pieces, with trailers and signed digests to match.

    What a faulty writer could produce: readers must still fail cleanly.
    """
    where = coding.layout_of(meta)
    rebuilt = []
    for value in values:
        pieces = pieces_of([value[offset:offset + length] for _, length, offset in where])
        fixed = value[where.pieces_end:where.pieces_end + coding.FIXED_BYTES]
        rebuilt.append(b''.join(pieces) + fixed
                       + b''.join(coding.piece_hash(piece) for piece in pieces))
    vouched = dataclasses.replace(meta, digests=tuple(
        coding.digest(value[where.pieces_end:]) if len(value) == where.total
        else coding.digest(b'') for value in rebuilt))
    return vouched, rebuilt


def test_segments_of_any_chunking():
    def segments(chunks, size=4):
        return [(index, data, last) for index, data, last in protocol._segments(chunks, size)]
    assert segments([]) == [(0, b'', True)]
    assert segments([b'', b'']) == [(0, b'', True)]
    assert segments([b'abcd']) == [(0, b'abcd', True)]
    assert segments([b'ab', b'cd', b'']) == [(0, b'abcd', True)]
    assert segments([b'abcdefgh']) == [(0, b'abcd', False), (1, b'efgh', True)]
    assert segments([b'abc', b'defgh', b'ij']) == [
        (0, b'abcd', False), (1, b'efgh', False), (2, b'ij', True)]
    assert segments([b'abcd', b'efgh', b'i']) == [
        (0, b'abcd', False), (1, b'efgh', False), (2, b'i', True)]


@pytest.mark.parametrize('size', [0, 1, 4095, 4096, 4097, 3 * 4096, 50000])
def test_layout_matches_the_encoding(size):
    data = os.urandom(size)
    meta, values = _encoded(data)
    assert all(len(value) == coding.value_object_bytes(size, 4096, 4, 1) for value in values)
    for pair in ((0, 1), (2, 3), (0, 3), (1, 2)):
        assert coding.decode({index: values[index] for index in pair}, meta) == data


def test_streamed_write_in_odd_chunks(clouds, writer_key):
    chunks = [DATA[i:i + 10007] for i in range(0, len(DATA), 10007)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        depsky = protocol.DepSkyCA(clouds, 1, writer_key.public_key(), writer_key, pool,
                                   segment_size=65536)
        result = depsky.write_stream('unit', iter(chunks), 4)
        assert result.metadata.size == len(DATA) and len(result.acked) >= 3
        assert depsky.read('unit').data == DATA
        # A reader expecting this version fetches values beside the metadata.
        assert depsky.read('unit', expected_version=4).data == DATA


def test_expected_version_that_is_not_current_is_not_used(depsky, clouds):
    depsky.write('unit', b'old', 1)
    old = {key: value for key, value in clouds[0].objects.items()}
    depsky.write('unit', DATA, 2)
    clouds[0].objects.update(old)          # the old value object is still there
    assert depsky.read('unit', expected_version=1).data == DATA


def test_a_failing_input_aborts_the_write_and_stores_nothing(clouds, writer_key):
    class Refused(Exception):
        pass

    def body():
        yield DATA[:100000]
        raise Refused('client went away')

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        depsky = protocol.DepSkyCA(clouds, 1, writer_key.public_key(), writer_key, pool,
                                   segment_size=65536)
        depsky.write('unit', b'previous', 1)
        with pytest.raises(Refused):
            depsky.write_stream('unit', body(), 2)
        pool.shutdown(wait=True)
    for cloud in clouds:
        assert protocol.value_key('unit', 2) not in cloud.objects
    assert protocol.DepSkyCA(clouds, 1, writer_key.public_key()).read('unit').data == \
        b'previous'


def test_swapped_segments_fail_the_tag_even_with_vouched_digests():
    data = os.urandom(3 * 4096)
    meta, values = _encoded(data)
    meta, swapped = _vouched(meta, values, lambda pieces: [pieces[1], pieces[0], pieces[2]])
    with pytest.raises(errors.FragmentError, match='AES-GCM tag of segment 0'):
        coding.decode({0: swapped[0], 1: swapped[1]}, meta)


def test_a_piece_that_does_not_match_the_trailer_is_named():
    data = os.urandom(3 * 4096)
    meta, values = _encoded(data)
    where = coding.layout_of(meta)
    bad = bytearray(values[1])
    bad[where.offset(1) + 100] ^= 1
    with pytest.raises(errors.FragmentError, match='piece of segment 1 does not match'):
        coding.decode({0: values[0], 1: bytes(bad)}, meta)


def test_truncated_value_object_names_the_length():
    meta, values = _encoded(os.urandom(10000))
    with pytest.raises(errors.FragmentError, match='length.*the metadata implies'):
        coding.parse_value_object(values[2][:-1], 2, meta)


@hypothesis.given(st.binary(max_size=300), st.integers(min_value=0, max_value=3))
@hypothesis.settings(max_examples=300, deadline=None)
def test_value_object_parser_raises_only_fragment_error(data, index):
    meta, _ = _encoded(b'x' * 100)
    try:
        coding.parse_value_object(data, index, meta)
    except errors.FragmentError:
        pass


@hypothesis.given(st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=9000))
@hypothesis.settings(max_examples=100, deadline=None)
def test_signed_but_corrupted_value_objects_never_escape(garbage, cut):
    # Even a value object whose digest is (wrongly) vouched for by the signed metadata
    # must fail with FragmentError, never a pyeclib or struct exception.
    plain = b'data' * 2500
    meta, values = _encoded(plain)
    where = coding.layout_of(meta)

    def corrupt(pieces):
        joined = b''.join(pieces)
        joined = joined[:cut] + garbage + joined[cut + len(garbage):]
        return [joined[offset:offset + length] for _, length, offset in where]
    meta, vouched = _vouched(meta, values, corrupt)
    try:
        data = coding.decode({0: values[0], 1: vouched[1]}, meta)
    except errors.FragmentError:
        return
    assert data == plain


@pytest.mark.parametrize('announced', [len(DATA) - 1, len(DATA) + 1])
def test_a_body_that_differs_from_its_announced_size_is_refused(depsky, clouds, announced):
    depsky.write('unit', b'previous', 1)
    with pytest.raises(errors.CloudStoreError, match='%d were announced' % announced):
        depsky.write_stream('unit', [DATA[:70000], DATA[70000:]], 2, size=announced)
    assert all(protocol.value_key('unit', 2) not in cloud.objects for cloud in clouds)
    assert depsky.read('unit').data == b'previous'


def test_announced_size_reaches_the_backends(clouds, writer_key):
    lengths = []
    put_stream = clouds[0].put_stream

    def recording(key, chunks, length=None):
        lengths.append(length)
        return put_stream(key, chunks, length)
    clouds[0].put_stream = recording
    depsky = protocol.DepSkyCA(clouds, 1, writer_key.public_key(), writer_key,
                               segment_size=65536)
    depsky.write_stream('unit', [DATA], 1, size=len(DATA))
    assert lengths == [len(clouds[0].objects[protocol.value_key('unit', 1)])]


class _StalledUpload(conftest.MemoryBackend):
    """A cloud that takes no byte of an upload until the test opens the gate."""

    def __init__(self, name):
        super().__init__(name)
        self.gate = threading.Event()
        self.failed = []

    def put_stream(self, key, chunks, length=None):
        assert self.gate.wait(300), 'the test never opened the gate'
        try:
            super().put_stream(key, chunks, length)
        except errors.CloudStoreError as exc:
            self.failed.append(str(exc))
            raise


def test_a_cloud_that_falls_behind_is_dropped_not_buffered(writer_key):
    # The writer queues at most two windows of pieces per cloud; a cloud that takes none
    # for the timeout is dropped from the write (n - f others still take it), so a stalled
    # provider never makes the gateway hold the object.
    clouds = [conftest.MemoryBackend('cloud%d' % i) for i in range(3)]
    clouds.append(_StalledUpload('cloud3'))
    data = os.urandom(40 * 4096)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        depsky = protocol.DepSkyCA(clouds, 1, writer_key.public_key(), writer_key, pool,
                                   timeout=0.5, segment_size=4096, window_segments=2)
        result = depsky.write('unit', data, 1)
        assert result.acked == ['cloud0', 'cloud1', 'cloud2']
        clouds[3].gate.set()
    assert protocol.value_key('unit', 1) not in clouds[3].objects
    assert clouds[3].failed and 'upload dropped by the writer: more than 4 pieces behind ' \
        'the writer' in clouds[3].failed[0]
    assert protocol.DepSkyCA(clouds, 1, writer_key.public_key(),
                             segment_size=4096).read('unit').data == data


def _windowed(clouds, writer_key, size=23 * 4096 + 5):
    """A version of many 4 KiB segments read 4 at a time (six windows, a short last one)."""
    depsky = protocol.DepSkyCA(clouds, 1, writer_key.public_key(), writer_key,
                               segment_size=4096, window_segments=4)
    data = os.urandom(size)
    result = depsky.write('unit', data, 1)
    return depsky, data, result.signed


@pytest.mark.parametrize('cloud', [0, 1])
@pytest.mark.parametrize('segment', [0, 9, 23])
def test_a_bad_piece_of_a_data_fragment_mid_object_is_refused_and_replaced(
        clouds, writer_key, cloud, segment):
    # The data fragments' pieces are received into one buffer per segment and decrypted
    # where they lie; a bad piece in either slot, in any window, is still refused before
    # its segment is decoded, its cloud reported, and the next cloud (a parity fragment,
    # pyeclib's decode beside a piece in that buffer) takes over for the rest.
    depsky, data, signed = _windowed(clouds, writer_key)
    key = protocol.value_key('unit', 1)
    where = coding.layout(len(data), 4096, 4, 1)
    value = bytearray(clouds[cloud].objects[key])
    value[where.offset(segment) + where.piece(segment) // 2] ^= 0x01
    clouds[cloud].objects[key] = bytes(value)
    for signed_metadata in (signed, None):
        opened = depsky.open('unit', signed_metadata=signed_metadata)
        assert b''.join(opened.reader) == data
        fault = opened.faults['cloud%d' % cloud]
        assert fault.kind == protocol.FAULTY
        assert 'piece of segment %d does not match its hash' % segment in fault.reason


def test_ranges_read_again_the_windows_they_share(clouds, writer_key):
    # Each range fetches its own segments (into buffers of its own: the first range's
    # are never written again while they may still be decoded).
    depsky, data, signed = _windowed(clouds, writer_key)
    opened = depsky.open('unit', signed_metadata=signed)
    for start, stop in ((5000, 30000), (4096, 4097), (0, len(data)), (20000, 60000),
                        (len(data) - 3, len(data))):
        assert b''.join(opened.reader.read(start, stop)) == data[start:stop]
    assert opened.faults == {}


class _ShortWindows(conftest.MemoryBackend):
    """Serves the trailer whole but cuts every read of pieces from ``cut_from`` short."""

    cut_from = trailer = None

    def _read(self, key, start, length):
        if self.cut_from is not None and self.cut_from <= start < self.trailer and length:
            length -= 1
        return super()._read(key, start, length)


def test_a_window_cut_short_is_refused(writer_key):
    clouds = [_ShortWindows('cloud%d' % index) for index in range(4)]
    depsky, data, signed = _windowed(clouds, writer_key)
    where = coding.layout(len(data), 4096, 4, 1)
    clouds[1].cut_from, clouds[1].trailer = where.offset(8), where.pieces_end
    opened = depsky.open('unit', signed_metadata=signed)
    assert b''.join(opened.reader) == data
    assert opened.faults['cloud1'].kind == protocol.FAULTY
    assert 'segments 8-11: the value object ends before' in opened.faults['cloud1'].reason


def test_read_into_fills_views_in_order_and_stops_where_the_object_ends():
    cloud = conftest.MemoryBackend('c')
    payload = os.urandom(700 * 1024)
    cloud.objects['k'] = payload
    views = [memoryview(bytearray(size)) for size in (80, 0, 300 * 1024, 5, 0)]
    parts = list(cloud.read_into('k', 1000, views))
    assert b''.join(bytes(part) for _, part in parts) == payload[1000:1000 + 80 + 300 * 1024
                                                                 + 5]
    assert [index for index, _ in parts] == sorted(index for index, _ in parts)
    assert all(len(part) <= 256 * 1024 for _, part in parts)
    assert bytes(views[2]) == payload[1080:1080 + 300 * 1024]
    assert cloud.bytes_read == 80 + 300 * 1024 + 5
    # the object ends inside the views: what there was, no more
    views = [memoryview(bytearray(10)), memoryview(bytearray(10))]
    parts = list(cloud.read_into('k', len(payload) - 15, views))
    assert sum(len(part) for _, part in parts) == 15
    assert bytes(views[0]) + bytes(views[1])[:5] == payload[-15:]
    with pytest.raises(errors.BackendNotFound):
        list(cloud.read_into('missing', 0, views))
