"""Client of the key release API, used by compute hosts (role = compute).

Authenticates with the keystoneauth options of ``[tclouds_key_manager]``: this host's own
Keystone credential (a user, or an application credential, that the operator enrolled for
this host; see doc/source/keymgr.rst). Every request names the Cinder volume it is about.
"""
from castellan.common import exception as castellan_exc

from tclouds_openstack.blockstore import errors as bs_errors
from tclouds_openstack.blockstore import storage as bs_storage
from tclouds_openstack.common import client as common_client
from tclouds_openstack.keymgr import driver

GROUP = 'tclouds_key_manager'
# ``--anchor key-service:<Cinder volume ID>`` (tclouds-blockstore, the nbdkit plugin)
ANCHOR_SERVICE = 'key-service'


class KeyReleaseClient(common_client.ServiceClient):
    service_type = 'key-release'

    def release_volume_key(self, volume_id, key_id):
        """The castellan object of ``key_id``, the key of Cinder volume ``volume_id``.

        castellan errors carry the API's reason.
        """
        try:
            body = self.post('/v1/volumes/%s/key' % volume_id, {'key_id': key_id})
        except common_client.ClientError as exc:
            if exc.status == 404:
                raise castellan_exc.ManagedObjectNotFoundError(uuid=key_id)
            if exc.status in (401, 403):
                raise castellan_exc.Forbidden('key %s of volume %s refused: %s'
                                              % (key_id, volume_id, exc.message))
            raise castellan_exc.KeyManagerError('key release API: %s' % exc)
        except common_client.ServiceUnavailable as exc:
            raise castellan_exc.KeyManagerError(str(exc))
        try:
            return driver.managed_object(body['type'], bytes.fromhex(body['secret']),
                                         body.get('algorithm'), body.get('bit_length'),
                                         body.get('name'), secret_id=key_id)
        except (KeyError, TypeError, ValueError) as exc:
            raise castellan_exc.KeyManagerError('key release API: malformed answer (%s)' % exc)

    def _volume_call(self, method, volume_id, what, body=None):
        try:
            return self.request(method, '/v1/volumes/%s/%s' % (volume_id, what), body=body)
        except common_client.ServiceUnavailable as exc:
            raise bs_errors.AnchorError(str(exc))

    def format_mark(self, volume_id):
        """The format mark of Cinder volume ``volume_id`` (a dict), or None if unclaimed."""
        try:
            return self._volume_call('GET', volume_id, 'format-mark')
        except common_client.ClientError as exc:
            if exc.status == 404:
                return None
            raise bs_errors.AnchorError('key service refused the format mark of volume %s: '
                                        '%s' % (volume_id, exc.message))

    def claim_format_mark(self, volume_id, blockstore_uuid, format_version=None):
        """Claim the format mark of ``volume_id``: True if this call created it.

        False if the volume was formatted before; AnchorError when refused or unreachable.
        """
        try:
            self._volume_call('PUT', volume_id, 'format-mark',
                              {'blockstore_uuid': blockstore_uuid,
                               'format_version': format_version})
        except common_client.ClientError as exc:
            if exc.status == 409:
                return False
            raise bs_errors.AnchorError('key service refused the format mark of volume %s: '
                                        '%s' % (volume_id, exc.message))
        return True

    def record_format(self, volume_id, blockstore_uuid, format_version):
        """Record the format ``volume_id`` opened in (never lowered); the mark as it is now.

        AnchorError when refused or unreachable, or when the mark names another blockstore
        volume (409).
        """
        try:
            return self._volume_call('PUT', volume_id, 'format-mark',
                                     {'blockstore_uuid': blockstore_uuid,
                                      'format_version': format_version})
        except common_client.ClientError as exc:
            raise bs_errors.AnchorError('key service refused the format mark of volume %s: '
                                        '%s' % (volume_id, exc.message))


class KeyServiceAnchor(bs_storage.Anchor):
    """Blockstore freshness anchor of one Cinder volume, kept by the key service.

    The state lives beside the volume key, outside the storage the volume is on; only the
    host the volume is attached to may read or move it.
    """

    def __init__(self, client, volume_id):
        self.client = client
        self.volume_id = volume_id
        self.path = '/v1/volumes/%s/anchor' % volume_id

    def load(self, volume_uuid):
        try:
            body = self.client.get(self.path)
        except common_client.ClientError as exc:
            if exc.status == 404:
                return None
            raise bs_errors.AnchorError('key service refused the anchor of volume %s: %s'
                                        % (self.volume_id, exc.message))
        except common_client.ServiceUnavailable as exc:
            raise bs_errors.AnchorError(str(exc))
        return body.get('state')

    def commit(self, volume_uuid, state, expected):
        try:
            self.client.put(self.path, {'state': state, 'expected': expected})
        except common_client.ClientError as exc:
            raise bs_errors.AnchorError('key service refused the anchor commit of volume %s: '
                                        '%s' % (self.volume_id, exc.message))
        except common_client.ServiceUnavailable as exc:
            raise bs_errors.AnchorError(str(exc))


def is_key_service_anchor(spec):
    """True for ``key-service`` and ``key-service:<volume>`` anchor specifications."""
    return spec == ANCHOR_SERVICE or spec.startswith(ANCHOR_SERVICE + ':')


def anchor_for(spec, config_files):
    """The KeyServiceAnchor of ``key-service:<Cinder volume ID>``.

    Configured by ``config_files`` ([tclouds_key_manager] credentials); AnchorError says
    what is wrong.
    """
    from oslo_config import cfg
    _, _, volume_id = spec.partition(':')
    if not volume_id:
        raise bs_errors.AnchorError('the key service keeps the anchor of a Cinder volume: name '
                                    'it, key-service:<volume ID>')
    conf = cfg.ConfigOpts()
    driver.register_opts(conf)
    try:
        # the files given only: never /etc/tclouds/tclouds.conf.d beside them
        conf(args=[], project='tclouds', default_config_files=[f for f in config_files if f],
             default_config_dirs=[])
        return KeyServiceAnchor(from_conf(conf), volume_id)
    except cfg.Error as exc:
        raise bs_errors.AnchorError('key service anchor: configuration: %s' % exc)


def from_conf(conf):
    common_client.register_auth_opts(conf, GROUP)
    group = getattr(conf, GROUP)
    return KeyReleaseClient(common_client.session_from_conf(conf, GROUP),
                            endpoint_override=group.release_endpoint_override,
                            timeout=group.release_timeout)
