"""Key release API: a tenant's token is no host credential; keys go to enrolled, attested
hosts only."""
import uuid

from tempest.lib import decorators
from tempest.lib import exceptions as lib_exc

from tclouds_openstack.tests.tempest.api import base


class KeyReleaseTest(base.BaseTCloudsTest):
    service = 'key_release'
    capability = 'blockstore'

    @decorators.idempotent_id('c7e0d7a4-4f7e-4a8c-8b1d-6d2f1a9e4001')
    def test_tenant_refused(self):
        exc = self.assertRaises(lib_exc.Forbidden, self.key_release.release_key,
                                str(uuid.uuid4()), str(uuid.uuid4()))
        self.assertIn('host', str(exc))

    @decorators.idempotent_id('c7e0d7a4-4f7e-4a8c-8b1d-6d2f1a9e4002')
    def test_admin_is_no_host_either(self):
        client = self.os_admin.key_release_v1.KeyReleaseClient()
        self.assertRaises(lib_exc.Forbidden, client.release_key,
                          str(uuid.uuid4()), str(uuid.uuid4()))
