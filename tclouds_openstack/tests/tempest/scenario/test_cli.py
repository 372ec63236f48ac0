"""The ``openstack`` CLI of the tclouds OSC plugin, as an admin and as a tenant, against the
deployed services (each persona with its own Keystone user)."""
import json
import os
import subprocess

from tempest import config
from tempest.lib import decorators
from tempest import test

CONF = config.CONF


class CLITest(test.BaseTestCase):
    credentials = ['primary', 'admin']

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not (CONF.service_available.attestation and CONF.service_available.secure_log):
            raise cls.skipException('the attestation and secure log APIs are needed')

    def _cli(self, creds, *args, expect_ok=True):
        c = creds.credentials
        env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
        env.update({'OS_AUTH_URL': CONF.identity.uri_v3, 'OS_IDENTITY_API_VERSION': '3',
                    'OS_USERNAME': c.username, 'OS_PASSWORD': c.password,
                    'OS_PROJECT_NAME': c.project_name,
                    'OS_USER_DOMAIN_NAME': c.user_domain_name or 'Default',
                    'OS_PROJECT_DOMAIN_NAME': c.project_domain_name or 'Default',
                    'OS_REGION_NAME': CONF.identity.region})
        result = subprocess.run([CONF.tclouds.openstack_cli] + list(args), env=env,
                                capture_output=True, text=True, timeout=120)
        if expect_ok:
            self.assertEqual(0, result.returncode, result.stderr)
        else:
            self.assertNotEqual(0, result.returncode, result.stdout)
        return result

    @decorators.idempotent_id('9e2f7c13-5a6b-4d8e-b0f1-3c4d5e6f7001')
    def test_admin_lists_hosts_and_policies(self):
        hosts = json.loads(self._cli(self.os_admin, 'attestation', 'host', 'list',
                                     '-f', 'json').stdout)
        names = {h['host'] for h in hosts}
        self.assertTrue(set(CONF.tclouds.compute_hosts) <= names, hosts)
        policies = json.loads(self._cli(self.os_admin, 'attestation', 'policy', 'list',
                                        '-f', 'json').stdout)
        self.assertIn(CONF.tclouds.appraisal_policy, {p['name'] for p in policies})

    @decorators.idempotent_id('9e2f7c13-5a6b-4d8e-b0f1-3c4d5e6f7002')
    def test_tenant_refused_host_list(self):
        result = self._cli(self.os_primary, 'attestation', 'host', 'list', expect_ok=False)
        self.assertIn('403', result.stderr + result.stdout)

    @decorators.idempotent_id('9e2f7c13-5a6b-4d8e-b0f1-3c4d5e6f7003')
    def test_tenant_sets_and_unsets_trust_requirement(self):
        project = self.os_primary.credentials.project_id
        self.addCleanup(self._cli, self.os_primary, 'trust', 'requirement', 'unset',
                        '--project', project, '--trusted-host', '--jurisdiction',
                        expect_ok=False)
        self._cli(self.os_primary, 'trust', 'requirement', 'set', '--project', project,
                  '--trusted-host')
        shown = json.loads(self._cli(self.os_primary, 'trust', 'requirement', 'show',
                                     '--project', project, '-f', 'json').stdout)
        self.assertIn('trusted', json.dumps(shown).lower())

    @decorators.idempotent_id('9e2f7c13-5a6b-4d8e-b0f1-3c4d5e6f7004')
    def test_secure_log_as_tenant_and_admin(self):
        for creds in (self.os_primary, self.os_admin):
            checkpoint = json.loads(self._cli(creds, 'secure-log', 'checkpoint', 'show',
                                              '-f', 'json').stdout)
            self.assertTrue(checkpoint)
        records = json.loads(self._cli(self.os_admin, 'secure-log', 'record', 'list',
                                       '--limit', '5', '-f', 'json').stdout)
        self.assertLessEqual(len(records), 5)
        self.assertGreater(len(records), 0)
