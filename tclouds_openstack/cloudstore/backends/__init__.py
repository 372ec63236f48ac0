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
    from tclouds_openstack.cloudstore.backends import base
    kind = options.get('type')
    if kind == 'swift':
        from tclouds_openstack.cloudstore.backends import swift
        backend = swift.SwiftBackend.from_options(name, options)
    elif kind == 's3':
        from tclouds_openstack.cloudstore.backends import s3
        backend = s3.S3Backend.from_options(name, options)
    elif kind == 'directory':
        from tclouds_openstack.cloudstore.backends import directory
        backend = directory.DirectoryBackend.from_options(name, options)
    else:
        raise errors.CloudStoreError('cloud %s: type %r is not one of %s'
                                     % (name, kind, ', '.join(BACKEND_TYPES)))
    # every request's overall deadline: one option for all clouds (request_deadline)
    backend.deadline = base.deadline_option(name, options)
    return backend
