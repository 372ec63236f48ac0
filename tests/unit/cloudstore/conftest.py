"""Fixtures of the cloudstore unit tests: in-memory clouds and a writer key."""
from cryptography.hazmat.primitives.asymmetric import ed25519
import pytest

from tclouds_openstack.cloudstore.backends import base
from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import protocol


class MemoryBackend(base.Backend):
    """A cloud in a dict; ``down`` makes every call fail like an unreachable provider."""

    def __init__(self, name):
        super().__init__(name)
        self.objects = {}
        self.down = False

    def _check(self, operation):
        if self.down:
            raise errors.BackendError(self.name, operation, 'connection refused')

    def put(self, key, data):
        self._check('put')
        self.objects[key] = bytes(data)

    def _read(self, key, start, length):
        self._check('get')
        if key not in self.objects:
            raise errors.BackendNotFound(self.name, key)
        data = self.objects[key]
        stop = len(data) if length is None else min(len(data), start + length)
        for offset in range(start, stop, base.READ_CHUNK_BYTES):
            yield data[offset:min(stop, offset + base.READ_CHUNK_BYTES)]

    def delete(self, key):
        self._check('delete')
        self.objects.pop(key, None)

    def list(self, prefix=''):
        self._check('list')
        return sorted(key for key in self.objects if key.startswith(prefix))


@pytest.fixture
def writer_key():
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def clouds():
    return [MemoryBackend('cloud%d' % index) for index in range(4)]


#: Small segments, so that test objects span several of them.
SEGMENT = 64 * 1024


@pytest.fixture
def depsky(clouds, writer_key):
    return protocol.DepSkyCA(clouds, 1, writer_key.public_key(), writer_key,
                             segment_size=SEGMENT)
