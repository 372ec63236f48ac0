"""``tclouds-trust-reactor``: react to attestation notifications, keep Placement traits.

Notifications are triggers: the reactor re-reads each named host's verdict from the
attestation service (``[attestation] backend``, ``[attestation_client]`` credentials) and
acts on that, never on the message (see :mod:`tclouds_openstack.nova.reaction`).

Reads tclouds.conf (``--config-file``): ``[trust_reactor]`` policy, ``[trust_scheduling]``
service credentials and endpoints, ``[attestation] backend`` for the periodic full trait
reconciliation, ``[oslo_messaging_notifications]``/``[DEFAULT] transport_url`` for the bus.
Runs until SIGTERM/SIGINT; a configuration error exits 2 with the reason on stderr.
"""
import logging
import signal
import socket
import sys
import threading

from oslo_config import cfg

from tclouds_openstack.attestation import backends
from tclouds_openstack.common import messaging
from tclouds_openstack import conf as tclouds_conf
from tclouds_openstack.nova import placement
from tclouds_openstack.nova import reaction
from tclouds_openstack.requirements import client as req_client

LOG = logging.getLogger('tclouds-trust-reactor')


def build(conf):
    """The reactor and its trait sync from configuration (used by main and tests)."""
    session = req_client.scheduler_session(conf)
    nova = placement.make_nova(session, conf)
    sync = placement.TraitSync(conf, placement.make_placement(session, conf), nova,
                               backends.get_backend(conf))
    notifier = messaging.get_notifier(conf, 'trust-reactor.%s' % socket.gethostname())
    projects = (req_client.ProjectRequirements(conf)
                if conf.trust_scheduling.project_requirements else None)
    return reaction.TrustReactor(conf, nova, sync, notifier, projects), sync


def run(conf, stop_event):
    reactor, sync = build(conf)
    listener = reaction.get_listener(messaging.get_notification_transport(conf), reactor,
                                     topics=conf.oslo_messaging_notifications.topics)
    listener.start()
    LOG.info('listening for attestation.host.* notifications')
    try:
        while not stop_event.is_set():
            try:
                result = sync.full_sync()
                LOG.info('trait sync: %d host(s), %d trusted', len(result),
                         sum(1 for ok, _ in result.values() if ok))
            except Exception:
                LOG.exception('periodic trait sync failed; retrying next interval')
            try:
                # hosts a notification named while their verdict could not be read
                reactor.recheck_pending()
            except Exception:
                LOG.exception('re-checking unconfirmed hosts failed; retrying next interval')
            stop_event.wait(conf.trust_reactor.trait_sync_interval)
    finally:
        listener.stop()
        listener.wait()


def main(argv=None):
    conf = tclouds_conf.CONF
    try:
        conf(sys.argv[1:] if argv is None else argv, project='tclouds',
             prog='tclouds-trust-reactor')
    except cfg.Error as e:
        sys.stderr.write('tclouds-trust-reactor: %s\n' % e)
        return 2
    logging.basicConfig(level=logging.INFO,
                        format='%(asctime)s %(levelname)s %(name)s %(message)s')
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(conf, stop)
    return 0


if __name__ == '__main__':
    sys.exit(main())
