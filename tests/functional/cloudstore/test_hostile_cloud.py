"""Every answer of a hostile cloud is read only up to its bound (issue 12, point 9).

The real Swift and S3 drivers (http.client, swiftclient's authentication, boto3/botocore)
talk to a cloud that answers object reads and listings with oversized or malformed bodies:
a chunked body that does not end, a huge Content-Length, a malformed one, error answers
(401, 403, 404, 500) with 64 MiB bodies, a 64 MiB listing. Each read fails with a
cloudstore error (never another exception), the cloud got at most the bound plus what the
socket buffers hold onto the wire, and this process's peak RSS grew by less than the
bound's worth. (botocore read every error body and listing whole before parsing it: a
64 MiB error body took 640 MiB; the Swift driver read a 401's body and whole listings.)
"""
import pytest

from tclouds_openstack.cloudstore.backends import base
from tclouds_openstack.cloudstore.backends import s3
from tclouds_openstack.cloudstore.backends import swift
from tclouds_openstack.cloudstore import errors
from tests.functional.cloudstore.hostile import Answer
from tests.functional.cloudstore.hostile import HostileCloud
from tests.functional.cloudstore.hostile import MIB

BODY = 64 * MIB
LIMIT = MIB                 # what the caller accepts for the object (metadata limit, say)
# kernel socket buffers on loopback take a few MiB the client never reads
SLACK = 12 * MIB


def _peak():
    with open('/proc/self/status') as stream:
        for line in stream:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024


def _reset_peak():
    with open('/proc/self/clear_refs', 'w') as stream:
        stream.write('5')


@pytest.fixture(scope='module')
def cloud():
    hostile = HostileCloud()
    yield hostile
    hostile.close()


@pytest.fixture(params=['swift', 's3'])
def driver(request, cloud):
    if request.param == 'swift':
        return swift.SwiftBackend('hostile', cloud.url + '/auth/v1.0', 'u', 'k', timeout=10)
    return s3.S3Backend('hostile', cloud.url, 'a', 'b', timeout=10)


READS = {
    'endless chunked object': (Answer(200, BODY, chunked=True), LIMIT, errors.ObjectTooLarge),
    'Content-Length 2^62': (Answer(200, BODY, headers={'Content-Length': str(2 ** 62)}),
                            LIMIT, errors.ObjectTooLarge),
    'malformed Content-Length': (Answer(200, 10, headers={'Content-Length': 'ten'},
                                        body=b'x' * 10), 0, errors.BackendError),
    'negative Content-Length': (Answer(200, 10, headers={'Content-Length': '-5'},
                                       body=b'x' * 10), 0, errors.BackendError),
    '401 with a 64 MiB body': (Answer(401, BODY), base.MAX_ERROR_BYTES, errors.BackendError),
    '403 with an endless chunked body': (Answer(403, BODY, chunked=True),
                                         base.MAX_ERROR_BYTES, errors.BackendError),
    '404 with a 64 MiB body': (Answer(404, BODY), base.MAX_ERROR_BYTES, errors.BackendError),
    '500 with a 64 MiB body': (Answer(500, BODY), base.MAX_ERROR_BYTES, errors.BackendError),
}


@pytest.mark.parametrize('case', sorted(READS))
def test_object_reads_are_bounded(cloud, driver, case):
    answer, bound, error = READS[case]
    cloud.answers = {'/unit/meta': answer}
    cloud.reset()
    _reset_peak()
    before = _peak()
    with pytest.raises(error):
        driver.get('unit/meta', LIMIT)
    assert sum(cloud.sent.values()) <= bound + SLACK, cloud.sent
    assert _peak() - before < bound + SLACK


@pytest.mark.parametrize('chunked', [False, True], ids=['length', 'chunked'])
def test_listings_are_bounded(cloud, driver, chunked):
    cloud.answers = {'/cloudstore': Answer(200, BODY, chunked=chunked),
                     '?list-type': Answer(200, BODY, chunked=chunked)}
    cloud.reset()
    _reset_peak()
    before = _peak()
    with pytest.raises(errors.BackendError) as exc:
        driver.list('')
    assert 'longer than %d bytes' % base.MAX_ANSWER_BYTES in str(exc.value)
    assert sum(cloud.sent.values()) <= base.MAX_ANSWER_BYTES + SLACK, cloud.sent
    assert _peak() - before < 2 * base.MAX_ANSWER_BYTES + SLACK


def test_a_well_formed_small_answer_still_reads(cloud, driver):
    """The bounds leave ordinary answers alone: an object, a 404, a listing."""
    cloud.answers = {'/unit/meta': Answer(200, body=b'signed metadata', length=15),
                     '/unit/gone': Answer(404, body=b'<Error><Code>NoSuchKey</Code></Error>',
                                          length=37)}
    assert driver.get('unit/meta', LIMIT) == b'signed metadata'
    with pytest.raises(errors.BackendNotFound):
        driver.get('unit/gone', LIMIT)


def test_an_answer_cut_short_on_a_kept_alive_connection_fails_the_read(cloud, driver):
    # Pieces are received straight into the reader's buffers (``read_into``) on the
    # connection an earlier answer left open; a cloud that closes it mid-answer fails the
    # read (never short bytes taken for the object), and the next read works.
    piece = bytes(range(256)) * 4
    cloud.answers = {'/unit/good': Answer(200, body=piece, length=len(piece)),
                     '/unit/cut': Answer(200, body=piece[:300], length=300, headers={
                         'Content-Length': str(len(piece)), 'Connection': 'close'})}
    views = [memoryview(bytearray(80)), memoryview(bytearray(len(piece) - 80))]
    assert b''.join(bytes(part) for _, part in driver.read_into('unit/good', 0, views)) == \
        piece
    assert bytes(views[0]) + bytes(views[1]) == piece
    with pytest.raises(errors.BackendError) as exc:
        list(driver.read_into('unit/cut', 0, views))
    assert 'unit/cut' in str(exc.value)
    views = [memoryview(bytearray(len(piece)))]
    assert list(index for index, _ in driver.read_into('unit/good', 0, views)) == [0]
    assert bytes(views[0]) == piece
