"""A bus that replays or forges agent answers gains nothing (real RabbitMQ, real swtpm).

A rogue RPC server takes the place of a host's agent on its topic and answers the
verifier's quote requests (by call, and by cast to the worker's queue: agent API 1.2)
with: an old answer of that host (replay), another host's fresh quote for the very nonce
of the request (relay), the host's own fresh quote with an altered IMA log, and garbage.
Every one must leave the host untrusted with the reason.
"""
import base64
import json

import oslo_messaging as messaging
import pytest

from tclouds_openstack.attestation import rpcapi
from tclouds_openstack.attestation.service import verifier as verifier_mod
from tests.functional.attestation import conftest as fx


class RogueEndpoint(object):
    """Answers as compute-a: by call (get_quote), and by cast to the worker's queue (1.2)."""
    target = messaging.Target(version=rpcapi.AGENT_VERSION)

    def __init__(self, transport, agent_topic):
        self.answer_with = None
        self.answers = messaging.get_rpc_client(
            transport, messaging.Target(topic=rpcapi.answer_topic(agent_topic), version='1.0'))

    def get_quote(self, ctxt, nonce, selection, ima_offset, uefi_log_digest=None):
        return self.answer_with(nonce, selection, ima_offset)

    def request_quote(self, ctxt, request_id, reply_to, nonce, selection, ima_offset,
                      uefi_log_digest=None):
        # a forger names the host it impersonates (an answer naming another is dropped)
        answer = dict(self.answer_with(nonce, selection, ima_offset), host='compute-a')
        self.answers.prepare(server=reply_to).cast({}, 'quote_answer', request_id=request_id,
                                                   answer=answer)


@pytest.fixture
def fleet(tmp_path, local_ca):  # noqa: F811
    conf = fx.make_conf('sqlite:///%s' % (tmp_path / 'a.sqlite'), rpc_timeout=3.0)
    fleet = fx.Fleet(conf, str(tmp_path), local_ca)
    try:
        yield fleet
    finally:
        fleet.close()


@pytest.mark.parametrize('via', ['cast', 'call'])
def test_replayed_relayed_and_forged_answers_rejected(fleet, local_ca, via):
    a = fleet.add_host('compute-a', register=False, serve=False)
    fleet.start_registrar(local_ca.ca_bundle_pem())
    a.agent.register()
    a.agent.start()
    b = fleet.add_host('compute-b')
    fleet.store.create_policy('default', **{k: json.dumps(v) for k, v in
                                            fx.golden_policy_documents().items()})
    # no loop: the test drives explicit rounds; answers cast back to the worker's queue
    # (agent API 1.2), or calls only (a worker capped at 1.1)
    if via == 'call':
        fleet.conf.set_override('agent_rpc_version_cap', '1.1', group='attestation')
    verifier = verifier_mod.Verifier(fleet.conf, fleet.store, fleet.transport, worker='w')
    fleet.verifiers.append(verifier)

    # record a genuine answer of compute-a, then attest normally
    recorded = []
    real_answer = a.agent.answer

    def recording(nonce, selection, offset, uefi_log_digest=None):
        out = real_answer(nonce, selection, offset, uefi_log_digest)
        recorded.append(out)
        return out
    a.agent.answer = recording
    assert verifier.attest('compute-a') == 'trusted'
    assert verifier.attest('compute-b') == 'trusted'
    a.agent.answer = real_answer

    # the rogue takes over compute-a's topic (the real agent is gone from the bus)
    a.agent.server.stop()
    a.agent.server.wait()
    a.agent.server = None
    rogue = RogueEndpoint(fleet.transport, fleet.conf.attestation.agent_topic)
    server = messaging.get_rpc_server(
        fleet.transport, messaging.Target(topic=fleet.conf.attestation.agent_topic,
                                          server='compute-a'),
        [rogue], executor='threading')
    server.start()
    fleet.servers.append(server)

    def reasons():
        return fleet.store.get_host('compute-a').reasons

    # the worker asks compute-a by cast (its agent said 1.2), or by call when capped
    assert ('compute-a' in verifier.agents._cast_hosts) == (via == 'cast')

    # 1. replay of the recorded answer
    rogue.answer_with = lambda nonce, selection, offset: recorded[0]
    assert verifier.attest('compute-a') == 'untrusted'
    assert 'quote_validation' in reasons() and 'nonce' in reasons()

    # 2. relay: compute-b's fresh quote over this very nonce
    rogue.answer_with = lambda nonce, selection, offset: b.agent.answer(nonce, selection, 0)
    assert verifier.attest('compute-a') == 'untrusted'
    assert 'quote_validation' in reasons() and 'signature' in reasons()

    # 3. compute-a's own fresh quote, with an IMA entry hidden from the log
    def hidden(nonce, selection, offset):
        out = real_answer(nonce, selection, offset)
        lines = base64.b64decode(out['ima_log']).splitlines(keepends=True)
        out['ima_log'] = base64.b64encode(b''.join(lines[:-1])).decode()
        return out
    a.run_file('/usr/bin/evil', b'evil')        # the TPM measured it
    fleet.store.save_verdict('compute-a', 'trusted', [], fx.store_mod.utcnow(), 'w')
    rogue.answer_with = hidden
    assert verifier.attest('compute-a') == 'untrusted'
    assert 'ima.pcr_mismatch' in reasons()

    # 4. a PCR value altered in the answer
    def altered(nonce, selection, offset):
        out = real_answer(nonce, selection, offset)
        out['pcr_values']['sha256']['7'] = '00' * 32
        return out
    rogue.answer_with = altered
    assert verifier.attest('compute-a') == 'untrusted'
    assert 'pcr_digest' in reasons()

    # 5. garbage
    rogue.answer_with = lambda nonce, selection, offset: {'attest': '!!', 'pcr_values': {}}
    assert verifier.attest('compute-a') == 'untrusted'
    assert 'agent answer rejected' in reasons()

    # and the genuine agent back on the bus is believed again (with the evil file: untrusted
    # for the right reason)
    rogue.answer_with = lambda nonce, selection, offset: real_answer(nonce, selection, offset)
    assert verifier.attest('compute-a') == 'untrusted'
    assert 'not_in_allowlist' in reasons() and '/usr/bin/evil' in reasons()
