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
    store.migrate()
    app = api.create_app(conf, store)
    wsgi.serve(app, conf.attestation.api_host, conf.attestation.api_port)


if __name__ == '__main__':
    sys.exit(main())
