"""Shared by the key manager and blockstore tests: a key manager configuration with an
embedded key store in a temporary directory, and a notifier that records in memory."""
import os

from oslo_config import cfg
import oslo_messaging
from oslo_messaging.notify import _impl_test

from tclouds_openstack.conf import api as conf_api
from tclouds_openstack.conf import blockstore as conf_blockstore
from tclouds_openstack.keymgr import driver


def keymgr_conf(tmp_path, **overrides):
    """ConfigOpts with our groups; ``overrides`` maps 'group.option' to a value."""
    conf = cfg.ConfigOpts()
    driver.register_opts(conf)
    conf_api.register_opts(conf)
    conf_blockstore.register_opts(conf)
    conf([], project='tclouds')
    master = tmp_path / 'master.key'
    master.write_text(os.urandom(32).hex())
    conf.set_override('local_store_path', str(tmp_path / 'keys.sqlite'), 'tclouds_key_manager')
    conf.set_override('master_key_file', str(master), 'tclouds_key_manager')
    for name, value in overrides.items():
        group, option = name.split('.')
        conf.set_override(option, value, group)
    return conf


def memory_notifier(conf):
    """A real oslo.messaging Notifier whose 'test' driver keeps messages in memory."""
    transport = oslo_messaging.get_notification_transport(conf, url='fake:/')
    _impl_test.reset()
    return oslo_messaging.Notifier(transport, driver='test', publisher_id='keymgr')


def notifications():
    """[(event_type, priority, payload)] sent since memory_notifier()."""
    return [(m['event_type'], m['priority'], m['payload'])
            for _, m, _, _ in _impl_test.NOTIFICATIONS]
