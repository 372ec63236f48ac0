"""The option listing feeds oslo-config-generator and the committed sample stays current."""
import importlib.metadata
import re
import subprocess
import sys

from oslo_config import cfg
import pytest

from tclouds_openstack.conf import opts
from tests.conftest import REPO


def test_list_opts_names_every_group_once():
    groups = [group if isinstance(group, str) else group.name for group, _ in opts.list_opts()]
    assert len(groups) == len(set(groups))
    assert 'tpm' in groups


def test_every_option_has_help():
    # keystoneauth1's session/auth options (listed for the service clients) bring their own
    # short help; every option has some.
    for _, group_opts in opts.list_opts():
        for opt in group_opts:
            assert isinstance(opt, cfg.Opt)
            assert opt.help and opt.help.strip(), opt.name


# The libraries whose options the sample lists besides ours (the service clients' keystoneauth
# session and auth options, oslo.log's): their help and options change between releases.
SAMPLE_LIBRARIES = ('keystoneauth1', 'oslo.log', 'oslo.config')


def _untested_libraries():
    """The sample's libraries installed at other versions than constraints.txt pins."""
    pins = dict(re.findall(r'^([A-Za-z0-9._-]+)===?([^\s;]+)',
                           (REPO / 'constraints.txt').read_text(), re.M))
    pins = {name.lower().replace('_', '-').replace('.', '-'): v for name, v in pins.items()}
    out = []
    for name in SAMPLE_LIBRARIES:
        installed = importlib.metadata.version(name)
        if pins.get(name.lower().replace('.', '-')) != installed:
            out.append('%s %s' % (name, installed))
    return out


def test_sample_config_is_current():
    untested = _untested_libraries()
    if untested:
        # e.g. under OpenStack's upper-constraints (TCLOUDS_CONSTRAINTS=openstack)
        pytest.skip('the committed sample is generated with the tested set (constraints.txt); '
                    'installed here: %s' % ', '.join(untested))
    result = subprocess.run(
        [sys.executable, '-m', 'oslo_config.generator',
         '--config-file', str(REPO / 'etc/tclouds/config-generator.conf'),
         '--output-file', '/dev/stdout'],
        cwd=REPO, capture_output=True, text=True, check=True)
    committed = (REPO / 'etc/tclouds/tclouds.conf.sample').read_text()
    assert result.stdout == committed, 'run tools/genconfig.sh to regenerate the sample'
