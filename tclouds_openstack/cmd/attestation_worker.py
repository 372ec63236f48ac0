"""``tclouds-attestation-worker``: registrar (RPC) + verifier loop; run several for scale-out.

Stops cleanly on SIGTERM/SIGINT (leaves the tooz group so the others take its hosts at
once); a worker killed with SIGKILL is replaced when its tooz heartbeat expires.
"""
import signal
import sys
import threading

from oslo_log import log as logging
import oslo_messaging as messaging

from tclouds_openstack.attestation.service import registrar as registrar_mod
from tclouds_openstack.attestation.service import store as store_mod
from tclouds_openstack.attestation.service import verifier as verifier_mod
from tclouds_openstack.common import messaging as common_messaging
from tclouds_openstack import conf as tconf

LOG = logging.getLogger(__name__)


def _ca_bundle(conf):
    try:
        with open(conf.tpm.ek_ca_bundle, 'rb') as f:
            return f.read()
    except OSError as e:
        LOG.warning('cannot read [tpm] ek_ca_bundle %s (%s): every registration with an EK '
                    'certificate will be refused', conf.tpm.ek_ca_bundle, e)
        return None


def main(argv=None):
    conf = tconf.CONF
    logging.register_options(conf)
    conf(sys.argv[1:] if argv is None else argv, project='tclouds',
         prog='tclouds-attestation-worker')
    logging.setup(conf, 'tclouds-attestation-worker')
    opts = conf.attestation
    store = store_mod.Store(opts.connection)
    try:
        store.check_schema()
    except (store_mod.SchemaError, store_mod.DatabaseUnavailable) as e:
        LOG.error('not starting: %s', e)
        print('tclouds-attestation-worker: not starting: %s' % e, file=sys.stderr)
        return 1
    transport = common_messaging.get_transport(conf)
    registrar = registrar_mod.Registrar(
        store, _ca_bundle(conf), opts.require_ek_certificate, opts.default_policy,
        allow_unenrolled=opts.unenrolled_registration == 'await_approval')
    server = messaging.get_rpc_server(
        transport, messaging.Target(topic=opts.registrar_topic, server=conf.host),
        [verifier_mod.RegistrarEndpoint(registrar)], executor='threading')
    notifier = common_messaging.get_notifier(conf, 'tclouds-attestation.%s' % conf.host)
    verifier = verifier_mod.Verifier(conf, store, transport, notifier=notifier,
                                     worker=conf.host)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    server.start()
    verifier.start()
    LOG.info('attestation worker %s running (interval %.1f s)', conf.host, opts.interval)
    done.wait()
    LOG.info('stopping')
    verifier.stop()
    server.stop()
    server.wait()
    return 0


if __name__ == '__main__':
    sys.exit(main())
