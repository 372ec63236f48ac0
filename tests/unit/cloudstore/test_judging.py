"""Which clouds a read judges, and that the judgement never depends on timing.

A read stops at f + 1 verified value objects, so a cloud whose answer comes later is not
judged by it. Three rules make every report reproducible: a cloud the writer is still
uploading to is never accused (it is behind because the quorum did not wait for it); the
clouds a reader asks while the metadata is still being read (0 .. f, when the version and
size are known) are always judged; ``check`` judges every cloud. Slow clouds are made
slow with gates released by the test, never with sleeps.
"""
import concurrent.futures
import os
import threading

from tclouds_openstack.cloudstore import protocol
from tclouds_openstack.cmd import cloudstore as cloudstore_cmd
from tests.unit.cloudstore import conftest

DATA = os.urandom(200 * 1024 + 1)


class GatedBackend(conftest.MemoryBackend):
    """A cloud whose puts (or reads of one key) wait until the test opens the gate."""

    def __init__(self, name, gate_puts=False, gate_key=None):
        super().__init__(name)
        self.gate = threading.Event()
        self.gate_puts = gate_puts
        self.gate_key = gate_key

    def put(self, key, data):
        if self.gate_puts:
            assert self.gate.wait(300), 'the test never opened the gate'
        super().put(key, data)

    def _wait(self, key):
        if key == self.gate_key:
            assert self.gate.wait(300), 'the test never opened the gate'

    def get(self, key, *limit):
        self._wait(key)
        return super().get(key, *limit)

    def _read(self, key, start, length):
        self._wait(key)
        return super()._read(key, start, length)


def _corrupt(cloud, key):
    value = bytearray(cloud.objects[key])
    value[len(value) // 2] ^= 0x01
    cloud.objects[key] = bytes(value)


def test_a_cloud_the_writer_is_still_uploading_to_is_not_accused(writer_key):
    clouds = [conftest.MemoryBackend('cloud%d' % i) for i in range(3)]
    clouds.append(GatedBackend('cloud3', gate_puts=True))
    reported = []
    pool = concurrent.futures.ThreadPoolExecutor(8)
    try:
        depsky = protocol.DepSkyCA(clouds, 1, writer_key.public_key(), writer_key, pool,
                                   fault_listener=lambda unit, fault: reported.append(fault),
                                   segment_size=64 * 1024)
        result = depsky.write('unit', DATA, 1)
        # Both phases completed with n - f = 3 clouds; cloud3 is still taking both.
        assert result.acked == ['cloud0', 'cloud1', 'cloud2']
        assert clouds[3].objects == {}
        read = depsky.read('unit')
        assert read.data == DATA
        assert reported == [], [str(fault) for fault in reported]
        assert depsky.read('unit', expected_version=1, expected_size=len(DATA)).data == DATA
        assert depsky.check('unit').faults == {}
        assert reported == [], [str(fault) for fault in reported]
        clouds[3].gate.set()
    finally:
        clouds[3].gate.set()
        pool.shutdown(wait=True)
    # Once the uploads ended, cloud3 holds the version and is judged like any other.
    assert sorted(clouds[3].objects) == ['unit/meta', protocol.value_key('unit', 1)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        depsky = protocol.DepSkyCA(clouds, 1, writer_key.public_key(), executor=pool)
        del clouds[3].objects['unit/meta']
        assert depsky.check('unit').faults['cloud3'].reason == 'missing metadata of version 1'


def test_check_judges_every_cloud_not_only_the_first_f_plus_1(depsky, clouds):
    depsky.write('unit', DATA, 1)
    _corrupt(clouds[2], protocol.value_key('unit', 1))
    # The operator's check reads every cloud...
    report, good = cloudstore_cmd._check(depsky, 'unit')
    assert not good and list(report['faults']) == ['cloud2'], report
    faults = depsky.check('unit').faults
    assert list(faults) == ['cloud2'] and faults['cloud2'].kind == protocol.FAULTY
    # ... where a read is served by cloud0 and cloud1 and leaves cloud2 unseen.
    assert depsky.read('unit').faults == {}


def _write(clouds, writer_key, *versions):
    """Write ``(data, version)`` pairs and return once every cloud took every upload."""
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        depsky = protocol.DepSkyCA(clouds, 1, writer_key.public_key(), writer_key, pool,
                                   segment_size=64 * 1024)
        for data, version in versions:
            depsky.write('unit', data, version)


def test_the_clouds_asked_beside_the_metadata_are_judged_however_late_they_answer(
        writer_key):
    clouds = [GatedBackend('cloud0', gate_key='unit/meta')]
    clouds += [conftest.MemoryBackend('cloud%d' % i) for i in range(1, 4)]
    clouds[0].gate.set()
    _write(clouds, writer_key, (DATA, 1))
    clouds[0].gate.clear()
    _corrupt(clouds[0], protocol.value_key('unit', 1))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        depsky = protocol.DepSkyCA(clouds, 1, writer_key.public_key(), executor=pool,
                                   segment_size=64 * 1024)
        # cloud0's metadata answer never comes during the read (the quorum is 1, 2, 3),
        # yet its value object was asked for at once and is judged on every run.
        read = depsky.read('unit', expected_version=1, expected_size=len(DATA))
        clouds[0].gate.set()
    assert read.data == DATA
    assert list(read.faults) == ['cloud0'] and read.faults['cloud0'].kind == protocol.FAULTY
    assert 'does not match its hash' in read.faults['cloud0'].reason


def test_a_stale_cloud_answering_after_the_read_is_still_reported(writer_key):
    clouds = [GatedBackend('cloud0', gate_key='unit/meta')]
    clouds += [conftest.MemoryBackend('cloud%d' % i) for i in range(1, 4)]
    reported = []
    clouds[0].gate.set()
    _write(clouds, writer_key, (b'one', 1))
    old = clouds[0].objects['unit/meta']
    _write(clouds, writer_key, (b'two', 2))
    clouds[0].objects['unit/meta'] = old         # cloud0 replays version 1's metadata
    clouds[0].gate.clear()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        depsky = protocol.DepSkyCA(clouds, 1, writer_key.public_key(), executor=pool,
                                   fault_listener=lambda unit, fault: reported.append(
                                       (fault.cloud, fault.kind, fault.reason)))
        assert depsky.read('unit').data == b'two'
        assert reported == []                    # cloud0 has not answered yet
        clouds[0].gate.set()
    # Its answer arrived after the read returned: judged and reported all the same.
    assert ('cloud0', protocol.FAULTY, 'stale metadata: version 1, newest is 2') in reported
