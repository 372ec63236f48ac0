"""Placement trait sync costs calls per change, not per host (issue 14, point 3).

Real Nova (twelve fake computes) and real Placement; every Placement request of the trait
sync is counted. A pass with nothing changed makes one call whatever the fleet size (the
provider list with generations), a pass with k changed hosts at most 1 + 2k; changes made
by others (nova-compute's own trait updates, an operator removing a trait) are noticed by
the generation and repaired. Counts, never times.
"""
import nova.tests.functional  # noqa: F401,I100  (nova's patching first)
import nova.conf  # noqa: F401,H306,I100  (nova's [DEFAULT] host before tclouds_openstack.conf)

import pytest

from tclouds_openstack.attestation.backends import base as backend_base
from tclouds_openstack.nova import placement as trust_placement
from tclouds_openstack.requirements import model
from tests.functional.nova import base

HOSTS = tuple('host%d' % i for i in range(1, 13))


class CountingPlacement(trust_placement.PlacementClient):
    """The trait sync's Placement client, recording (method, path) of every request."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def request(self, method, url, body=None, params=None):
        self.calls.append((method, url))
        return super().request(method, url, body=body, params=params)

    def take(self):
        calls, self.calls = self.calls, []
        return calls


@pytest.mark.forked
class TestTraitSyncCost(base.TrustTestBase):
    hosts = HOSTS

    def placement_client(self):
        client = super().placement_client()
        counting = CountingPlacement(client.http.session,
                                     endpoint_override=self.placement.fixture.endpoint)
        self.counted = counting
        return counting

    def setUp(self):
        super().setUp()
        self.trust_all()
        self.sync.full_sync()               # the first pass reads every provider once
        self.counted.take()
        self.hypervisor_lists = 0
        real = self.sync.nova.hypervisors.list

        def counting_list(*args, **kwargs):
            self.hypervisor_lists += 1
            return real(*args, **kwargs)
        self.sync.nova.hypervisors.list = counting_list

    def test_nothing_changed_is_one_call(self):
        for _ in range(3):
            self.sync.full_sync()
            self.assertEqual([('GET', '/resource_providers')], self.counted.take())
        self.assertEqual(0, self.hypervisor_lists)
        for host in HOSTS:
            self.assertIn(model.TRAIT_TRUSTED, self.traits_of(host))

    def test_k_changed_hosts_cost_at_most_two_calls_each(self):
        changed = ('host2', 'host7', 'host11')
        for host in changed:
            self.backend.set(host, backend_base.UNTRUSTED, 'PCR 7 changed')
        self.sync.full_sync()
        calls = self.counted.take()
        self.assertLessEqual(len(calls), 10 + 2 * len(changed), calls)
        # the traits we wrote last are still current: one write per changed host
        self.assertEqual(1 + len(changed), len(calls), calls)
        self.assertEqual(len(changed), sum(1 for m, _u in calls if m == 'PUT'))
        for host in HOSTS:
            self.assertEqual(host not in changed, model.TRAIT_TRUSTED in self.traits_of(host))
        self.sync.full_sync()
        self.assertEqual(1, len(self.counted.take()))

    def test_changes_by_others_are_seen_by_their_generation(self):
        # nova-compute adds COMPUTE_STATUS_DISABLED to host3's provider (a new generation)
        svc = self.admin_api.get_services(host='host3', binary='nova-compute')[0]
        self.admin_api.put_service(svc['id'], {'status': 'disabled'})
        # an operator removes our trait from host5 by hand
        rp = self._get_provider_uuid_by_host('host5')
        traits = self.traits_of('host5') - {model.TRAIT_TRUSTED}
        self.counted.take()
        self._set_provider_traits(rp, sorted(traits))
        self.sync.full_sync()
        calls = self.counted.take()
        # host3: read, nothing to write; host5: read and write back
        self.assertEqual(1 + 1 + 2, len(calls), calls)
        self.assertIn(model.TRAIT_TRUSTED, self.traits_of('host5'))
        self.assertIn('COMPUTE_STATUS_DISABLED', self.traits_of('host3'))
        self.assertIn(model.TRAIT_TRUSTED, self.traits_of('host3'))
        self.assertEqual(0, self.hypervisor_lists)

    def test_attestation_service_down_removes_every_trust_trait(self):
        self.backend.available = False
        self.sync.full_sync()
        calls = self.counted.take()
        self.assertLessEqual(len(calls), 10 + 2 * len(HOSTS))
        for host in HOSTS:
            self.assertNotIn(model.TRAIT_TRUSTED, self.traits_of(host))
