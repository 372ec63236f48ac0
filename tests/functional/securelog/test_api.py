"""Secure log REST API on a real store: proofs that verify against the signed checkpoint,
precise 400s, and appends through the bus publisher.

The API runs behind keystonemiddleware; every request carries a real Keystone token of a
persona (tests/functional/personas.py): ``admin``, the operator's auditor
``system_reader``, ``member_a`` (a tenant) and ``service``. Who may read which records,
persona by persona: tests/functional/policy/test_matrix.py.
"""
import base64
import json

import pytest
import webob

from tclouds_openstack.common import policy
from tclouds_openstack.securelog import api
from tclouds_openstack.securelog import checkpoint as cpmod
from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import merkle
from tclouds_openstack.securelog import source as srcmod
from tclouds_openstack.securelog import store as storemod
from tests.functional import wsgi_thread

ADMIN, AUDITOR, MEMBER, SERVICE = 'admin', 'system_reader', 'member_a', 'service'


class FakePublisher(object):
    def __init__(self, sent=None, publisher_id='securelog-api'):
        self.sent = [] if sent is None else sent
        self.publisher_id = publisher_id

    def prepare(self, publisher_id):
        return FakePublisher(self.sent, publisher_id)

    def info(self, ctxt, event_type, payload):
        self.sent.append((self.publisher_id, ctxt.project_id, event_type, payload))


@pytest.fixture
def env(personas, tmp_path):
    policy.reset()
    conf = personas.api_conf(tmp_path)
    store = storemod.SecureLogStore('sqlite:///%s' % (tmp_path / 'api.sqlite'),
                                    str(tmp_path / 'state'), origin='test.example/log',
                                    checkpoint_interval=3600)
    src = srcmod.Source('nova@ctl', str(tmp_path / 'src'))
    with src.open():
        pass                            # the sealer exists, its K0 in src/auditor
    store.enroll_source('nova@ctl', keyfiles.read_k0(src.k0_path()))
    store.append(src.seal([({'event_type': 'compute.instance.create.end', 'n': i},
                            'p%d' % (i % 3)) for i in range(30)]))
    store.checkpoint()
    publisher = FakePublisher()
    yield _Api(api.build_app(conf, store, publisher), personas), store, publisher, tmp_path
    policy.reset()


class _Api(object):
    """The API's WSGI application (keystonemiddleware included) and the personas."""

    def __init__(self, app, personas):
        self.app, self.personas = app, personas

    def call(self, method, path, persona, body=None):
        """(status, JSON body): a request in this process with ``persona``'s token."""
        req = webob.Request.blank(path, method=method, headers=self.personas.headers(persona))
        if body is not None:
            req.body = body if isinstance(body, bytes) else json.dumps(body).encode()
            req.content_type = 'application/json'
        resp = req.get_response(self.app)
        return resp.status_int, (resp.json if resp.body else None)


def test_checkpoint_and_proofs_verify_for_any_user(env, tmp_path):
    app = env[0]
    status, cp = app.call('GET', '/v1/checkpoint', MEMBER)
    assert status == 200 and cp['tree_size'] == 30
    bundle = keyfiles.AuditorBundle.load(str(tmp_path / 'state' / 'auditor'))
    checkpoint, _w = cpmod.open_checkpoint(cp['checkpoint'], bundle.log_verifier)
    status, proof = app.call('GET', '/v1/proofs/inclusion?index=17', MEMBER)
    assert status == 200
    merkle.verify_inclusion(base64.b64decode(proof['leaf_hash']), 17, 30,
                            [base64.b64decode(p) for p in proof['proof']], checkpoint.root)
    status, record = app.call('GET', '/v1/records/17', ADMIN)
    assert status == 200
    assert merkle.hash_leaf(base64.b64decode(record['record']['record'])) == \
        base64.b64decode(proof['leaf_hash'])
    status, cons = app.call('GET', '/v1/proofs/consistency?first=11', MEMBER)
    merkle.verify_consistency(11, 30, [base64.b64decode(p) for p in cons['proof']],
                              base64.b64decode(cons['first_root_hash']), checkpoint.root)


@pytest.mark.parametrize('path, field', [
    ('/v1/proofs/inclusion', 'index: is required'),
    ('/v1/proofs/inclusion?index=abc', 'index: must be an integer'),
    ('/v1/proofs/inclusion?index=-1', 'index: must be an integer 0..'),
    ('/v1/proofs/inclusion?index=3&tree_size=31', 'tree_size: is beyond the current tree'),
    ('/v1/proofs/inclusion?index=5&tree_size=5', 'index: must be below tree_size 5'),
    ('/v1/proofs/consistency?first=9&second=4', 'first: must not exceed second'),
    ('/v1/records?limit=0', 'limit: must be an integer 1..'),
    ('/v1/records/x1', 'index: must be an integer'),
    ('/v1/checkpoint?size=q', 'size: must be an integer'),
])
def test_bad_query_parameters_name_the_field(env, path, field):
    app = env[0]
    status, body = app.call('GET', path, ADMIN)
    assert status == 400 and field in body['error']['message'], body


def test_append_goes_to_the_bus_and_validates(env):
    app, _store, publisher, _tmp = env
    ok = {'event_type': 'object.delete', 'payload': {'path': '/v1/AUTH_p1/c/o'}}
    assert app.call('POST', '/v1/records', SERVICE, ok)[0] == 202
    # attributed to the caller (the service user of project service), not to the API service
    personas = app.personas
    assert publisher.sent == [('user:%s' % personas.user_id(SERVICE),
                               personas.project_id('service'), 'object.delete',
                               {'path': '/v1/AUTH_p1/c/o'})]
    # a tenant and the operator's auditor read the log, they do not write it
    for persona in (MEMBER, AUDITOR):
        status, body = app.call('POST', '/v1/records', persona, ok)
        assert status == 403 and 'securelog:record:create' in body['error']['message'], \
            (persona, body)
    for body, message in ((b'{not json', 'body: malformed JSON'),
                          ({'payload': {}}, 'event_type: is required'),
                          ({'event_type': 7, 'payload': {}}, 'event_type: must be of type'),
                          ({'event_type': 'x', 'payload': {}, 'extra': 1}, 'unknown field')):
        status, resp = app.call('POST', '/v1/records', SERVICE, body)
        assert status == 400 and message in resp['error']['message'], resp
    assert len(publisher.sent) == 1


def test_osc_commands_against_the_api(env, tmp_path, monkeypatch):
    """The OSC commands through keystoneauth1 and requests against the API over HTTP."""
    import types

    from osc_lib import exceptions as osc_exc

    from tclouds_openstack.osc.v1 import securelog as osc

    app = env[0]
    fake_app = types.SimpleNamespace(client_manager=types.SimpleNamespace(
        session=app.personas.session(AUDITOR), interface=None, region_name=None))
    vkey = (tmp_path / 'state' / 'auditor' / 'log.vkey').read_text().strip()

    def run(cls, argv):
        cmd = cls(fake_app, None)
        return cmd.take_action(cmd.get_parser('openstack').parse_args(argv))

    with wsgi_thread.serving(app.app) as url:
        monkeypatch.setenv('OS_SECURE_LOG_ENDPOINT', url)
        cols, data = run(osc.ProveInclusion, ['12', '--vkey', vkey])
        assert dict(zip(cols, data))['verified'] is True
        cols, data = run(osc.ProveConsistency, ['3', '--vkey', vkey])
        assert dict(zip(cols, data))['verified'] is True
        cols, rows = run(osc.ListRecords, ['--limit', '5', '--marker', '10'])
        assert [r[0] for r in rows] == [10, 11, 12, 13, 14]
        cols, data = run(osc.ShowCheckpoint, ['--vkey', vkey])
        assert dict(zip(cols, data))['signature'] == 'verified'
        other = cpmod.NoteSigner.generate('test.example/log').vkey()
        with pytest.raises(osc_exc.CommandError, match='checkpoint rejected'):
            run(osc.ProveInclusion, ['12', '--vkey', other])
        with pytest.raises(osc_exc.CommandError, match='HTTP 403'):
            run(osc.AppendEvent, ['audit.note', '--payload', '{"a": 1}'])
        with pytest.raises(osc_exc.CommandError, match='--payload is not JSON'):
            run(osc.AppendEvent, ['audit.note', '--payload', '{'])
