"""Options of the attestation service: verdict source, verifier loop, registrar, API, agent."""
import socket
import sys

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from tclouds_openstack.conf import base

attestation_group = cfg.OptGroup(
    'attestation', title='Remote attestation',
    help='Where verdicts come from (consumers) and how the attestation service, its '
         'workers and the host agents behave.')

attestation_opts = [
    # --- consumers (Nova filters, key manager, demo)
    cfg.StrOpt('backend',
               default='tclouds',
               help='Source of attestation verdicts, a stevedore entry point in '
                    '"tclouds.attestation.backends": "tclouds" (this project\'s attestation '
                    'service, reached through the Keystone catalog, service type '
                    '"attestation") or "keylime" (an existing Keylime verifier, see '
                    '[keylime]).'),
    cfg.IntOpt('max_verdict_age',
               default=120, min=1,
               help='Freshness bound in seconds. A verdict older than this is never '
                    'treated as trusted: consumers refuse it and the worker turns a host '
                    'whose agent has not answered for this long into "unknown". Keep it '
                    'above interval + jitter, typically 2-4 intervals.'),
    cfg.IntOpt('max_clock_skew',
               default=5, min=0,
               help='Seconds a verdict\'s attestation time may lie in the future of the '
                    'reader\'s clock. Beyond that the verdict is refused as from the future '
                    '(a forged or mis-set timestamp proves nothing about now), by every '
                    'consumer and by the attestation API itself. Keep clocks in sync with '
                    'NTP; raise it only for a known, bounded skew.'),
    cfg.StrOpt('endpoint_override',
               help='URL of the attestation API, bypassing the Keystone catalog (tests, '
                    'DevStack without catalog entry). Unset: use the catalog.'),
    # --- verifier workers
    cfg.FloatOpt('interval',
                 default=30.0, min=0.1,
                 help='Seconds between two attestations of the same host.'),
    cfg.FloatOpt('jitter',
                 default=0.2, min=0.0, max=1.0,
                 help='Random extra delay per host and round, as a fraction of interval '
                      '(0.2: 0-20 percent), so that a fleet is not quoted all at once.'),
    cfg.IntOpt('concurrency',
               min=1,
               help='Maximum number of hosts a worker attests at the same time (outstanding '
                    'quote requests). Bounds memory and message-bus load, and the worker\'s '
                    'throughput: at most concurrency / (seconds a round takes) hosts per '
                    'second. Unset: sized by the worker from its share of the fleet, twice '
                    '(active hosts / workers in the coordination group / interval x mean '
                    'seconds of its recent rounds), at least 32 and at most '
                    'max_concurrency; re-sized as the fleet, the group and the agents\' '
                    'answer times change.'),
    cfg.IntOpt('max_concurrency',
               default=256, min=1,
               help='Upper bound of the concurrency a worker sizes itself when concurrency '
                    'is unset (not used when it is set).'),
    cfg.FloatOpt('rpc_timeout',
                 default=10.0, min=0.1,
                 help='Seconds a worker waits for an agent to answer a quote request '
                      'before the attempt counts as failed (the host keeps its verdict until '
                      'max_verdict_age, then turns "unknown").'),
    cfg.StrOpt('agent_rpc_version_cap',
               help='Highest version of the agent RPC API a worker sends (e.g. "1.0" while '
                    'agents older than the workers run). Unset: the newest (1.2: quote '
                    'requests cast to agents that say they serve 1.2, answers cast back to '
                    'the worker\'s own queue; 1.1: event log digests). A worker also falls '
                    'back to 1.0 for an agent that refuses 1.1, and tries 1.1 again an hour '
                    'later; it casts only to agents whose last answer said 1.2.'),
    cfg.IntOpt('event_log_cache_mib',
               default=256, min=0,
               help='MiB of UEFI event logs a worker holds (distinct logs, least recently '
                    'used dropped first): the log of each host\'s last trusted round, whose '
                    'digest goes with the quote request so that an agent whose log is '
                    'unchanged does not send it again (some 55 KB a round). 0: always ask '
                    'for the whole log.'),
    cfg.IntOpt('event_log_cache_hosts',
               default=20000, min=0,
               help='Hosts whose last event log a worker holds at most (see '
                    'event_log_cache_mib).'),
    cfg.StrOpt('coordination_url',
               help='tooz backend URL used to partition hosts among several workers (for '
                    'example redis://127.0.0.1:6379, etcd3+http://..., zookeeper://...). '
                    'Unset: a single worker attests every host.'),
    cfg.StrOpt('connection',
               default='sqlite:////var/lib/tclouds/attestation.sqlite',
               secret=True,
               help='SQLAlchemy URL of the attestation database (registrations, policies, '
                    'verdicts, history). sqlite for one node, mysql+pymysql:// or '
                    'postgresql:// for several workers.'),
    cfg.IntOpt('history_limit',
               default=1000, min=1,
               help='Appraisals kept per host in the history table; older ones are '
                    'deleted by the worker.'),
    cfg.StrOpt('default_policy',
               default='default',
               help='Name of the appraisal policy applied to hosts registered without an '
                    'explicit policy. A host whose policy does not exist is "untrusted" '
                    'with reason "no appraisal policy".'),
    cfg.BoolOpt('require_ek_certificate',
                default=True,
                help='Refuse registrations without an EK certificate chaining to '
                     '[tpm] ek_ca_bundle. Only disable for lab TPMs without certificates.'),
    cfg.StrOpt('unenrolled_registration',
               default='await_approval',
               choices=[('await_approval', 'A host name nobody enrolled may register: its AK '
                                           'is activated, then it waits, never attested, '
                                           'until an admin approves its EK ("openstack '
                                           'attestation host approve HOST").'),
                        ('refuse', 'Only names enrolled beforehand with their EK ("openstack '
                                   'attestation host enroll HOST --ek-sha256 ...") may '
                                   'register; others are refused.')],
               help='What happens to the registration of a host name not enrolled with the '
                    'registering TPM\'s EK. Either way no host becomes trusted before an '
                    'admin bound its name to its EK, and an EK enrolled or registered for '
                    'one name is refused for any other.'),
    cfg.StrOpt('agent_topic',
               default='tclouds-attestation-agent',
               help='oslo.messaging RPC topic the host agents serve (server = host name). '
                    'Must be the same on agents and workers.'),
    cfg.StrOpt('registrar_topic',
               default='tclouds-attestation',
               help='oslo.messaging RPC topic the workers serve registrations on. Must be '
                    'the same on agents and workers.'),
    # --- API
    cfg.HostAddressOpt('api_host',
                       default='127.0.0.1',
                       help='Address tclouds-attestation-api listens on.'),
    cfg.PortOpt('api_port',
                default=9610,
                help='Port tclouds-attestation-api listens on.'),
    # --- agent
    cfg.StrOpt('agent_state_dir',
               default='/var/lib/tclouds/agent',
               help='Directory where the host agent keeps its AK blob (TPM2B_PUBLIC and '
                    'TPM2B_PRIVATE wrapped by the EK) so the same AK is loaded after restart.'),
    cfg.StrOpt('agent_key_algorithm',
               default='ecc',
               choices=['ecc', 'rsa'],
               help='Attestation key type the agent creates: "ecc" (NIST P-256, fast '
                    'quotes) or "rsa" (RSA-2048).'),
    cfg.StrOpt('uefi_eventlog',
               default='/sys/kernel/security/tpm0/binary_bios_measurements',
               help='UEFI (TCG2) event log the agent sends with quotes. Missing file: no '
                    'log is sent and a policy with a measured-boot reference state fails.'),
    cfg.StrOpt('ima_log',
               default='/sys/kernel/security/ima/ascii_runtime_measurements',
               help='IMA measurement list the agent sends (only entries after the '
                    'verifier\'s offset). Missing file: no IMA entries are sent.'),
    cfg.FloatOpt('registration_retry',
                 default=5.0, min=0.1,
                 help='Seconds between the agent\'s registration attempts while the '
                      'service is unreachable.'),
]

keylime_group = cfg.OptGroup(
    'keylime', title='Keylime verifier backend',
    help='Used when [attestation] backend = keylime: verdicts are read from an existing '
         'Keylime verifier\'s REST API (mutual TLS).')

keylime_opts = [
    cfg.URIOpt('verifier_url',
               default='https://127.0.0.1:8881',
               help='Base URL of the Keylime verifier.'),
    cfg.StrOpt('api_version',
               default='2.3',
               help='Keylime REST API version used in request paths.'),
    cfg.StrOpt('ca_file',
               help='CA bundle that signed the verifier\'s server certificate '
                    '(Keylime cv_ca/cacert.crt).'),
    cfg.StrOpt('client_cert',
               help='Client certificate for mutual TLS (Keylime cv_ca/client-cert.crt).'),
    cfg.StrOpt('client_key',
               help='Key of client_cert (Keylime cv_ca/client-private.pem).'),
    cfg.DictOpt('host_agents',
                default={},
                help='Map Nova compute host name to Keylime agent UUID, '
                     'host1:uuid1,host2:uuid2. Hosts not listed are "unknown".'),
    cfg.DictOpt('host_credentials',
                default={},
                help='Map Keystone credential ID to Nova compute host name, '
                     'credential1:host1,credential2:host2: the user IDs (or application '
                     'credential IDs) of the per-host credentials with which compute hosts '
                     'ask the key release API for volume keys (Keylime has no enrolment of '
                     'its own). A credential not listed stands for no host: its key '
                     'requests are refused.'),
    cfg.FloatOpt('timeout',
                 default=5.0, min=0.1,
                 help='Seconds per request to the Keylime verifier; on timeout the backend '
                      'is unavailable (every host not trusted).'),
]


# [DEFAULT] host, as Nova has it: the agent's RPC server name and the worker's identity.
default_opts = [
    cfg.HostDomainOpt('host',
                      default=socket.gethostname(),
                      sample_default='<current hostname>',
                      help='Name of this node. For tclouds-attestation-agent it must equal the '
                           '"host" of the nova-compute service on the same machine (verdicts '
                           'are keyed by it); for a worker it names the worker in the tooz '
                           'group and in the verdict history.'),
]

client_group = cfg.OptGroup(
    'attestation_client', title='Attestation API client',
    help='Service credentials (keystoneauth1 options) with which consumers of the "tclouds" '
         'backend (Nova filters, key manager, trust reactor) read verdicts from the '
         'attestation API. The user needs the "reader" or "service" role. Without auth_type '
         'requests go unauthenticated to [attestation] endpoint_override (tests only).')

compute_group = cfg.OptGroup(
    'attestation_compute', title='Nova, as seen by the attestation API',
    help='Service credentials (keystoneauth1 options) with which tclouds-attestation-api '
         'looks up the compute host of a tenant\'s server for GET /v1/trust/servers. The '
         'user needs Nova\'s "admin" role (only admins see a server\'s host). '
         'endpoint_override and region_name select the compute endpoint; without them it '
         'comes from the Keystone catalog; timeout (seconds) bounds each request. Without '
         'auth_type the tenant view answers 503.')

compute_opts = [
    cfg.StrOpt('endpoint_override',
               help='Compute API URL to use instead of the catalog\'s (e.g. '
                    'http://controller:8774/v2.1).'),
    cfg.StrOpt('region_name', help='Region of the compute endpoint in the catalog.'),
    cfg.StrOpt('interface', default='internal',
               choices=['public', 'internal', 'admin'],
               help='Catalog interface of the compute endpoint.'),
]


def register_opts(conf):
    # Inside nova and cinder processes (our scheduler filters and castellan driver load this
    # package, castellan even while nova.conf is still registering) the service owns
    # [DEFAULT] host with its own definition: registering ours first would make nova's
    # fail with DuplicateOptError, registering it second fails here. Theirs means the same.
    # Only their global CONF is theirs: a ConfigOpts of our own (a command, a test) always
    # gets ours, whatever else the process imported.
    if conf is not cfg.CONF or not any(name in sys.modules
                                       for name in ('nova.conf', 'cinder.common.config')):
        conf.register_opts(default_opts)
    base.register(conf, attestation_group, attestation_opts)
    base.register(conf, keylime_group, keylime_opts)
    base.register(conf, client_group, [])
    ks_loading.register_session_conf_options(conf, client_group.name)
    ks_loading.register_auth_conf_options(conf, client_group.name)
    base.register(conf, compute_group, compute_opts)
    ks_loading.register_session_conf_options(conf, compute_group.name)
    ks_loading.register_auth_conf_options(conf, compute_group.name)


def list_opts():
    ks_opts = (ks_loading.get_session_conf_options()
               + ks_loading.get_auth_common_conf_options()
               + ks_loading.get_auth_plugin_conf_options('password'))
    return [('DEFAULT', default_opts), (attestation_group, attestation_opts),
            (keylime_group, keylime_opts),
            (client_group, ks_opts), (compute_group, compute_opts + ks_opts)]
