"""Encrypted volumes with keys of the tclouds key manager: Cinder creates the key, the
volume attaches, and the key release API gives the key to the host the volume is attached
to, with that host's own Keystone credential, and to no other host."""
from tempest import clients
from tempest.common import waiters
from tempest import config
from tempest.lib import auth
from tempest.lib.common import api_microversion_fixture
from tempest.lib import decorators
from tempest.lib import exceptions as lib_exc
from tempest.scenario import manager

CONF = config.CONF


class EncryptedVolumeKeyReleaseTest(manager.ScenarioTest):
    credentials = ['primary', 'admin']

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.service_available.key_release:
            raise cls.skipException('the key release API is not available')
        if not CONF.tclouds.encrypted_volume_type:
            raise cls.skipException('no encrypted volume type')
        if len(CONF.tclouds.compute_hosts) < 2:
            raise cls.skipException('needs two attested compute hosts')
        missing = set(CONF.tclouds.compute_hosts) - set(CONF.tclouds.host_passwords)
        if missing:
            raise cls.skipException('no credential of host(s) %s' % ', '.join(sorted(missing)))

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.admin_servers = cls.os_admin.servers_client
        cls.admin_volumes = cls.os_admin.volumes_client_latest

    def _host_client(self, host):
        creds = auth.KeystoneV3Credentials(
            username=CONF.tclouds.host_user_format.format(host=host),
            password=CONF.tclouds.host_passwords[host], project_name=CONF.tclouds.host_project,
            user_domain_name='Default', project_domain_name='Default')
        return clients.Manager(creds).key_release_v1.KeyReleaseClient()

    @decorators.idempotent_id('d4c3b2a1-8e7f-4a6b-9c5d-1e2f3a4b8001')
    def test_key_only_to_the_attached_host(self):
        server = self.create_server(wait_until='ACTIVE')
        host = self.admin_servers.show_server(server['id'])['server'][
            'OS-EXT-SRV-ATTR:host']
        volume = self.create_volume(volume_type=CONF.tclouds.encrypted_volume_type)
        self.nova_volume_attach(server, volume)
        # a volume's encryption_key_id is shown from volume API microversion 3.64 on
        with api_microversion_fixture.APIMicroversionFixture(volume_microversion='3.64'):
            shown = self.admin_volumes.show_volume(volume['id'])['volume']
        key_id = shown.get('encryption_key_id')
        self.assertTrue(key_id, 'no encryption key id: %s' % shown)
        attached = [a.get('host_name') for a in shown.get('attachments', [])]
        self.assertIn(host, attached)

        key = self._host_client(host).release_key(volume['id'], key_id)
        self.assertTrue(key['secret'])
        for other in CONF.tclouds.compute_hosts:
            if other == host:
                continue
            exc = self.assertRaises(lib_exc.Forbidden,
                                    self._host_client(other).release_key,
                                    volume['id'], key_id)
            self.assertIn('attach', str(exc))
        # and the volume's key is refused for another volume's id
        other_volume = self.create_volume()
        self.assertRaises((lib_exc.Forbidden, lib_exc.NotFound),
                          self._host_client(host).release_key, other_volume['id'], key_id)
        waiters.wait_for_volume_resource_status(self.volumes_client, volume['id'], 'in-use')
