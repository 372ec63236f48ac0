"""``tclouds-attestation-api``: the attestation REST API (and the trust requirements API),
served by the standalone server; the application is the one uwsgi serves
(:mod:`tclouds_openstack.wsgi.attestation_api`)."""
import sys

from oslo_log import log as logging

from tclouds_openstack.common import wsgi
from tclouds_openstack import conf as tconf
from tclouds_openstack import wsgi as wsgi_entry
from tclouds_openstack.wsgi import attestation_api


def main(argv=None):
    conf = tconf.CONF
    logging.register_options(conf)
    conf(sys.argv[1:] if argv is None else argv, project='tclouds', prog=attestation_api.PROG)
    logging.setup(conf, attestation_api.PROG)
    try:
        app = attestation_api.build(conf)
    except wsgi_entry.NotStarting:  # the reason is on stderr already
        return 1
    wsgi.serve(app, conf.attestation.api_host, conf.attestation.api_port, conf)


if __name__ == '__main__':
    sys.exit(main())
