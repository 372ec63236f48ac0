"""Attestation-based scheduling end to end: a project that requires trusted hosts gets its
servers on attested hosts only; a host that turns untrusted is disabled by the trust
reactor and refused by the scheduler, and is enabled again once trusted."""
import shlex
import subprocess
import time

from tempest import config
from tempest.lib.common.utils import test_utils
from tempest.lib import decorators
from tempest.scenario import manager

CONF = config.CONF


class TrustedSchedulingTest(manager.ScenarioTest):
    credentials = ['primary', 'admin']

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.service_available.attestation:
            raise cls.skipException('the attestation API is not available')
        if 'scheduling' not in CONF.tclouds.capabilities:
            raise cls.skipException('attestation-based scheduling is not deployed')
        if not CONF.tclouds.compute_hosts:
            raise cls.skipException('no attested compute hosts')

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.attestation = cls.os_primary.attestation_v1.AttestationClient()
        cls.admin_attestation = cls.os_admin.attestation_v1.AttestationClient()
        cls.admin_servers = cls.os_admin.servers_client
        cls.admin_services = cls.os_admin.services_client

    def _require_trusted_hosts(self):
        project = self.attestation.tenant_id
        self.attestation.set_requirement(project, trusted_host=True)
        # relaxing a requirement (deleting it) needs the project's manager or an admin
        self.addCleanup(test_utils.call_and_ignore_notfound_exc,
                        self.admin_attestation.unset_requirement, project)

    def _host_of(self, server):
        return self.admin_servers.show_server(server['id'])['server'][
            'OS-EXT-SRV-ATTR:host']

    def _wait(self, what, predicate, timeout=None):
        timeout = timeout or CONF.tclouds.attestation_interval * 12
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail('%s: not within %d s' % (what, timeout))
            time.sleep(2)

    def _service(self, host):
        services = self.admin_services.list_services(binary='nova-compute',
                                                     host=host)['services']
        return services[0] if services else None

    @decorators.idempotent_id('3b0f4a1e-6f2e-4c59-a1d4-7f3e2b9c5001')
    def test_trusted_server_lands_on_attested_host(self):
        self._require_trusted_hosts()
        server = self.create_server(wait_until='ACTIVE')
        host = self._host_of(server)
        self.assertIn(host, CONF.tclouds.compute_hosts)
        verdict = self.admin_attestation.show_host(host)['host']
        self.assertEqual('trusted', verdict['status'], verdict)
        # The tenant sees its server's trust, never the host's name.
        view = self.attestation.show_server_trust(server['id'])
        self.assertEqual('trusted', view['server']['status'], view)
        self.assertNotIn(host, str(view))

    @decorators.idempotent_id('3b0f4a1e-6f2e-4c59-a1d4-7f3e2b9c5002')
    def test_untrusted_host_refused_and_disabled(self):
        hosts = CONF.tclouds.compute_hosts
        if len(hosts) < 2 or not CONF.tclouds.tamper_command:
            raise self.skipException('needs two attested hosts and a tamper command')
        bad, good = hosts[-1], hosts[0]
        self.addCleanup(self._restore, bad)
        self._run(CONF.tclouds.tamper_command, bad)
        verdict = self._wait('%s untrusted' % bad, lambda: (
            lambda v: v if v['status'] == 'untrusted' else None)(
                self.admin_attestation.show_host(bad)['host']))
        self.assertTrue(verdict.get('reasons'), verdict)
        service = self._wait('nova-compute of %s disabled' % bad, lambda: (
            lambda s: s if s and s['status'] == 'disabled' else None)(self._service(bad)))
        self.assertTrue(service.get('disabled_reason'), service)
        self._require_trusted_hosts()
        for _ in range(2):
            server = self.create_server(wait_until='ACTIVE')
            self.assertEqual(good, self._host_of(server))

    def _run(self, template, host):
        subprocess.run(shlex.split(template.format(host=host)), check=True, timeout=120)

    def _restore(self, host):
        self._run(CONF.tclouds.restore_command, host)
        self._wait('%s trusted again' % host, lambda: self.admin_attestation.show_host(
            host)['host']['status'] == 'trusted')
        self._wait('nova-compute of %s enabled again' % host, lambda: (
            lambda s: s and s['status'] == 'enabled')(self._service(host)))
