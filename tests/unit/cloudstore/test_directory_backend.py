"""The ``directory`` backend: the Backend contract on files, atomic, confined to its root."""
import concurrent.futures
import os

import pytest

from tclouds_openstack.cloudstore import backends
from tclouds_openstack.cloudstore.backends import directory
from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import protocol

#: What the tests accept from a read (every read is bounded).
LIMIT = 1 << 20


@pytest.fixture
def cloud(tmp_path):
    backend = backends.load('disk1', {'type': 'directory', 'path': str(tmp_path / 'disk1')})
    backend.ensure_container()
    return backend


def _files(backend):
    return sorted(os.listdir(backend.path))


def test_loaded_by_the_factory(tmp_path):
    backend = backends.load('disk1', {'type': 'directory', 'path': str(tmp_path)})
    assert isinstance(backend, directory.DirectoryBackend) and backend.name == 'disk1'
    assert backend.path == str(tmp_path)


@pytest.mark.parametrize('options,message', [
    ({'type': 'directory'}, "cloud cloudX: option 'path' is required"),
    ({'type': 'directory', 'path': 'relative/dir'}, 'must be an absolute directory'),
])
def test_loader_errors(options, message):
    with pytest.raises(errors.CloudStoreError, match=message):
        backends.load('cloudX', options)


def test_contract(cloud):
    assert cloud.list() == []
    cloud.put('unit/meta', b'metadata')
    cloud.put('unit/v1', b'one')
    cloud.put('other/v1', b'')
    cloud.put('unit/v1', b'one, replaced')
    assert cloud.get('unit/meta', LIMIT) == b'metadata'
    assert cloud.get('unit/v1', LIMIT) == b'one, replaced'
    assert cloud.get('other/v1', LIMIT) == b''
    assert cloud.list() == ['other/v1', 'unit/meta', 'unit/v1']
    assert cloud.list('unit/') == ['unit/meta', 'unit/v1']
    assert cloud.list('nothing') == []
    cloud.delete('unit/v1')
    cloud.delete('unit/v1')  # absent: success
    assert cloud.list('unit/') == ['unit/meta']
    with pytest.raises(errors.BackendNotFound, match="cloud disk1: get failed: no object "
                                                     "'unit/v1'"):
        cloud.get('unit/v1', LIMIT)


def test_keys_are_stored_flat_and_round_trip(cloud):
    keys = ['a/b/c', '.hidden', 'x%2Fy', 'space and \u00e9', '-', 'a//b', 'trailing/']
    for number, key in enumerate(keys):
        cloud.put(key, b'%d' % number)
    assert cloud.list() == sorted(keys)
    for number, key in enumerate(keys):
        assert cloud.get(key, LIMIT) == b'%d' % number
    # One file per key directly in the directory, none of them hidden.
    assert all(not name.startswith('.') and '/' not in name for name in _files(cloud))
    assert len(_files(cloud)) == len(keys)
    assert cloud.path_of('a/b/c') == os.path.join(cloud.path, 'a%2Fb%2Fc')
    assert cloud.path_of('.hidden') == os.path.join(cloud.path, '%2Ehidden')
    with pytest.raises(errors.BackendError, match='path component'):
        cloud.path_of('../x')


def test_put_stream(cloud):
    cloud.put_stream('unit/v2', iter([b'abc', b'', b'def']), 6)
    cloud.put_stream('unit/v3', iter([b'abc']))
    assert cloud.get('unit/v2', LIMIT) == b'abcdef' and cloud.get('unit/v3', LIMIT) == b'abc'


def test_failing_stream_leaves_the_previous_object_and_no_partial_file(cloud):
    cloud.put('unit/v1', b'previous')

    def chunks():
        yield b'first half of the new object'
        raise errors.CloudStoreError('upload aborted by the writer: client went away')

    with pytest.raises(errors.CloudStoreError, match='client went away'):
        cloud.put_stream('unit/v1', chunks())
    with pytest.raises(errors.CloudStoreError, match='client went away'):
        cloud.put_stream('unit/v9', chunks())
    assert cloud.get('unit/v1', LIMIT) == b'previous'
    assert cloud.list() == ['unit/v1']
    assert _files(cloud) == ['unit%2Fv1']  # no temporary file left behind


def test_stream_shorter_than_announced_is_not_stored(cloud):
    with pytest.raises(errors.BackendError, match='unit/v1: 3 bytes received, 10 announced'):
        cloud.put_stream('unit/v1', iter([b'abc']), 10)
    assert _files(cloud) == []


def test_concurrent_writers_of_one_key_leave_one_whole_object(cloud):
    values = [bytes([number]) * 200000 for number in range(8)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda value: cloud.put('unit/v1', value), values))
    assert cloud.get('unit/v1', LIMIT) in values
    assert _files(cloud) == ['unit%2Fv1']


@pytest.mark.parametrize('key,reason', [
    ('..', 'path component'),
    ('../escape', 'path component'),
    ('unit/../../escape', 'path component'),
    ('unit/./v1', 'path component'),
    ('/etc/passwd', 'absolute path'),
    ('unit\x00v1', 'NUL'),
    ('', 'non-empty'),
    ('\udc80', 'UTF-8'),
    ('x' * 300, 'more than 255'),
])
def test_traversal_and_bad_keys_are_refused(cloud, tmp_path, key, reason):
    for operation, call in (('put', lambda: cloud.put(key, b'x')),
                            ('get', lambda: cloud.get(key, LIMIT)),
                            ('delete', lambda: cloud.delete(key))):
        with pytest.raises(errors.BackendError) as info:
            call()
        assert not isinstance(info.value, errors.BackendNotFound)
        assert info.value.cloud == 'disk1' and info.value.operation == operation
        assert 'refused' in str(info.value) and reason in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ['disk1'] and _files(cloud) == []


def test_foreign_files_are_not_listed(cloud):
    cloud.put('unit/meta', b'm')
    for name in ('.tmp-left-over', 'A%41', 'bad%ff'):
        with open(os.path.join(cloud.path, name), 'wb') as stream:
            stream.write(b'?')
    assert cloud.list() == ['unit/meta']


def test_missing_directory_is_a_backend_error(tmp_path):
    cloud = directory.DirectoryBackend('disk2', str(tmp_path / 'absent'))
    for operation, call in (('put', lambda: cloud.put('unit/v1', b'x')),
                            ('get', lambda: cloud.get('unit/v1', LIMIT)),
                            ('delete', lambda: cloud.delete('unit/v1')),
                            ('list', lambda: cloud.list())):
        with pytest.raises(errors.BackendError) as info:
            call()
        # Not "no such object": the cloud could not be asked at all.
        assert not isinstance(info.value, errors.BackendNotFound)
        assert str(info.value).startswith('cloud disk2: %s failed: ' % operation)
    cloud.ensure_container()
    cloud.put('unit/v1', b'x')
    assert cloud.get('unit/v1', LIMIT) == b'x'
    assert os.stat(cloud.path).st_mode & 0o777 == 0o700


def test_directory_replaced_by_a_file_is_a_backend_error(cloud):
    cloud.put('unit/v1', b'x')
    os.rename(cloud.path, cloud.path + '.away')
    with open(cloud.path, 'wb') as stream:
        stream.write(b'not a directory')
    for operation, call in (('put', lambda: cloud.put('unit/v1', b'x')),
                            ('get', lambda: cloud.get('unit/v1', LIMIT)),
                            ('delete', lambda: cloud.delete('unit/v1')),
                            ('list', lambda: cloud.list()),
                            ('ensure_container', cloud.ensure_container)):
        with pytest.raises(errors.BackendError, match='cloud disk1: %s failed: .*Not a '
                                                      'directory' % operation):
            call()


def test_unreadable_object_is_a_backend_error(cloud):
    cloud.put('unit/v1', b'x')
    # A directory where the object's file should be: reading it fails for root too.
    os.unlink(os.path.join(cloud.path, 'unit%2Fv1'))
    os.mkdir(os.path.join(cloud.path, 'unit%2Fv1'))
    with pytest.raises(errors.BackendError, match='cloud disk1: get failed: unit/v1: Is a '
                                                  'directory') as info:
        cloud.get('unit/v1', LIMIT)
    assert not isinstance(info.value, errors.BackendNotFound)


def test_depsky_over_four_directory_clouds(tmp_path, writer_key):
    clouds = [backends.load('disk%d' % index, {'type': 'directory',
                                               'path': str(tmp_path / ('disk%d' % index))})
              for index in range(4)]
    for cloud in clouds:
        cloud.ensure_container()
    data = os.urandom(150 * 1024 + 7)

    def depsky(pool):
        return protocol.DepSkyCA(clouds, 1, writer_key.public_key(), writer_key, pool,
                                 segment_size=64 * 1024)

    # Leaving the pool waits for the clouds slower than the quorum too.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        result = depsky(pool).write('unit', data, 1)
    assert len(result.acked) >= 3 and result.faults == {}
    for cloud in clouds:
        assert cloud.list() == ['unit/meta', protocol.value_key('unit', 1)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        read = depsky(pool).read('unit', expected_version=1)
        assert read.data == data and read.faults == {}
        # One cloud's value object lost on disk: still read, reported, then repaired.
        os.unlink(os.path.join(clouds[0].path, 'unit%%2Fv%020d' % 1))
        # With the version and size known (as the Swift middleware's stub names them) the
        # read fetches from clouds 0 .. f at once, so disk0 is judged whatever the timing;
        # knowing the version alone, a disk0 slower than the metadata quorum is asked last.
        read = depsky(pool).read('unit', expected_version=1, expected_size=len(data))
        assert read.data == data and read.faults['disk0'].kind == protocol.FAULTY
        assert read.faults['disk0'].reason == 'missing value object of version 1'
        repaired = depsky(pool).repair('unit')
        assert repaired.repaired == {'disk0': 'value object'} and repaired.failed == {}
        assert depsky(pool).read('unit', expected_version=1).faults == {}
