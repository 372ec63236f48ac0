"""How an area registers a group of options: always on a fresh OptGroup.

oslo.config copies an OptGroup shallowly on ``register_group``, so copies share the dict
that holds each option's override and default: a module-level group registered in two
ConfigOpts (nova's, cinder's, a test's, a CLI's in one process) would leak
``set_override()`` from one into the other. Registering a fresh group per ConfigOpts
keeps them apart. Every ``tclouds_openstack.conf.<area>.register_opts`` uses this.
"""
from oslo_config import cfg


def register(conf, group, opts):
    """Register ``opts`` in a fresh copy of ``group`` on ``conf``; returns the group name."""
    conf.register_group(cfg.OptGroup(group.name, title=group.title, help=group.help))
    conf.register_opts(opts, group=group.name)
    return group.name
