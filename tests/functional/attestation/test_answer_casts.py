"""Agent API 1.2 on real RabbitMQ and swtpm: quote requests cast, answers cast back.

A worker calls an agent it knows nothing of (1.1); an agent that says it serves 1.2 is
asked by cast from then on and its answers come to the worker's own queue. On that queue,
answers with an unknown id, a repeated answer, another host's answer carrying the
request's id and an answer that comes after its request timed out are dropped and never
complete another request; a forged answer that takes the place of the agent's (the
request's id and host, an old quote) is appraised and fails on the nonce. An agent that
stops answering casts fails its round as "no answer" with the reason (unknown once
``max_verdict_age`` passed) and is called again; agents of 1.1 are called throughout, and a
worker capped at 1.1 never casts.
"""
import threading

import oslo_messaging as messaging
import pytest

from tclouds_openstack.attestation import rpcapi
from tclouds_openstack.attestation.service import verifier as verifier_mod
from tests.functional.attestation import conftest as fx


@pytest.fixture
def fleet(tmp_path, local_ca):  # noqa: F811
    yield from fx.golden_fleet(tmp_path, local_ca, rpc_timeout=3.0)


add_host = fx.registered_host
verifier = fx.manual_verifier


def casts_of(host):
    """Every (request id, reply name) the agent of ``host`` was cast from now on."""
    casts = []
    real = host.agent.answer_cast

    def answer_cast(request_id, reply_to, *args):
        casts.append((request_id, reply_to))
        return real(request_id, reply_to, *args)
    host.agent.answer_cast = answer_cast
    return casts


def cast_ready(worker, name):
    """The worker asks ``name`` by cast (after a call whose answer said 1.2)."""
    return (name in worker.agents._cast_hosts
            and verifier_mod.wait_for(lambda: worker.agents.answers.ready, 10))


def status(fleet, name):
    host = fleet.store.get_host(name)
    return host.status, verifier_mod.reasons_of(host)


def test_an_agent_of_1_2_is_asked_by_cast_after_one_call(fleet):
    a = add_host(fleet, 'compute-a')
    casts = casts_of(a)
    worker = verifier(fleet)
    assert worker.attest('compute-a') == 'trusted'
    assert casts == [] and cast_ready(worker, 'compute-a')
    for _ in range(3):
        assert worker.attest('compute-a') == 'trusted', status(fleet, 'compute-a')
    assert len(casts) == 3 and len({rid for rid, _ in casts}) == 3
    assert {reply for _, reply in casts} == {worker.agents.answers.reply_to}
    assert not worker.agents.answers.dropped


def test_answers_not_awaited_or_of_another_host_are_dropped(fleet):
    a = add_host(fleet, 'compute-a')
    add_host(fleet, 'compute-b')
    worker = verifier(fleet)
    assert worker.attest('compute-a') == 'trusted'
    assert worker.attest('compute-b') == 'trusted'
    assert cast_ready(worker, 'compute-a')
    answers = messaging.get_rpc_client(
        fleet.transport, messaging.Target(
            topic=rpcapi.answer_topic(fleet.conf.attestation.agent_topic), version='1.0'))
    recorded = {}
    real_answer = a.agent.answer

    def recording(nonce, selection, offset, uefi_log_digest=None):
        out = real_answer(nonce, selection, offset, uefi_log_digest)
        recorded['a'] = dict(out)
        return out
    a.agent.answer = recording
    assert worker.attest('compute-a') == 'trusted'
    old_answer = recorded['a']
    b_answer = fleet.hosts['compute-b'].agent.answer(
        rpcapi.b64(b'n' * 20), {'sha256': [0, 1, 2, 3, 4, 5, 6, 7]}, 0)

    real_cast = a.agent.answer_cast
    plan = {}

    def answer_cast(request_id, reply_to, *args):
        bus = answers.prepare(server=reply_to)
        if plan.get('first') == 'others':
            # before the agent's own answer: an unknown id, compute-b's answer with this
            # request's id
            bus.cast({}, 'quote_answer', request_id='f' * 32, answer=dict(old_answer))
            bus.cast({}, 'quote_answer', request_id=request_id,
                     answer=dict(b_answer, host='compute-b'))
            real_cast(request_id, reply_to, *args)
            # and the agent's answer once more
            real_cast(request_id, reply_to, *args)
        elif plan.get('first') == 'replay':
            # an old answer of compute-a as the answer to this request: it is matched
            # (right id and host) and fails appraisal; the agent's own comes too late
            bus.cast({}, 'quote_answer', request_id=request_id, answer=dict(old_answer))
            real_cast(request_id, reply_to, *args)
    a.agent.answer_cast = answer_cast

    plan['first'] = 'others'
    assert worker.attest('compute-a') == 'trusted', status(fleet, 'compute-a')
    dropped = worker.agents.answers.dropped
    assert verifier_mod.wait_for(lambda: dropped['unknown'] == 2, 10), dropped
    assert dropped['host'] == 1 and dropped['malformed'] == 0

    plan['first'] = 'replay'
    assert worker.attest('compute-a') == 'untrusted'
    state, reasons = status(fleet, 'compute-a')
    assert any('nonce' in r for r in reasons), reasons
    # the agent's genuine answer to that request came after the forged one: dropped
    assert verifier_mod.wait_for(lambda: dropped['unknown'] == 3, 10), dropped


def test_a_cast_not_answered_fails_the_round_closed_and_the_agent_is_called_again(fleet):
    a = add_host(fleet, 'compute-a')
    worker = verifier(fleet, max_verdict_age=1, rpc_timeout=1.0)
    assert worker.attest('compute-a') == 'trusted'
    assert cast_ready(worker, 'compute-a')
    # the agent answers its casts too late (as one that no longer serves 1.2 never does)
    real_cast = a.agent.answer_cast
    late = []

    def slow(*args):
        done = threading.Event()
        late.append(done)
        threading.Timer(2.0, lambda: (real_cast(*args), done.set())).start()
    a.agent.answer_cast = slow
    assert worker.attest('compute-a') == 'unknown'
    state, reasons = status(fleet, 'compute-a')
    assert state == 'unknown'
    assert 'agent has not answered' in reasons[0]
    assert 'no answer from compute-a to quote request' in reasons[0]
    assert 'compute-a' not in worker.agents._cast_hosts
    # the late answer is dropped; the next round is a call, which the agent answers
    assert late[0].wait(10)
    dropped = worker.agents.answers.dropped
    assert verifier_mod.wait_for(lambda: dropped['unknown'] == 1, 10), dropped
    assert worker.attest('compute-a') == 'trusted'
    assert len(late) == 1


class AgentAt11(object):
    """The endpoint of an agent of API 1.1 (no request_quote), answering truthfully."""
    target = messaging.Target(version='1.1')

    def __init__(self, agent):
        self.agent = agent
        self.calls = 0

    def get_quote(self, ctxt, nonce, selection, ima_offset, uefi_log_digest=None):
        self.calls += 1
        out = self.agent.answer(nonce, selection, ima_offset, uefi_log_digest)
        out.pop('agent_api')
        return out


def test_agents_of_1_1_are_called_and_a_worker_capped_at_1_1_never_casts(fleet):
    a = add_host(fleet, 'compute-a', serve=False)
    old = AgentAt11(a.agent)
    server = messaging.get_rpc_server(
        fleet.transport, messaging.Target(topic=fleet.conf.attestation.agent_topic,
                                          server='compute-a'), [old], executor='threading')
    server.start()
    fleet.servers.append(server)
    worker = verifier(fleet)
    for _ in range(3):
        assert worker.attest('compute-a') == 'trusted', status(fleet, 'compute-a')
    assert old.calls == 3 and not worker.agents._cast_hosts
    server.stop()
    server.wait()
    fleet.servers.remove(server)

    # an agent of 1.2 and a worker capped at 1.1 (workers not yet upgraded)
    a.agent.start()
    casts = casts_of(a)
    capped = verifier(fleet, agent_rpc_version_cap='1.1')
    for _ in range(3):
        assert capped.attest('compute-a') == 'trusted'
    assert casts == [] and not capped.agents._cast_hosts
