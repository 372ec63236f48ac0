"""Shared by the key manager and blockstore tests: a key manager configuration with an
embedded key store in a temporary directory, and a notifier that records in memory."""
import os

from oslo_config import cfg
import oslo_messaging
from oslo_messaging.notify import _impl_test

from tclouds_openstack.conf import api as conf_api
from tclouds_openstack.conf import blockstore as conf_blockstore
from tclouds_openstack.keymgr import driver
from tests import hermetic


def keymgr_conf(tmp_path, **overrides):
    """ConfigOpts with our groups; ``overrides`` maps 'group.option' to a value.

    Values go through a config file, not set_override: oslo.config keeps overrides in the
    OptGroup object, which modules like conf/api.py share between ConfigOpts instances.
    """
    master = tmp_path / 'master.key'
    master.write_text(os.urandom(32).hex())
    values = {'tclouds_key_manager.local_store_path': tmp_path / 'keys.sqlite',
              'tclouds_key_manager.master_key_file': master}
    values.update(overrides)
    sections = {}
    for name, value in values.items():
        group, option = name.split('.')
        sections.setdefault(group, []).append('%s = %s' % (option, value))
    conf_file = tmp_path / 'tclouds-test.conf'
    conf_file.write_text(''.join('[%s]\n%s\n' % (group, '\n'.join(lines))
                                 for group, lines in sections.items()))
    conf = cfg.ConfigOpts()
    driver.register_opts(conf)
    conf_api.register_opts(conf)
    conf_blockstore.register_opts(conf)
    return hermetic.parse(conf, [conf_file])


def memory_notifier(conf):
    """A real oslo.messaging Notifier whose 'test' driver keeps messages in memory."""
    transport = oslo_messaging.get_notification_transport(conf, url='fake:/')
    _impl_test.reset()
    return oslo_messaging.Notifier(transport, driver='test', publisher_id='keymgr')


def notifications():
    """[(event_type, priority, payload)] sent since memory_notifier()."""
    return [(m['event_type'], m['priority'], m['payload'])
            for _, m, _, _ in _impl_test.NOTIFICATIONS]
