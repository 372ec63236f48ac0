"""An override in one ConfigOpts never leaks into another (shared OptGroup objects would)."""
from oslo_config import cfg

from tclouds_openstack import conf as tconf
from tclouds_openstack.conf import opts
from tests import hermetic


def _new():
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    return hermetic.parse(conf)


def test_overrides_stay_in_their_configuration():
    first, second = _new(), _new()
    first.set_override('auth_strategy', 'noauth', group='api')
    first.set_override('tcti', 'swtpm:host=127.0.0.1,port=1', group='tpm')
    assert first.api.auth_strategy == 'noauth'
    assert second.api.auth_strategy == 'keystone'
    assert second.tpm.tcti == 'device:/dev/tpmrm0'


def test_every_area_registers_fresh_groups():
    first, second = _new(), _new()
    for group, group_opts in opts.list_opts():
        name = group if isinstance(group, str) else group.name
        if name == 'DEFAULT':
            continue
        assert first._groups[name] is not second._groups[name], name
        assert first._groups[name]._opts is not second._groups[name]._opts, name
