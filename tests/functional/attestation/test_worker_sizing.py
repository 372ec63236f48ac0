"""A worker's concurrency sized from its share of the fleet, and the policy of a claim.

``[attestation] concurrency`` unset: twice the rounds the worker's share needs in flight
(active hosts / workers / interval x seconds a round holds its slot), at least 32, at most
``max_concurrency``; set, exactly that. The worker loop's rounds use the policy version
read with their claim.
"""
import contextlib
import json
import time
import types

import pytest

from tclouds_openstack.attestation.service import verifier as verifier_mod
from tests.functional.attestation import conftest as fx


@pytest.fixture
def store(tmp_path):
    st = fx.store_mod.Store('sqlite:///%s' % (tmp_path / 'attestation.sqlite'))
    st.migrate()
    for i in range(40):
        fx.simfleet.admit_host(st, 'compute-%02d' % i)
    st.register('compute-new', b'ek-new', 'f' * 64, None, b'ak', 'aa', 'digest')  # not active
    yield st
    st.facade.writer.get_engine().dispose()


@contextlib.contextmanager
def _verifier(store, **options):
    """A worker's verifier over ``store`` (not started); its executor and transport closed after."""
    conf = fx.make_conf(store.connection, **options)
    transport = fx.simfleet.transport(conf)
    verifier = verifier_mod.Verifier(conf, store, transport, worker='w1')
    try:
        yield verifier
    finally:
        verifier.executor.shutdown()
        transport.cleanup()


def _rounds(verifier, seconds, count=10):
    """``count`` rounds that held their slot ``seconds`` each (what the loop records)."""
    with verifier._inflight_lock:
        verifier._round_seconds.extend([seconds] * count)


@pytest.mark.parametrize('interval, rounds, expected', [
    (10.0, None, 32),           # 40 hosts at 10 s: 8 in flight needed, the floor
    (0.5, None, 160),           # 40 hosts at 0.5 s, 1 s a round (assumed): 2 x 80
    (0.5, 2.0, 256),            # 2 s a round: 320, capped at max_concurrency
    (1.0, 0.5, 40),             # 2 x 40 x 0.5
])
def test_concurrency_unset_is_sized_from_the_share(store, interval, rounds, expected):
    with _verifier(store, interval=interval) as verifier:
        assert verifier.conf.attestation.concurrency is None
        if rounds is not None:
            _rounds(verifier, rounds)
        assert verifier.concurrency() == expected


def test_concurrency_follows_the_fleet_and_its_bounds(store):
    with _verifier(store, interval=0.5, max_concurrency=100) as verifier:
        assert verifier.concurrency() == 100            # 160 needed, capped
        store.delete_host('compute-00')
        verifier._fleet_at = 0.0                        # the next count (every interval)
        _rounds(verifier, 0.5, count=256)
        assert verifier.concurrency() == 78             # 2 x 39 / 0.5 x 0.5


def test_a_round_freed_records_how_long_it_held_its_slot(store):
    with _verifier(store) as verifier:
        host = types.SimpleNamespace(claimed_at=time.monotonic() - 3.0)
        with verifier._inflight_lock:
            verifier._freed(host)
            verifier._freed(types.SimpleNamespace())        # not claimed by the loop
        assert len(verifier._round_seconds) == 1 and verifier._round_seconds[0] >= 3.0


def test_concurrency_set_is_kept(store):
    with _verifier(store, interval=0.5, concurrency=7) as verifier:
        _rounds(verifier, 5.0)
        assert verifier.concurrency() == 7
        assert verifier.executor._max_workers == 7


def test_a_round_uses_the_policy_version_of_its_claim(store):
    documents = {k: json.dumps(v) for k, v in fx.golden_policy_documents().items()}
    store.create_policy('default', **documents)
    cache = verifier_mod.PolicyCache(store)
    claimed, _ = store.claim_due(fx.store_mod.utcnow(), 1, 'w1', fx.store_mod.utcnow,
                                 default_policy='default')
    first = cache.get('default', claimed[0].policy_version)
    assert first is not None
    assert cache.get('default', claimed[0].policy_version) is first     # not parsed again
    # replaced: a claim made after it carries the new version, and the round gets the new
    # policy even within the cache's TTL
    store.delete_policy('default')
    store.create_policy('default', mb_engine='accept-all', **documents)
    claimed, _ = store.claim_due(fx.store_mod.utcnow(), 1, 'w1', fx.store_mod.utcnow,
                                 default_policy='default')
    second = cache.get('default', claimed[0].policy_version)
    assert second is not first and second.mb_engine == 'accept-all'
    # deleted: the claim says there is none
    store.delete_policy('default')
    claimed, _ = store.claim_due(fx.store_mod.utcnow(), 1, 'w1', fx.store_mod.utcnow,
                                 default_policy='default')
    assert claimed[0].policy_version is None
    assert cache.get('default', claimed[0].policy_version) is None
