"""Cloud-of-clouds object storage through Swift: an object in a container of the
cloud-of-clouds storage policy reads back intact, and no backend cloud holds its
plaintext (each holds an encrypted, erasure-coded fragment)."""
import os

from tempest import clients
from tempest import config
from tempest.lib import auth
from tempest.lib.common.utils import data_utils
from tempest.lib import decorators
from tempest import test

CONF = config.CONF


class CloudOfCloudsTest(test.BaseTestCase):
    credentials = [['operator', CONF.object_storage.operator_role]]

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.service_available.swift:
            raise cls.skipException('Swift is not available')
        if not CONF.tclouds.cloudstore_policy:
            raise cls.skipException('no cloud-of-clouds storage policy')

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.containers = cls.os_roles_operator.container_client
        cls.objects = cls.os_roles_operator.object_client

    def _backend_clients(self):
        if not (CONF.tclouds.cloudstore_backend_password
                and CONF.tclouds.cloudstore_backend_containers):
            raise self.skipException('backend containers are not configured')
        creds = auth.KeystoneV3Credentials(
            username=CONF.tclouds.cloudstore_backend_username,
            password=CONF.tclouds.cloudstore_backend_password,
            project_name=CONF.tclouds.cloudstore_backend_project,
            user_domain_name='Default', project_domain_name='Default')
        manager = clients.Manager(creds)
        return manager.container_client, manager.object_client

    @decorators.idempotent_id('e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f9001')
    def test_object_intact_and_no_plaintext_on_any_cloud(self):
        container = data_utils.rand_name('tclouds-coc')
        self.containers.update_container(
            container, **{'X-Storage-Policy': CONF.tclouds.cloudstore_policy})
        self.addCleanup(self.containers.delete_container, container)
        marker = b'tclouds-plaintext-' + os.urandom(8).hex().encode()
        body = marker * 4096 + os.urandom(4096)
        self.objects.create_object(container, 'obj', body)
        self.addCleanup(self.objects.delete_object, container, 'obj')
        _, data = self.objects.get_object(container, 'obj')
        self.assertEqual(body, data)

        backend_containers, backend_objects = self._backend_clients()
        fragments = 0
        for name in CONF.tclouds.cloudstore_backend_containers:
            _, listing = backend_containers.list_container_objects(
                name, params={'format': 'json'})
            for item in listing:
                _, stored = backend_objects.get_object(name, item['name'])
                self.assertNotIn(marker, stored,
                                 'plaintext in %s/%s' % (name, item['name']))
                fragments += 1
        self.assertGreater(fragments, 0, 'no fragment found on the backend clouds')
