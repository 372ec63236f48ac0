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
"""
import abc
import threading

from tclouds_openstack.cloudstore import errors


def required_option(cloud, options, option):
    """``options[option]``, or :class:`~..errors.CloudStoreError` naming cloud and option."""
    value = options.get(option)
    if not value:
        raise errors.CloudStoreError('cloud %s: option %r is required' % (cloud, option))
    return value


def timeout_option(cloud, options, default=10.0):
    """The ``timeout`` option in seconds, validated."""
    try:
        timeout = float(options.get('timeout', default))
    except ValueError:
        timeout = -1
    if timeout <= 0:
        raise errors.CloudStoreError('cloud %s: timeout %r is not a positive number of '
                                     'seconds' % (cloud, options.get('timeout')))
    return timeout


#: Largest piece a driver hands over at once while reading (bounds a read's buffers).
READ_CHUNK_BYTES = 256 * 1024
#: The most of any answer that is not an object's bytes a driver reads: an error body (only
#: its start is kept for the message), a listing page (10,000 names of at most 1,024 bytes
#: and their JSON or XML), an upload's answer. A cloud sending more is faulty.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
#: The most of an error answer's body a driver reads (S3's error XML is under 1 KiB).
MAX_ERROR_BYTES = 64 * 1024


class Backend(abc.ABC):
    """One cloud. ``name`` identifies it in reports, logs and errors."""

    def __init__(self, name):
        self.name = name
        #: Bytes received from the provider by every read so far.
        self.bytes_read = 0
        self._count_lock = threading.Lock()

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
                with self._count_lock:
                    self.bytes_read += len(chunk)
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
