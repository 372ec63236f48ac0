"""The exceptions of the cloud-of-clouds protocol.

Everything the protocol raises derives from :class:`CloudStoreError`, so a caller can fail
closed on one type. Messages name the cloud, the data unit and the field or offset.

- :class:`MetadataError`: signed metadata that does not parse or does not verify.
- :class:`FragmentError`: a value object (key share + erasure-coded fragment) that is
  malformed or does not match the digest the signed metadata lists for it.
- :class:`BackendError` / :class:`BackendNotFound` / :class:`ObjectTooLarge`: raised by
  backends (the contract in :mod:`tclouds_openstack.cloudstore.backends.base`).
- :class:`QuorumError`: too few clouds answered correctly; lists each cloud's reason.
- :class:`NotFoundError`: a quorum of clouds agrees the data unit does not exist.
- :class:`StaleError`: the clouds' newest valid version is older than the caller requires.
"""


class CloudStoreError(Exception):
    """Base of every error the cloudstore protocol raises."""


class MetadataError(CloudStoreError):
    """Malformed or unverifiable metadata: ``metadata.<field>: reason``."""

    def __init__(self, field, reason):
        self.field = field
        self.reason = reason
        super().__init__('metadata.%s: %s' % (field, reason))


class FragmentError(CloudStoreError):
    """Malformed or mismatching value object: ``value object at offset N (field): reason``."""

    def __init__(self, field, offset, reason):
        self.field = field
        self.offset = offset
        self.reason = reason
        super().__init__('value object at offset %d (%s): %s' % (offset, field, reason))


class BackendError(CloudStoreError):
    """A cloud failed an operation (unreachable, refused, timed out, server error)."""

    def __init__(self, cloud, operation, reason):
        self.cloud = cloud
        self.operation = operation
        self.reason = reason
        super().__init__('cloud %s: %s failed: %s' % (cloud, operation, reason))


class BackendNotFound(BackendError):
    """The cloud answered and does not hold the requested key."""

    def __init__(self, cloud, key):
        self.key = key
        super().__init__(cloud, 'get', 'no object %r' % key)


class ObjectTooLarge(BackendError):
    """The cloud holds a longer object under ``key`` than any writer could have stored.

    Reading stopped after ``limit + 1`` bytes; the protocol counts this cloud as faulty.
    """

    def __init__(self, cloud, key, limit):
        self.key = key
        self.limit = limit
        super().__init__(cloud, 'get', '%r is longer than %d bytes (reading stopped there)'
                         % (key, limit))


class QuorumError(CloudStoreError):
    """Fewer than the required clouds succeeded; ``reasons`` maps cloud name to why."""

    def __init__(self, operation, data_unit, needed, reasons):
        self.operation = operation
        self.data_unit = data_unit
        self.needed = needed
        self.reasons = dict(reasons)
        detail = '; '.join('%s: %s' % (name, why) for name, why in sorted(self.reasons.items()))
        super().__init__('%s of %s needs %d correct clouds, failed: %s'
                         % (operation, data_unit, needed, detail or 'no cloud answered'))


class NotFoundError(CloudStoreError):
    """A quorum of clouds answered and none holds valid metadata for the data unit."""

    def __init__(self, data_unit):
        self.data_unit = data_unit
        super().__init__('data unit %s not found on a quorum of clouds' % data_unit)


class StaleError(CloudStoreError):
    """The newest valid version a quorum holds is older than the version required."""

    def __init__(self, data_unit, found, required):
        self.data_unit = data_unit
        self.found = found
        self.required = required
        super().__init__('data unit %s: newest valid version on a quorum is %s, %s required'
                         % (data_unit, found, required))
