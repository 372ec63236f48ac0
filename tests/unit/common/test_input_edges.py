"""The class of input edges, across every API that takes a JSON body: never a 500.

Each route's valid body is taken apart: every member at every depth is replaced in turn by
values of every other JSON type (and lists of them), and the body is nested too deeply. The
answer must be a 4xx, and a 400 must name the field (``field: message``), so a caller can
act on it. Authorization is not the subject here (admin identity headers, noauth).
"""
import copy
import json

from oslo_config import cfg
import pytest
import webob

from tclouds_openstack.attestation.service import api as attestation_api
from tclouds_openstack.attestation.service import store as attestation_store
from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack import conf as tconf
from tclouds_openstack.securelog import api as securelog_api
from tclouds_openstack.securelog import store as securelog_store
from tests import hermetic

HEADERS = {'X-Roles': 'admin,manager,member,reader', 'X-User-Id': 'u', 'X-Project-Id': 'p1'}
WRONG = [None, True, 7, 1.5, 'text', '', [], {}, [7], [None], [[]], [{}], {'k': [7]},
         -1, 10 ** 30]

BODIES = [
    ('attestation', 'PATCH', '/v1/hosts/compute-1', {'policy': 'golden'}),
    ('attestation', 'POST', '/v1/policies', {
        'name': 'p', 'tpm_policy': {'16': ['00' * 32], 'mask': '0x10000'},
        'runtime_policy': {'meta': {'version': 1}, 'digests': {'/bin/x': ['aa' * 20]},
                           'excludes': ['/tmp/.*']}}),
    ('attestation', 'PUT', '/v1/requirements/p1',
     {'requirement': {'trusted_host': 'required', 'jurisdictions': ['DE', 'FR']}}),
    ('attestation', 'POST', '/v1/requirements/p1/resolve', {
        'flavor_extra_specs': {'trust:trusted_host': 'required', 'trust:jurisdiction': 'DE'},
        'image_traits': ['CUSTOM_TCLOUDS_TRUSTED', 'CUSTOM_JURISDICTION_DE'],
        'hints': {'trust_trusted_host': ['required'], 'trust_jurisdiction': ['DE', 'FR']}}),
    ('attestation', 'PUT', '/v1/hosts/compute-1/enrolment',
     {'ek_sha256': 'ab' * 32, 'credentials': ['0123456789abcdef0123456789abcdef']}),
    ('attestation', 'POST', '/v1/hosts/compute-1/approve', {'ek_sha256': 'ab' * 32}),
    ('securelog', 'POST', '/v1/records', {'event_type': 'x', 'payload': {'a': [1, {'b': 'c'}]}}),
]


class _Publisher(object):
    def info(self, *args):
        pass

    def prepare(self, **kwargs):
        return self


@pytest.fixture(scope='module')
def apps(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('edges')
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    hermetic.parse(conf, project='tclouds-test')
    conf.set_override('auth_strategy', 'noauth', group='api')
    conf.set_override('connection', 'sqlite:///%s' % (tmp / 'a.sqlite'), group='attestation')
    store = attestation_store.Store(conf.attestation.connection)
    store.migrate()
    policy.reset()
    log = securelog_store.SecureLogStore('sqlite:///%s' % (tmp / 'l.sqlite'), str(tmp / 'st'),
                                         origin='edges', checkpoint_interval=3600)
    yield {'attestation': attestation_api.create_app(conf, store),
           'securelog': securelog_api.build_app(conf, log, _Publisher())}
    policy.reset()


def _call(app, method, path, raw):
    req = webob.Request.blank(path, method=method, headers=HEADERS)
    req.body = raw
    req.content_type = 'application/json'
    resp = req.get_response(app)
    return resp.status_int, resp.json if resp.body else None


def _member_paths(value, prefix=()):
    if prefix:
        yield prefix
    members = (value.items() if isinstance(value, dict) else
               enumerate(value) if isinstance(value, list) else ())
    for key, child in members:
        yield from _member_paths(child, prefix + (key,))


def _replaced(body, path, new):
    body = copy.deepcopy(body)
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return body


def _served(app, method, path):
    status, _ = _call(app, method, path, b'{')
    return status != 404 and status != 405


@pytest.mark.parametrize('api,method,path,body', BODIES, ids=lambda v: str(v)[:40])
def test_wrong_types_anywhere_are_4xx_naming_the_field(apps, api, method, path, body):
    app = apps[api]
    assert _served(app, method, path), 'BODIES names %s %s, which the %s API does not serve' % (
        method, path, api)
    wrong = []
    for member in _member_paths(body):
        for value in WRONG:
            status, answer = _call(app, method, path,
                                   json.dumps(_replaced(body, member, value)).encode())
            message = (answer or {}).get('error', {}).get('message', '')
            if status >= 500 or status == 400 and ': ' not in message:
                wrong.append('%s = %r: %d %s' % ('.'.join(map(str, member)), value, status,
                                                 message))
    assert not wrong, '\n'.join(wrong)


@pytest.mark.parametrize('api,method,path,body', BODIES, ids=lambda v: str(v)[:40])
def test_deep_nesting_is_400_naming_the_body(apps, api, method, path, body):
    app = apps[api]
    assert _served(app, method, path), 'BODIES names %s %s, which the %s API does not serve' % (
        method, path, api)
    first = next(iter(body))
    for opener, closer in ((b'[', b']'), (b'{"a":', b'}')):
        for depth in (wsgi.MAX_JSON_DEPTH, 100000):
            raw = b'{"%s": %s1%s}' % (first.encode(), opener * depth, closer * depth)
            status, answer = _call(app, method, path, raw)
            assert status == 400, (depth, status, answer)
            assert answer['error']['message'] == ('body: nested deeper than %d levels'
                                                  % wsgi.MAX_JSON_DEPTH), answer


# ---------------------------------------------------------------- URLs and number edges
QUERY_PARAMS = ('limit', 'marker', 'size', 'index', 'tree_size', 'first', 'second',
                'previous_size', 'hosts', 'project_id', 'source', 'event_type', 'from', 'to')
HOSTILE_VALUES = ('%ff', '%C0%AF', '99999999999999999999999', '9' * 5000, '-99999999999999999999',
                  '%C2%B2', '%D9%A1', '1_000', '%201', '0x10', '')
HOSTILE_SEGMENTS = ('%ff', '99999999999999999999999', '9' * 5000, '%E2%80%8B', '-1', 'x' * 5000)


def _routes(apps):
    for name, app in apps.items():
        router = app.app if hasattr(app, 'app') else app
        router = getattr(router, 'app', router)
        mapper = router.mapper
        for route in mapper.matchlist:
            for method in route.conditions['method']:
                yield name, method, route.routepath


def _request(app, method, url, raw=None):
    req = webob.Request.blank('/', method=method, headers=HEADERS)
    path, _, query = url.partition('?')
    req.environ['PATH_INFO'] = _unquote(path)
    req.environ['QUERY_STRING'] = query
    if raw is not None:
        req.body = raw
        req.content_type = 'application/json'
    resp = req.get_response(app)
    return resp.status_int, resp.json if resp.body else None


def _unquote(path):
    """PATH_INFO as a WSGI server hands it over: the bytes, latin-1 decoded."""
    import urllib.parse
    return urllib.parse.unquote_to_bytes(path).decode('latin-1')


def _fill(route, value):
    import re
    return re.sub(r'\{[a-z_]+\}', value, route)


def test_hostile_query_strings_and_path_segments_are_never_a_500(apps):
    """Every route of every API: bad UTF-8, huge, non-ASCII or odd numbers -> 4xx."""
    wrong = []
    for api, method, route in _routes(apps):
        app = apps[api]
        raw = b'{}' if method in ('POST', 'PUT', 'PATCH') else None
        urls = [_fill(route, segment) for segment in HOSTILE_SEGMENTS]
        urls += ['%s?%s=%s' % (_fill(route, 'compute-1'), param, value)
                 for param in QUERY_PARAMS for value in HOSTILE_VALUES]
        urls += ['%s?limit=1&limit=%%ff&hosts=a,%%ff' % _fill(route, 'p1')]
        for url in urls:
            status, answer = _request(app, method, url, raw)
            message = ((answer or {}).get('error') or {}).get('message', '')
            if status >= 500 and not (status == 503 and 'not configured' in message
                                      or status == 503 and 'checkpoint' in message):
                wrong.append('%s %s: %d %s' % (method, url[:120], status, message[:120]))
    assert not wrong, '\n'.join(wrong)


@pytest.mark.parametrize('api,method,path,body', BODIES, ids=lambda v: str(v)[:40])
def test_numbers_json_or_a_database_cannot_hold_are_400(apps, api, method, path, body):
    app = apps[api]
    first = next(iter(body))
    for literal in (b'NaN', b'Infinity', b'-Infinity', b'1e999', b'-1e999',
                    b'9223372036854775808', b'-9223372036854775809', b'9' * 5000):
        raw = b'{"%s": %s}' % (first.encode(), literal)
        status, answer = _call(app, method, path, raw)
        assert status == 400, (literal[:30], status, answer)
        assert answer['error']['message'].startswith('body: malformed JSON'), answer
    # the edges themselves are numbers like any other
    raw = b'{"%s": [9223372036854775807, -9223372036854775808, 1e308]}' % first.encode()
    assert _call(app, method, path, raw)[0] != 500


class _Stream(object):
    """A request body of ``size`` bytes that exists only as it is read (no memory)."""

    def __init__(self, size):
        self.left, self.taken = size, 0

    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        self.taken += n
        return b' ' * n


@pytest.mark.parametrize('terminated', [True, False])
def test_a_body_without_content_length_is_bounded_too(terminated):
    """Chunked bodies (uwsgi and mod_wsgi may pass them on) are read up to the limit."""
    router = wsgi.Router(max_body_size=1024)
    router.connect('/x', lambda request: wsgi.json_body(request), ['POST'])
    app = wsgi.NoAuthMiddleware(router)
    for size, status in ((50 * 1024 * 1024, 413), (20, 200)):
        stream = _Stream(size)
        if size == 20:
            stream.read = (lambda data: lambda n=-1: data)(b'{"a":                 1}')
        environ = {'REQUEST_METHOD': 'POST', 'PATH_INFO': '/x', 'SERVER_NAME': 'a',
                   'SERVER_PORT': '80', 'wsgi.url_scheme': 'http', 'wsgi.input': stream,
                   'HTTP_X_ROLES': 'admin', 'HTTP_X_USER_ID': 'u',
                   'HTTP_TRANSFER_ENCODING': 'chunked' if not terminated else 'identity',
                   'wsgi.input_terminated': terminated}
        resp = webob.Request(environ).get_response(app)
        assert resp.status_int == status, resp.body[:200]
        if status == 413:
            assert stream.taken == 1025        # never more than the limit and one byte
