"""Jurisdiction requirements in real Nova: boot, cold migrate, resize, evacuate, unshelve.

host1 (preferred) and host3 are labelled DE, host2 (second preference) US: every move
that would naturally pick host2 must pick host3 instead.
"""
import os

import nova.tests.functional  # noqa: F401,I100  (nova's patching first)
import nova.conf  # noqa: F401,H306,I100  (nova's [DEFAULT] host before tclouds_openstack.conf)

import fixtures
import pytest

from tclouds_openstack.attestation.backends import base as backend_base
from tclouds_openstack.nova import scheduler as trust_scheduler
from tclouds_openstack.requirements import client as req_client
from tclouds_openstack.requirements import model
from tests.functional.cinder import requirements_server
from tests.functional.nova import base
from tests.functional import personas as personas_mod


@pytest.mark.forked
class TestJurisdiction(base.TrustTestBase):
    labels = {'host1': 'DE', 'host2': 'US', 'host3': 'DE'}

    def setUp(self):
        super().setUp()
        self.sync.full_sync()
        self.de = self.flavor_with('de', **{model.SPEC_JURISDICTION: 'DE'})

    def test_labels_become_traits(self):
        self.assertIn('CUSTOM_JURISDICTION_DE', self.traits_of('host1'))
        self.assertIn('CUSTOM_JURISDICTION_US', self.traits_of('host2'))
        self.assertNotIn('CUSTOM_JURISDICTION_US', self.traits_of('host3'))
        # nova-compute's own traits are untouched
        self.assertIn('COMPUTE_NODE', self.traits_of('host1'))

    def test_boot_migrate_resize_stay_in_de(self):
        server = self.boot(self.de)
        self.assertEqual('host1', self.host_of(server))
        server = self._migrate_server(server)
        self.assertEqual('host3', self.host_of(server))
        server = self._confirm_resize(server)
        de_large = self.flavor_with('de-large', **{model.SPEC_JURISDICTION: 'DE'})
        server = self._resize_server(server, de_large)
        self.assertEqual('host1', self.host_of(server))
        self._confirm_resize(server)
        # No other DE host available: US host2 is never used, the migration fails.
        self.admin_api.put_service(self._service_id('host3'), {'status': 'disabled'})
        self.admin_api.post_server_action(server['id'], {'migrate': None})
        self._wait_for_action_fail_completion(server, 'migrate', 'conductor_migrate_server')
        server = self.api.get_server(server['id'])
        self.assertEqual('host1', self.host_of(server))

    def test_evacuate_stays_in_de(self):
        server = self.boot(self.de)
        self.assertEqual('host1', self.host_of(server))
        self.computes['host1'].stop()
        self.admin_api.put_service(self._service_id('host1'), {'forced_down': True})
        server = self._evacuate_server(server, expected_host='host3')
        self.assertEqual('host3', self.host_of(server))

    def test_unshelve_stays_in_de(self):
        server = self.boot(self.de)
        self._shelve_server(server)
        self.admin_api.put_service(self._service_id('host1'), {'status': 'disabled'})
        server = self._unshelve_server(server)
        self.assertEqual('host3', self.host_of(server))

    def test_several_countries_enforced_by_filter(self):
        # DE,FR cannot be one required trait: Placement returns all hosts, the filter
        # removes host2 (US) with the reason in the log.
        with self.assertLogs('tclouds_openstack.nova.scheduler', 'INFO') as logs:
            server = self.boot(hints={model.HINT_JURISDICTION: 'DE,FR'})
            self.assertEqual('host1', self.host_of(server))
            server = self._migrate_server(server)
        self.assertEqual('host3', self.host_of(server))
        self.assertIn('host host2: host is in US, allowed: DE,FR', '\n'.join(logs.output))

    def test_no_host_in_country_fault(self):
        server = self.boot(hints={model.HINT_JURISDICTION: 'FR'}, expected='ERROR')
        self.assertIn('no compute host is labelled with jurisdiction FR',
                      server['fault']['message'])
        server = self.boot(hints={model.HINT_JURISDICTION: 'FR,IT'}, expected='ERROR')
        self.assertIn('no candidate host is in an allowed jurisdiction',
                      server['fault']['message'])

    def test_conflicting_requirements_fault(self):
        server = self.boot(self.de, hints={model.HINT_JURISDICTION: 'US'}, expected='ERROR')
        self.assertIn('contradict', server['fault']['message'])

    def _service_id(self, host):
        return self.admin_api.get_services(host=host, binary='nova-compute')[0]['id']


@pytest.mark.forked
class TestProjectRequirement(base.TrustTestBase):
    """The project's stored requirement (real requirements API over HTTP) drives Nova."""
    labels = {'host1': 'DE', 'host2': 'US', 'host3': 'DE'}

    def setUp(self):
        super().setUp()
        workdir = self.useFixture(fixtures.TempDir()).path
        # a forked test process exits without atexit: no per-process Keystone template
        self.personas = personas_mod.start(workdir, from_template=False)
        self.addCleanup(self.personas.stop)
        self.reqs = requirements_server.RequirementsServer(
            os.path.join(workdir, 'req.sqlite'), self.personas).start()
        self.addCleanup(self.reqs.stop)
        self.flags(project_requirements=True, group='trust_scheduling')
        self.useFixture(fixtures.MockPatchObject(
            trust_scheduler, 'PROJECTS',
            req_client.ProjectRequirements(self.flags_conf(), self.reqs.client('service'))))
        self.reqs.client('admin').set(
            self.api.project_id, trusted_host='required', jurisdictions=['DE'])
        self.backend.set('host1', backend_base.UNTRUSTED, 'PCR 4 changed')
        self.trust_all('host2', 'host3')
        self.sync.full_sync()

    def test_plain_flavor_follows_project_requirement(self):
        # host1 (preferred) is untrusted, host2 is in the US: only host3 qualifies
        del self.backend.calls[:]
        self.assertEqual('host3', self.host_of(self.boot()))
        self.assertEqual([['host3']], self.candidates())

    def test_requirements_api_down_fails_closed(self):
        self.reqs.stop()
        server = self.boot(expected='ERROR')
        self.assertIn('cannot read the trust requirements of project', server['fault']['message'])
