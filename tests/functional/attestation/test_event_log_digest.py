"""The event log is sent once per boot, and the held log is never believed over the quote.

Real swtpm hosts and agents on real RabbitMQ (agent API 1.1): the second round's answer
says "unchanged" instead of carrying the log and the host stays trusted; a host whose
quoted boot PCRs no longer match the log it calls unchanged is untrusted with the reason,
and the next round asks for the whole log; a worker that holds nothing (restart, another
worker's host) asks for the whole log; an agent of API 1.0 on the bus is asked in 1.0
and sends its log; a 1.0 call to a new agent gets the log.
"""
import hashlib

import oslo_messaging as messaging
import pytest

from tclouds_openstack.attestation import rpcapi
from tests.functional.attestation import conftest as fx


@pytest.fixture
def fleet(tmp_path, local_ca):  # noqa: F811
    yield from fx.golden_fleet(tmp_path, local_ca, rpc_timeout=5.0)


add_host = fx.registered_host
verifier = fx.manual_verifier


def recorded(host):
    """Every (digest asked with, answer) of ``host``'s agent from now on."""
    rounds = []
    real = host.agent.answer

    def answer(nonce, selection, offset, uefi_log_digest=None):
        out = real(nonce, selection, offset, uefi_log_digest)
        rounds.append((uefi_log_digest, out))
        return out
    host.agent.answer = answer
    return rounds


def reasons(fleet, name):
    return fleet.store.get_host(name).reasons


def test_unchanged_log_is_replayed_against_every_fresh_quote(fleet):
    a = add_host(fleet, 'compute-a')
    with open(a.uefi, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    rounds = recorded(a)
    worker = verifier(fleet)
    assert worker.attest('compute-a') == 'trusted'
    assert worker.attest('compute-a') == 'trusted'
    (asked1, first), (asked2, second) = rounds
    assert asked1 is None and first['uefi_log'] and 'uefi_log_unchanged' not in first
    assert asked2 == digest and second['uefi_log_unchanged'] == digest
    assert 'uefi_log' not in second

    # a boot PCR extended outside the log: the agent still calls its log unchanged
    a.agent.device().pcr_extend(4, {'sha256': b'\x42' * 32})
    assert worker.attest('compute-a') == 'untrusted'
    assert rounds[-1][0] == digest and 'uefi_log_unchanged' in rounds[-1][1]
    assert 'measured_boot.invalid_pcr_4' in reasons(fleet, 'compute-a')
    assert 'measured_boot.unchanged_log' in reasons(fleet, 'compute-a')
    # the next round asks for the whole log, which tells the same story
    assert worker.attest('compute-a') == 'untrusted'
    assert rounds[-1][0] is None and rounds[-1][1]['uefi_log']
    assert 'measured_boot.invalid_pcr_4' in reasons(fleet, 'compute-a')
    assert 'measured_boot.unchanged_log' not in reasons(fleet, 'compute-a')

    # a reboot measures the boot again: trusted on the whole log, then unchanged again
    a.reboot()
    assert worker.attest('compute-a') == 'trusted'
    assert worker.attest('compute-a') == 'trusted'
    assert [asked for asked, _ in rounds[-2:]] == [None, digest]
    assert 'uefi_log_unchanged' in rounds[-1][1]


def test_a_worker_holding_nothing_asks_for_the_log(fleet):
    a = add_host(fleet, 'compute-a')
    rounds = recorded(a)
    first = verifier(fleet)
    assert first.attest('compute-a') == 'trusted'
    assert first.attest('compute-a') == 'trusted'
    # another worker (or this one restarted) has no log of the host
    second = verifier(fleet)
    assert second.attest('compute-a') == 'trusted'
    assert [asked is None for asked, _ in rounds] == [True, False, True]
    assert rounds[-1][1]['uefi_log']
    # nothing held at all (event_log_cache_mib = 0): always the whole log
    none = verifier(fleet, event_log_cache_mib=0)
    assert none.attest('compute-a') == 'trusted'
    assert none.attest('compute-a') == 'trusted'
    assert [asked for asked, _ in rounds[-2:]] == [None, None]


class AgentAt10(object):
    """The endpoint of an agent of API 1.0 (no uefi_log_digest), answering truthfully."""
    target = messaging.Target(version='1.0')

    def __init__(self, agent):
        self.agent = agent
        self.calls = 0

    def get_quote(self, ctxt, nonce, selection, ima_offset):
        self.calls += 1
        out = self.agent.answer(nonce, selection, ima_offset)
        out.pop('agent_api', None)      # an agent of 1.0 does not say it serves 1.2
        return out


def test_agents_of_api_1_0_and_verifiers_of_api_1_0(fleet):
    a = add_host(fleet, 'compute-a', serve=False)
    worker = verifier(fleet)
    # an old agent on the bus
    old = AgentAt10(a.agent)
    server = messaging.get_rpc_server(
        fleet.transport, messaging.Target(topic=fleet.conf.attestation.agent_topic,
                                          server='compute-a'), [old], executor='threading')
    server.start()
    fleet.servers.append(server)
    for _ in range(3):
        assert worker.attest('compute-a') == 'trusted', reasons(fleet, 'compute-a')
    # rounds 2 and 3 held the log: round 2's 1.1 call was refused (over the broker, as a
    # RemoteError) and asked again in 1.0, round 3 asked in 1.0 at once
    assert old.calls == 3 and 'compute-a' in worker.agents._old_agents
    server.stop()
    server.wait()
    fleet.servers.remove(server)

    # this agent, asked by a verifier of API 1.0 (no digest): the whole log
    a.agent.start()
    client = messaging.get_rpc_client(
        fleet.transport, messaging.Target(topic=fleet.conf.attestation.agent_topic,
                                          version='1.0'), timeout=5)
    out = client.prepare(server='compute-a').call(
        {}, 'get_quote', nonce=rpcapi.b64(b'n' * 20), selection={'sha256': [0]},
        ima_offset=0)
    assert out['uefi_log'] and 'uefi_log_unchanged' not in out
