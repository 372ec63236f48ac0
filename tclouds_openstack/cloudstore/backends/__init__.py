"""Storage clouds the DepSky-CA protocol writes to: the contract and its drivers.

:mod:`.base` holds the abstract contract; :mod:`.swift` (python-swiftclient),
:mod:`.s3` (boto3) and :mod:`.directory` (files in a local or mounted directory)
implement it. :func:`load` builds a backend from a ``{"type": ...}``
mapping (how the Swift middleware and the repair command describe their clouds).
"""
from tclouds_openstack.cloudstore import errors

BACKEND_TYPES = ('swift', 's3', 'directory')


def load(name, options):
    """Build the backend called ``name`` from its options (``type`` selects the driver).

    Raises :class:`~tclouds_openstack.cloudstore.errors.CloudStoreError` naming the cloud
    and the missing or bad option.
    """
    kind = options.get('type')
    if kind == 'swift':
        from tclouds_openstack.cloudstore.backends import swift
        return swift.SwiftBackend.from_options(name, options)
    if kind == 's3':
        from tclouds_openstack.cloudstore.backends import s3
        return s3.S3Backend.from_options(name, options)
    if kind == 'directory':
        from tclouds_openstack.cloudstore.backends import directory
        return directory.DirectoryBackend.from_options(name, options)
    raise errors.CloudStoreError('cloud %s: type %r is not one of %s'
                                 % (name, kind, ', '.join(BACKEND_TYPES)))
