"""A cloud that drips its answers, or sends a huge authentication answer (issue 12, 9).

The real Swift and S3 drivers talk to a local hostile server. Dripping: one byte at a
time, each well inside the socket timeout, so no single wait ever times out; the status
line and headers, the body of an object read, a listing, an upload's answer, the
authentication answer. Every request fails at its overall deadline (``request_deadline``)
with a cloudstore error naming the cloud and the deadline, the connection is closed (the
server sees the hang-up: nothing is left sending) and the calling thread is free.
(Before, a read waited as long as the cloud kept dripping: days for a 1 MB answer.)
Authentication: swiftclient read the TempAuth or Keystone answer whole; a 64 MiB answer
now stops at the answer bound, naming the cloud, measured in bytes sent and peak RSS.
"""
import concurrent.futures

import pytest

from tclouds_openstack.cloudstore import backends
from tclouds_openstack.cloudstore.backends import base
from tclouds_openstack.cloudstore import errors
from tests.functional.cloudstore.hostile import Answer
from tests.functional.cloudstore.hostile import HostileCloud
from tests.functional.cloudstore.hostile import MIB
from tests.functional.cloudstore.test_hostile_cloud import _peak
from tests.functional.cloudstore.test_hostile_cloud import _reset_peak
from tests.functional.cloudstore.test_hostile_cloud import SLACK
from tests import watchdog

DEADLINE = 1.5
TIMEOUT = 2                 # each socket wait; the cloud drips well inside it
DRIP = 0.1
# Not a timing assertion: how long a call may hang before the test calls it stuck (the
# old drivers would have read the dripped megabyte for more than a day).
STUCK = 120


@pytest.fixture(scope='module')
def cloud():
    hostile = HostileCloud()
    yield hostile
    hostile.close()


def _load(cloud, kind, auth_version='1'):
    if kind == 's3':
        options = {'type': 's3', 'endpoint_url': cloud.url, 'access_key': 'a',
                   'secret_key': 'b'}
    else:
        options = {'type': 'swift', 'user': 'u', 'key': 'k', 'auth_version': auth_version,
                   'auth_url': cloud.url + ('/v3' if auth_version == '3' else '/auth/v1.0'),
                   'project_name': 'p'}
    options.update(timeout=str(TIMEOUT), deadline=str(DEADLINE))
    return backends.load('hostile', options)


def _call(fn, *args):
    """Run ``fn`` in a worker thread (as the protocol does); its exception."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(fn, *args)
        try:
            future.result(timeout=STUCK)
        except concurrent.futures.TimeoutError:
            pytest.fail('the call is still reading from the dripping cloud')
        except errors.CloudStoreError as exc:
            return exc
    pytest.fail('the call succeeded')


def _assert_cut(cloud, exc, operation):
    assert isinstance(exc, errors.BackendError) and exc.cloud == 'hostile', exc
    assert exc.operation == operation
    assert 'no complete answer within the request deadline of %g s' % DEADLINE in str(exc)
    # the connection was closed: the server stopped sending (its write failed)
    watchdog.wait_until(lambda: cloud.busy == 0, 'the hostile cloud to see the hang-up')


DRIPS = {
    'object body': ('/unit/meta', Answer(200, MIB, drip=DRIP), 'get'),
    'object headers': ('/unit/meta', Answer(200, MIB, drip=DRIP, drip_headers=True), 'get'),
    'listing body': ('list', Answer(200, MIB, drip=DRIP), 'list'),
    'upload answer': ('/unit/obj', Answer(201, MIB, drip=DRIP), 'put'),
    'upload answer headers': ('/unit/obj', Answer(201, MIB, drip=DRIP, drip_headers=True),
                              'put'),
}


@pytest.mark.parametrize('case', sorted(DRIPS))
@pytest.mark.parametrize('kind', ['swift', 's3'])
def test_a_dripping_cloud_is_cut_at_the_deadline(cloud, kind, case):
    path, answer, operation = DRIPS[case]
    if path == 'list':
        cloud.answers = {'/cloudstore': answer, '?list-type': answer}
    else:
        cloud.answers = {path: answer}
    cloud.auth = None
    cloud.reset()
    driver = _load(cloud, kind)
    if operation == 'get':
        exc = _call(driver.get, 'unit/meta', MIB)
    elif operation == 'list':
        exc = _call(driver.list, '')
    else:
        exc = _call(driver.put, 'unit/obj', b'value')
    _assert_cut(cloud, exc, operation)
    # the worker thread is free and the driver still works: a good answer reads
    cloud.answers = {'/unit/meta': Answer(200, body=b'signed metadata', length=15)}
    assert driver.get('unit/meta', MIB) == b'signed metadata'


@pytest.mark.parametrize('auth_version', ['1', '3'])
def test_a_dripped_authentication_is_cut_at_the_deadline(cloud, auth_version):
    cloud.answers = {}
    cloud.auth = Answer(200 if auth_version == '1' else 201, MIB, drip=DRIP,
                        drip_headers=True)
    cloud.reset()
    exc = _call(_load(cloud, 'swift', auth_version).get, 'unit/meta', MIB)
    cloud.auth = None
    _assert_cut(cloud, exc, 'get')


HUGE_AUTH = {
    '64 MiB body': Answer(200, 64 * MIB),
    'endless chunked body': Answer(200, 64 * MIB, chunked=True),
}


@pytest.mark.parametrize('case', sorted(HUGE_AUTH))
@pytest.mark.parametrize('auth_version', ['1', '3'])
def test_a_huge_authentication_answer_is_read_only_to_its_bound(cloud, auth_version, case):
    answer = HUGE_AUTH[case]
    cloud.answers = {}
    cloud.auth = Answer(200 if auth_version == '1' else 201, answer.length,
                        chunked=answer.chunked,
                        headers={'X-Storage-Url': cloud.url + '/v1/AUTH_t',
                                 'X-Auth-Token': 'tk', 'X-Subject-Token': 'tk'})
    cloud.reset()
    _reset_peak()
    before = _peak()
    driver = _load(cloud, 'swift', auth_version)
    driver.deadline = 60            # the bound stops it, not the deadline
    with pytest.raises(errors.BackendError) as exc:
        driver.get('unit/meta', MIB)
    cloud.auth = None
    assert exc.value.cloud == 'hostile'
    assert str(exc.value).startswith('cloud hostile: get failed: authentication: answer '
                                     'longer than %d bytes' % base.MAX_ANSWER_BYTES)
    assert sum(cloud.sent.values()) <= base.MAX_ANSWER_BYTES + SLACK, cloud.sent
    assert _peak() - before < 2 * base.MAX_ANSWER_BYTES + SLACK


@pytest.mark.parametrize('auth_version', ['1', '3'])
def test_a_good_authentication_still_works(cloud, auth_version):
    cloud.auth = None
    cloud.answers = {'/unit/meta': Answer(200, body=b'signed metadata', length=15)}
    assert _load(cloud, 'swift', auth_version).get('unit/meta', MIB) == b'signed metadata'
