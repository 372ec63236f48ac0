"""A cloud serving oversized objects through the real Swift and S3 drivers.

One cloud (a Swift cluster, or the one reached through s3api with boto3) serves a 256 MiB
"metadata" object and a value object 256 MiB longer than the signed metadata implies.
Reads through the front proxy and the operator's check still return and verify the right
data from the other clouds, report that cloud faulty, and read no more than the bounds:
measured as the front proxy's peak RSS (``VmHWM``, reset before the GET) and the bytes
the checking process received from its sockets (``rchar``).
"""
import os

import pytest

from tclouds_openstack.cloudstore import protocol
from tests.functional.cloudstore import test_faults

MIB = 1024 * 1024
OVERSIZE = 256 * MIB


def _status(pid, field):
    with open('/proc/%d/status' % pid) as stream:
        for line in stream:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    raise AssertionError('no %s in /proc/%d/status' % (field, pid))


def _reset_peak(pid):
    # Linux >= 4.0: "5" resets the peak resident set size (VmHWM) to the current one.
    with open('/proc/%d/clear_refs' % pid, 'w') as stream:
        stream.write('5')


def _rchar():
    with open('/proc/self/io') as stream:
        return int(dict(line.split(': ') for line in stream.read().splitlines())['rchar'])


def _zeros(count):
    for _ in range(count // MIB):
        yield b'\0' * MIB


@pytest.mark.parametrize('bad', [1, 3], ids=['swift-cloud', 's3-cloud'])
def test_a_cloud_serving_oversized_objects_costs_a_bounded_read(swift, container, clouds,
                                                                reader, front_proxy, bad):
    before = test_faults._units(clouds)
    data = os.urandom(300 * 1024)
    swift.put_object(container, 'obj', data)
    unit = test_faults._unit_of(clouds, before)
    test_faults._written_everywhere(clouds, unit)
    meta = reader.read_metadata(unit)
    backend = clouds[bad].backend()
    key = protocol.value_key(unit, meta.version)
    value = backend.get(key, test_faults.LIMIT)
    try:
        backend.put_stream(protocol.metadata_key(unit), _zeros(OVERSIZE), OVERSIZE)
        backend.put_stream(key, iter([value] + list(_zeros(OVERSIZE))),
                           len(value) + OVERSIZE)
        pid = front_proxy.process.pid
        _reset_peak(pid)
        baseline = _status(pid, 'VmHWM')
        logged = len(test_faults._faults(front_proxy))
        assert swift.get_object(container, 'obj')[1] == data
        grown = _status(pid, 'VmHWM') - baseline
        # 256 MiB read into memory twice would show here; the bounded reads cost a chunk.
        assert grown < 48 * MIB, 'the front proxy grew by %d MiB' % (grown // MIB)
        if bad == 1:
            # Clouds 0 and 1 are asked for their value objects at once: judged every time.
            reported = [f for f in test_faults._faults(front_proxy)[logged:]
                        if f['cloud'] == 'cloud1' and f['kind'] == 'faulty']
            assert reported and 'longer than' in reported[0]['reason'], reported
        received = _rchar()
        result = reader.check(unit)
        received = _rchar() - received
        assert set(result.faults) == {'cloud%d' % bad}, result.faults
        fault = result.faults['cloud%d' % bad]
        assert fault.kind == protocol.FAULTY
        assert 'longer than 65536 bytes (reading stopped there)' in fault.reason
        # Four metadata objects (one cut at 64 KiB + a chunk), four value objects of
        # ~150 KiB, one of them cut after its signed length: far below 256 MiB.
        assert received < 16 * MIB, 'check received %d MiB' % (received // MIB)
        assert reader.read(unit).data == data
    finally:
        backend.put(key, value)
        backend.put(protocol.metadata_key(unit),
                    clouds[0].backend().get(protocol.metadata_key(unit), test_faults.LIMIT))
