"""Workaround imported right after nova.tests.functional, before nova.conf.

castellan loads every ``castellan.drivers`` plugin while nova.conf is being imported; the
tclouds keymgr driver then registers ``[DEFAULT] host`` before Nova's netconf does, and
Nova's registration fails with DuplicateOptError. Registering Nova's own option first
(from its own module file) lets both coexist; harmless once the plugin imports lazily.
"""
import importlib.util
import os

import nova
from oslo_config import cfg


def _register_nova_host_first():
    path = os.path.join(os.path.dirname(nova.__file__), 'conf', 'netconf.py')
    spec = importlib.util.spec_from_file_location('_nova_netconf_early', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    nova_host = [o for o in module.netconf_opts if o.name == 'host'][0]
    existing = getattr(cfg.CONF, '_opts', {}).get('host')
    if existing is not None and existing['opt'] != nova_host:
        # Another package's [DEFAULT] host came first (collection imported it): Nova's own
        # definition must win inside this forked Nova test.
        cfg.CONF.unregister_opt(existing['opt'])
    try:
        module.register_opts(cfg.CONF)
    except cfg.DuplicateOptError:
        pass


_register_nova_host_first()
