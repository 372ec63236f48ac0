"""``tclouds-attestation-api``: the attestation REST API (and the trust requirements API)."""
import sys

from oslo_log import log as logging

from tclouds_openstack.attestation.service import api
from tclouds_openstack.attestation.service import store as store_mod
from tclouds_openstack.common import wsgi
from tclouds_openstack import conf as tconf

LOG = logging.getLogger(__name__)


def main(argv=None):
    conf = tconf.CONF
    logging.register_options(conf)
    conf(sys.argv[1:] if argv is None else argv, project='tclouds',
         prog='tclouds-attestation-api')
    logging.setup(conf, 'tclouds-attestation-api')
    store = store_mod.Store(conf.attestation.connection)
    try:
        store.check_schema()
    except (store_mod.SchemaError, store_mod.DatabaseUnavailable) as e:
        LOG.error('not starting: %s', e)
        print('tclouds-attestation-api: not starting: %s' % e, file=sys.stderr)
        return 1
    app = api.create_app(conf, store)
    wsgi.serve(app, conf.attestation.api_host, conf.attestation.api_port, conf)


if __name__ == '__main__':
    sys.exit(main())
