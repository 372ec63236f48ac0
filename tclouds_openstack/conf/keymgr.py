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
                        ('compute', 'Get keys only through the key release API, '
                                    'authenticated as this host\'s Keystone service user '
                                    '(see the keystoneauth options of this group).')],
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
    cfg.StrOpt('host_user_prefix',
               default='tclouds-host-',
               help='A compute host authenticates to the key release API as the Keystone '
                    'user named <prefix><nova host name>. The host whose verdict is checked '
                    'is derived from the authenticated user name, never from the request.'),
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


def register_opts(conf):
    base.register(conf, keymgr_group, keymgr_opts)


def list_opts():
    return [(keymgr_group, keymgr_opts)]
