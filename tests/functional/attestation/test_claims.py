"""Batch claims and batch verdict writes of the worker loop, on sqlite, MariaDB and PostgreSQL.

``Store.claim_due`` hands each due host to exactly one worker (SKIP LOCKED; sqlite
serialises writers) with the columns its round needs; ``Store.save_claimed_verdicts``
writes a round's verdict only while the host still carries that round's claim, AK and
previous verdict, and keeps a history row only when the verdict changed.
"""
import collections
import datetime
import threading

import pytest

from tclouds_openstack.attestation.appraisal import core
from tests.functional.attestation import conftest as fx
from tests.functional.securelog.conftest import _postgres

store_mod = fx.store_mod
NAMES = ['compute-%02d' % i for i in range(12)]


@pytest.fixture(params=['sqlite', 'mariadb', 'postgresql'])
def store(request, tmp_path):
    if request.param == 'sqlite':
        url, drop = 'sqlite:///%s' % (tmp_path / 'attestation.sqlite'), None
    else:
        url, drop = _postgres() if request.param == 'postgresql' else (None, None)
        if request.param == 'mariadb':
            database, url = fx.mariadb_url()

            def drop():
                fx.drop_mariadb(database)
    st = store_mod.Store(url)
    try:
        st.migrate()
        for host in NAMES:
            fx.simfleet.admit_host(st, host)
        yield st
    finally:
        st.facade.writer.get_engine().dispose()
        if drop:
            drop()


def _later(seconds=60):
    return lambda: store_mod.utcnow() + datetime.timedelta(seconds=seconds)


def _claim(store, name, worker='w1'):
    """Make ``name`` due now and claim it alone."""
    store.request_attestation(name)
    (host,), _ = store.claim_due(store_mod.utcnow(), 1, worker, _later(), scan=100,
                                 choose=lambda due: [n for n, _ in due if n == name])
    return host


def _history(store, name):
    return [(h.status, h.reasons, h.worker) for h in store.history(name)]


def test_a_claim_takes_due_hosts_oldest_first_once(store):
    now = store_mod.utcnow()
    store.request_attestation('compute-05')     # due at once, after the others
    claimed, next_due = store.claim_due(store_mod.utcnow(), 4, 'w1', _later())
    assert [h.name for h in claimed] == NAMES[:4]
    assert next_due is None                     # a full batch: more may be due
    for host in claimed:
        row = store.get_host(host.name)
        assert row.attested_by == 'w1' and row.next_attest_at == host.next_attest_at
        assert host.next_attest_at > now
        # what the round needs, read with the claim
        assert host.ak_name == row.ak_name and host.ak_public == row.ak_public
        assert host.status == 'unknown' and host.reasons == row.reasons
    rest, next_due = store.claim_due(store_mod.utcnow(), 100, 'w2', _later())
    assert sorted(h.name for h in rest) == NAMES[4:]
    assert next_due is None
    # nothing more is due: the earliest next time is the first claim's
    assert store.claim_due(store_mod.utcnow(), 100, 'w3', _later()) == (
        [], min(h.next_attest_at for h in claimed + rest))


def test_only_active_registrations_are_claimed(store):
    fx.simfleet.admit_host(store, 'compute-extra')
    store.register('compute-new', b'ek-new', 'f' * 64, None, b'ak', 'aa', 'digest')
    claimed, _ = store.claim_due(store_mod.utcnow(), 100, 'w1', _later())
    assert 'compute-new' not in {h.name for h in claimed}
    assert len(claimed) == len(NAMES) + 1


def test_workers_claiming_at_once_never_share_a_host(store):
    claims = collections.defaultdict(list)
    barrier = threading.Barrier(4)

    def worker(name):
        barrier.wait()
        for _ in range(200):        # until nothing is due (a claim may lose a race: [])
            now = store_mod.utcnow()
            got, next_due = store.claim_due(now, 2, name, _later())
            claims[name].extend(h.name for h in got)
            if not got and next_due is not None and next_due > now:
                return
    threads = [threading.Thread(target=worker, args=('w%d' % i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [n for names in claims.values() for n in names]
    assert sorted(every) == NAMES, claims          # each host once, none lost
    for worker_name, names in claims.items():
        assert all(store.get_host(n).attested_by == worker_name for n in names)


def test_choose_limits_a_claim_to_the_hosts_picked(store):
    picked = {'compute-03', 'compute-07'}
    claimed, _ = store.claim_due(store_mod.utcnow(), 10, 'w1', _later(), scan=100,
                                 choose=lambda due: [n for n, _ in due if n in picked])
    assert {h.name for h in claimed} == picked
    assert all(store.get_host(n).attested_by is None for n in set(NAMES) - picked)


def _state(reset_count=3):
    return core.HostState(reset_count=reset_count, ima_offset=7, ima_pcr=b'\x01' * 32,
                          restart_count=1, clock=1000, safe=True, firmware_version=42)


def test_verdicts_of_a_batch_unchanged_and_changed(store):
    claimed, _ = store.claim_due(store_mod.utcnow(), 3, 'w1', _later())
    a, b, c = claimed
    at = store_mod.utcnow()
    previous = store.save_claimed_verdicts([
        (a, 'trusted', [], at, _state(), True),
        (b, 'untrusted', ['ima: /tmp/x not allowed'], at, _state(), True),
        (c, 'unknown', ['not attested yet'], at, None, False),     # the same verdict
    ], 'w1')
    assert previous == ['unknown', 'unknown', 'unknown']
    row = store.get_host(a.name)
    assert (row.status, row.verified_at, row.last_answer_at) == ('trusted', at, at)
    assert (row.reset_count, row.ima_offset, row.tpm_clock, row.firmware_version) == \
        (3, 7, '1000', '42')
    assert _history(store, a.name) == [('trusted', '[]', 'w1')]
    assert store.get_host(b.name).status == 'untrusted'
    assert _history(store, b.name) == [('untrusted', '["ima: /tmp/x not allowed"]', 'w1')]
    row = store.get_host(c.name)
    # unchanged: verified_at moves, no answer recorded, no history row
    assert (row.status, row.verified_at, row.last_answer_at) == ('unknown', at, None)
    assert _history(store, c.name) == []


def test_an_unchanged_verdict_adds_no_history(store):
    for _ in range(3):
        host = _claim(store, 'compute-00')
        assert store.save_claimed_verdicts(
            [(host, 'trusted', [], store_mod.utcnow(), _state(), True)], 'w1') \
            == [host.status]
    assert _history(store, 'compute-00') == [('trusted', '[]', 'w1')]


def test_a_verdict_is_written_only_while_its_claim_holds(store):
    claimed, _ = store.claim_due(store_mod.utcnow(), 5, 'w1', _later())
    made_due, new_ak, deleted, taken, judged = claimed
    at = store_mod.utcnow()
    store.request_attestation(made_due.name)            # "attest now" during the round
    store.register(new_ak.name, ('ek-of-%s' % new_ak.name).encode(),
                   store.get_host(new_ak.name).ek_sha256, None, b'ak2', 'bb' * 34, 'd2')
    store.activate(new_ak.name, 'bb' * 34, 'd2')        # a new AK: another quote chain
    store.delete_host(deleted.name)
    # another worker's verdict landed meanwhile (the round's previous verdict is gone)
    store.save_verdict(judged.name, 'untrusted', ['pcr 4'], at, 'w2')
    # another worker claimed it after this one stalled past the interval
    again = _claim(store, taken.name, 'w2')
    results = store.save_claimed_verdicts(
        [(h, 'trusted', [], at, _state(), True) for h in claimed], 'w1')
    assert results == [None] * 5
    for name in (made_due.name, new_ak.name, taken.name):
        assert store.get_host(name).status == 'unknown'
        assert _history(store, name) == []
    assert store.get_host(judged.name).status == 'untrusted'
    assert store.get_host(taken.name).attested_by == 'w2'
    # the claim that holds writes
    assert store.save_claimed_verdicts([(again, 'trusted', [], at, _state(), True)],
                                       'w2') == ['unknown']


def test_history_is_trimmed_to_the_limit(store):
    statuses = ['trusted', 'untrusted'] * 3
    for status in statuses:
        host = _claim(store, 'compute-00')
        store.save_claimed_verdicts([(host, status, [] if status == 'trusted' else ['x'],
                                      store_mod.utcnow(), None, True)], 'w1',
                                    history_limit=4)
    assert [h[0] for h in _history(store, 'compute-00')] == list(reversed(statuses))[:4]


def test_a_round_outlasting_its_interval_keeps_its_claim(store):
    host = _claim(store, 'compute-00')
    token = host.next_attest_at
    # the round is still waiting for its agent when the host's next time comes
    assert store.renew_claims([(host, store_mod.utcnow() + datetime.timedelta(
        seconds=120))], 'w1') == [True]
    assert host.next_attest_at > token
    store_row = store.get_host('compute-00')
    assert (store_row.attested_by, store_row.next_attest_at) == ('w1', host.next_attest_at)
    # another worker's claim does not take it; the round's verdict is written
    others, _ = store.claim_due(store_mod.utcnow() + datetime.timedelta(seconds=90), 100,
                                'w2', _later())
    assert 'compute-00' not in {h.name for h in others}
    assert store.save_claimed_verdicts(
        [(host, 'trusted', [], store_mod.utcnow(), _state(), True)], 'w1') == ['unknown']
    # a claim that no longer holds is not renewed
    stale = _claim(store, 'compute-01')
    store.request_attestation('compute-01')
    before = store.get_host('compute-01').next_attest_at
    assert store.renew_claims([(stale, _later()())], 'w1') == [False]
    assert store.get_host('compute-01').next_attest_at == before


def _trust_all(store):
    """Every host claimed by w1 with the verdict 'trusted' written (its first: a change)."""
    claimed, _ = store.claim_due(store_mod.utcnow(), 100, 'w1', _later())
    store.save_claimed_verdicts([(h, 'trusted', [], store_mod.utcnow(), _state(), True)
                                 for h in claimed], 'w1')
    for name in NAMES:
        store.request_attestation(name)


def test_a_batch_of_unchanged_verdicts_writes_each_hosts_own_values(store):
    _trust_all(store)
    claimed, _ = store.claim_due(store_mod.utcnow(), 100, 'w1', _later())
    by_name = {h.name: h for h in claimed}
    assert sorted(by_name) == NAMES and all(h.status == 'trusted' for h in claimed)
    made_due, new_ak, deleted, taken = (by_name[n] for n in NAMES[:4])
    store.request_attestation(made_due.name)
    store.register(new_ak.name, ('ek-of-%s' % new_ak.name).encode(),
                   store.get_host(new_ak.name).ek_sha256, None, b'ak2', 'cc' * 34, 'd3')
    store.activate(new_ak.name, 'cc' * 34, 'd3')
    store.delete_host(deleted.name)
    again = _claim(store, taken.name, 'w2')
    at = store_mod.utcnow()
    verdicts = []
    for i, host in enumerate(claimed):
        if i % 3 == 2:      # the agent did not answer: no new state, no answer time
            verdicts.append((host, 'trusted', [], at + datetime.timedelta(seconds=i), None,
                             False))
        else:
            verdicts.append((host, 'trusted', [], at + datetime.timedelta(seconds=i),
                             _state(reset_count=10 + i), True))
    results = store.save_claimed_verdicts(verdicts, 'w1')
    lost = {made_due.name, new_ak.name, deleted.name, taken.name}
    assert results == [None if h.name in lost else 'trusted' for h in claimed]
    for i, (host, _, _, verified_at, state, answered) in enumerate(verdicts):
        if host.name in lost:
            continue
        row = store.get_host(host.name)
        # each host its own values, none of another's
        assert row.verified_at == verified_at, host.name
        assert row.reset_count == (state.reset_count if state else 3), host.name
        assert row.last_answer_at == (verified_at if answered else host.last_answer_at)
        assert _history(store, host.name) == [('trusted', '[]', 'w1')]     # no new row
    for name in (made_due.name, new_ak.name):
        assert store.get_host(name).verified_at < at
    assert store.get_host(taken.name).attested_by == 'w2'
    assert store.save_claimed_verdicts([(again, 'trusted', [], at, _state(), True)],
                                       'w2') == ['trusted']


def test_a_claim_carries_its_policy_version(store):
    store.create_policy('default', '{}', '{}', '{}')
    store.set_host_policy('compute-01', 'nowhere')      # no such policy
    version = store.policy_version('default')
    assert version is not None and store.policy_version('nowhere') is None
    claimed, _ = store.claim_due(store_mod.utcnow(), 100, 'w1', _later(),
                                 default_policy='default')
    assert len(claimed) == len(NAMES)
    for host in claimed:
        assert host.policy_version == (None if host.name == 'compute-01' else version)
    # a policy replaced (deleted and created again) has another version
    store.delete_policy('default')
    store.create_policy('default', '{"a": 1}', '{}', '{}')
    assert store.policy_version('default') != version
