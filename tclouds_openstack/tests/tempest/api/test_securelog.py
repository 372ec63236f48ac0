"""Secure log API: any authenticated user reads the signed checkpoint and proofs; a tenant
reads only its own project's records; an admin appends an event and proves its inclusion
against a signed checkpoint."""
import base64
import time
import uuid

from tempest.lib import decorators
from tempest.lib import exceptions as lib_exc

from tclouds_openstack.tests.tempest.api import base

CONF = base.CONF


class SecureLogTest(base.BaseTCloudsTest):
    service = 'secure_log'
    capability = 'securelog'
    credentials = ['primary', 'alt', 'admin']

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.alt_secure_log = cls.os_alt.secure_log_v1.SecureLogClient()

    @decorators.idempotent_id('8a3c1e52-7d0f-4d1e-9b8e-2f6c0c9a3001')
    def test_tenant_reads_signed_checkpoint(self):
        body = self.secure_log.show_checkpoint()
        lines = body['checkpoint'].split('\n')
        self.assertEqual(body['origin'], lines[0])
        self.assertEqual(body['tree_size'], int(lines[1]))
        self.assertGreater(body['tree_size'], 0)
        # a signed note: the signature lines follow a blank line
        self.assertIn('\n\n\u2014 ', body['checkpoint'])

    @decorators.idempotent_id('8a3c1e52-7d0f-4d1e-9b8e-2f6c0c9a3002')
    def test_tenant_sees_only_own_project(self):
        own = self.secure_log.tenant_id
        records = self.secure_log.list_records(limit=100)['records']
        self.assertTrue(all(r['tenant'] == own for r in records), records[:3])
        other = self.alt_secure_log.tenant_id
        self.assertRaises(lib_exc.Forbidden, self.secure_log.list_records, project_id=other)

    @decorators.idempotent_id('8a3c1e52-7d0f-4d1e-9b8e-2f6c0c9a3003')
    def test_tenant_cannot_append(self):
        self.assertRaises(lib_exc.Forbidden, self.secure_log.append_record,
                          'tempest.test', {'n': 1})

    @decorators.idempotent_id('8a3c1e52-7d0f-4d1e-9b8e-2f6c0c9a3004')
    def test_admin_append_then_prove_inclusion(self):
        from tclouds_openstack.securelog import merkle
        marker = 'tempest.%s' % uuid.uuid4().hex
        self.admin_secure_log.append_record(marker, {'test': self.id()})
        record = self._wait_for_record(marker)
        # the ingester signs a checkpoint at most [securelog] checkpoint_interval after an
        # entry arrives: until then the latest checkpoint may not cover the record yet
        checkpoint = self._wait_for_checkpoint_covering(record['index'])
        size = checkpoint['tree_size']
        proof = self.secure_log.inclusion_proof(record['index'], size)
        merkle.verify_inclusion(base64.b64decode(record['leaf_hash']), record['index'], size,
                                [base64.b64decode(h) for h in proof['proof']],
                                base64.b64decode(checkpoint['root_hash']))

    def _wait_for_checkpoint_covering(self, index):
        deadline = time.monotonic() + CONF.compute.build_timeout
        while True:
            checkpoint = self.secure_log.show_checkpoint()
            if checkpoint['tree_size'] > index:
                return checkpoint
            if time.monotonic() > deadline:
                self.fail('no signed checkpoint covers entry %d within %s s (latest: size %d)'
                          % (index, CONF.compute.build_timeout, checkpoint['tree_size']))
            time.sleep(2)

    def _wait_for_record(self, event_type):
        deadline = time.monotonic() + CONF.compute.build_timeout
        while time.monotonic() < deadline:
            records = self.admin_secure_log.list_records(event_type=event_type)['records']
            if records:
                return records[0]
            time.sleep(2)
        self.fail('event %s was not sealed into the secure log within %s s'
                  % (event_type, CONF.compute.build_timeout))
