"""Host agent request validation and incremental IMA reads (no TPM needed for these paths)."""
import base64

from oslo_config import cfg
import pytest

from tclouds_openstack.attestation.agent import agent as agent_mod
from tclouds_openstack import conf as tconf


@pytest.fixture
def agent(tmp_path):
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    conf([], project='tclouds-test', default_config_files=[])
    ima = tmp_path / 'ima'
    ima.write_bytes(b''.join(b'10 %040x ima-ng sha256:%064x /f%d\n' % (i, i, i)
                             for i in range(5)))
    return agent_mod.Agent(conf, transport=None, host='h1', tcti='swtpm:port=1',
                           state_dir=str(tmp_path / 'state'),
                           uefi_eventlog=str(tmp_path / 'missing'), ima_log=str(ima))


@pytest.mark.parametrize('nonce,selection,offset,field', [
    ('!!!', {'sha256': [0]}, 0, 'nonce'),
    (base64.b64encode(b'short').decode(), {'sha256': [0]}, 0, 'nonce'),
    (base64.b64encode(b'n' * 20).decode(), {}, 0, 'selection'),
    (base64.b64encode(b'n' * 20).decode(), {'sha256': [99]}, 0, 'selection.sha256'),
    (base64.b64encode(b'n' * 20).decode(), {'sha256': ['x']}, 0, 'selection.sha256'),
    (base64.b64encode(b'n' * 20).decode(), {'sha256': [0]}, -1, 'ima_offset'),
])
def test_bad_requests_get_a_named_error_not_a_quote(agent, nonce, selection, offset, field):
    answer = agent.answer(nonce, selection, offset)
    assert set(answer) == {'error'}
    assert answer['error'].startswith(field)


def test_ima_entries_since_offset(agent):
    lines, start = agent._ima_since(3)
    assert start == 3 and lines.count(b'\n') == 2 and lines.startswith(b'10 ')
    # a shorter list than the verifier's offset: the host rebooted, send all from 0
    lines, start = agent._ima_since(50)
    assert start == 0 and lines.count(b'\n') == 5
    assert agent._read(agent.uefi_eventlog) is None
