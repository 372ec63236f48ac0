"""WSGI entry point of the attestation-gated key release API:
``tclouds_openstack.wsgi.key_release_api:application``."""
from tclouds_openstack import wsgi

PROG = 'tclouds-key-release-api'


def build(conf):
    from oslo_config import cfg

    from tclouds_openstack.keymgr import api
    try:
        return api.build_app(conf)
    except cfg.Error as e:
        wsgi.fail(PROG, 'configuration: %s' % e)


application = wsgi.LazyApplication(PROG, build)
