"""A hostile cloud's malformed or oversized answer headers fail the Swift driver's request.

The Swift driver reads status lines and headers with its own parser (backends/wire.py)
instead of http.client's and the email package's. These answers, each within
http.client's own bounds, were taken by it: two different Content-Length values (the first
won: a body read short or long), a Content-Length beside chunked transfer (ignored),
folded header lines, 300 KiB of headers. Each now fails the read with a BackendError that
names the cloud and the object, and the next ordinary answer on a fresh connection reads.
"""
import pytest

from tclouds_openstack.cloudstore.backends import swift
from tclouds_openstack.cloudstore import errors
from tests.functional.cloudstore.hostile import Answer
from tests.functional.cloudstore.hostile import HostileCloud

BODY = b'0123456789'


@pytest.fixture(scope='module')
def cloud():
    hostile = HostileCloud()
    yield hostile
    hostile.close()


@pytest.fixture
def driver(cloud):
    return swift.SwiftBackend('hostile-cloud', cloud.url + '/auth/v1.0', 'u', 'k',
                              timeout=10)


ANSWERS = {
    'two Content-Length values': (
        Answer(200, body=BODY, headers={'Content-Length': '5', 'content-length': '10'}),
        'conflicting Content-Length values 10, 5'),
    'Content-Length beside chunked transfer': (
        Answer(200, len(BODY), chunked=True, headers={'Content-Length': '3'}),
        'both Transfer-Encoding and Content-Length'),
    'a folded header line': (
        Answer(200, body=BODY, headers={'Content-Length': '10', 'X-A': '1\r\n folded'}),
        'malformed header line'),
    '300 KiB of headers': (
        Answer(200, body=BODY, headers=dict({'Content-Length': '10'}, **{
            'X-H%d' % index: 'v' * 30720 for index in range(10)})),
        'longer than 262144 bytes'),
}


@pytest.mark.parametrize('case', sorted(ANSWERS))
def test_malformed_headers_fail_the_read_naming_the_cloud(cloud, driver, case):
    answer, reason = ANSWERS[case]
    cloud.answers = {'/unit/meta': answer,
                     '/unit/good': Answer(200, body=BODY, length=len(BODY))}
    with pytest.raises(errors.BackendError) as exc:
        driver.get('unit/meta', 1024)
    message = str(exc.value)
    assert message.startswith('cloud hostile-cloud: get failed: unit/meta: malformed '
                              'answer: '), message
    assert reason in message
    # the same in a GET's ranged read, received into place
    views = [memoryview(bytearray(len(BODY)))]
    with pytest.raises(errors.BackendError) as exc:
        list(driver.read_into('unit/meta', 0, views))
    assert 'hostile-cloud' in str(exc.value) and reason in str(exc.value)
    assert driver.get('unit/good', 1024) == BODY


def test_malformed_authentication_headers_fail_naming_the_cloud(cloud, driver):
    cloud.auth = Answer(200, body=b'', headers={
        'Content-Length': '0', 'X-Storage-Url': cloud.url + '/v1/AUTH_t',
        'X-Auth-Token': 'tk\r\n folded'})
    try:
        with pytest.raises(errors.BackendError) as exc:
            driver.get('unit/good', 1024)
    finally:
        cloud.auth = None
    assert 'cloud hostile-cloud: get failed: authentication: malformed answer: malformed ' \
        'header line' in str(exc.value)
