"""The key release API (service type ``key-release``), run on a controller.

::

    POST /v1/volumes/{volume_id}/key     {"key_id": ...}: the volume's key      (host)
    GET  /v1/volumes/{volume_id}/anchor  the volume's blockstore freshness anchor (host)
    PUT  /v1/volumes/{volume_id}/anchor  {"state", "expected"}: move it (compare-and-set)
    GET  /v1/volumes/{volume_id}/format-mark   whether (and as what) it was formatted
    PUT  /v1/volumes/{volume_id}/format-mark   {"blockstore_uuid", "format_version"}:
                                               claim it once (201, or 409 with the existing
                                               mark); on the volume it names, record the
                                               format it opened in (200, never lowered)

Only for an enrolled compute host credential whose host is attested trusted and fresh and
to which Cinder shows the volume attached; the key must be the volume's
``encryption_key_id`` (``release.Gate``). Refusals are 403 with the reason; every decision
is notified. ``POST /v1/keys/{key_id}/release`` and ``/v1/anchors/{volume}`` (which named no
Cinder volume) answer 410 with the route to use instead.
"""
from tclouds_openstack.common import context as tc_context
from tclouds_openstack.common import exception
from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack.keymgr import driver
from tclouds_openstack.keymgr import policies
from tclouds_openstack.keymgr import release

TOKEN_INFO = 'keystone.token_info'      # set by keystonemiddleware, never by the caller


class Gone(exception.TCloudsException):
    code = 410
    title = 'Gone'


class Controller:
    def __init__(self, conf, gate=None, manager=None):
        driver.register_opts(conf)
        self.conf = conf
        self.gate = gate or release.Gate(conf)
        self.manager = manager or driver.LocalKeyManager(conf)

    def _authorize(self, request, volume_id, what, rule, key_id=None):
        try:
            return self.gate.authorize(request.context, volume_id, what, key_id=key_id,
                                       rule=rule,
                                       token_info=request.environ.get(TOKEN_INFO))
        except release.Refused as exc:
            raise exception.Forbidden(exc.reason)

    def release_key(self, request, volume_id):
        from castellan.common import exception as castellan_exc
        body = wsgi.json_body(request)
        key_id = wsgi.require(body, 'key_id', str)
        host, volume = self._authorize(request, volume_id, 'key', 'keymgr:volume:key:release',
                                       key_id)
        # Internal context of the volume's project: the checks above are the authority, and
        # a key of another project stays invisible even if named.
        internal = tc_context.RequestContext(is_admin=True, overwrite=False,
                                             project_id=volume.project_id)
        try:
            obj = self.manager.get(internal, key_id)
        except castellan_exc.ManagedObjectNotFoundError:
            raise exception.NotFound('no key %s in the project of volume %s'
                                     % (key_id, volume_id))
        except castellan_exc.KeyManagerError as exc:
            raise exception.ServiceUnavailable('key store: %s' % exc)
        return {'key_id': key_id, 'volume_id': volume_id, 'type': driver.kind_of(obj),
                'host': host, 'algorithm': getattr(obj, 'algorithm', None),
                'bit_length': getattr(obj, 'bit_length', None), 'name': obj.name,
                'secret': obj.get_encoded().hex()}

    def get_anchor(self, request, volume_id):
        self._authorize(request, volume_id, 'anchor', 'keymgr:volume:anchor:get')
        state = self.manager.keystore.anchor_load(volume_id)
        if state is None:
            raise exception.NotFound('no anchor for volume %s' % volume_id)
        return {'state': state}

    def put_anchor(self, request, volume_id):
        from tclouds_openstack.keymgr import store
        body = wsgi.json_body(request)
        state = wsgi.require(body, 'state', dict)
        expected = wsgi.require(body, 'expected', int, allow_none=True)
        version = wsgi.require(state, 'version', int)
        self._authorize(request, volume_id, 'anchor', 'keymgr:volume:anchor:update')
        try:
            self.manager.keystore.anchor_commit(volume_id, state, expected)
        except store.AnchorConflict as exc:
            raise exception.Conflict(str(exc))
        return 200, {'version': version}

    def get_format_mark(self, request, volume_id):
        self._authorize(request, volume_id, 'format-mark', 'keymgr:volume:format_mark:get')
        mark = self.manager.keystore.format_mark(volume_id)
        if mark is None:
            raise exception.NotFound('volume %s has no format mark' % volume_id)
        return mark

    def put_format_mark(self, request, volume_id):
        """Claim the mark (201), or record the format of the volume it names (200).

        ``format_version`` (optional for hosts that predate it): the block format the host
        formatted, or opened and verified, the volume in. A mark without one (claimed
        before formats were recorded) or with an older one is raised to it, never lowered:
        a host then refuses to serve the volume in an older format (a downgrade).
        """
        body = wsgi.json_body(request)
        blockstore_uuid = wsgi.require(body, 'blockstore_uuid', str)
        if not 0 < len(blockstore_uuid) <= 64:
            raise exception.BadRequest('must be a blockstore volume UUID',
                                       field='blockstore_uuid')
        format_version = None
        if 'format_version' in body:
            format_version = wsgi.require(body, 'format_version', int, allow_none=True)
            if format_version is not None and not 0 < format_version < 2 ** 16:
                raise exception.BadRequest('must be a block format version (1-65535)',
                                           field='format_version')
        host, _ = self._authorize(request, volume_id, 'format-mark',
                                  'keymgr:volume:format_mark:create')
        keystore = self.manager.keystore
        claimed, mark = keystore.claim_format_mark(volume_id, blockstore_uuid, host,
                                                   format_version)
        if claimed:
            return 201, mark
        if mark['blockstore_uuid'] == blockstore_uuid and format_version is not None:
            return 200, keystore.record_format(volume_id, blockstore_uuid, host,
                                               format_version)
        return 409, {'error': {'code': 409, 'title': 'Conflict',
                               'message': 'volume %s was formatted already (blockstore '
                                          'volume %s, by host %s)'
                                          % (volume_id, mark['blockstore_uuid'],
                                             mark['host'])},
                     'mark': mark}

    def gone(self, request, **kwargs):
        raise Gone('this route named no Cinder volume and is gone: a compute host asks POST '
                   '/v1/volumes/{volume_id}/key {"key_id": ...} and GET|PUT '
                   '/v1/volumes/{volume_id}/anchor (upgrade tclouds-openstack on the host)')


def build_router(conf, gate=None, manager=None):
    controller = Controller(conf, gate, manager)
    router = wsgi.Router()
    router.connect('/v1/volumes/{volume_id}/key', controller.release_key, ['POST'])
    router.connect('/v1/volumes/{volume_id}/anchor', controller.get_anchor, ['GET'])
    router.connect('/v1/volumes/{volume_id}/anchor', controller.put_anchor, ['PUT'])
    router.connect('/v1/volumes/{volume_id}/format-mark', controller.get_format_mark,
                   ['GET'])
    router.connect('/v1/volumes/{volume_id}/format-mark', controller.put_format_mark,
                   ['PUT'])
    router.connect('/v1/keys/{key_id}/release', controller.gone, ['POST'])
    router.connect('/v1/anchors/{volume}', controller.gone, ['GET', 'PUT'])
    return router


def validate_every_token(conf):
    """keystonemiddleware asks Keystone about every token (no token cache) by default.

    A key is released on a token: when the operator disables or deletes a compromised
    host's Keystone user (or application credential), its tokens must stop working at
    once, not when ``[keystone_authtoken] token_cache_time`` (300 s) expires. Key requests
    are rare (one per attach), so the validation costs little. An operator's explicit
    ``token_cache_time`` still wins.
    """
    from keystonemiddleware import auth_token
    for group, opts in auth_token.list_opts():
        conf.register_opts(opts, group=group)
    conf.set_default('token_cache_time', -1, group='keystone_authtoken')


def build_app(conf, gate=None, manager=None):
    """The WSGI application (auth_token, context, policy) of the key release API."""
    policy.register_rules(policies.list_rules())
    policy.get_enforcer(conf)       # bind the process's enforcer to this configuration
    if conf.api.auth_strategy != 'noauth':
        validate_every_token(conf)
    return wsgi.build_app(conf, build_router(conf, gate, manager))
