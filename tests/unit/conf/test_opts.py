"""The option listing feeds oslo-config-generator and the committed sample stays current."""
import subprocess
import sys

from oslo_config import cfg

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


def test_sample_config_is_current():
    result = subprocess.run(
        [sys.executable, '-m', 'oslo_config.generator',
         '--config-file', str(REPO / 'etc/tclouds/config-generator.conf'),
         '--output-file', '/dev/stdout'],
        cwd=REPO, capture_output=True, text=True, check=True)
    committed = (REPO / 'etc/tclouds/tclouds.conf.sample').read_text()
    assert result.stdout == committed, 'run tools/genconfig.sh to regenerate the sample'
