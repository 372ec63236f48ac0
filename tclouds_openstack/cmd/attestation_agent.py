"""``tclouds-attestation-agent``: the host agent (TPM quotes over the message bus).

Registers with the registrar (retrying every ``[attestation] registration_retry`` seconds
while the service is unreachable), then serves quote requests until SIGTERM.

``--show-ek`` prints this host's name and its TPM's EK hash, what an admin enrols for it
(``openstack attestation host enroll HOST --ek-sha256 HEX``), and exits.
"""
import signal
import sys
import threading

from oslo_config import cfg
from oslo_log import log as logging

from tclouds_openstack.attestation.agent import agent as agent_mod
from tclouds_openstack.common import messaging as common_messaging
from tclouds_openstack import conf as tconf

LOG = logging.getLogger(__name__)

CLI_OPTS = [
    cfg.BoolOpt('show-ek', default=False,
                help='Print this host\'s name and the SHA-256 of its TPM\'s EK (the '
                     'DER SubjectPublicKeyInfo of the EK the agent registers), for "openstack '
                     'attestation host enroll HOST --ek-sha256 HEX", and exit.'),
]


def show_ek(conf):
    """'<host> sha256:<EK hash>' of this host's TPM, as the registrar computes it."""
    from tclouds_openstack.attestation.service import registrar
    from tclouds_openstack.tpm import structures
    agent = agent_mod.Agent(conf, None)
    try:
        ek = structures.parse_tpm2b_public(agent.device().ek_public())
    finally:
        agent.disconnect()
    return '%s sha256:%s' % (agent.host, registrar.key_sha256(ek.public_key()))


def main(argv=None):
    conf = tconf.CONF
    logging.register_options(conf)
    conf.register_cli_opts(CLI_OPTS)
    conf(sys.argv[1:] if argv is None else argv, project='tclouds',
         prog='tclouds-attestation-agent')
    if conf.show_ek:
        print(show_ek(conf))
        return 0
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
