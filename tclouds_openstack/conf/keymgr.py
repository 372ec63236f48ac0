"""Options of the attestation-gated key manager (castellan driver ``tclouds``)."""
from oslo_config import cfg

from tclouds_openstack.conf import base

keymgr_group = cfg.OptGroup(
    'tclouds_key_manager', title='Attestation-gated key manager',
    help='The castellan driver selected by [key_manager] backend = tclouds. Controllers '
         '(Cinder, the key release API) reach the wrapped key store directly; compute hosts '
         'ask the key release API, which releases a key only to a host whose attestation '
         'verdict is fresh and trusted.')

keymgr_opts = [
    cfg.StrOpt('role',
               default='controller',
               choices=[('controller', 'Create, store, delete and get keys in the wrapped '
                                       'store directly (Cinder, the key release API).'),
                        ('compute', 'Get volume keys only through the key release API, '
                                    'authenticated with this host\'s own Keystone credential '
                                    '(the keystoneauth options of this group).')],
               help='Where this process sits. A compute host never holds the store\'s '
                    'master key.'),
    cfg.StrOpt('wrapped_backend',
               default='local',
               help='Key store behind the gate: "local" (the embedded encrypted store, see '
                    'local_store_path) or the name of another castellan driver, e.g. '
                    '"barbican" or "vault", configured in its own group as usual.'),
    cfg.StrOpt('local_store_path',
               default='/var/lib/tclouds/keys.sqlite',
               help='SQLite file of the embedded key store. Key material in it is '
                    'AES-256-GCM encrypted under the master key; the file also keeps the '
                    'blockstore freshness anchors.'),
    cfg.StrOpt('master_key_file',
               default='/etc/tclouds/keystore-master.key',
               help='File with the 32-byte master key (64 hex characters) of the local '
                    'store, readable only by the key service user. Missing or malformed: '
                    'every key operation fails with the reason.'),
    cfg.StrOpt('host_domain_id',
               default='default',
               help='ID of the Keystone domain the compute host credentials live in. The key '
                    'release API refuses a caller whose user is in any other domain, so a '
                    'domain manager of a tenant\'s domain cannot mint one. A host credential '
                    'is a user of this domain with the role tclouds_host (the keymgr:volume '
                    'policy rules) whose user ID (or application credential ID) an admin '
                    'enrolled for its host ("openstack attestation host enroll HOST '
                    '--credential ID"); its name decides nothing.'),
    cfg.IntOpt('max_verdict_age',
               min=1,
               help='Freshness bound for releasing a key, in seconds. Unset: '
                    '[attestation] max_verdict_age.'),
    cfg.StrOpt('release_endpoint_override',
               help='URL of the key release API for compute hosts, bypassing the Keystone '
                    'catalog (service type "key-release").'),
    cfg.FloatOpt('release_timeout',
                 default=10.0, min=0.1,
                 help='Seconds a compute host waits for the key release API; a timeout '
                      'fails the attach with the reason.'),
    cfg.HostAddressOpt('api_host', default='127.0.0.1',
                       help='Address tclouds-key-release-api listens on.'),
    cfg.PortOpt('api_port', default=9620, help='Port of the key release API.'),
]


cinder_group = cfg.OptGroup(
    'tclouds_cinder', title='Cinder, as seen by the key release API',
    help='Service credential (keystoneauth1 session, auth and adapter options) with which '
         'the key release API asks Cinder which volume a key belongs to and to which host the '
         'volume is attached. The user needs Cinder\'s "admin" role (another project\'s '
         'volume, its encryption key ID and the hosts of its attachments are an admin view). '
         'Without auth_type and endpoint_override every key request is refused with the '
         'reason. Attachments Cinder shows no host for (still attaching) are looked up in '
         'Nova with the [attestation_compute] credentials.')


def register_opts(conf):
    base.register(conf, keymgr_group, keymgr_opts)
    register_cinder_opts(conf)


def register_cinder_opts(conf):
    """``[tclouds_cinder]``: keystoneauth1's session, auth and adapter options."""
    from keystoneauth1 import loading as ks_loading
    try:
        getattr(conf, cinder_group.name)
        return      # registered already (a castellan driver and the API in one process)
    except cfg.NoSuchOptError:
        pass
    base.register(conf, cinder_group, [])
    ks_loading.register_session_conf_options(conf, cinder_group.name)
    ks_loading.register_auth_conf_options(conf, cinder_group.name)
    ks_loading.register_adapter_conf_options(conf, cinder_group.name)


def _ks_opts():
    from keystoneauth1 import loading as ks_loading
    return (ks_loading.get_session_conf_options()
            + ks_loading.get_auth_common_conf_options()
            + ks_loading.get_auth_plugin_conf_options('password')
            + ks_loading.get_adapter_conf_options(include_deprecated=False))


def list_opts():
    return [(keymgr_group, keymgr_opts + _ks_opts()), (cinder_group, _ks_opts())]
