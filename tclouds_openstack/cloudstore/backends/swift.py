"""A cloud reached through the OpenStack Swift API (python-swiftclient).

Options: ``auth_url``, ``user``, ``key``, ``container`` (default ``cloudstore``),
``timeout`` in seconds (default 10), ``auth_version`` (``1`` for TempAuth/v1, the
default, or ``3`` for Keystone with ``project_name``, ``user_domain_name`` and
``project_domain_name``). swiftclient connections are not
thread-safe, so each call borrows one from a small pool.

Reads are the hot path (every window of every GET): swiftclient authenticates, and the
GET itself goes out on a kept-alive ``http.client`` connection with the token, without
the requests stack (its per-request cost was a fifth of a 16 MiB GET's CPU in the proxy).
An expired token (401) is renewed once.
"""
import http.client
import json
import queue
import threading
import urllib.parse

from swiftclient import client as swift_client
from swiftclient import exceptions as swift_exceptions

from tclouds_openstack.cloudstore.backends import base
from tclouds_openstack.cloudstore import errors


#: Names per listing page (Swift's own maximum).
LIST_PAGE = 10000


def _read_bounded(cloud, operation, response, limit):
    """At most ``limit`` bytes of ``response``'s body; BackendError when it is longer."""
    data = bytearray()
    while True:
        try:
            chunk = response.read(min(base.READ_CHUNK_BYTES, limit + 1 - len(data)))
        except Exception as exc:  # connection lost or timed out mid-body
            raise errors.BackendError(cloud, operation, '%s: %s' % (type(exc).__name__, exc))
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > limit:
            raise errors.BackendError(cloud, operation, 'answer longer than %d bytes '
                                      '(reading stopped there)' % limit)


class SwiftBackend(base.Backend):

    def __init__(self, name, auth_url, user, key, container='cloudstore', timeout=10.0,
                 auth_version='1', os_options=None):
        super().__init__(name)
        self.auth_version = auth_version
        self.os_options = os_options or {}
        self.auth_url = auth_url
        self.user = user
        self.key = key
        self.container = container
        self.timeout = timeout
        self._pool = queue.LifoQueue()
        self._readers = queue.LifoQueue()   # kept-alive http.client connections
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

    def _connection(self):
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return swift_client.Connection(self.auth_url, self.user, self.key, retries=0,
                                           starting_backoff=0.01, timeout=self.timeout,
                                           auth_version=self.auth_version,
                                           os_options=self.os_options)

    def _call(self, operation, fn, *args, **kwargs):
        conn = self._connection()
        try:
            result = getattr(conn, fn)(*args, **kwargs)
        except swift_exceptions.ClientException as exc:
            conn.close()
            if exc.http_status == 404 and operation == 'get':
                raise errors.BackendNotFound(self.name, args[1])
            if exc.http_status == 404 and operation in ('delete', 'list'):
                # Absent key, or a container not created yet: nothing stored.
                return None
            raise errors.BackendError(self.name, operation, '%s' % exc)
        except Exception as exc:  # requests/urllib3/socket errors: connection lost, timeout
            conn.close()
            raise errors.BackendError(self.name, operation, '%s: %s'
                                      % (type(exc).__name__, exc))
        self._pool.put(conn)
        return result

    def put(self, key, data):
        self._call('put', 'put_object', self.container, key, data,
                   content_length=len(data), content_type='application/octet-stream')

    def put_stream(self, key, chunks, length=None):
        # Each piece is sent as it arrives. An exception from ``chunks`` breaks the
        # request before its end, so Swift stores nothing. With a known length the body
        # is a reader (no per-chunk framing copies, and Swift checks the length);
        # otherwise chunked transfer.
        if length is None:
            body = iter(chunks)
        else:
            body = _Reader(chunks)
        self._call('put', 'put_object', self.container, key, body, content_length=length,
                   content_type='application/octet-stream')

    def _token(self, renew=False):
        """``(storage URL, token)``, from swiftclient's authentication (cached)."""
        with self._auth_lock:
            if self._auth is None or renew:
                conn = self._connection()
                try:
                    self._auth = conn.get_auth()
                except swift_exceptions.ClientException as exc:
                    conn.close()
                    raise errors.BackendError(self.name, 'get', 'authentication: %s' % exc)
                except Exception as exc:  # connection errors
                    conn.close()
                    raise errors.BackendError(self.name, 'get', 'authentication: %s: %s'
                                              % (type(exc).__name__, exc))
                self._pool.put(conn)
            return self._auth

    def _reader(self, url):
        try:
            return self._readers.get_nowait()
        except queue.Empty:
            kind = (http.client.HTTPSConnection if url.scheme == 'https'
                    else http.client.HTTPConnection)
            return kind(url.hostname, url.port, timeout=self.timeout)

    def _get(self, key, headers):
        """``(connection, response)`` of a GET of ``key``, the token renewed once."""
        return self._request('get', key, '', headers)

    def _request(self, operation, key, query, headers=None):
        """``(connection, response)`` of a GET of ``key`` (the container when empty)."""
        headers = headers or {}
        for attempt in (0, 1):
            storage, token = self._token(renew=attempt == 1)
            url = urllib.parse.urlsplit(storage)
            path = '%s/%s' % (url.path.rstrip('/'), urllib.parse.quote(self.container))
            if key:
                path += '/' + urllib.parse.quote(key)
            if query:
                path += '?' + query
            conn = self._reader(url)
            try:
                conn.request('GET', path, headers=dict(headers, **{'X-Auth-Token': token}))
                response = conn.getresponse()
            except Exception as exc:  # socket errors, a kept-alive connection gone stale
                conn.close()
                if attempt == 0 and isinstance(exc, (http.client.RemoteDisconnected,
                                                     ConnectionResetError,
                                                     BrokenPipeError)):
                    continue
                raise errors.BackendError(self.name, operation, '%s: %s: %s'
                                          % (key, type(exc).__name__, exc))
            if response.status == 401 and attempt == 0:
                conn.close()        # never read an error body: drop the connection
                continue
            return conn, response
        raise errors.BackendError(self.name, operation, '%s: not authorized' % key)

    def _read(self, key, start, length):
        if length == 0:
            return
        headers = {}
        if start or length is not None:
            headers['Range'] = 'bytes=%d-%s' % (
                start, '' if length is None else start + length - 1)
        conn, response = self._get(key, headers)
        complete = False
        try:
            if response.status == 404:
                raise errors.BackendNotFound(self.name, key)
            if response.status == 416:
                return          # the object ends before ``start``
            if not 200 <= response.status < 300:
                raise errors.BackendError(self.name, 'get', '%s: HTTP %d %s' % (
                    key, response.status, response.reason))
            announced = response.getheader('content-length')
            received = 0
            while True:
                try:
                    chunk = response.read(base.READ_CHUNK_BYTES)
                except Exception as exc:  # connection lost or timed out mid-body
                    raise errors.BackendError(self.name, 'get', '%s: %s: %s'
                                              % (key, type(exc).__name__, exc))
                if not chunk:
                    break
                received += len(chunk)
                yield chunk
            if announced is not None and received < int(announced):
                raise errors.BackendError(self.name, 'get', '%s: %d of %s bytes received'
                                          % (key, received, announced))
            complete = True
        finally:
            if complete and not response.will_close:
                self._readers.put(conn)
            else:
                # Stopped early (or failed): drop the connection, never drain the rest.
                conn.close()

    def delete(self, key):
        self._call('delete', 'delete_object', self.container, key)

    def list(self, prefix=''):
        """Every key starting with ``prefix``, a page of at most 10,000 names at a time.

        Each page is read up to :data:`base.MAX_ANSWER_BYTES` (swiftclient reads whatever
        the cloud sends); a longer page, one that is not a JSON list of names or one that
        does not move on is a BackendError.
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
        conn, response = self._request('list', '', query)
        complete = False
        try:
            # (a connection whose body was not read to its end is dropped, never reused)
            if response.status in (404, 204):
                return []       # no container yet, or an empty one: nothing stored
            if not 200 <= response.status < 300:
                raise errors.BackendError(self.name, 'list', 'HTTP %d %s' % (
                    response.status, response.reason))
            body = _read_bounded(self.name, 'list', response, base.MAX_ANSWER_BYTES)
            complete = True
        finally:
            if complete and not response.will_close:
                self._readers.put(conn)
            else:
                conn.close()
        try:
            page = json.loads(body)
            names = [item['name'] for item in page]
            if not all(isinstance(n, str) for n in names):
                raise TypeError('a name is not a string')
        except (ValueError, TypeError, KeyError) as exc:
            raise errors.BackendError(self.name, 'list', 'malformed listing: %s' % exc)
        return names

    def ensure_container(self):
        self._call('put', 'put_container', self.container)


class _Reader:
    """File-like view of an iterable of chunks: each ``read`` returns the next chunk.

    http.client sends whatever a read returns, so a chunk larger than the requested size
    goes out in one piece instead of being copied into smaller blocks.
    """

    def __init__(self, chunks):
        self._chunks = iter(chunks)

    def read(self, size=-1):
        return next(self._chunks, b'')
