"""ServiceClient against a real HTTP server: JSON round trip, error mapping, fail closed."""
import socket
import threading

from keystoneauth1 import session as ks_session
import pytest

from tclouds_openstack.common import client
from tclouds_openstack.common import exception
from tclouds_openstack.common import wsgi


class _Client(client.ServiceClient):
    service_type = 'test'


@pytest.fixture
def server():
    router = wsgi.Router()

    def echo(request):
        return 201, wsgi.json_body(request)

    def gone(request):
        raise exception.Conflict('host h1 is already registered')

    router.connect('/echo', echo, ['POST'])
    router.connect('/gone', gone, ['GET'])
    srv = wsgi.make_server(router, '127.0.0.1', 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % srv.server_port
    srv.shutdown()
    srv.server_close()


def test_round_trip_and_errors(server):
    c = _Client(ks_session.Session(), endpoint_override=server)
    assert c.post('/echo', {'a': [1, 2]}) == {'a': [1, 2]}
    with pytest.raises(client.ClientError) as e:
        c.get('/gone')
    assert e.value.status == 409 and 'already registered' in e.value.message


def test_unreachable_is_service_unavailable():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    c = _Client(ks_session.Session(), endpoint_override='http://127.0.0.1:%d' % port, timeout=2)
    with pytest.raises(client.ServiceUnavailable):
        c.get('/anything')
