"""Options of protected block devices: the NBD export the os-brick encryptor starts."""
from oslo_config import cfg

from tclouds_openstack.conf import base

blockstore_group = cfg.OptGroup(
    'blockstore', title='Protected block devices',
    help='Where the os-brick encryptor (provider '
         'tclouds_openstack.blockstore.encryptor.TcloudsEncryptor) keeps its NBD sockets '
         'and freshness anchors, and how it starts the export.')

blockstore_opts = [
    cfg.StrOpt('state_dir',
               default='/var/lib/tclouds/blockstore',
               help='Directory for the per-volume unix sockets, anchor files and event files '
                    'of the exports on this host. Must be on local storage the host trusts '
                    '(the anchor protects against rollback of the volume storage).'),
    cfg.FloatOpt('start_timeout',
                 default=30.0, min=1.0,
                 help='Seconds to wait for an export to listen on its socket before the '
                      'attach fails (with nbdkit\'s error).'),
    cfg.BoolOpt('sync_metadata',
                default=False,
                help='fdatasync between each sector record write and the data write. Needed '
                     'for crash consistency under power loss on storage that reorders '
                     'writes; costs one flush per write request.'),
    cfg.StrOpt('notification_config_file',
               default='/etc/tclouds/tclouds.conf',
               help='oslo.config file the export reads transport_url and '
                    '[oslo_messaging_notifications] from, to send a '
                    '"blockstore.integrity.failed" notification (priority error) for every '
                    'integrity failure (the guest gets EIO). Empty: log and event file only.'),
]


def register_opts(conf):
    base.register(conf, blockstore_group, blockstore_opts)


def list_opts():
    return [(blockstore_group, blockstore_opts)]
