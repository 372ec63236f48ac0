"""Attestation API: the operator's view of hosts, verdicts and policies; tenants see none
of it."""
from tempest.lib import decorators
from tempest.lib import exceptions as lib_exc

from tclouds_openstack.tests.tempest.api import base

CONF = base.CONF


class AttestationAdminTest(base.BaseTCloudsTest):
    service = 'attestation'
    capability = 'attestation'

    @decorators.idempotent_id('0f8c7d8e-3f55-4a5e-9d57-5a9f37a1d001')
    def test_hosts_listed_trusted(self):
        hosts = {h['host']: h for h in self.admin_attestation.list_hosts()['hosts']}
        for name in CONF.tclouds.compute_hosts:
            self.assertIn(name, hosts)
            self.assertEqual('trusted', hosts[name]['status'], hosts[name])
            self.assertEqual('active', hosts[name]['registration'])

    @decorators.idempotent_id('0f8c7d8e-3f55-4a5e-9d57-5a9f37a1d002')
    def test_host_detail_and_history(self):
        for name in CONF.tclouds.compute_hosts:
            host = self.admin_attestation.show_host(name)['host']
            self.assertEqual(name, host['host'])
            self.assertIsNotNone(host['verified_at'])
            history = self.admin_attestation.host_history(name, limit=5)['history']
            self.assertGreater(len(history), 0)
            self.assertLessEqual(len(history), 5)

    @decorators.idempotent_id('0f8c7d8e-3f55-4a5e-9d57-5a9f37a1d003')
    def test_verdicts_batch(self):
        hosts = CONF.tclouds.compute_hosts
        if not hosts:
            raise self.skipException('no attested compute hosts configured')
        verdicts = self.admin_attestation.verdicts(hosts)['verdicts']
        self.assertEqual(sorted(hosts), sorted(verdicts))

    @decorators.idempotent_id('0f8c7d8e-3f55-4a5e-9d57-5a9f37a1d004')
    def test_reference_policy(self):
        name = CONF.tclouds.appraisal_policy
        names = [p['name'] for p in self.admin_attestation.list_policies()['policies']]
        self.assertIn(name, names)
        policy = self.admin_attestation.show_policy(name)['policy']
        self.assertEqual(name, policy['name'])

    @decorators.idempotent_id('0f8c7d8e-3f55-4a5e-9d57-5a9f37a1d005')
    def test_hosts_enrolled(self):
        for name in CONF.tclouds.compute_hosts:
            enrolment = self.admin_attestation.show_enrolment(name)['enrolment']
            self.assertEqual(64, len(enrolment['ek_sha256']))
            self.assertEqual(1, len(enrolment['credentials']))

    @decorators.idempotent_id('0f8c7d8e-3f55-4a5e-9d57-5a9f37a1d006')
    def test_unknown_host_404(self):
        self.assertRaises(lib_exc.NotFound, self.admin_attestation.show_host,
                          'no-such-host-%s' % self.id().rsplit('.', 1)[-1])


class AttestationTenantTest(base.BaseTCloudsTest):
    service = 'attestation'
    capability = 'attestation'

    @decorators.idempotent_id('0f8c7d8e-3f55-4a5e-9d57-5a9f37a1d011')
    def test_tenant_cannot_list_hosts(self):
        self.assertRaises(lib_exc.Forbidden, self.attestation.list_hosts)

    @decorators.idempotent_id('0f8c7d8e-3f55-4a5e-9d57-5a9f37a1d012')
    def test_tenant_cannot_read_policies(self):
        self.assertRaises(lib_exc.Forbidden, self.attestation.list_policies)

    @decorators.idempotent_id('0f8c7d8e-3f55-4a5e-9d57-5a9f37a1d013')
    def test_tenant_trust_view_of_own_servers(self):
        # No server yet: an empty list, and no host name anywhere in the answer.
        body = self.attestation.list_server_trust()
        self.assertEqual([], body['servers'])
