"""The JSON WSGI framework: routing, body validation, error rendering, authentication."""
import webob

from tclouds_openstack.common import exception
from tclouds_openstack.common import wsgi
from tclouds_openstack import conf as tconf
from tests import hermetic


def _router():
    router = wsgi.Router(max_body_size=2048)

    def show(request, name):
        if name == 'missing':
            raise exception.NotFound('no host %s' % name)
        if name == 'boom':
            raise RuntimeError('secret internals')
        return {'name': name, 'roles': request.context.roles}

    def create(request):
        body = wsgi.json_body(request)
        return 201, {'size': wsgi.require(body, 'size', int)}

    router.connect('/v1/things/{name}', show, ['GET'])
    router.connect('/v1/things', create, ['POST'])
    return router


def _call(app, path, method='GET', body=None, headers=None):
    req = webob.Request.blank(path, method=method, headers=headers or {})
    if body is not None:
        req.body = body if isinstance(body, bytes) else body.encode()
        req.content_type = 'application/json'
    return req.get_response(app)


def test_routes_and_context():
    resp = _call(_router(), '/v1/things/a', headers={'X-Roles': 'reader'})
    assert resp.status_int == 200
    assert resp.json == {'name': 'a', 'roles': ['reader']}


def test_errors_are_json_and_leak_nothing():
    router = _router()
    assert _call(router, '/v1/things/missing').json['error']['message'] == 'no host missing'
    resp = _call(router, '/v1/things/boom')
    assert resp.status_int == 500 and 'secret' not in resp.text
    assert _call(router, '/v1/nothing').status_int == 404


def test_bad_bodies_name_the_field():
    router = _router()
    resp = _call(router, '/v1/things', 'POST', '{"size": "big"}')
    assert resp.status_int == 400 and 'size: must be of type int' in resp.json['error']['message']
    resp = _call(router, '/v1/things', 'POST', '{')
    assert 'body: malformed JSON' in resp.json['error']['message']
    assert _call(router, '/v1/things', 'POST', '[1]').status_int == 400
    assert _call(router, '/v1/things', 'POST', b'\xff\xfe').status_int == 400
    assert _call(router, '/v1/things', 'POST', '{}').json['error']['message'] == 'size: is required'
    assert _call(router, '/v1/things', 'POST', '{"size": true}').status_int == 400
    assert _call(router, '/v1/things', 'POST', '{"size": 3}').status_int == 201
    assert _call(router, '/v1/things', 'POST', '{"size": "%s"}' % ('x' * 4096)).status_int == 413


def test_noauth_requires_an_identity():
    conf = tconf.cfg.ConfigOpts()
    tconf.register_opts(conf)
    hermetic.parse(conf)
    conf.set_override('auth_strategy', 'noauth', group='api')
    app = wsgi.build_app(conf, _router())
    assert _call(app, '/v1/things/a').status_int == 401
    assert _call(app, '/v1/things/a', headers={'X-Roles': 'admin'}).status_int == 200


def test_keystone_strategy_rejects_missing_token(tmp_path):
    # auth_token names where to get a token in its 401 answer (WWW-Authenticate).
    conf_file = tmp_path / 'tclouds.conf'
    conf_file.write_text('[keystone_authtoken]\nwww_authenticate_uri = http://127.0.0.1:5000/v3\n')
    conf = tconf.cfg.ConfigOpts()
    tconf.register_opts(conf)
    hermetic.parse(conf, [conf_file])
    app = wsgi.build_app(conf, _router())
    # auth_token with no token and no identity answers 401 before reaching the router.
    assert _call(app, '/v1/things/a').status_int == 401


def test_nesting_limit_is_exact():
    router = _router()
    inner = wsgi.MAX_JSON_DEPTH - 1            # the top-level object is the first level
    ok = '{"size": 3, "x": %s1%s}' % ('[' * inner, ']' * inner)
    assert _call(router, '/v1/things', 'POST', ok).status_int == 201
    deep = '{"size": 3, "x": %s1%s}' % ('[' * (inner + 1), ']' * (inner + 1))
    resp = _call(router, '/v1/things', 'POST', deep)
    assert resp.status_int == 400 and resp.json['error']['message'].startswith('body: nested')
