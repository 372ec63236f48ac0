"""A cloud reached through the OpenStack Swift API, over ``http.client``.

Options: ``auth_url``, ``user``, ``key``, ``container`` (default ``cloudstore``),
``timeout`` in seconds (default 10: one wait of a socket), ``auth_version`` (``1`` for
TempAuth/v1, the default, or ``3`` for Keystone with ``project_name``,
``user_domain_name`` and ``project_domain_name``; the catalog's public ``object-store``
endpoint is used).

Every request, authentication included, goes out on a kept-alive ``http.client``
connection of this driver (a small pool per host; a connection is used by one thread at a
time), so each has an overall deadline (:class:`base.Deadline`: connect, headers and the
whole answer) and every answer is read up to a bound: an object's bytes up to what the
caller accepts, anything else up to :data:`base.MAX_ANSWER_BYTES` (an error body is never
read: the connection is dropped). python-swiftclient read its authentication answer whole
and paced nothing. An expired token (401) is renewed once; a streamed upload (its body
consumed) is not repeated. Status lines and headers are read by :mod:`.wire` (bounded in
all, parsed once, strict framing: a malformed answer fails the request naming the cloud).
"""
import http.client
import json
import queue
import select
import sys
import threading
import urllib.parse

from urllib3.util import wait

from tclouds_openstack.cloudstore.backends import base
from tclouds_openstack.cloudstore.backends import wire
from tclouds_openstack.cloudstore import errors


#: Names per listing page (Swift's own maximum).
LIST_PAGE = 10000


class _Connection(base.WatchedConnection, http.client.HTTPConnection):
    response_class = wire.Response


class _TLSConnection(base.WatchedConnection, http.client.HTTPSConnection):
    response_class = wire.Response


def _read_bounded(cloud, operation, response, limit, deadline):
    """At most ``limit`` bytes of ``response``'s body; BackendError when it is longer."""
    data = bytearray()
    while True:
        try:
            chunk = response.read(min(base.READ_CHUNK_BYTES, limit + 1 - len(data)))
        except Exception as exc:  # connection lost, timed out or shut at the deadline
            if deadline.passed:
                raise deadline.error()
            raise errors.BackendError(cloud, operation, '%s: %s' % (type(exc).__name__, exc))
        if not chunk:
            deadline.check()
            return bytes(data)
        data += chunk
        if len(data) > limit:
            raise errors.BackendError(cloud, operation, 'answer longer than %d bytes '
                                      '(reading stopped there)' % limit)


class _Stale(Exception):
    """A kept-alive connection the server had closed: the request may go again."""


class SwiftBackend(base.Backend):

    def __init__(self, name, auth_url, user, key, container='cloudstore', timeout=10.0,
                 auth_version='1', os_options=None):
        super().__init__(name)
        self.auth_version = str(auth_version)
        self.os_options = os_options or {}
        self.auth_url = auth_url
        self.user = user
        self.key = key
        self.container = container
        self.timeout = timeout
        self._idle = {}                     # (scheme, host, port) -> kept-alive connections
        self._idle_lock = threading.Lock()
        self._auth_lock = threading.Lock()
        self._auth = None                   # (storage URL, token)

    @classmethod
    def from_options(cls, name, options):
        return cls(name, base.required_option(name, options, 'auth_url'),
                   base.required_option(name, options, 'user'),
                   base.required_option(name, options, 'key'),
                   options.get('container') or 'cloudstore',
                   base.timeout_option(name, options),
                   options.get('auth_version') or '1',
                   {key: options[key] for key in ('project_name', 'user_domain_name',
                                                  'project_domain_name') if key in options})

    # -- connections ----------------------------------------------------------------------

    def _connection(self, url):
        where = (url.scheme, url.hostname, url.port)
        with self._idle_lock:
            idle = self._idle.setdefault(where, queue.LifoQueue())
        while True:
            try:
                conn = idle.get_nowait()
            except queue.Empty:
                break
            if not _readable(conn.sock):
                return conn
            # readable while idle: the server closed it (or sent what nobody asked for)
            conn.close()
        kind = _TLSConnection if url.scheme == 'https' else _Connection
        conn = kind(url.hostname, url.port, timeout=self.timeout)
        conn.where = where
        return conn

    def _done(self, deadline, conn, response, complete):
        """End a request: the deadline first (it must never shut a reused connection)."""
        deadline.finish()
        if complete and not response.will_close:
            self._idle[conn.where].put(conn)
        else:
            # stopped early or failed: drop the connection, never drain the rest
            conn.close()

    def _send(self, deadline, operation, url, method, path, headers, body=None, what=''):
        """``(connection, response)`` of one request; the deadline watches the connection.

        :class:`_Stale` when a kept-alive connection turned out closed by the server.
        """
        conn = self._connection(url)
        reused = conn.sock is not None
        try:
            with deadline.active():
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
            deadline.check(what)    # headers cut short at the deadline parse as an answer
        except Exception as exc:  # socket errors, the deadline, the writer's chunks failing
            conn.close()
            if deadline.passed:
                raise deadline.error(what)
            if reused and isinstance(exc, (http.client.RemoteDisconnected,
                                           ConnectionResetError, BrokenPipeError)):
                raise _Stale()
            if isinstance(exc, errors.CloudStoreError):
                raise
            if isinstance(exc, wire.MalformedAnswer):
                raise errors.BackendError(self.name, operation, '%smalformed answer: %s' % (
                    what and what + ': ', exc))
            raise errors.BackendError(self.name, operation, '%s%s: %s' % (
                what and what + ': ', type(exc).__name__, exc))
        return conn, response

    # -- authentication -------------------------------------------------------------------

    def _token(self, operation, renew=False):
        """``(storage URL, token)``, authenticated once and kept until a 401."""
        with self._auth_lock:
            if self._auth is None or renew:
                self._auth = None
                self._auth = self._authenticate(operation)
            return self._auth

    def _forget(self, token):
        with self._auth_lock:
            if self._auth is not None and self._auth[1] == token:
                self._auth = None

    def _authenticate(self, operation):
        """Ask the auth endpoint: bounded and deadlined like any answer of the cloud."""
        url = urllib.parse.urlsplit(self.auth_url)
        if self.auth_version in ('3', '3.0', 'v3'):
            path = url.path.rstrip('/')
            if not path.endswith('/v3'):
                path += '/v3'
            opts = self.os_options
            body = json.dumps({'auth': {
                'identity': {'methods': ['password'], 'password': {'user': {
                    'name': self.user, 'password': self.key,
                    'domain': {'name': opts.get('user_domain_name') or 'Default'}}}},
                'scope': {'project': {
                    'name': opts.get('project_name'),
                    'domain': {'name': opts.get('project_domain_name') or 'Default'}}}}})
            request = ('POST', path + '/auth/tokens', {'Content-Type': 'application/json'},
                       body.encode())
        else:
            request = ('GET', url.path or '/', {'X-Auth-User': self.user,
                                                'X-Auth-Key': self.key}, None)
        for attempt in (0, 1):
            deadline = self._deadline(operation)
            try:
                conn, response = self._send(deadline, operation, url, *request,
                                            what='authentication')
            except _Stale:
                deadline.finish()
                continue
            except BaseException:
                deadline.finish()
                raise
            complete = False
            try:
                if not 200 <= response.status < 300:
                    raise errors.BackendError(self.name, operation, 'authentication: HTTP '
                                              '%d %s' % (response.status, response.reason))
                try:
                    answer = _read_bounded(self.name, operation, response,
                                           base.MAX_ANSWER_BYTES, deadline)
                except errors.BackendError as exc:
                    raise errors.BackendError(self.name, operation, 'authentication: %s'
                                              % exc.reason)
                complete = True
                return self._credentials(operation, response, answer)
            finally:
                self._done(deadline, conn, response, complete)
        raise errors.BackendError(self.name, operation, 'authentication: the connection '
                                  'was closed by the cloud')

    def _credentials(self, operation, response, answer):
        def fail(reason):
            raise errors.BackendError(self.name, operation, 'authentication: %s' % reason)

        if self.auth_version not in ('3', '3.0', 'v3'):
            storage = response.getheader('X-Storage-Url')
            token = response.getheader('X-Auth-Token') or response.getheader(
                'X-Storage-Token')
            if not storage or not token:
                fail('the answer has no X-Storage-Url and X-Auth-Token')
            return storage, token
        token = response.getheader('X-Subject-Token')
        if not token:
            fail('the answer has no X-Subject-Token')
        try:
            catalog = json.loads(answer)['token']['catalog']
            urls = [endpoint['url'] for service in catalog
                    if service.get('type') == 'object-store'
                    for endpoint in service['endpoints']
                    if endpoint.get('interface') == 'public']
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            fail('malformed token answer: %s' % exc)
        if not urls or not isinstance(urls[0], str):
            fail('the catalog has no public object-store endpoint')
        return urls[0], token

    # -- requests -------------------------------------------------------------------------

    def _request(self, operation, method, key, query='', headers=None, body=None,
                 deadline=None, replayable=True):
        """``(deadline, connection, response)`` of a request on the container or ``key``.

        The token is renewed once on a 401 (and a stale kept-alive connection replaced)
        when the body can be sent again. The caller reads the answer and calls
        :meth:`_done`.
        """
        deadline = deadline or self._deadline(operation)
        renew = stale = False
        try:
            while True:
                storage, token = self._token(operation, renew=renew)
                url = urllib.parse.urlsplit(storage)
                path = '%s/%s' % (url.path.rstrip('/'), urllib.parse.quote(self.container))
                if key:
                    path += '/' + urllib.parse.quote(key)
                if query:
                    path += '?' + query
                try:
                    conn, response = self._send(deadline, operation, url, method, path,
                                                dict(headers or {}, **{'X-Auth-Token': token}),
                                                body, key)
                except errors.BackendError:
                    # unreachable or cut off: the cloud may come back restarted, its tokens
                    # gone (a streamed upload could not be sent twice after a 401)
                    self._forget(token)
                    raise
                except _Stale:
                    if stale or not replayable:
                        raise errors.BackendError(self.name, operation, '%s: the connection '
                                                  'was closed by the cloud' % key)
                    stale = True
                    continue
                if response.status == 401 and not renew and replayable:
                    conn.close()        # never read an error body: drop the connection
                    renew = True
                    continue
                if response.status == 401:
                    conn.close()
                    self._forget(token)     # the next request authenticates afresh
                    raise errors.BackendError(self.name, operation, '%s: not authorized'
                                              % key)
                return deadline, conn, response
        except BaseException:
            deadline.finish()
            raise

    def _expect(self, operation, key, deadline, conn, response, ok=()):
        """Read the (bounded) answer of a write: success if 2xx or a status in ``ok``."""
        complete = False
        try:
            if not (200 <= response.status < 300 or response.status in ok):
                raise errors.BackendError(self.name, operation, '%s: HTTP %d %s' % (
                    key, response.status, response.reason))
            _read_bounded(self.name, operation, response, base.MAX_ANSWER_BYTES, deadline)
            complete = True
        finally:
            self._done(deadline, conn, response, complete)

    def put(self, key, data):
        data = bytes(data)
        self._expect('put', key, *self._request(
            'put', 'PUT', key, headers={'Content-Length': str(len(data)),
                                        'Content-Type': 'application/octet-stream'},
            body=data))

    def put_stream(self, key, chunks, length=None):
        # Each piece is sent as it arrives. An exception from ``chunks`` breaks the
        # request before its end, so Swift stores nothing. With a known length the body
        # is a reader (no per-chunk framing copies, and Swift checks the length);
        # otherwise chunked transfer. Waiting for the writer's chunks does not count
        # against the deadline.
        deadline = self._deadline('put')
        headers = {'Content-Type': 'application/octet-stream'}
        if length is None:
            body = _paced(chunks, deadline)
        else:
            body = _Reader(chunks, deadline)
            headers['Content-Length'] = str(length)
        self._expect('put', key, *self._request('put', 'PUT', key, headers=headers, body=body,
                                                deadline=deadline, replayable=False))

    def _get(self, key, start, length):
        """``(deadline, connection, response)`` of a GET of ``key``'s bytes, or None.

        None: the object ends before ``start`` (416). The caller reads the answer and
        calls :meth:`_done` (as :meth:`_request`).
        """
        headers = {}
        if start or length is not None:
            headers['Range'] = 'bytes=%d-%s' % (
                start, '' if length is None else start + length - 1)
        deadline, conn, response = self._request('get', 'GET', key, headers=headers)
        try:
            if response.status == 404:
                raise errors.BackendNotFound(self.name, key)
            if response.status == 416:
                self._done(deadline, conn, response, False)
                return None
            if not 200 <= response.status < 300:
                raise errors.BackendError(self.name, 'get', '%s: HTTP %d %s' % (
                    key, response.status, response.reason))
        except BaseException:
            self._done(deadline, conn, response, False)
            raise
        return deadline, conn, response

    def _failed_read(self, key, deadline, exc):
        if deadline.passed:
            return deadline.error(key)
        return errors.BackendError(self.name, 'get', '%s: %s: %s'
                                   % (key, type(exc).__name__, exc))

    def _ended(self, key, deadline, response, received):
        """Raise unless the answer was whole (the deadline, its announced length)."""
        deadline.check(key)
        announced = wire.content_length(response.headers)
        if announced is not None and received < announced:
            raise errors.BackendError(self.name, 'get', '%s: %d of %s bytes received'
                                      % (key, received, announced))

    def _read(self, key, start, length):
        if length == 0:
            return
        answer = self._get(key, start, length)
        if answer is None:
            return              # the object ends before ``start``
        deadline, conn, response = answer
        complete = False
        try:
            received = 0
            while True:
                try:
                    chunk = response.read(base.READ_CHUNK_BYTES)
                except Exception as exc:  # connection lost, timed out or shut at the deadline
                    raise self._failed_read(key, deadline, exc)
                if not chunk:
                    break
                received += len(chunk)
                yield chunk
            self._ended(key, deadline, response, received)
            complete = True
        finally:
            self._done(deadline, conn, response, complete)

    def read_into(self, key, start, views):
        """As :meth:`base.Backend.read_into`, received straight into ``views``.

        ``http.client`` reads a large ``readinto`` from the socket into the caller's
        buffer: no chunk objects and no copy of them.
        """
        total = sum(len(view) for view in views)
        if not total:
            return
        answer = self._get(key, start, total)
        if answer is None:
            return
        deadline, conn, response = answer
        complete = False
        received = 0
        try:
            for index, view in enumerate(views):
                offset = 0
                while offset < len(view):
                    part = view[offset:offset + base.READ_CHUNK_BYTES]
                    try:
                        count = response.readinto(part)
                    except Exception as exc:  # lost, timed out or shut at the deadline
                        raise self._failed_read(key, deadline, exc)
                    if not count:       # the object ends here (or the answer was cut)
                        self._ended(key, deadline, response, received)
                        complete = True
                        return
                    received += count
                    offset += count
                    yield index, part[:count]
            deadline.check(key)
            # every byte asked for: kept alive only if the answer ends here too
            complete = response.length == 0
        finally:
            self._count(received)
            self._done(deadline, conn, response, complete)

    def delete(self, key):
        self._expect('delete', key, *self._request('delete', 'DELETE', key), ok=(404,))

    def list(self, prefix=''):
        """Every key starting with ``prefix``, a page of at most 10,000 names at a time.

        Each page is read up to :data:`base.MAX_ANSWER_BYTES`; a longer page, one that is
        not a JSON list of names or one that does not move on is a BackendError.
        """
        names, marker = [], ''
        while True:
            page = self._list_page(prefix, marker)
            if not page:
                return sorted(names)
            if page[-1] <= marker:
                raise errors.BackendError(self.name, 'list', 'the listing does not move '
                                          'past %r' % marker)
            names += page
            marker = page[-1]

    def _list_page(self, prefix, marker):
        query = urllib.parse.urlencode({'format': 'json', 'prefix': prefix,
                                        'marker': marker, 'limit': LIST_PAGE})
        deadline, conn, response = self._request('list', 'GET', '', query)
        complete = False
        try:
            if response.status in (404, 204):
                return []       # no container yet, or an empty one: nothing stored
            if not 200 <= response.status < 300:
                raise errors.BackendError(self.name, 'list', 'HTTP %d %s' % (
                    response.status, response.reason))
            body = _read_bounded(self.name, 'list', response, base.MAX_ANSWER_BYTES,
                                 deadline)
            complete = True
        finally:
            self._done(deadline, conn, response, complete)
        try:
            page = json.loads(body)
            names = [item['name'] for item in page]
            if not all(isinstance(n, str) for n in names):
                raise TypeError('a name is not a string')
        except (ValueError, TypeError, KeyError) as exc:
            raise errors.BackendError(self.name, 'list', 'malformed listing: %s' % exc)
        return names

    def ensure_container(self):
        self._expect('put', self.container, *self._request(
            'put', 'PUT', '', headers={'Content-Length': '0'}, body=b''))


def _readable(sock):
    """Whether ``sock`` has something to read now (an idle connection: closed, or junk).

    With the system's poll, also under eventlet's patching: urllib3's check then takes
    eventlet's green select (17 us of CPU and a trip through the hub, where a poll takes
    1 us).
    """
    patcher = sys.modules.get('eventlet.patcher')
    system = patcher.original('select') if patcher is not None else select
    if not hasattr(system, 'poll'):
        return wait.wait_for_read(sock, timeout=0)
    poller = system.poll()
    poller.register(sock.fileno(), system.POLLIN)
    return bool(poller.poll(0))


def _paced(chunks, deadline):
    """The chunks; waiting for the next one does not count against ``deadline``."""
    chunks = iter(chunks)
    while True:
        with deadline.paused():
            chunk = next(chunks, None)
        if chunk is None:
            return
        yield chunk


class _Reader:
    """File-like view of an iterable of chunks: each ``read`` returns the next chunk.

    http.client sends whatever a read returns, so a chunk larger than the requested size
    goes out in one piece instead of being copied into smaller blocks.
    """

    def __init__(self, chunks, deadline):
        self._chunks = _paced(chunks, deadline)

    def read(self, size=-1):
        return next(self._chunks, b'')
