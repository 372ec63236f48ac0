"""Client of the key release API, used by compute hosts (role = compute).

Authenticates with the keystoneauth options of ``[tclouds_key_manager]`` (this host's own
Keystone service user ``<host_user_prefix><host>``).
"""
from castellan.common import exception as castellan_exc

from tclouds_openstack.blockstore import errors as bs_errors
from tclouds_openstack.blockstore import storage as bs_storage
from tclouds_openstack.common import client as common_client
from tclouds_openstack.keymgr import driver

GROUP = 'tclouds_key_manager'


class KeyReleaseClient(common_client.ServiceClient):
    service_type = 'key-release'

    def release(self, key_id):
        """The castellan object of ``key_id``; castellan errors carry the API's reason."""
        try:
            body = self.post('/v1/keys/%s/release' % key_id)
        except common_client.ClientError as exc:
            if exc.status == 404:
                raise castellan_exc.ManagedObjectNotFoundError(uuid=key_id)
            if exc.status in (401, 403):
                raise castellan_exc.Forbidden('key %s refused: %s' % (key_id, exc.message))
            raise castellan_exc.KeyManagerError('key release API: %s' % exc)
        except common_client.ServiceUnavailable as exc:
            raise castellan_exc.KeyManagerError(str(exc))
        try:
            return driver.managed_object(body['type'], bytes.fromhex(body['secret']),
                                         body.get('algorithm'), body.get('bit_length'),
                                         body.get('name'), secret_id=key_id)
        except (KeyError, TypeError, ValueError) as exc:
            raise castellan_exc.KeyManagerError('key release API: malformed answer (%s)' % exc)


class KeyServiceAnchor(bs_storage.Anchor):
    """Blockstore freshness anchor kept by the key service (beside the volume key)."""

    def __init__(self, client):
        self.client = client

    def load(self, volume_uuid):
        try:
            body = self.client.get('/v1/anchors/%s' % volume_uuid)
        except common_client.ClientError as exc:
            if exc.status == 404:
                return None
            raise bs_errors.AnchorError('key service refused anchor of %s: %s'
                                        % (volume_uuid, exc.message))
        except common_client.ServiceUnavailable as exc:
            raise bs_errors.AnchorError(str(exc))
        return body.get('state')

    def commit(self, volume_uuid, state, expected):
        try:
            self.client.put('/v1/anchors/%s' % volume_uuid,
                            {'state': state, 'expected': expected})
        except common_client.ClientError as exc:
            raise bs_errors.AnchorError('key service refused anchor commit of %s: %s'
                                        % (volume_uuid, exc.message))
        except common_client.ServiceUnavailable as exc:
            raise bs_errors.AnchorError(str(exc))


def anchor_from_config(config_files):
    """KeyServiceAnchor configured by ``config_files`` ([tclouds_key_manager] credentials)."""
    from oslo_config import cfg
    conf = cfg.ConfigOpts()
    driver.register_opts(conf)
    try:
        # the files given only: never /etc/tclouds/tclouds.conf.d beside them
        conf(args=[], project='tclouds', default_config_files=[f for f in config_files if f],
             default_config_dirs=[])
        return KeyServiceAnchor(from_conf(conf))
    except cfg.Error as exc:
        raise bs_errors.AnchorError('key service anchor: configuration: %s' % exc)


def from_conf(conf):
    common_client.register_auth_opts(conf, GROUP)
    group = getattr(conf, GROUP)
    return KeyReleaseClient(common_client.session_from_conf(conf, GROUP),
                            endpoint_override=group.release_endpoint_override,
                            timeout=group.release_timeout)
