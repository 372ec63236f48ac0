"""Client of the attestation-gated key release API (service type ``key-release``)."""
from tclouds_openstack.tests.tempest.services import base


class KeyReleaseClient(base.JSONClient):

    def release_key(self, volume_id, key_id):
        return self._json('POST', 'v1/volumes/%s/key' % volume_id, 200,
                          body={'key_id': key_id})
