"""The contract every cloud backend honours (castellan's key manager is the model).

A backend is one independent storage provider holding opaque objects under string keys
in one container or bucket. The protocol assumes nothing else: a backend may lose,
replay or corrupt data (the protocol detects that), but it must signal failures with the
exceptions below and never return partial data as success.
"""
import abc

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


class Backend(abc.ABC):
    """One cloud. ``name`` identifies it in reports, logs and errors."""

    def __init__(self, name):
        self.name = name

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
    def get(self, key):
        """Return the bytes stored under ``key``.

        Raises :class:`~..errors.BackendNotFound` when the provider answers that the key
        does not exist, :class:`~..errors.BackendError` on any other failure, including a
        transfer cut short (never partial bytes).
        """

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
