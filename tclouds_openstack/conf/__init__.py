"""All oslo.config options of tclouds-openstack, one module per area (as nova.conf does).

``CONF`` is the process-wide configuration object; every area module has
``register_opts(conf)`` and ``list_opts()``. Nothing else in the package declares options.
"""
from oslo_config import cfg

from tclouds_openstack.conf import api
from tclouds_openstack.conf import attestation
from tclouds_openstack.conf import blockstore
from tclouds_openstack.conf import keymgr
from tclouds_openstack.conf import scheduling
from tclouds_openstack.conf import securelog
from tclouds_openstack.conf import tpm

CONF = cfg.CONF

_AREAS = [
    api,
    attestation,
    blockstore,
    keymgr,
    scheduling,
    securelog,
    tpm,
]


def register_opts(conf):
    for area in _AREAS:
        area.register_opts(conf)


register_opts(CONF)
