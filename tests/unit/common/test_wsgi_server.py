"""The standalone API server: half-sent requests hold no thread and cannot starve it.

Socket timeouts in these tests only guard against a hang; nothing asserts how fast
anything happens.
"""
import socket
import threading

import pytest
import requests

from tclouds_openstack.common import wsgi

GUARD = 120         # seconds: a hang guard, never a time limit of the behaviour


def _app(environ, start_response):
    body = environ['wsgi.input'].read(int(environ.get('CONTENT_LENGTH') or 0))
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'ok:' + body]


@pytest.fixture
def serve():
    started = []

    def start(**kwargs):
        from tclouds_openstack.common import wsgi_server
        server = wsgi_server.Server(_app, '127.0.0.1', 0, **kwargs)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        return server
    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join()


def _half_sent(server, n):
    conns = []
    for _ in range(n):
        conn = socket.create_connection(('127.0.0.1', server.server_port), timeout=GUARD)
        conn.sendall(b'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nhalf')
        conns.append(conn)
    return conns


def _answer(conn):
    """Everything the server sends until it closes the connection."""
    answer = b''
    while True:
        data = conn.recv(4096)
        if not data:
            return answer
        answer += data


def _closed_by_server(conn):
    try:
        return conn.recv(1) == b''
    except ConnectionResetError:
        return True


def test_half_sent_requests_hold_no_thread_and_do_not_starve():
    # the server every tclouds-*-api command and test uses, with its defaults
    server = wsgi.make_server(_app, '127.0.0.1', 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    threads_before = threading.active_count()
    held = _half_sent(server, 200)
    try:
        url = 'http://127.0.0.1:%d/' % server.server_port
        for _ in range(5):
            resp = requests.post(url, data=b'body', timeout=GUARD)
            assert resp.status_code == 200 and resp.content == b'ok:body'
        # the pool's workers at most, whatever the number of open connections
        assert threading.active_count() <= threads_before + 16
    finally:
        for conn in held:
            conn.close()
        server.shutdown()
        server.server_close()
        thread.join()


def test_held_connections_are_closed_after_the_timeout(serve):
    server = serve(workers=2, timeout=1)
    held = _half_sent(server, 20)
    idle = socket.create_connection(('127.0.0.1', server.server_port), timeout=GUARD)
    try:
        assert all(_closed_by_server(conn) for conn in held + [idle])
        resp = requests.get('http://127.0.0.1:%d/' % server.server_port, timeout=GUARD)
        assert resp.status_code == 200
    finally:
        for conn in held + [idle]:
            conn.close()


def test_when_full_the_oldest_connection_makes_room(serve):
    server = serve(workers=1, timeout=GUARD, max_connections=10)
    held = _half_sent(server, 10)
    try:
        resp = requests.get('http://127.0.0.1:%d/' % server.server_port, timeout=GUARD)
        assert resp.status_code == 200
        assert _closed_by_server(held[0])
    finally:
        for conn in held:
            conn.close()


@pytest.mark.parametrize('request_bytes, status', [
    (b'POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n', 411),
    (b'POST /x HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nbody', 400),
    (b'POST /x HTTP/1.1\r\nContent-Length: -4\r\n\r\nbody', 400),
    (b'POST /x HTTP/1.1\r\nContent-Length: 2048\r\n\r\n', 413),
    (b'GET /x HTTP/1.1\r\nX-Pad: ' + b'a' * (70 * 1024) + b'\r\n\r\n', 431),
])
def test_requests_it_cannot_read_safely_are_refused(serve, request_bytes, status):
    server = serve(workers=1, timeout=GUARD, max_body=1024)
    with socket.create_connection(('127.0.0.1', server.server_port), timeout=GUARD) as conn:
        conn.sendall(request_bytes)
        answer = _answer(conn)
    assert answer.startswith(b'HTTP/1.0 %d ' % status), answer[:100]


def test_a_complete_request_split_in_pieces_is_answered(serve):
    server = serve(workers=1, timeout=GUARD)
    with socket.create_connection(('127.0.0.1', server.server_port), timeout=GUARD) as conn:
        for piece in (b'POST /x HTTP/1.1\r\nHo', b'st: a\r\nContent-Len', b'gth: 5\r\n\r\nab',
                      b'cde'):
            conn.sendall(piece)
        answer = _answer(conn)
    assert answer.startswith(b'HTTP/1.0 200 ') and answer.endswith(b'ok:abcde')


def test_shutdown_and_close_twice(serve):
    server = serve(workers=1)
    server.shutdown()
    server.server_close()
    server.shutdown()
    server.server_close()


def test_a_slow_reader_cannot_hold_a_worker():
    """Slow-read: a client draining a large answer a little at a time kept the worker.

    Each send made some progress within the socket timeout, so the timeout never fired,
    and a few such clients held every worker. The worker's writer gives the whole answer
    ``timeout`` seconds; then it gives up and the worker is free.
    """
    from tclouds_openstack.common import wsgi_server
    server_side, client = socket.socketpair()
    server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stop = threading.Event()

    def drain():
        # always some progress: 2 KiB every 20 ms, far below the answer's size
        while not stop.wait(0.02):
            try:
                if not client.recv(2048):
                    return
            except OSError:
                return
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    writer = wsgi_server.DeadlineWriter(server_side, timeout=1)
    try:
        with pytest.raises(OSError) as exc:
            for _ in range(512):                    # 32 MiB: about half an hour so
                data = memoryview(b'x' * 65536)
                while data:
                    data = data[writer.write(data):]
        assert 'within 1 s' in str(exc.value)
    finally:
        stop.set()
        server_side.close()
        client.close()
        reader.join()
