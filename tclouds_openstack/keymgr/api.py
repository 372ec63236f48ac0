"""The key release API (service type ``key-release``), run on a controller.

``POST /v1/keys/{key_id}/release``: the key, if the calling host is attested (403 with the
reason otherwise). ``GET|PUT /v1/anchors/{volume}``: blockstore freshness anchors, same
gate. Every release and refusal is notified by ``release.Gate``.
"""
from tclouds_openstack.common import context as tc_context
from tclouds_openstack.common import exception
from tclouds_openstack.common import wsgi
from tclouds_openstack.keymgr import driver
from tclouds_openstack.keymgr import release


class Controller:
    def __init__(self, conf, gate=None, manager=None):
        driver.register_opts(conf)
        self.conf = conf
        self.gate = gate or release.Gate(conf)
        self.manager = manager or driver.LocalKeyManager(conf)

    def _authorize(self, request, subject, what):
        try:
            return self.gate.authorize(request.context, subject, what)
        except release.Refused as exc:
            raise exception.Forbidden(exc.reason)

    def release_key(self, request, key_id):
        from castellan.common import exception as castellan_exc
        host = self._authorize(request, key_id, 'key')
        # Internal context without project: the attestation check above is the authority.
        internal = tc_context.RequestContext(is_admin=True, overwrite=False)
        try:
            obj = self.manager.get(internal, key_id)
        except castellan_exc.ManagedObjectNotFoundError:
            raise exception.NotFound('no key %s' % key_id)
        except castellan_exc.KeyManagerError as exc:
            raise exception.ServiceUnavailable('key store: %s' % exc)
        return {'key_id': key_id, 'type': driver.kind_of(obj), 'host': host,
                'algorithm': getattr(obj, 'algorithm', None),
                'bit_length': getattr(obj, 'bit_length', None), 'name': obj.name,
                'secret': obj.get_encoded().hex()}

    def get_anchor(self, request, volume):
        self._authorize(request, volume, 'anchor')
        state = self.manager.keystore.anchor_load(volume)
        if state is None:
            raise exception.NotFound('no anchor for volume %s' % volume)
        return {'state': state}

    def put_anchor(self, request, volume):
        from tclouds_openstack.keymgr import store
        self._authorize(request, volume, 'anchor')
        body = wsgi.json_body(request)
        state = wsgi.require(body, 'state', dict)
        expected = wsgi.require(body, 'expected', int, allow_none=True)
        version = wsgi.require(state, 'version', int)
        if state.get('uuid') != volume:
            raise exception.BadRequest('must name volume %s' % volume, field='state.uuid')
        try:
            self.manager.keystore.anchor_commit(volume, state, expected)
        except store.AnchorConflict as exc:
            raise exception.Conflict(str(exc))
        return 200, {'version': version}


def build_app(conf, gate=None, manager=None):
    controller = Controller(conf, gate, manager)
    router = wsgi.Router()
    router.connect('/v1/keys/{key_id}/release', controller.release_key, ['POST'])
    router.connect('/v1/anchors/{volume}', controller.get_anchor, ['GET'])
    router.connect('/v1/anchors/{volume}', controller.put_anchor, ['PUT'])
    return wsgi.build_app(conf, router)
