"""Options of the tclouds Tempest plugin (written by the DevStack plugin's test-config phase).

``[service_available]``: ``attestation``, ``secure_log``, ``key_release`` (one per tclouds
API). One group per API for the service clients (``catalog_type``, ``endpoint_type``), and
the feature group ``[tclouds]``: what the deployment has (capabilities, its compute hosts,
their jurisdiction, the encrypted volume type, the cloud-of-clouds storage policy).
"""
from oslo_config import cfg

service_available_opts = [
    cfg.BoolOpt('attestation', default=False,
                help='Whether the tclouds attestation API (service type attestation) is '
                     'expected to be available.'),
    cfg.BoolOpt('secure_log', default=False,
                help='Whether the tclouds secure log API (service type secure-log) is '
                     'expected to be available.'),
    cfg.BoolOpt('key_release', default=False,
                help='Whether the tclouds key release API (service type key-release) is '
                     'expected to be available.'),
]


def _service_group(name, title, catalog_type):
    group = cfg.OptGroup(name=name, title=title)
    opts = [
        cfg.StrOpt('catalog_type', default=catalog_type,
                   help='Catalog type of the %s.' % title),
        cfg.StrOpt('endpoint_type', default='publicURL',
                   choices=['public', 'admin', 'internal', 'publicURL', 'adminURL',
                            'internalURL'],
                   help='The endpoint type to use for the %s.' % title),
    ]
    return group, opts


attestation_group, attestation_opts = _service_group(
    'attestation', 'tclouds attestation API', 'attestation')
secure_log_group, secure_log_opts = _service_group(
    'secure_log', 'tclouds secure log API', 'secure-log')
key_release_group, key_release_opts = _service_group(
    'key_release', 'tclouds key release API', 'key-release')

tclouds_group = cfg.OptGroup(name='tclouds', title='tclouds-openstack features')
tclouds_opts = [
    cfg.ListOpt('capabilities', default=[],
                help='Capabilities the cloud runs: securelog, attestation, scheduling, '
                     'blockstore, cloudstore.'),
    cfg.ListOpt('compute_hosts', default=[],
                help='Nova compute hosts that run an attestation agent (enrolled, with a '
                     'TPM).'),
    cfg.StrOpt('jurisdiction', default='',
               help='Country code of the compute hosts\' jurisdiction aggregate and of the '
                    'volume backends.'),
    cfg.StrOpt('appraisal_policy', default='default',
               help='Name of the appraisal policy made from the hosts\' reference boot.'),
    cfg.StrOpt('encrypted_volume_type', default='',
               help='Volume type whose volumes are encrypted with keys of the tclouds key '
                    'manager. Empty: encrypted volume tests are skipped.'),
    cfg.StrOpt('cloudstore_policy', default='',
               help='Swift storage policy served by the cloud-of-clouds middleware. Empty: '
                    'its tests are skipped.'),
    cfg.StrOpt('tamper_command', default='',
               help='Command that turns compute host {host} untrusted (a rogue boot '
                    'measurement); empty: the untrusted-host scenario is skipped.'),
    cfg.StrOpt('restore_command', default='',
               help='Command that makes compute host {host} trusted again (its reference '
                    'boot measured anew).'),
    cfg.ListOpt('cloudstore_backend_containers', default=[],
                help='Swift containers of this cloud that the cloud-of-clouds policy uses as '
                     'its clouds (development deployments); the scenario reads them to check '
                     'that they hold no plaintext.'),
    cfg.StrOpt('cloudstore_backend_username', default='swift',
               help='User owning the backend containers.'),
    cfg.StrOpt('cloudstore_backend_password', default='', secret=True,
               help='Its password; empty: the no-plaintext scenario is skipped.'),
    cfg.StrOpt('cloudstore_backend_project', default='service',
               help='Its project.'),
    cfg.StrOpt('host_user_format', default='tclouds-host-{host}',
               help='Keystone user name of compute host {host}\'s own credential.'),
    cfg.DictOpt('host_passwords', default={}, secret=True,
                help='Password of each compute host\'s own credential (host:password,...; '
                     'every host has its own); a host not listed: the key release scenario '
                     'is skipped.'),
    cfg.StrOpt('host_project', default='service',
               help='Project the compute host credentials hold their role on.'),
    cfg.StrOpt('securelog_audit_command', default='',
               help='Command that audits the whole secure log against the signed '
                    'checkpoint in file {checkpoint} and prints a JSON report with "ok" '
                    '(tclouds-securelog verify, run where the log\'s auditor bundle is); '
                    'empty: the audit scenario is skipped.'),
    cfg.StrOpt('openstack_cli', default='openstack',
               help='The openstack command with the tclouds OSC plugin installed.'),
    cfg.StrOpt('securelog_vkey_file', default='',
               help='File holding the secure log\'s public key (the C2SP verifier key '
                    'log.vkey of the operator\'s auditor bundle), with which the scenario '
                    'tests verify a project\'s report offline; empty: the healthcare and '
                    'lighting scenario tests are skipped.'),
    cfg.StrOpt('trust_instance_action', default='none',
               choices=['none', 'live-migrate', 'stop'],
               help='What the trust reactor is configured to do to the servers of a host '
                    'that turns untrusted (the healthcare scenario expects it).'),
    cfg.IntOpt('scenario_timeout', default=3600,
               help='Seconds a whole healthcare or lighting scenario run may take.'),
    cfg.IntOpt('attestation_interval', default=10,
               help='Seconds between two attestations of a host: how long tests wait for '
                    'a verdict to change.'),
]

GROUPS = [(attestation_group, attestation_opts),
          (secure_log_group, secure_log_opts),
          (key_release_group, key_release_opts),
          (tclouds_group, tclouds_opts)]
