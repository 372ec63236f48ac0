"""The standalone HTTP server of the tclouds APIs (``tclouds-*-api`` commands and tests).

Deployments run the APIs under uwsgi or mod_wsgi (``tclouds_openstack/wsgi/``); this
server is for the standalone commands, DevStack-less setups and the tests, and must not be
the weak point when exposed anyway. A thread per connection (wsgiref with ThreadingMixIn)
lets 200 half-sent requests hold 200 threads forever. Here:

- one I/O thread owns every connection that has not sent a complete request yet: it reads
  without blocking, and closes a connection that has not completed its request within
  ``timeout`` seconds of being accepted (slow or idle clients, half-sent requests);
- only complete requests (headers and ``Content-Length`` body, both bounded) go to a
  fixed pool of ``workers`` threads running the WSGI application (wsgiref's handler, fed
  from the buffered bytes); a worker writes the whole answer within the same ``timeout``
  (a client reading it a little at a time is dropped then, :class:`DeadlineWriter`);
- at most ``max_connections`` connections are held; when full, the one accepted first
  is closed to make room, so new clients always get their chance;
- bodies without ``Content-Length`` (chunked) are refused (411): wsgiref cannot read them
  and they are a request-smuggling vector behind proxies. One request per connection
  (HTTP/1.0 semantics, ``Connection: close``).

What it does not do: per-client rate limits or TLS. Put a reverse proxy in front for those
(or use uwsgi / mod_wsgi).
"""
import collections
import concurrent.futures
import io
import logging
import selectors
import socket
import threading
import time
from wsgiref import simple_server

LOG = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
_RECV = 64 * 1024


class DeadlineWriter(io.RawIOBase):
    """The worker's answer stream: the whole answer within ``timeout`` seconds.

    A socket timeout bounds each send only; a client reading a little at a time keeps
    every send making progress and would hold the worker for as long as it likes (slow
    read). Each write gets what is left of the answer's time, then fails (OSError).
    """

    def __init__(self, sock, timeout):
        super().__init__()
        self.sock, self.timeout = sock, timeout
        self.deadline = time.monotonic() + timeout

    def writable(self):
        return True

    def write(self, data):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError('the answer was not taken within %g s: slow client dropped'
                               % self.timeout)
        self.sock.settimeout(left)
        try:
            return self.sock.send(data)
        except TimeoutError:
            raise TimeoutError('the answer was not taken within %g s: slow client dropped'
                               % self.timeout)


class _Handler(simple_server.WSGIRequestHandler):
    """wsgiref's request handler, reading the request from the bytes the I/O thread got."""

    def __init__(self, sock, raw, client_address, server):
        self._raw = raw
        super().__init__(sock, client_address, server)

    def setup(self):
        self.connection = self.request
        self.rfile = io.BytesIO(self._raw)
        self.wfile = DeadlineWriter(self.request, self.server.timeout)

    def log_message(self, fmt, *args):
        LOG.info('%s %s', self.address_string(), fmt % args)


class _Pending(object):
    __slots__ = ('sock', 'address', 'buf', 'deadline', 'need')

    def __init__(self, sock, address, deadline):
        self.sock, self.address, self.deadline = sock, address, deadline
        self.buf = bytearray()
        self.need = None        # total bytes of the request once its headers are known


def _header_end(buf):
    ends = [i + len(sep) for sep in (b'\r\n\r\n', b'\n\n') for i in [buf.find(sep)] if i >= 0]
    return min(ends) if ends else -1


class Server(object):
    """serve_forever() / shutdown() / server_close() / server_port, as socketserver's."""

    def __init__(self, app, host, port, workers=16, timeout=60.0, max_connections=1024,
                 max_body=1024 * 1024):
        self.app = app
        self.workers, self.timeout = workers, timeout
        self.max_connections, self.max_body = max_connections, max_body
        family = socket.AF_INET6 if ':' in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.socket.listen(128)
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self.server_name = socket.getfqdn(host)
        self.server_port = self.server_address[1]
        self.base_environ = {'SERVER_NAME': self.server_name, 'GATEWAY_INTERFACE': 'CGI/1.1',
                             'SERVER_PORT': str(self.server_port), 'REMOTE_HOST': '',
                             'CONTENT_LENGTH': '', 'SCRIPT_NAME': ''}
        self._pool = concurrent.futures.ThreadPoolExecutor(workers,
                                                           thread_name_prefix='wsgi-worker')
        self._pending = collections.OrderedDict()      # socket -> _Pending, oldest first
        self._wake_r, self._wake_w = socket.socketpair()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()

    def get_app(self):
        return self.app

    # ------------------------------------------------------------------ I/O thread
    def serve_forever(self):
        self._stopped.clear()
        selector = selectors.DefaultSelector()
        selector.register(self.socket, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(self._next_timeout()):
                    if key.fileobj is self.socket:
                        self._accept(selector)
                    elif key.fileobj is self._wake_r:
                        self._wake_r.recv(64)
                    else:
                        self._read(selector, key.fileobj)
                self._expire(selector)
        finally:
            for pending in list(self._pending.values()):
                self._drop(selector, pending)
            selector.close()
            self._stopped.set()

    def _next_timeout(self):
        if not self._pending:
            return None
        oldest = next(iter(self._pending.values()))
        return max(0.0, min(oldest.deadline - time.monotonic(), self.timeout))

    def _accept(self, selector):
        while True:
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:          # out of descriptors: keep serving the others
                LOG.warning('cannot accept a connection: %s', e)
                return
            if len(self._pending) >= self.max_connections:
                oldest = next(iter(self._pending.values()))
                LOG.warning('%d connections without a complete request: closing the oldest '
                            '(%s)', len(self._pending), oldest.address[0])
                self._drop(selector, oldest)
            sock.setblocking(False)
            self._pending[sock] = _Pending(sock, address, time.monotonic() + self.timeout)
            selector.register(sock, selectors.EVENT_READ)

    def _read(self, selector, sock):
        pending = self._pending.get(sock)
        if pending is None:
            return
        try:
            data = sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b''
        if not data:
            self._drop(selector, pending)
            return
        pending.buf += data
        if pending.need is None:
            end = _header_end(pending.buf)
            if end < 0:
                if len(pending.buf) > MAX_HEADER_BYTES:
                    self._refuse(selector, pending, 431, 'Request Header Fields Too Large')
                return
            if end > MAX_HEADER_BYTES:
                self._refuse(selector, pending, 431, 'Request Header Fields Too Large')
                return
            length = self._content_length(bytes(pending.buf[:end]))
            if isinstance(length, tuple):
                self._refuse(selector, pending, *length)
                return
            pending.need = end + length
        if len(pending.buf) >= pending.need:
            selector.unregister(sock)
            del self._pending[sock]
            self._pool.submit(self._handle, sock, bytes(pending.buf[:pending.need]),
                              pending.address)

    def _content_length(self, head):
        """The body length the headers announce, or (status, reason) to refuse them."""
        lengths = set()
        for line in head.split(b'\n')[1:]:
            name, sep, value = line.partition(b':')
            name = name.strip().lower()
            if not sep:
                continue
            if name == b'transfer-encoding':
                return 411, 'Length Required'
            if name == b'content-length':
                lengths.add(value.strip())
        if not lengths:
            return 0
        if len(lengths) > 1 or not next(iter(lengths)).isdigit():
            return 400, 'Bad Request'
        length = int(next(iter(lengths)))
        if length > self.max_body:
            return 413, 'Request Entity Too Large'
        return length

    def _expire(self, selector):
        now = time.monotonic()
        while self._pending:
            oldest = next(iter(self._pending.values()))
            if oldest.deadline > now:
                return
            LOG.info('%s sent no complete request within %.0f s: connection closed',
                     oldest.address[0], self.timeout)
            self._drop(selector, oldest)

    def _refuse(self, selector, pending, status, reason):
        body = b'{"error": {"code": %d, "title": "%s", "message": "%s"}}' % (
            status, reason.encode(), reason.encode())
        try:
            pending.sock.send(b'HTTP/1.0 %d %s\r\nContent-Type: application/json\r\n'
                              b'Content-Length: %d\r\nConnection: close\r\n\r\n%s'
                              % (status, reason.encode(), len(body), body))
        except OSError:
            pass                        # best effort: the client is going away anyway
        self._drop(selector, pending)

    def _drop(self, selector, pending):
        self._pending.pop(pending.sock, None)
        try:
            selector.unregister(pending.sock)
        except (KeyError, ValueError):
            pass
        pending.sock.close()

    # ------------------------------------------------------------------ workers
    def _handle(self, sock, raw, address):
        try:
            sock.setblocking(True)
            sock.settimeout(self.timeout)
            _Handler(sock, raw, address, self)
        except Exception:
            LOG.exception('error answering %s', address[0])
        finally:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    # ------------------------------------------------------------------ life cycle
    def shutdown(self):
        """Stop serve_forever() (from another thread) and wait until it returned."""
        self._stop.set()
        try:
            self._wake_w.send(b'x')
        except OSError:
            pass                # closed already: nothing is serving
        self._stopped.wait()

    def server_close(self):
        """Close the listening socket and wait for the answers being written (idempotent)."""
        self.socket.close()
        self._pool.shutdown(wait=True)
        self._wake_r.close()
        self._wake_w.close()
