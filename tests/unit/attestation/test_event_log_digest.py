"""Agent API 1.1: the event log is sent only when the verifier does not hold it.

The verifier's held logs (bounded, shared between hosts booted alike), the strict reading
of an "unchanged" answer, the agent's refusal of a malformed digest, and the RPC versions
on oslo.messaging's in-process transport: a 1.1 call to an agent that only speaks 1.0
falls back to 1.0 (the log is sent), a cap of 1.0 never sends 1.1, and a 1.0 call to a new
agent is answered with the log.
"""
import base64

from oslo_config import cfg
import oslo_messaging as messaging
import pytest

from tclouds_openstack.attestation import rpcapi
from tclouds_openstack.attestation.service import verifier
from tclouds_openstack.common import messaging as common_messaging


def held(log):
    return rpcapi.log_digest(log), log


# ------------------------------------------------------------------ EventLogCache
def test_cache_holds_the_log_under_its_digest_per_host_and_ak():
    cache = verifier.EventLogCache(1 << 20, 10)
    cache.put(('h1', 'ak1'), b'log-a')
    assert cache.get(('h1', 'ak1')) == held(b'log-a')
    assert cache.get(('h1', 'ak2')) is None         # another AK: another quote chain
    cache.drop(('h1', 'ak1'))
    assert cache.get(('h1', 'ak1')) is None and cache._bytes == 0


def test_hosts_booted_alike_share_one_copy():
    cache = verifier.EventLogCache(1 << 20, 10)
    log = b'L' * 1000
    for i in range(5):
        cache.put(('h%d' % i, 'ak'), bytes(log))
    assert len(cache) == 5 and cache._bytes == 1000
    first = cache.get(('h0', 'ak'))[1]
    assert all(cache.get(('h%d' % i, 'ak'))[1] is first for i in range(5))
    for i in range(4):
        cache.drop(('h%d' % i, 'ak'))
    assert cache._bytes == 1000
    cache.drop(('h4', 'ak'))
    assert cache._bytes == 0 and not cache._logs


def test_byte_and_host_bounds_drop_the_least_recently_used():
    cache = verifier.EventLogCache(250, 10)
    for i in range(3):
        cache.put(('h%d' % i, 'ak'), bytes([i]) * 100)
    # 300 bytes > 250: h0, the least recently used, went
    assert cache.get(('h0', 'ak')) is None and len(cache) == 2 and cache._bytes == 200
    cache.get(('h1', 'ak'))                         # h1 used: h2 is now the oldest
    cache.put(('h3', 'ak'), b'\x03' * 100)
    assert cache.get(('h2', 'ak')) is None and cache.get(('h1', 'ak')) is not None
    hosts = verifier.EventLogCache(1 << 20, 2)
    for i in range(3):
        hosts.put(('h%d' % i, 'ak'), b'same')
    assert len(hosts) == 2 and hosts.get(('h0', 'ak')) is None


def test_a_new_log_replaces_the_host_s_old_one():
    cache = verifier.EventLogCache(1 << 20, 10)
    cache.put(('h1', 'ak'), b'before reboot')
    cache.put(('h1', 'ak'), b'after reboot!')
    assert cache.get(('h1', 'ak')) == held(b'after reboot!')
    assert cache._bytes == len(b'after reboot!')


@pytest.mark.parametrize('log', [None, b'', b'x' * 101])
def test_nothing_held_for_no_log_or_a_log_beyond_the_bound(log):
    cache = verifier.EventLogCache(100, 10)
    cache.put(('h1', 'ak'), b'old')
    cache.put(('h1', 'ak'), log)
    assert cache.get(('h1', 'ak')) is None and cache._bytes == 0


# ------------------------------------------------------------------ decode_answer
def answer(**extra):
    body = {'pcr_values': {'sha256': {'0': '00' * 32}},
            'attest': base64.b64encode(b'a').decode(),
            'signature': base64.b64encode(b's').decode()}
    body.update(extra)
    return body


def test_unchanged_stands_for_the_held_log_itself():
    log = b'the held log'
    evidence = verifier.decode_answer(answer(uefi_log_unchanged=rpcapi.log_digest(log)),
                                      b'ak', held(log))
    assert evidence.uefi_log is log


def test_a_sent_log_is_used_even_when_one_is_held():
    evidence = verifier.decode_answer(
        answer(uefi_log=base64.b64encode(b'new log').decode()), b'ak', held(b'old log'))
    assert evidence.uefi_log == b'new log'


@pytest.mark.parametrize('unchanged,extra,held_log,message', [
    ('00' * 32, {}, None, 'the request named no event log'),
    ('11' * 32, {}, held(b'log'), 'names'),
    (rpcapi.log_digest(b'log').upper(), {}, held(b'log'), 'names'),
    (['x'], {}, held(b'log'), 'names'),
    (rpcapi.log_digest(b'log'), {'uefi_log': base64.b64encode(b'other').decode()},
     held(b'log'), 'sent with a uefi_log'),
])
def test_an_unchanged_answer_the_request_did_not_ask_for_is_rejected(
        unchanged, extra, held_log, message):
    with pytest.raises(rpcapi.BadMessage) as exc:
        verifier.decode_answer(answer(uefi_log_unchanged=unchanged, **extra), b'ak',
                               held_log)
    assert str(exc.value).startswith('uefi_log_unchanged: ') and message in str(exc.value)


@pytest.mark.parametrize('digest', ['', 'AB' * 32, 'ab' * 31, 'zz' * 32, 7, ['ab' * 32]])
def test_digests_have_one_spelling(digest):
    assert not rpcapi.is_log_digest(digest)
    assert rpcapi.is_log_digest(rpcapi.log_digest(b'x'))


def test_the_agent_refuses_a_malformed_digest_before_quoting(tmp_path):
    from tclouds_openstack.attestation.agent import agent as agent_mod
    from tclouds_openstack import conf as tconf
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    conf([], project='tclouds-test', default_config_files=[])
    agent = agent_mod.Agent(conf, transport=None, host='h1', tcti='swtpm:port=1',
                            state_dir=str(tmp_path), uefi_eventlog=str(tmp_path / 'u'),
                            ima_log=str(tmp_path / 'i'))
    out = agent.answer(base64.b64encode(b'n' * 20).decode(), {'sha256': [0]}, 0, 'AB' * 32)
    assert set(out) == {'error'} and out['error'].startswith('uefi_log_digest')


# ------------------------------------------------------------------ RPC versions
class OldAgent(object):
    """An agent of API 1.0: no uefi_log_digest, always the whole log."""
    target = messaging.Target(version='1.0')

    def __init__(self):
        self.calls = []

    def get_quote(self, ctxt, nonce, selection, ima_offset):
        self.calls.append(ima_offset)
        return {'uefi_log': 'bG9n', 'version': '1.0'}


class NewAgent(object):
    target = messaging.Target(version=rpcapi.AGENT_VERSION)

    def __init__(self):
        self.calls = []

    def get_quote(self, ctxt, nonce, selection, ima_offset, uefi_log_digest=None):
        self.calls.append(uefi_log_digest)
        return {'uefi_log_unchanged': uefi_log_digest} if uefi_log_digest else {}


@pytest.fixture
def bus():
    conf = cfg.ConfigOpts()
    common_messaging.register_opts(conf)
    conf([], project='tclouds-test', default_config_files=[])
    transport = messaging.get_rpc_transport(conf, url='fake:/')
    servers = []

    def serve(host, endpoint):
        server = messaging.get_rpc_server(
            transport, messaging.Target(topic='agents', server=host), [endpoint],
            executor='threading')
        server.start()
        servers.append(server)
        return endpoint
    yield transport, serve
    for server in servers:
        server.stop()
        server.wait()
    transport.cleanup()


def quote(api, host, digest):
    return api.get_quote(host, b'n' * 20, {'sha256': [0]}, 3, uefi_log_digest=digest)


def test_an_agent_at_1_0_is_asked_again_in_1_0_and_then_only_in_1_0(bus):
    transport, serve = bus
    old = serve('old-host', OldAgent())
    api = rpcapi.AgentAPI(transport, timeout=5, topic='agents')
    digest = rpcapi.log_digest(b'log')
    assert quote(api, 'old-host', digest) == {'uefi_log': 'bG9n', 'version': '1.0'}
    assert quote(api, 'old-host', digest)['uefi_log'] == 'bG9n'
    # the refused 1.1 call never reached the method; the second round went to 1.0 at once
    assert old.calls == [3, 3] and list(api._old_agents) == ['old-host']
    # an hour later it is tried in 1.1 again (upgraded meanwhile?)
    api._old_agents['old-host'] -= api.OLD_AGENT_RECHECK
    assert quote(api, 'old-host', digest)['uefi_log'] == 'bG9n'
    assert old.calls == [3, 3, 3] and 'old-host' in api._old_agents


def test_a_new_agent_gets_the_digest_unless_the_cap_or_nothing_held_says_1_0(bus):
    transport, serve = bus
    new = serve('new-host', NewAgent())
    digest = rpcapi.log_digest(b'log')
    api = rpcapi.AgentAPI(transport, timeout=5, topic='agents')
    assert quote(api, 'new-host', digest) == {'uefi_log_unchanged': digest}
    assert quote(api, 'new-host', None) == {}
    capped = rpcapi.AgentAPI(transport, timeout=5, topic='agents', version_cap='1.0')
    assert quote(capped, 'new-host', digest) == {}
    assert new.calls == [digest, None, None] and not api._old_agents


def test_other_remote_errors_are_not_taken_for_an_old_agent(bus):
    transport, serve = bus

    class Broken(NewAgent):
        def get_quote(self, ctxt, nonce, selection, ima_offset, uefi_log_digest=None):
            raise RuntimeError('boom')
    serve('broken-host', Broken())
    api = rpcapi.AgentAPI(transport, timeout=5, topic='agents')
    with pytest.raises(RuntimeError):
        quote(api, 'broken-host', rpcapi.log_digest(b'log'))
    assert not api._old_agents
