"""Attestation REST API: authentication, validation, views, and the tclouds backend.

Identity headers (``noauth``) only reach the code under test here; no test decides who may
do what: that is tested with real Keystone tokens (tests/functional/policy/). Forged
identity headers against keystonemiddleware are refused (401) below.
"""
import datetime
import json

from oslo_config import cfg
import pytest
import webob

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.attestation.backends import tclouds as tclouds_backend
from tclouds_openstack.attestation.service import api
from tclouds_openstack.attestation.service import store as store_mod
from tclouds_openstack.attestation import simfleet
from tclouds_openstack.common import policy
from tclouds_openstack import conf as tconf

ADMIN = {'X-Roles': 'admin', 'X-User-Id': 'u1', 'X-Project-Id': 'p1'}
# shaped as keystonemiddleware sets them for a system reader and a project member
READER = {'X-Roles': 'reader', 'X-User-Id': 'u2', 'OpenStack-System-Scope': 'all'}
MEMBER = {'X-Roles': 'member,reader', 'X-User-Id': 'u3', 'X-Project-Id': 'p3'}
SERVICE = {'X-Roles': 'service', 'X-User-Id': 'nova', 'X-Project-Id': 'service'}


def make_conf(tmp_path, auth='noauth'):
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    conf([], project='tclouds-test', default_config_files=[])
    conf.set_override('auth_strategy', auth, group='api')
    conf.set_override('connection', 'sqlite:///%s' % (tmp_path / 'a.sqlite'),
                      group='attestation')
    conf.set_override('max_verdict_age', 60, group='attestation')
    return conf


@pytest.fixture
def env(tmp_path):
    policy.reset()
    conf = make_conf(tmp_path)
    store = store_mod.Store(conf.attestation.connection)
    store.migrate()
    simfleet.admit_host(store, 'compute-1', ak_name='aa' * 34)
    store.register('compute-2', b'ek2', 'e2' * 32, None, b'ak', 'bb' * 34, 'd' * 64)
    app = api.create_app(conf, store)
    yield conf, store, app
    policy.reset()


def call(app, method, path, headers=None, body=None):
    req = webob.Request.blank(path, method=method, headers=headers or {})
    if body is not None:
        req.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        req.content_type = 'application/json'
    resp = req.get_response(app)
    return resp.status_int, (resp.json if resp.body else None)


def test_unauthenticated_is_401(env):
    _, _, app = env
    assert call(app, 'GET', '/v1/hosts')[0] == 401


def test_keystone_auth_token_rejects_missing_token(tmp_path):
    policy.reset()
    conf = make_conf(tmp_path, auth='keystone')
    from keystonemiddleware.auth_token import _opts as ks_opts
    conf.register_opts(ks_opts._OPTS, group='keystone_authtoken')
    conf.set_override('www_authenticate_uri', 'http://127.0.0.1:5000', group='keystone_authtoken')
    store = store_mod.Store(conf.attestation.connection)
    store.migrate()
    app = api.create_app(conf, store)
    status, body = call(app, 'GET', '/v1/hosts', headers=ADMIN)
    assert status == 401


def test_verdict_views_fail_closed(env):
    conf, store, app = env
    now = store_mod.utcnow()
    store.save_verdict('compute-1', 'trusted', [], now, 'w1')
    status, body = call(app, 'GET', '/v1/verdicts?hosts=compute-1,compute-2,nope', SERVICE)
    assert status == 200
    verdicts = body['verdicts']
    assert verdicts['compute-1']['status'] == 'trusted'
    assert verdicts['compute-2']['status'] == 'unknown'     # not activated
    assert 'nope' not in verdicts
    # stale trust is shown as unknown with the reason
    store.save_verdict('compute-1', 'trusted', [], now - datetime.timedelta(seconds=120), 'w1')
    body = call(app, 'GET', '/v1/hosts/compute-1', READER)[1]['host']
    assert body['status'] == 'unknown' and 'old' in body['reasons'][0]
    assert body['stored_status'] == 'trusted'


def test_policy_crud_and_field_errors(env):
    _, store, app = env
    status, body = call(app, 'POST', '/v1/policies', ADMIN, b'{not json')
    assert status == 400 and body['error']['message'].startswith('body:')
    status, body = call(app, 'POST', '/v1/policies', ADMIN, {'tpm_policy': {}})
    assert status == 400 and body['error']['message'].startswith('name:')
    status, body = call(app, 'POST', '/v1/policies', ADMIN,
                        {'name': 'p', 'tpm_policy': {'7': ['zz']}})
    assert status == 400 and body['error']['message'].startswith('tpm_policy.7[0]:')
    status, body = call(app, 'POST', '/v1/policies', ADMIN,
                        {'name': 'p', 'runtime_policy': {'excludes': ['(']}})
    assert status == 400 and 'runtime_policy.excludes[0]' in body['error']['message']
    status, body = call(app, 'POST', '/v1/policies', ADMIN,
                        {'name': 'p', 'mb_refstate': 'x'})
    assert status == 400 and body['error']['message'].startswith('mb_refstate:')
    good = {'name': 'p', 'tpm_policy': {'16': ['00' * 32]},
            'runtime_policy': {'digests': {'/bin/true': ['11' * 32]}}}
    # who may create one (the admin only): tests/functional/policy/test_matrix.py
    assert call(app, 'POST', '/v1/policies', ADMIN, good)[0] == 201
    assert call(app, 'POST', '/v1/policies', ADMIN, good)[0] == 409
    body = call(app, 'GET', '/v1/policies/p', READER)[1]['policy']
    assert body['tpm_policy'] == {'16': ['00' * 32]}
    assert [p['name'] for p in call(app, 'GET', '/v1/policies', READER)[1]['policies']] == ['p']
    status, body = call(app, 'PATCH', '/v1/hosts/compute-1', ADMIN, {'policy': 7})
    assert status == 400 and body['error']['message'].startswith('policy:')
    assert call(app, 'PATCH', '/v1/hosts/compute-1', ADMIN, {'policy': 'missing'})[0] == 404
    assert call(app, 'PATCH', '/v1/hosts/compute-1', ADMIN, {'policy': 'p'})[1][
        'host']['policy'] == 'p'
    assert call(app, 'DELETE', '/v1/policies/p', ADMIN)[0] == 204
    assert call(app, 'GET', '/v1/policies/p', ADMIN)[0] == 404


def test_history_attest_delete(env):
    _, store, app = env
    now = store_mod.utcnow()
    store.save_verdict('compute-1', 'trusted', [], now, 'w1')
    store.save_verdict('compute-1', 'untrusted', ['ima: x'], now, 'w1')
    history = call(app, 'GET', '/v1/hosts/compute-1/history', READER)[1]['history']
    assert [h['status'] for h in history] == ['untrusted', 'trusted']
    status, body = call(app, 'GET', '/v1/hosts/compute-1/history?limit=abc', READER)
    assert status == 400 and body['error']['message'].startswith('limit:')
    assert call(app, 'POST', '/v1/hosts/compute-1/attest', ADMIN)[0] == 202
    assert call(app, 'GET', '/v1/verdicts', READER)[0] == 400
    assert call(app, 'DELETE', '/v1/hosts/compute-1', ADMIN)[0] == 204
    assert call(app, 'GET', '/v1/hosts/compute-1', ADMIN)[0] == 404


class _FakeClient(object):
    def __init__(self, answer=None, error=None):
        self.answer, self.error = answer, error

    def verdicts(self, hosts):
        if self.error:
            raise self.error
        return self.answer


def test_tclouds_backend_fails_closed(tmp_path):
    from tclouds_openstack.common import client
    conf = make_conf(tmp_path)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    backend = tclouds_backend.TCloudsBackend(conf, client=_FakeClient(
        {'a': {'status': 'trusted', 'reasons': [], 'verified_at': now},
         'b': {'status': 'bogus'}}))
    verdicts = backend.get_verdicts(['a', 'b', 'c'])
    assert base.check_trusted(verdicts['a'], 60)[0]
    assert verdicts['b'].status == 'unknown' and verdicts['c'].status == 'unknown'
    down = tclouds_backend.TCloudsBackend(conf, client=_FakeClient(
        error=client.ServiceUnavailable('down')))
    with pytest.raises(base.BackendUnavailable):
        down.get_verdicts(['a'])


def test_database_down_is_503_not_trust(tmp_path):
    policy.reset()
    conf = make_conf(tmp_path)
    store = store_mod.Store('mysql+pymysql://nobody:x@127.0.0.1:1/none', max_retries=0)
    app = api.create_app(conf, store)
    status, body = call(app, 'GET', '/v1/verdicts?hosts=a', SERVICE)
    assert status == 503


def test_tenant_view_without_nova_credentials_is_503_naming_the_options(env):
    _, _, app = env
    for path in ('/v1/trust/servers', '/v1/trust/servers/0f0e'):
        status, body = call(app, 'GET', path, MEMBER)
        assert status == 503
        assert '[attestation_compute]' in body['error']['message']
    # a token without a role the policy knows: tests/functional/policy/test_tenant_rules.py
