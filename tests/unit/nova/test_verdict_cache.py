"""The filters' verdict cache: one batched call per request, failures fail closed."""
import datetime

import pytest

from tclouds_openstack.attestation.backends import base
from tclouds_openstack import conf as tconf
from tclouds_openstack.nova import verdicts


class Backend(base.AttestationBackend):
    def __init__(self, error=None):
        super().__init__(None)
        self.calls = []
        self.error = error

    def get_verdicts(self, hosts):
        self.calls.append(list(hosts))
        if self.error:
            raise self.error
        now = datetime.datetime.now(datetime.timezone.utc)
        return {h: base.Verdict(h, base.TRUSTED, (), now) for h in hosts}


@pytest.fixture
def scheduler():
    yield verdicts
    tconf.CONF.clear_override('verdict_cache_ttl', group='trust_scheduling')


def test_one_batched_call_and_ttl(scheduler):
    backend = Backend()
    cache = scheduler.VerdictCache(lambda: backend)
    tconf.CONF.set_override('verdict_cache_ttl', 60, group='trust_scheduling')
    assert set(cache.lookup(['a', 'b', 'c'])) == {'a', 'b', 'c'}
    assert backend.calls == [['a', 'b', 'c']]
    cache.lookup(['b'])                     # within TTL and known: no call
    assert len(backend.calls) == 1
    cache.lookup(['b', 'd'])                # an unknown host: one new batch
    assert backend.calls[-1] == ['b', 'd']
    tconf.CONF.set_override('verdict_cache_ttl', 0, group='trust_scheduling')
    cache.lookup(['b'])
    assert len(backend.calls) == 3


def test_backend_bug_is_unavailable_not_trusted(scheduler):
    cache = scheduler.VerdictCache(lambda: Backend(error=KeyError('boom')))
    with pytest.raises(base.BackendUnavailable, match='KeyError'):
        cache.lookup(['a'])


def test_large_candidate_lists_are_split_at_the_api_limit(scheduler):
    backend = Backend()
    cache = scheduler.VerdictCache(lambda: backend)
    hosts = ['h%04d' % i for i in range(2500)]
    assert len(cache.lookup(hosts)) == 2500
    assert [len(c) for c in backend.calls] == [1000, 1000, 500]
