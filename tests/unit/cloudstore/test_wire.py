"""The Swift driver's status-line and header parser (backends/wire.py).

Answers as a hostile cloud could send them, parsed from bytes: every framing rule the
parser adds over http.client (one Content-Length, no Content-Length beside chunked
transfer, no folded or nameless header lines, a bound on the headers' total bytes) is
refused with MalformedAnswer, and ordinary answers read as http.client reads them.
"""
import http.client
import io
import socket

import pytest

from tclouds_openstack.cloudstore.backends import wire


class _Socket:
    def __init__(self, data):
        self.data = data

    def makefile(self, mode):
        return io.BufferedReader(io.BytesIO(self.data))


def _answer(head, body=b'', method='GET'):
    response = wire.Response(_Socket(head + body), method=method)
    response.begin()
    return response


def test_an_ordinary_answer_reads_as_http_client_reads_it():
    head = (b'HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nEtag: "abc"\r\n'
            b'X-Object-Meta-A: one\r\nx-object-meta-a: two\r\n\r\n')
    ours = _answer(head, b'hello')
    theirs = http.client.HTTPResponse(_Socket(head + b'hello'), method='GET')
    theirs.begin()
    for response in (ours, theirs):
        assert (response.status, response.reason, response.version) == \
            (206, 'Partial Content', 11)
        assert response.getheader('ETAG') == '"abc"'
        assert response.getheader('x-object-meta-a') == 'one, two'
        assert response.getheader('missing', 'default') == 'default'
        assert not response.will_close
        assert response.read() == b'hello'
    assert ours.getheaders() == theirs.getheaders()


def test_chunked_keep_alive_close_and_continue_answers():
    chunked = _answer(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
                      b'3\r\nabc\r\n0\r\n\r\n')
    assert chunked.chunked and chunked.read() == b'abc'
    closing = _answer(b'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n',
                      b'ok')
    assert closing.will_close
    unknown_length = _answer(b'HTTP/1.1 200 OK\r\n\r\n', b'until the end')
    assert unknown_length.will_close and unknown_length.read() == b'until the end'
    old = _answer(b'HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n', b'ok')
    assert old.version == 10 and old.will_close
    after_continue = _answer(b'HTTP/1.1 100 Continue\r\nX-A: 1\r\n\r\n'
                             b'HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n')
    assert after_continue.status == 201 and after_continue.getheader('X-A') is None
    head = _answer(b'HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n', method='HEAD')
    assert head.length == 0
    no_reason = _answer(b'HTTP/1.1 204\r\n\r\n')
    assert (no_reason.status, no_reason.reason, no_reason.length) == (204, '', 0)
    repeated = _answer(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n',
                       b'ok')
    assert repeated.length == 2


MALFORMED = {
    'two different Content-Length values': (
        b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 10\r\n\r\n',
        'conflicting Content-Length'),
    'a list of different lengths': (b'HTTP/1.1 200 OK\r\nContent-Length: 5, 10\r\n\r\n',
                                    'conflicting Content-Length'),
    'Content-Length that is no number': (b'HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n',
                                         'is not a number'),
    'negative Content-Length': (b'HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n',
                                'is not a number'),
    'Content-Length beside chunked': (
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n',
        'both Transfer-Encoding and Content-Length'),
    'an unknown transfer coding': (b'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n',
                                   'unsupported Transfer-Encoding'),
    'a folded header line': (b'HTTP/1.1 200 OK\r\nX-A: 1\r\n folded: 2\r\n\r\n',
                             'malformed header line'),
    'a header line without a colon': (b'HTTP/1.1 200 OK\r\nX-A 1\r\n\r\n',
                                      'malformed header line'),
    'white space before the colon': (b'HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n',
                                     'malformed header line'),
    'an empty header name': (b'HTTP/1.1 200 OK\r\n: 5\r\n\r\n', 'malformed header line'),
    'not HTTP': (b'SSH-2.0-OpenSSH_9.2\r\n\r\n', 'malformed status line'),
    'a status that is no number': (b'HTTP/1.1 2x0 OK\r\n\r\n', 'malformed status line'),
    'headers cut short': (b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n', 'cut short'),
    'a header line cut short': (b'HTTP/1.1 200 OK\r\nContent-Len', 'cut short'),
    '101 header lines': (b'HTTP/1.1 200 OK\r\n' + b''.join(
        b'X-H%d: v\r\n' % index for index in range(101)) + b'\r\n', 'more than 100 header'),
    'a header line over 64 KiB': (b'HTTP/1.1 200 OK\r\nX-A: ' + b'a' * 65536 + b'\r\n\r\n',
                                  'header line longer than 65536 bytes'),
    # each line within http.client's bounds (it reads them all: 6.4 MiB at most)
    '300 KiB of headers in lines of 30 KiB': (b'HTTP/1.1 200 OK\r\n' + b''.join(
        b'X-H%d: %s\r\n' % (index, b'v' * 30720) for index in range(10)) + b'\r\n',
        'longer than 262144 bytes'),
}


@pytest.mark.parametrize('case', sorted(MALFORMED))
def test_a_malformed_answer_is_refused(case):
    head, reason = MALFORMED[case]
    with pytest.raises(wire.MalformedAnswer) as exc:
        _answer(head)
    assert reason in str(exc.value)


def test_a_closed_kept_alive_connection_is_remote_disconnected():
    # (the driver sends the request again on a fresh connection)
    with pytest.raises(http.client.RemoteDisconnected):
        _answer(b'')


def test_an_idle_connection_is_reused_only_while_nothing_arrived_on_it():
    """The driver's check before reusing a kept-alive connection (the system's poll)."""
    from tclouds_openstack.cloudstore.backends import swift

    ours, server = socket.socketpair()
    with ours, server:
        assert not swift._readable(ours)
        server.sendall(b'HTTP/1.1 408 Request Timeout\r\n\r\n')    # unasked: not reused
        assert swift._readable(ours)
        ours.recv(100)
        assert not swift._readable(ours)
        server.close()                                                  # closed by the server
        assert swift._readable(ours)
