"""Options listing for oslo-config-generator (entry point ``oslo.config.opts: tclouds``)."""
from tclouds_openstack import conf


def list_opts():
    """Return [(group, [opts])] for every area, merged by group name."""
    merged = {}
    for area in conf._AREAS:
        for group, opts in area.list_opts():
            merged.setdefault(group, []).extend(opts)
    return sorted(merged.items(), key=lambda item: (item[0] != 'DEFAULT', item[0]))
