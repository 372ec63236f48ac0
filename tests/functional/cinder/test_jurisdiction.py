"""Real Cinder (API, scheduler, three volume services, fake RPC) with JurisdictionFilter:
a project restricted to DE never gets a volume on the US backend."""
import os

# Cinder first: it owns [DEFAULT] host, which our options define only outside Cinder.
from cinder.tests.functional import functional_helpers  # noqa: F401
import fixtures
import pytest

from tclouds_openstack.cinder import scheduler as trust_cinder
from tests.functional.cinder import requirements_server
from tests.functional import cinder_harness
from tests.functional import personas as personas_mod

DE_PROJECT = 'a0e0c3a9a3bb4b8c9bde0de0de0de0de'
US_PROJECT = 'b0e0c3a9a3bb4b8c9bde0de0de0de0df'


@pytest.mark.forked
class TestCinderJurisdiction(cinder_harness.CinderFunctionalTest):

    def _get_flags(self):
        # registers the scheduler options (needs cinder.objects registered first)
        from cinder.scheduler import host_manager  # noqa: F401
        f = super()._get_flags()
        f['scheduler_default_filters'] = {'v': ['AvailabilityZoneFilter', 'CapacityFilter',
                                                'CapabilitiesFilter', 'JurisdictionFilter']}
        f['default_volume_type'] = {'v': self._vol_type_name}
        f['backend_jurisdictions'] = {'v': {'de-node': 'DE', 'us-node': 'US'},
                                      'g': 'trust_cinder'}
        return f

    def setUp(self):
        workdir = self.useFixture(fixtures.TempDir()).path
        # a forked test process exits without atexit: no per-process Keystone template
        self.personas = personas_mod.start(workdir, from_template=False)
        self.addCleanup(self.personas.stop)
        self.reqs = requirements_server.RequirementsServer(
            os.path.join(workdir, 'req.sqlite'), self.personas).start()
        super().setUp()
        self.addCleanup(self.reqs.stop)
        trust_cinder.PROJECTS.clear()
        trust_cinder.PROJECTS._client = self.reqs.client('service')   # the scheduler's
        self.start_service('volume', host='us-node')
        self.start_service('volume', host='de-node')
        self.api.create_type(self._vol_type_name)
        admin = self.reqs.client('admin')
        admin.set(DE_PROJECT, jurisdictions=['DE'])
        admin.set(US_PROJECT, jurisdictions=['US'])

    def _create(self, project, expect='available'):
        self._update_project(project)
        vol = self.api.post_volume({'volume': {'size': 1}})
        vol = self._poll_volume_while(vol['id'], ['creating'])
        self.assertEqual(expect, vol['status'])
        return vol

    def admin_api_host(self, volume_id):
        from cinder import context
        from cinder import objects
        return objects.Volume.get_by_id(context.get_admin_context(), volume_id).host

    def test_de_project_never_on_us_backend(self):
        hosts = {self.admin_api_host(self._create(DE_PROJECT)['id']) for _ in range(4)}
        self.assertEqual({'de-node'}, {h.partition('@')[0].partition('#')[0] for h in hosts})
        us = self.admin_api_host(self._create(US_PROJECT)['id'])
        self.assertEqual('us-node', us.partition('@')[0].partition('#')[0])

    def test_no_de_backend_left_means_error_not_us(self):
        for svc in list(self._services):
            if svc.host == 'de-node':
                svc.stop()
                self._services.remove(svc)
        from cinder import context
        from cinder import objects
        ctxt = context.get_admin_context()
        de = objects.Service.get_by_args(ctxt, 'de-node', 'cinder-volume')
        de.disabled = True
        de.save()
        vol = self._create(DE_PROJECT, expect='error')
        self.assertIsNone(self.admin_api_host(vol['id']))

    def test_requirements_api_down_fails_closed(self):
        self.reqs.stop()
        trust_cinder.PROJECTS.clear()
        vol = self._create(DE_PROJECT, expect='error')
        self.assertIsNone(self.admin_api_host(vol['id']))
