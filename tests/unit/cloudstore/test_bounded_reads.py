"""Every read from a cloud is bounded: a cloud serving an oversized object costs the reader
one chunk past the bound, is reported faulty, and the read still succeeds from the others.

The reader runs in a child process over four ``directory`` clouds whose files are made
768 MiB long (sparse: no disk, no page cache); the child prints what the kernel counted
(``rchar``: bytes its read calls returned, peak RSS), so the bound is measured, not
inferred from the code. The Swift and S3 drivers are covered against real clusters in
tests/functional/cloudstore/test_bounded_reads.py.
"""
import concurrent.futures
import json
import os
import subprocess
import sys

import pytest

from tclouds_openstack.cloudstore import backends
from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import metadata
from tclouds_openstack.cloudstore import protocol
from tests.unit.cloudstore import conftest

MIB = 1024 * 1024
OVERSIZE = 768 * MIB
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

# The reader: only protocol calls the first release had too, so that the same child
# shows the unbounded reads of the start commit (PYTHONPATH) and the bound of this one.
_READER = r'''
import json, resource, sys
from cryptography.hazmat.primitives import serialization
from tclouds_openstack.cloudstore import backends, protocol

def io():
    with open('/proc/self/io') as stream:
        return dict(line.split(': ') for line in stream.read().splitlines())

root, unit, expected, key_file = sys.argv[1:5]
key = serialization.load_pem_public_key(open(key_file, 'rb').read())
clouds = [backends.load('cloud%d' % i, {'type': 'directory', 'path': '%s/cloud%d' % (root, i)})
          for i in range(4)]
faults = []
depsky = protocol.DepSkyCA(clouds, 1, key, fault_listener=lambda u, f: faults.append(
    [f.cloud, f.kind, f.reason]))
rss, rchar = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, int(io()['rchar'])
data = depsky.read(unit).data
print(json.dumps({'sha': __import__('hashlib').sha256(data).hexdigest(), 'faults': faults,
                  'rchar': int(io()['rchar']) - rchar,
                  'rss_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss}))
'''


@pytest.fixture
def directory_clouds(tmp_path, writer_key):
    clouds = [backends.load('cloud%d' % index, {'type': 'directory',
                                                'path': str(tmp_path / ('cloud%d' % index))})
              for index in range(4)]
    for cloud in clouds:
        cloud.ensure_container()
    key_file = tmp_path / 'writer.pub'
    from cryptography.hazmat.primitives import serialization
    key_file.write_bytes(writer_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return clouds, key_file


def _write(clouds, writer_key, data):
    # Leaving the pool waits for every upload: all four clouds hold the version.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        protocol.DepSkyCA(clouds, 1, writer_key.public_key(), writer_key, pool).write(
            'unit', data, 1)


def _read_in_child(tmp_path, key_file):
    result = subprocess.run(
        [sys.executable, '-c', _READER, str(tmp_path), 'unit', '1', str(key_file)],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def _inflate(path):
    """Make a cloud's file 768 MiB longer without using disk (a sparse tail of zeros)."""
    os.truncate(path, os.path.getsize(path) + OVERSIZE)


def test_oversized_metadata_is_refused_after_the_limit(tmp_path, directory_clouds, writer_key):
    clouds, key_file = directory_clouds
    data = os.urandom(300 * 1024)
    _write(clouds, writer_key, data)
    _inflate(clouds[1].path_of('unit/meta'))
    report = _read_in_child(tmp_path, key_file)
    assert report['sha'] == __import__('hashlib').sha256(data).hexdigest()
    # Four metadata reads (one stopped after 64 KiB + 1 byte), two value objects of
    # about 150 KiB: well under a megabyte, where an unbounded read took 768 MiB.
    assert report['rchar'] < 4 * MIB, report
    assert report['rss_kib'] < 64 * 1024, report
    assert ['cloud1', 'faulty', 'bad metadata: metadata.(document): longer than 65536 bytes '
            '(reading stopped there)'] in report['faults'], report['faults']


def test_oversized_value_object_is_refused_after_its_signed_length(tmp_path, directory_clouds,
                                                                   writer_key):
    clouds, key_file = directory_clouds
    data = os.urandom(300 * 1024)
    _write(clouds, writer_key, data)
    # cloud0 is read first (it vouched for the version and comes first in order).
    _inflate(clouds[0].path_of(protocol.value_key('unit', 1)))
    report = _read_in_child(tmp_path, key_file)
    assert report['sha'] == __import__('hashlib').sha256(data).hexdigest()
    assert report['rchar'] < 4 * MIB, report
    assert report['rss_kib'] < 64 * 1024, report
    reported = [fault for fault in report['faults'] if fault[0] == 'cloud0']
    assert reported and reported[0][1] == 'faulty', report['faults']
    assert 'longer than' in reported[0][2] and 'signed metadata implies' in reported[0][2]


def test_memory_backend_counts_and_bounds_what_it_reads():
    cloud = conftest.MemoryBackend('m')
    cloud.objects['big'] = b'x' * (3 * MIB)
    with pytest.raises(errors.ObjectTooLarge, match="'big' is longer than 1000 bytes"):
        cloud.get('big', 1000)
    assert cloud.bytes_read == 1001
    assert cloud.get_range('big', 10, 5) == b'xxxxx' and cloud.bytes_read == 1006
    # A start beyond the end reads nothing; a range past the end stops there.
    assert cloud.get_range('big', 5 * MIB, 10) == b''
    assert len(cloud.get_range('big', 3 * MIB - 3, 10)) == 3


@pytest.mark.parametrize('size', [100, 20 * 4096 + 1])
def test_every_read_of_a_verified_version_stays_within_its_signed_lengths(clouds, writer_key,
                                                                          size):
    # A cloud appending garbage after its value object (or its metadata): the reader
    # takes no more than the signed layout from it, and check names the cloud.
    depsky = protocol.DepSkyCA(clouds, 1, writer_key.public_key(), writer_key,
                               segment_size=4096, window_segments=4)
    data = os.urandom(size)
    depsky.write('unit', data, 1)
    key = protocol.value_key('unit', 1)
    clouds[2].objects[key] += b'\0' * MIB
    clouds[3].objects['unit/meta'] += b' ' * MIB
    for cloud in clouds:
        cloud.bytes_read = 0
    assert depsky.read('unit').data == data
    result = depsky.check('unit')
    assert result.faults['cloud2'].kind == protocol.FAULTY
    assert 'longer than' in result.faults['cloud2'].reason
    assert result.faults['cloud3'].kind == protocol.FAULTY
    assert 'longer than %d bytes' % metadata.MAX_METADATA_BYTES in \
        result.faults['cloud3'].reason
    for cloud in clouds:
        assert cloud.bytes_read <= 2 * (len(cloud.objects[key]) + metadata.MAX_METADATA_BYTES)
    assert clouds[2].bytes_read < MIB // 2
