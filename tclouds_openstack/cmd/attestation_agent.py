"""``tclouds-attestation-agent``: the host agent (TPM quotes over the message bus).

Registers with the registrar (retrying every ``[attestation] registration_retry`` seconds
while the service is unreachable), then serves quote requests until SIGTERM.
"""
import signal
import sys
import threading

from oslo_log import log as logging

from tclouds_openstack.attestation.agent import agent as agent_mod
from tclouds_openstack.common import messaging as common_messaging
from tclouds_openstack import conf as tconf

LOG = logging.getLogger(__name__)


def main(argv=None):
    conf = tconf.CONF
    logging.register_options(conf)
    conf(sys.argv[1:] if argv is None else argv, project='tclouds',
         prog='tclouds-attestation-agent')
    logging.setup(conf, 'tclouds-attestation-agent')
    transport = common_messaging.get_transport(conf)
    agent = agent_mod.Agent(conf, transport)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    agent.start()
    while not done.is_set():
        try:
            agent.register()
            break
        except Exception as e:  # unreachable service or refusal: log the reason, retry
            LOG.error('registration of %s failed: %s', agent.host, e)
            done.wait(conf.attestation.registration_retry)
    done.wait()
    agent.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
