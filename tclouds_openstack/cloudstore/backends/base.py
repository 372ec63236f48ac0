"""The contract every cloud backend honours (castellan's key manager is the model).

A backend is one independent storage provider holding opaque objects under string keys
in one container or bucket. The protocol assumes nothing else: a backend may lose,
replay or corrupt data (the protocol detects that), but it must signal failures with the
exceptions below and never return partial data as success.

Every read is bounded: the caller says how many bytes it will accept (the metadata limit,
or the exact length the signed metadata implies), a driver asks the provider for no more
(an HTTP ``Range``) and :class:`Backend` stops reading once the bound is passed, whatever
the provider sends. A provider serving a 768 MiB "metadata" object costs the gateway one
chunk of memory, not 768 MiB. ``bytes_read`` counts what was received from the provider.

Every request has a deadline too (:class:`Deadline`): connect, headers and the whole
answer, whatever the provider's pace. A socket timeout bounds one wait, not a request: a
cloud sending one byte just before each timeout would hold the reading thread forever.
Past the deadline the request's sockets are shut down, the blocked read returns at once,
the connection is dropped and the request fails as a :class:`~..errors.BackendError`
(the cloud is faulty for it).
"""
import abc
import contextlib
import heapq
import itertools
import socket
import threading
import time

from tclouds_openstack.cloudstore import errors


def required_option(cloud, options, option):
    """``options[option]``, or :class:`~..errors.CloudStoreError` naming cloud and option."""
    value = options.get(option)
    if not value:
        raise errors.CloudStoreError('cloud %s: option %r is required' % (cloud, option))
    return value


def seconds_option(cloud, options, name, default):
    """The option ``name`` in seconds, validated: a positive number."""
    try:
        seconds = float(options.get(name, default))
    except ValueError:
        seconds = -1
    if seconds <= 0:
        raise errors.CloudStoreError('cloud %s: %s %r is not a positive number of '
                                     'seconds' % (cloud, name, options.get(name)))
    return seconds


def timeout_option(cloud, options, default=10.0):
    """The ``timeout`` option in seconds, validated."""
    return seconds_option(cloud, options, 'timeout', default)


#: Largest piece a driver hands over at once while reading (bounds a read's buffers).
READ_CHUNK_BYTES = 256 * 1024
#: The most of any answer that is not an object's bytes a driver reads: an error body (only
#: its start is kept for the message), a listing page (10,000 names of at most 1,024 bytes
#: and their JSON or XML), an upload's answer. A cloud sending more is faulty.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
#: The most of an error answer's body a driver reads (S3's error XML is under 1 KiB).
MAX_ERROR_BYTES = 64 * 1024


#: Seconds one request to a cloud may take in all (``request_deadline`` of the settings).
DEFAULT_DEADLINE = 300.0


def deadline_option(cloud, options, default=DEFAULT_DEADLINE):
    """The ``deadline`` option in seconds (set from ``request_deadline``), validated."""
    return seconds_option(cloud, options, 'deadline', default)


_active = threading.local()


class Deadline:
    """The deadline of one request to a cloud: past it, the request's sockets are shut down.

    A driver creates one per request, makes it :meth:`active` while it calls into an HTTP
    library (whose connections register their sockets through :class:`WatchedConnection`)
    or :meth:`watch` es a socket itself, and always :meth:`finish` es it. Time spent in
    :meth:`paused` (waiting for the writer's next chunk of an upload) does not count: the
    deadline bounds what the cloud paces, not the writer.
    """

    def __init__(self, cloud, operation, seconds):
        self.cloud, self.operation, self.seconds = cloud, operation, seconds
        self.expires = time.monotonic() + seconds
        #: True once the deadline passed and the sockets were shut down.
        self.passed = False
        self.finished = False
        self._paused = 0
        self._sockets = []
        self._lock = threading.Lock()
        _WATCHDOG.add(self)

    def watch(self, sock):
        """Shut ``sock`` down when the deadline passes (at once if it has).

        A duplicate of the socket is kept: shutting it down stops the connection even
        after TLS took the original socket object over.
        """
        with self._lock:
            if self.finished:
                return
            # (fromfd: an SSLSocket refuses dup())
            dup = socket.fromfd(sock.fileno(), sock.family, sock.type)
            self._sockets.append(dup)
            if self.passed:
                _shut(dup)

    @contextlib.contextmanager
    def active(self):
        """Connections made or used in this thread meanwhile are watched."""
        previous = getattr(_active, 'deadline', None)
        _active.deadline = self
        try:
            yield self
        finally:
            _active.deadline = previous

    @contextlib.contextmanager
    def paused(self):
        """The time in this block does not count (waiting for the writer, not the cloud)."""
        start = time.monotonic()
        with self._lock:
            self._paused += 1
        try:
            yield
        finally:
            with self._lock:
                self._paused -= 1
                self.expires += time.monotonic() - start

    def error(self, what=''):
        """The BackendError of a request whose deadline passed."""
        return errors.BackendError(self.cloud, self.operation, '%sno complete answer within '
                                   'the request deadline of %g s (connection closed)'
                                   % (what and what + ': ', self.seconds))

    def check(self, what=''):
        """Raise :meth:`error` if the deadline passed (for reads no socket can interrupt)."""
        if self.passed or time.monotonic() > self.expires and not self._paused:
            self.passed = True
            raise self.error(what)

    def finish(self):
        """The request is over: stop watching (its sockets are the caller's again)."""
        with self._lock:
            self.finished = True
            sockets, self._sockets = self._sockets, []
        for dup in sockets:
            dup.close()

    def _expire(self, now):
        """Shut the sockets down if the deadline passed; else when to look again."""
        with self._lock:
            if self.finished:
                return None
            if self._paused or self.expires > now:
                return max(self.expires, now + 0.1)
            self.passed = True
            for dup in self._sockets:
                _shut(dup)
            return None


def _shut(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:         # already closed by the peer
        pass


class _Watchdog:
    """One thread for every deadline of the process, woken at the earliest."""

    def __init__(self):
        self._cond = threading.Condition()
        self._heap = []
        self._order = itertools.count()
        self._thread = None
        self._compact_at = 4096

    def add(self, deadline):
        with self._cond:
            if len(self._heap) > self._compact_at:
                # finished deadlines wait in the heap until their time: drop them in bulk
                self._heap = [item for item in self._heap if not item[2].finished]
                heapq.heapify(self._heap)
                self._compact_at = max(4096, 2 * len(self._heap))
            heapq.heappush(self._heap, (deadline.expires, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name='cloudstore-deadlines')
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._cond.notify()

    def _run(self):
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._cond.wait(None if not self._heap
                                    else self._heap[0][0] - time.monotonic())
                _, _, deadline = heapq.heappop(self._heap)
            again = deadline._expire(time.monotonic())
            if again is not None:
                with self._cond:
                    heapq.heappush(self._heap, (again, next(self._order), deadline))


_WATCHDOG = _Watchdog()


class WatchedConnection:
    """Mixin for an ``http.client`` or urllib3 connection class.

    The active deadline of the thread (:meth:`Deadline.active`) watches its socket, from
    before any TLS handshake.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        create = getattr(self, '_create_connection', None)      # http.client
        if create is not None:
            self._create_connection = lambda *a, **kw: _watched(create(*a, **kw))

    def _new_conn(self):                                         # urllib3
        return _watched(super()._new_conn())

    def request(self, *args, **kwargs):
        if self.sock is not None:       # a kept-alive connection, made for another request
            _watched(self.sock)
        return super().request(*args, **kwargs)


def _watched(sock):
    deadline = getattr(_active, 'deadline', None)
    if deadline is not None:
        deadline.watch(sock)
    return sock


class Backend(abc.ABC):
    """One cloud. ``name`` identifies it in reports, logs and errors."""

    def __init__(self, name):
        self.name = name
        #: Seconds each request may take in all (see :class:`Deadline`).
        self.deadline = DEFAULT_DEADLINE
        #: Bytes received from the provider by every read so far.
        self.bytes_read = 0
        self._count_lock = threading.Lock()

    def _count(self, received):
        with self._count_lock:
            self.bytes_read += received

    def _deadline(self, operation):
        """A :class:`Deadline` for one request of ``operation``, starting now."""
        return Deadline(self.name, operation, self.deadline)

    @abc.abstractmethod
    def put(self, key, data):
        """Store ``data`` (bytes) under ``key``, replacing any previous object.

        Returns only once the provider acknowledged the whole object. Raises
        :class:`~..errors.BackendError` on any failure (unreachable, refused, timeout).
        """

    def put_stream(self, key, chunks, length=None):
        """Store the bytes of the iterable ``chunks`` under ``key``, as :meth:`put`.

        ``chunks`` may block while the writer produces them and raises if the writer
        aborts: the object must then not be stored. ``length``, when known, is their
        total. This default buffers everything and calls :meth:`put`; a backend that can
        upload as the chunks arrive overrides it.
        """
        self.put(key, b''.join(chunks))

    @abc.abstractmethod
    def _read(self, key, start, length):
        """Yield the bytes stored under ``key`` from offset ``start``, in order.

        ``length`` (None: to the end) is the most the caller will use; the driver asks the
        provider for no more than that and yields no more than that, in chunks of at most
        :data:`READ_CHUNK_BYTES`. Fewer bytes than asked are fine when the object ends
        before (the caller checks lengths); a start beyond the end yields nothing.
        Closing the generator early must release the connection without reading the
        rest. Raises :class:`~..errors.BackendNotFound` when the key does not exist,
        :class:`~..errors.BackendError` on any other failure, including a transfer cut
        short of what the provider announced.
        """

    def _bounded(self, key, start, length):
        """Chunks of :meth:`_read`, counted, never more than ``length`` bytes in total."""
        remaining = length
        chunks = self._read(key, start, length)
        try:
            for chunk in chunks:
                if remaining is not None:
                    chunk = chunk[:remaining]
                    remaining -= len(chunk)
                self._count(len(chunk))
                if chunk:
                    yield chunk
                if remaining == 0:
                    return
        finally:
            chunks.close()

    def get(self, key, limit):
        """Return the bytes stored under ``key``, which may be at most ``limit`` bytes.

        At most ``limit + 1`` bytes are read: a longer object raises
        :class:`~..errors.ObjectTooLarge` (the provider is serving something no writer
        stored). Raises :class:`~..errors.BackendNotFound` when the provider answers that
        the key does not exist, :class:`~..errors.BackendError` on any other failure,
        including a transfer cut short (never partial bytes).
        """
        data = bytearray()
        for chunk in self._bounded(key, 0, limit + 1):
            data += chunk
            if len(data) > limit:
                raise errors.ObjectTooLarge(self.name, key, limit)
        return bytes(data)

    def iter_range(self, key, start, length):
        """Yield at most ``length`` bytes of ``key`` from offset ``start``, in chunks.

        Stops reading as soon as ``length`` bytes arrived, whatever the provider sends;
        fewer mean the object is shorter. Failures are those of :meth:`get`.
        """
        return self._bounded(key, start, length)

    def read_into(self, key, start, views):
        """Fill the writable ``views`` (memoryviews, in order) from ``key`` at ``start``.

        Yields ``(index, part)`` for each part of ``views[index]`` as it is filled (a
        memoryview of at most :data:`READ_CHUNK_BYTES`), so that the caller can hash the
        bytes while they are still in the CPU's cache. Never reads past the views' total;
        stops early when the object ends (the caller, knowing the lengths it expects,
        counts what was filled). Failures are those of :meth:`get`. This default copies
        :meth:`iter_range`'s chunks; a driver that can receive into a buffer overrides it.
        """
        total = sum(len(view) for view in views)
        index = offset = 0
        for chunk in self.iter_range(key, start, total):
            chunk = memoryview(chunk)
            while chunk:
                while not len(views[index]):      # (an empty view needs no byte)
                    index += 1
                view = views[index]
                take = min(len(chunk), len(view) - offset)
                view[offset:offset + take] = chunk[:take]
                yield index, view[offset:offset + take]
                chunk = chunk[take:]
                offset += take
                if offset == len(view):
                    index += 1
                    offset = 0

    def get_range(self, key, start, length):
        """Return at most ``length`` bytes of ``key`` from offset ``start``.

        Fewer bytes mean the object is shorter (the caller, knowing the exact length it
        expects, decides that this is a fault); the failures are those of :meth:`get`.
        """
        return b''.join(self._bounded(key, start, length))

    @abc.abstractmethod
    def delete(self, key):
        """Remove ``key``. A key that does not exist is success.

        Raises :class:`~..errors.BackendError` when the provider could not be asked.
        """

    @abc.abstractmethod
    def list(self, prefix=''):
        """Return the sorted keys that start with ``prefix`` (all of them, paged inside).

        Raises :class:`~..errors.BackendError` on failure.
        """

    def ensure_container(self):
        """Create the container or bucket if the provider does not have it yet.

        Idempotent. Raises :class:`~..errors.BackendError` on failure.
        """

    def __repr__(self):
        return '<%s %s>' % (type(self).__name__, self.name)
