"""Options listing for oslo-config-generator (entry point ``oslo.config.opts: tclouds``)."""
from tclouds_openstack import conf


def _name(group):
    return group if isinstance(group, str) else group.name


def list_opts():
    """Return [(group, [opts])] for every area, merged by group name, DEFAULT first."""
    groups, merged = {}, {}
    for area in conf._AREAS:
        for group, opts in area.list_opts():
            name = _name(group)
            if name not in groups or isinstance(group, str) is False:
                groups[name] = group
            merged.setdefault(name, []).extend(opts)
    return [(groups[name], merged[name])
            for name in sorted(merged, key=lambda n: (n != 'DEFAULT', n))]
