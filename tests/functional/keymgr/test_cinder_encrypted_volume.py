"""Real Cinder (in-process API, scheduler, volume service, sqlite, fake RPC) creating and
deleting encrypted volumes through the ``tclouds`` castellan driver: unchanged behaviour.

The volume type names this project's os-brick encryptor by class path (front-end).
"""
import os
import shutil
import tempfile

from cinder.tests import fake_driver
from cinder.volume import configuration
from oslo_config import cfg
import pytest

from tclouds_openstack.keymgr import driver as km_driver
from tclouds_openstack.keymgr import store
from tests.functional import cinder_harness

CREATED = []
ENCRYPTOR = 'tclouds_openstack.blockstore.encryptor.TcloudsEncryptor'


class RecordingDriver(fake_driver.FakeLoggingVolumeDriver):
    def create_volume(self, volume):
        CREATED.append((volume.id, volume.encryption_key_id))
        return super().create_volume(volume)


@pytest.mark.forked
class TestEncryptedVolumeThroughTcloudsKeyManager(cinder_harness.CinderFunctionalTest):

    def _get_flags(self):
        f = super()._get_flags()
        f['volume_driver'] = {'v': __name__ + '.RecordingDriver',
                              'g': configuration.SHARED_CONF_GROUP}
        f['default_volume_type'] = {'v': self._vol_type_name}
        f['backend'] = {'v': 'tclouds', 'g': 'key_manager'}
        f['local_store_path'] = {'v': os.path.join(self.tmp, 'keys.sqlite'),
                                 'g': 'tclouds_key_manager'}
        f['master_key_file'] = {'v': self.master, 'g': 'tclouds_key_manager'}
        return f

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='tclouds-cinder-')
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.master = os.path.join(self.tmp, 'master.key')
        with open(self.master, 'w') as f:
            f.write(os.urandom(32).hex())
        km_driver.register_opts(cfg.CONF)
        super().setUp()
        self.api.create_type(self._vol_type_name)

    def test_create_and_delete_encrypted_volume(self):
        vtype = self.api.create_type('tclouds-protected')
        self.api.api_post('/types/%s/encryption' % vtype['id'], {
            'encryption': {'provider': ENCRYPTOR, 'cipher': 'aes-256-gcm',
                           'key_size': 256, 'control_location': 'front-end'}})
        vol = self.api.post_volume({'volume': {'size': 1, 'volume_type': vtype['id']}})
        vol = self._poll_volume_while(vol['id'], ['creating'])
        self.assertEqual('available', vol['status'])
        self.assertTrue(vol['encrypted'])
        (vid, key_id), = CREATED
        self.assertEqual(vol['id'], vid)
        keystore = store.LocalKeyStore(os.path.join(self.tmp, 'keys.sqlite'),
                                       store.load_master_key(self.master))
        entry = keystore.get(key_id)          # the key lives in our encrypted store
        self.assertEqual(32, len(entry['secret']))
        self.assertEqual(256, entry['bit_length'])
        self.api.delete_volume(vol['id'])
        self.assertIsNone(self._poll_volume_while(vol['id'], ['deleting']))
        self.assertRaises(store.SecretNotFound, keystore.get, key_id)
