"""Host agent request validation and incremental IMA reads (no TPM needed for these paths)."""
import base64
import os

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


def _line(i):
    return b'10 %040x ima-ng sha256:%064x /f%d\n' % (i, i, i)


def test_ima_reads_resume_at_the_byte_position_of_the_last_answer(agent):
    path = agent.ima_log
    lines, start = agent._ima_since(0)
    assert start == 0 and lines == b''.join(_line(i) for i in range(5))
    # overwrite the already answered entries in place with one line of the same size: a
    # reader that starts from the beginning again would count 3 entries, not 7; ours
    # seeks past them
    with open(path, 'r+b') as f:
        f.write(b'x' * (len(lines) - 1) + b'\n')
        f.seek(0, 2)
        f.write(_line(5) + _line(6))
    lines, start = agent._ima_since(5)
    assert (lines, start) == (_line(5) + _line(6), 5)
    # the verifier may accept only a prefix of the last answer: resume inside it
    lines, start = agent._ima_since(6)
    assert (lines, start) == (_line(6), 6)


def test_ima_half_written_last_line_waits_until_complete(agent):
    with open(agent.ima_log, 'ab') as f:
        f.write(_line(5)[:30])
    lines, start = agent._ima_since(0)
    assert start == 0 and lines.count(b'\n') == 5 and lines.endswith(_line(4))
    lines, start = agent._ima_since(5)
    assert (lines, start) == (b'', 5)
    with open(agent.ima_log, 'ab') as f:
        f.write(_line(5)[30:])
    assert agent._ima_since(5) == (_line(5), 5)


def test_ima_list_replaced_or_shorter_is_read_from_the_start(agent):
    agent._ima_since(0)
    with open(agent.ima_log + '.new', 'wb') as f:
        f.write(_line(0) + _line(1))
    os.replace(agent.ima_log + '.new', agent.ima_log)
    # the host rebooted: a new list shorter than the verifier's offset, sent from entry 0
    assert agent._ima_since(5) == (_line(0) + _line(1), 0)
    with open(agent.ima_log, 'r+b') as f:
        f.truncate(len(_line(0)))
    assert agent._ima_since(2) == (_line(0), 0)
    # rewritten in place, longer than before (a simulated reboot): the remembered position
    # no longer follows a newline, so the list is counted again
    agent._ima_since(0)
    with open(agent.ima_log, 'wb') as f:
        f.write(b'10 short\n' + _line(1) + _line(2))
    assert agent._ima_since(1) == (_line(1) + _line(2), 1)
