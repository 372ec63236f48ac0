"""The secure log of everything this cloud did so far audits clean: every record sealed by
its source (Keystone, Nova, Cinder, Swift's audit middleware, the tclouds services) and by
the log, against the signed checkpoint a tenant obtains from the API; and a tenant's own
actions are in it, attributed to the tenant."""
import json
import shlex
import subprocess
import tempfile
import time

from tempest import config
from tempest.lib import decorators
from tempest.scenario import manager

CONF = config.CONF


class SecureLogAuditTest(manager.ScenarioTest):
    credentials = ['primary', 'admin']

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.service_available.secure_log:
            raise cls.skipException('the secure log API is not available')
        if not CONF.tclouds.securelog_audit_command:
            raise cls.skipException('no secure log audit command')

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.secure_log = cls.os_primary.secure_log_v1.SecureLogClient()

    @decorators.idempotent_id('f0e1d2c3-b4a5-4968-8776-5a4b3c2d1001')
    def test_tenant_actions_logged_and_log_audits_clean(self):
        project = self.secure_log.tenant_id
        volume = self.create_volume()
        deadline = time.monotonic() + CONF.volume.build_timeout
        mine = []
        while time.monotonic() < deadline and not mine:
            records = self.secure_log.list_records(limit=1000)['records']
            mine = [r for r in records if volume['id'] in json.dumps(r.get('payload'))]
            if not mine:
                time.sleep(3)
        self.assertTrue(mine, 'the volume %s is in no record of project %s'
                        % (volume['id'], project))
        self.assertTrue(all(r['tenant'] == project for r in mine), mine)

        checkpoint = self.secure_log.show_checkpoint()
        with tempfile.NamedTemporaryFile('w', suffix='.checkpoint') as f:
            f.write(checkpoint['checkpoint'])
            f.flush()
            command = CONF.tclouds.securelog_audit_command.format(checkpoint=f.name)
            result = subprocess.run(shlex.split(command), capture_output=True, text=True,
                                    timeout=600)
        self.assertEqual(0, result.returncode, result.stderr + result.stdout)
        report = json.loads(result.stdout)
        self.assertTrue(report['ok'], report)
        self.assertGreaterEqual(report['size'], checkpoint['tree_size'])
        self.assertGreater(report['checkpoints_verified'], 0)
