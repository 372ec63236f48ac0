"""WSGI entry point of the attestation API (and the trust requirements API):
``tclouds_openstack.wsgi.attestation_api:application``."""
from tclouds_openstack import wsgi

PROG = 'tclouds-attestation-api'


def build(conf):
    from tclouds_openstack.attestation.service import api
    from tclouds_openstack.attestation.service import store as store_mod
    store = store_mod.Store(conf.attestation.connection)
    try:
        store.check_schema()
    except (store_mod.SchemaError, store_mod.DatabaseUnavailable) as e:
        wsgi.fail(PROG, str(e))
    return api.create_app(conf, store)


application = wsgi.LazyApplication(PROG, build)
