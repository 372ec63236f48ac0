"""A compute node whose host Nova's cells do not map yet gets its traits once mapped.

nova-compute creates its node's resource provider as it starts; Nova's hypervisor list
leaves the node out until ``nova-manage cell_v2 discover_hosts`` maps the host. The trait
sync that ran in between (a reactor started before discovery, a host added to a running
cloud) must pick the host up once it is mapped, and a provider that stays unlisted must not
cost a (paged) hypervisor list on every pass. Real Nova and Placement; passes and calls are
counted, never times.
"""
import nova.tests.functional  # noqa: F401,I100  (nova's patching first)
import nova.conf  # noqa: F401,H306,I100  (nova's [DEFAULT] host before tclouds_openstack.conf)

from nova import objects
import pytest

from tclouds_openstack.nova import placement as trust_placement
from tclouds_openstack.requirements import model
from tests.functional.nova import base


@pytest.mark.forked
class TestUnmappedComputeNode(base.TrustTestBase):
    hosts = ('host1', 'host2')

    def setUp(self):
        super().setUp()
        self.trust_all()
        self.hypervisor_lists = 0
        real = self.sync.compute_nodes

        def counting_list():
            self.hypervisor_lists += 1
            return real()
        self.sync.compute_nodes = counting_list

    def _unmap(self, host):
        # (Nova's hypervisor API, which the helpers ask, no longer shows it)
        self.rp2 = self._get_provider_uuid_by_host(host)
        mapping = objects.HostMapping.get_by_host(self.ctxt, host)
        cell = mapping.cell_mapping
        mapping.destroy()
        return cell

    def test_host_mapped_after_the_first_pass_gets_its_traits(self):
        cell = self._unmap('host2')
        result = self.sync.full_sync()
        self.assertEqual(['host1'], sorted(result))
        self.assertIn(model.TRAIT_TRUSTED, self.traits_of('host1'))
        self.assertNotIn(model.TRAIT_TRUSTED, self._get_provider_traits(self.rp2))
        # discover_hosts maps it: the very next pass asks Nova again
        objects.HostMapping(self.ctxt, host='host2', cell_mapping=cell).create()
        result = self.sync.full_sync()
        self.assertEqual(['host1', 'host2'], sorted(result))
        self.assertIn(model.TRAIT_TRUSTED, self.traits_of('host2'))
        # everything is mapped: no more hypervisor lists
        lists = self.hypervisor_lists
        for _ in range(5):
            self.sync.full_sync()
        self.assertEqual(lists, self.hypervisor_lists)

    def test_provider_that_stays_unlisted_is_asked_for_ever_less_often(self):
        cell = self._unmap('host2')
        self.sync.full_sync()
        self.assertEqual(1, self.hypervisor_lists)
        passes = 4 * trust_placement._UNMAPPED_RECHECK_MAX_PASSES
        for _ in range(passes):
            self.sync.full_sync()
        # re-read after 1, 2, 4, ... passes, then every _UNMAPPED_RECHECK_MAX_PASSES
        self.assertLess(self.hypervisor_lists, 1 + 12)
        self.assertGreater(self.hypervisor_lists, 1 + 3)
        self.assertNotIn(model.TRAIT_TRUSTED, self._get_provider_traits(self.rp2))
        # mapped late: still found, within the longest interval
        objects.HostMapping(self.ctxt, host='host2', cell_mapping=cell).create()
        for _ in range(trust_placement._UNMAPPED_RECHECK_MAX_PASSES):
            self.sync.full_sync()
        self.assertIn(model.TRAIT_TRUSTED, self.traits_of('host2'))
