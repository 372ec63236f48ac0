"""Jurisdictions end to end: a project restricted to its hosts' country gets its servers
and volumes there; restricted to a country this cloud has no host or backend in, its
server and volume are refused by the schedulers (Nova's and Cinder's JurisdictionFilter).

The schedulers cache a project's requirement for up to [trust_scheduling]
requirements_cache_ttl seconds (a change takes effect after at most that long): each test
is a class of its own, so it runs in a project of its own whose requirement no scheduler
has cached yet.
"""
import time

from tempest.common import waiters
from tempest import config
from tempest import exceptions
from tempest.lib.common.utils import test_utils
from tempest.lib import decorators
from tempest.lib import exceptions as lib_exc
from tempest.scenario import manager

CONF = config.CONF
# A country no host or backend of the test cloud is labelled with.
ELSEWHERE = 'IS'


class _JurisdictionTest(manager.ScenarioTest):
    credentials = ['primary', 'admin']

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.service_available.attestation:
            raise cls.skipException('the attestation API is not available')
        if 'scheduling' not in CONF.tclouds.capabilities or not CONF.tclouds.jurisdiction:
            raise cls.skipException('jurisdiction scheduling is not deployed')
        if CONF.tclouds.jurisdiction == ELSEWHERE:
            raise cls.skipException('the cloud is in %s' % ELSEWHERE)

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.attestation = cls.os_primary.attestation_v1.AttestationClient()
        # relaxing a requirement (deleting it) needs the project's manager or an admin
        cls.admin_attestation = cls.os_admin.attestation_v1.AttestationClient()
        cls.admin_servers = cls.os_admin.servers_client
        cls.admin_volumes = cls.os_admin.volumes_client_latest
        cls.admin_aggregates = cls.os_admin.aggregates_client

    def _restrict(self, countries):
        project = self.attestation.tenant_id
        self.attestation.set_requirement(project, jurisdictions=countries)
        self.addCleanup(test_utils.call_and_ignore_notfound_exc,
                        self.admin_attestation.unset_requirement, project)

    def _countries_of_host(self, host):
        return {a['metadata'].get('trust:jurisdiction')
                for a in self.admin_aggregates.list_aggregates()['aggregates']
                if host in a['hosts']}


class JurisdictionInsideTest(_JurisdictionTest):

    @decorators.idempotent_id('6a8d2c41-1b4e-4f0a-9e3c-2d7b5f1a6001')
    def test_server_and_volume_inside_the_allowed_country(self):
        country = CONF.tclouds.jurisdiction
        self._restrict([country])
        server = self.create_server(wait_until='ACTIVE')
        host = self.admin_servers.show_server(server['id'])['server']['OS-EXT-SRV-ATTR:host']
        self.assertIn(country, self._countries_of_host(host))
        volume = self.create_volume()
        backend = self.admin_volumes.show_volume(volume['id'])['volume'][
            'os-vol-host-attr:host']
        self.assertTrue(backend, volume)


class JurisdictionServerRefusedTest(_JurisdictionTest):

    @decorators.idempotent_id('6a8d2c41-1b4e-4f0a-9e3c-2d7b5f1a6002')
    def test_server_refused_outside_the_allowed_country(self):
        self._restrict([ELSEWHERE])
        server = self.create_server(wait_until=None)
        self.assertRaises((exceptions.BuildErrorException, lib_exc.TimeoutException),
                          waiters.wait_for_server_status, self.servers_client,
                          server['id'], 'ACTIVE')
        body = self.admin_servers.show_server(server['id'])['server']
        self.assertEqual('ERROR', body['status'])
        self.assertIn('No valid host', body.get('fault', {}).get('message', ''))


class JurisdictionVolumeRefusedTest(_JurisdictionTest):

    @decorators.idempotent_id('6a8d2c41-1b4e-4f0a-9e3c-2d7b5f1a6003')
    def test_volume_refused_outside_the_allowed_country(self):
        self._restrict([ELSEWHERE])
        volume = self.volumes_client.create_volume(size=CONF.volume.volume_size)['volume']
        self.addCleanup(self.volumes_client.wait_for_resource_deletion, volume['id'])
        self.addCleanup(test_utils.call_and_ignore_notfound_exc,
                        self.volumes_client.delete_volume, volume['id'])
        deadline = time.monotonic() + CONF.volume.build_timeout
        status = None
        while time.monotonic() < deadline:
            status = self.volumes_client.show_volume(volume['id'])['volume']['status']
            if status != 'creating':
                break
            time.sleep(CONF.volume.build_interval)
        self.assertEqual('error', status)
