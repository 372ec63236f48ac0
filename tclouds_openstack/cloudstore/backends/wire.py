"""The status line and headers of a cloud's HTTP/1.1 answer: one bounded parser.

``http.client`` reads an answer's header lines (each up to 64 KiB, at most 100, their total
unbounded in bytes: up to 6.4 MiB) and then parses them again with the ``email`` package, a
feed parser written for mail messages: 53 us of CPU per answer of a Swift object GET here,
repeated for every request a GET makes to a cloud. It also accepts what HTTP/1.1 does not:
a ``Content-Length`` that is not a number (then the body is read until the connection
closes), two different ones (the first wins), one beside a chunked Transfer-Encoding,
folded or nameless header lines.

:class:`Response` is ``http.client``'s response with its header reading replaced: the status
line and the header lines are read once, line by line, within :data:`MAX_LINE_BYTES` per
line, :data:`MAX_HEADERS` lines and :data:`MAX_HEADER_BYTES` in all, and parsed in place
(name, colon, value). An answer that breaks HTTP/1.1's framing rules or these bounds
raises :class:`MalformedAnswer`, which the driver reports as a
:class:`~..errors.BackendError` naming the cloud (the cloud is faulty for the request and
its connection is dropped). The body is read by ``http.client`` as before (Content-Length,
chunked transfer, keep-alive), and so are its checks.
"""
import http.client

#: The longest status or header line accepted (``http.client``'s own limit).
MAX_LINE_BYTES = 65536
#: The most header lines accepted (``http.client``'s own limit).
MAX_HEADERS = 100
#: The most bytes of status line and header lines together (a Swift answer has < 1 KiB).
MAX_HEADER_BYTES = 256 * 1024

_TOKEN = frozenset(b'!#$%&\'*+-.^_`|~0123456789'
                   b'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ')


class MalformedAnswer(http.client.HTTPException):
    """The status line or the headers break HTTP/1.1 or the bounds of this module."""


class Headers:
    """The header fields of one answer: names case-insensitive, in the order received.

    Offers what ``http.client`` and its callers use of ``email.message.Message``:
    ``get``, ``get_all``, ``items``, ``keys``, ``in`` and ``[]``.
    """

    __slots__ = ('_items', '_by_name')

    def __init__(self, items):
        self._items = items
        by_name = {}
        for name, value in items:
            by_name.setdefault(name.lower(), []).append(value)
        self._by_name = by_name

    def get(self, name, default=None):
        values = self._by_name.get(name.lower())
        return values[0] if values else default

    def get_all(self, name, default=None):
        values = self._by_name.get(name.lower())
        return list(values) if values else default

    def items(self):
        return list(self._items)

    def keys(self):
        return [name for name, _ in self._items]

    def __contains__(self, name):
        return name.lower() in self._by_name

    def __getitem__(self, name):
        return self.get(name)

    def __len__(self):
        return len(self._items)

    def __iter__(self):
        return iter(self.keys())


def _line(fp, budget, what):
    """One line of ``fp`` without its line end; ``budget`` is a one-item list of bytes left."""
    line = fp.readline(min(MAX_LINE_BYTES, budget[0]) + 1)
    if len(line) > MAX_LINE_BYTES:
        raise MalformedAnswer('%s longer than %d bytes' % (what, MAX_LINE_BYTES))
    budget[0] -= len(line)
    if budget[0] < 0:
        raise MalformedAnswer('status line and headers longer than %d bytes'
                              % MAX_HEADER_BYTES)
    if line and not line.endswith(b'\n'):
        raise MalformedAnswer('%s cut short (the connection ended)' % what)
    return line


def read_status(fp, budget):
    """``(version, status, reason)`` of the status line; RemoteDisconnected on no answer."""
    line = _line(fp, budget, 'status line')
    if not line:
        # A kept-alive connection the server had closed (the driver may send again).
        raise http.client.RemoteDisconnected('Remote end closed connection without '
                                             'response')
    parts = line.rstrip(b'\r\n').split(b' ', 2)
    if len(parts) < 2 or not parts[0].startswith(b'HTTP/1.') or len(parts[1]) != 3 \
            or not parts[1].isdigit():
        raise MalformedAnswer('malformed status line %r' % line[:80])
    status = int(parts[1])
    if status < 100:
        raise MalformedAnswer('malformed status line %r' % line[:80])
    reason = parts[2].decode('latin-1').strip() if len(parts) > 2 else ''
    return parts[0].decode('ascii'), status, reason


def read_headers(fp, budget):
    """The header lines up to the empty line, as :class:`Headers`."""
    items = []
    while True:
        line = _line(fp, budget, 'header line')
        if line in (b'\r\n', b'\n'):
            return Headers(items)
        if not line:
            raise MalformedAnswer('headers cut short (the connection ended)')
        if len(items) == MAX_HEADERS:
            raise MalformedAnswer('more than %d header lines' % MAX_HEADERS)
        name, colon, value = line.partition(b':')
        if not colon or not name or not _TOKEN.issuperset(name):
            # (a line starting with white space folds the previous one: obsolete, refused)
            raise MalformedAnswer('malformed header line %r' % line[:80])
        items.append((name.decode('ascii'), value.strip(b' \t\r\n').decode('latin-1')))


def content_length(headers):
    """The Content-Length, or None; MalformedAnswer unless it is one decimal number."""
    values = headers.get_all('content-length')
    if not values:
        return None
    # (a list of equal values, "5, 5", is one length: RFC 9110 section 8.6)
    found = {value.strip() for item in values for value in item.split(',')}
    if len(found) != 1:
        raise MalformedAnswer('conflicting Content-Length values %s'
                              % ', '.join(sorted(found))[:80])
    length = found.pop()
    if not length.isdigit() or not length.isascii():
        raise MalformedAnswer('Content-Length %r is not a number' % length[:40])
    return int(length)


class Response(http.client.HTTPResponse):
    """``http.client``'s response; :func:`read_status` and :func:`read_headers` read the head.

    Bounded and strict (see the module); the body is read by ``http.client``.
    """

    def begin(self):
        if self.headers is not None:
            return
        budget = [MAX_HEADER_BYTES]
        while True:
            version, status, reason = read_status(self.fp, budget)
            headers = read_headers(self.fp, budget)
            if status != http.client.CONTINUE:
                break
        self.code = self.status = status
        self.reason = reason
        self.version = 10 if version == 'HTTP/1.0' else 11
        self.headers = self.msg = headers
        encoding = headers.get('transfer-encoding')
        if encoding is not None:
            if encoding.strip().lower() != 'chunked':
                # (gzip, or chunked after another coding: nothing a cloud has to send)
                raise MalformedAnswer('unsupported Transfer-Encoding %r' % encoding[:40])
            if 'content-length' in headers:
                # (RFC 9112 section 6.1: a sign of request smuggling; an error here)
                raise MalformedAnswer('both Transfer-Encoding and Content-Length')
            self.chunked = True
            self.chunk_left = None
        else:
            self.chunked = False
        self.will_close = self._check_close()
        self.length = None if self.chunked else content_length(headers)
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or \
                100 <= status < 200 or self._method == 'HEAD':
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True
