"""Trust requirements REST API: storage, validation naming fields, resolution.

Identity headers (``noauth``) only reach the code under test here; no test decides who
may do what. Who may set, tighten, relax or read a project's requirement is tested with
real Keystone tokens: tests/functional/policy/test_matrix.py and test_tenant_rules.py.
"""
import json

from oslo_config import cfg
import pytest
import webob

from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack import conf as tconf
from tclouds_openstack.requirements import api
from tclouds_openstack.requirements import client as req_client
from tclouds_openstack.requirements import store as store_mod

ADMIN = {'X-Roles': 'admin', 'X-User-Id': 'root', 'X-Project-Id': 'admin'}
MEMBER = {'X-Roles': 'member,reader', 'X-User-Id': 'alice', 'X-Project-Id': 'p1'}


@pytest.fixture
def app(tmp_path):
    policy.reset()
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    conf([], project='tclouds-test', default_config_files=[])
    conf.set_override('auth_strategy', 'noauth', group='api')
    conf.set_override('connection', 'sqlite:///%s' % (tmp_path / 'r.sqlite'),
                      group='attestation')
    router = wsgi.Router()
    api.add_routes(router, conf)
    policy.get_enforcer(conf)
    yield wsgi.build_app(conf, router)
    policy.reset()


def call(app, method, path, headers, body=None):
    req = webob.Request.blank(path, method=method, headers=headers)
    if body is not None:
        req.body = json.dumps(body).encode()
        req.content_type = 'application/json'
    resp = req.get_response(app)
    return resp.status_int, (resp.json if resp.body else None)


@pytest.mark.parametrize('spec, field', [
    ({'jurisdictions': ['DE', 'Germany']}, 'requirement.jurisdictions[1]'),
    ({'jurisdictions': []}, 'requirement.jurisdictions'),
    ({'trusted_host': 'maybe'}, 'requirement.trusted_host'),
    ({'trusted': 'required'}, 'requirement'),
])
def test_bad_input_names_the_field(app, spec, field):
    status, body = call(app, 'PUT', '/v1/requirements/p1', MEMBER, {'requirement': spec})
    assert status == 400
    assert body['error']['message'].startswith(field + ':')


def test_malformed_body(app):
    req = webob.Request.blank('/v1/requirements/p1', method='PUT', headers=MEMBER)
    req.body = b'{"requirement": '
    resp = req.get_response(app)
    assert resp.status_int == 400 and 'body: malformed JSON' in resp.json['error']['message']
    assert call(app, 'PUT', '/v1/requirements/p1', MEMBER, {'x': 1})[0] == 400


def test_resolve_says_which_rule_wins(app):
    call(app, 'PUT', '/v1/requirements/p1', MEMBER,
         {'requirement': {'trusted_host': 'optional', 'jurisdictions': ['EU']}})
    status, body = call(app, 'POST', '/v1/requirements/p1/resolve', MEMBER, {
        'flavor_extra_specs': {'trust:trusted_host': 'required', 'trust:jurisdiction': 'DE'},
        'hints': {'trust_jurisdiction': ['DE', 'FR']}})
    assert status == 200
    assert body['requirement']['trusted_host'] == 'required'
    assert body['requirement']['jurisdictions'] == ['DE']
    assert body['satisfiable'] is True
    assert any('required applies' in c for c in body['conflicts'])
    status, body = call(app, 'POST', '/v1/requirements/p1/resolve', MEMBER,
                        {'image_traits': ['CUSTOM_JURISDICTION_US']})
    assert status == 200 and body['satisfiable'] is False
    status, body = call(app, 'POST', '/v1/requirements/p1/resolve', MEMBER,
                        {'flavor_extra_specs': {'trust:jurisdiction': 'XX'}})
    assert status == 400 and body['error']['message'].startswith(
        'flavor trust:jurisdiction[0]:')


def test_list_shows_every_stored_requirement(app):
    # who may list: tests/functional/policy/test_matrix.py (real tokens)
    call(app, 'PUT', '/v1/requirements/p1', MEMBER, {'requirement': {'jurisdictions': 'DE'}})
    status, body = call(app, 'GET', '/v1/requirements', ADMIN)
    assert status == 200 and [r['project_id'] for r in body['requirements']] == ['p1']


def test_record_round_trips_to_scheduler_requirement(tmp_path):
    store = store_mod.Store('sqlite:///%s' % (tmp_path / 's.sqlite'))
    store.migrate()
    store.put('p9', True, ['EEA'], 'u')
    req = req_client.record_to_requirement(store.get('p9'), 'p9')
    assert req.requires_trust and 'NO' in req.jurisdictions and req.source == 'project p9'
