"""Secure log REST API on a real store: proofs that verify against the signed checkpoint,
precise 400s, and appends through the bus publisher (who may read which records, with
real tokens: tests/functional/policy/test_matrix.py)."""
import base64
import json

from oslo_config import cfg
import pytest
import webob

from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack import conf as tconf
from tclouds_openstack.securelog import api
from tclouds_openstack.securelog import checkpoint as cpmod
from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import merkle
from tclouds_openstack.securelog import source as srcmod
from tclouds_openstack.securelog import store as storemod

ADMIN = {'X-Roles': 'admin', 'X-User-Id': 'u1', 'X-Project-Id': 'p1'}
# identity headers as keystonemiddleware sets them for a system reader's token and a
# member's (which carries the implied reader role); real tokens: tests/functional/policy
AUDITOR = {'X-Roles': 'reader', 'X-User-Id': 'u2', 'OpenStack-System-Scope': 'all'}
MEMBER_P1 = {'X-Roles': 'member,reader', 'X-User-Id': 'u3', 'X-Project-Id': 'p1'}
SERVICE = {'X-Roles': 'service', 'X-User-Id': 'swift', 'X-Project-Id': 'service'}


class FakePublisher(object):
    def __init__(self, sent=None, publisher_id='securelog-api'):
        self.sent = [] if sent is None else sent
        self.publisher_id = publisher_id

    def prepare(self, publisher_id):
        return FakePublisher(self.sent, publisher_id)

    def info(self, ctxt, event_type, payload):
        self.sent.append((self.publisher_id, ctxt.project_id, event_type, payload))


@pytest.fixture
def env(tmp_path):
    policy.reset()
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    conf([], project='tclouds-test', default_config_files=[])
    conf.set_override('auth_strategy', 'noauth', group='api')
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
    yield api.build_app(conf, store, publisher), store, publisher, tmp_path
    policy.reset()


def call(app, method, path, headers=None, body=None):
    req = webob.Request.blank(path, method=method, headers=headers or {})
    if body is not None:
        req.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        req.content_type = 'application/json'
    resp = req.get_response(app)
    return resp.status_int, (resp.json if resp.body else None)


def test_checkpoint_and_proofs_verify_for_any_user(env, tmp_path):
    app, store, _pub, _tmp = env
    status, cp = call(app, 'GET', '/v1/checkpoint', MEMBER_P1)
    assert status == 200 and cp['tree_size'] == 30
    bundle = keyfiles.AuditorBundle.load(str(tmp_path / 'state' / 'auditor'))
    checkpoint, _w = cpmod.open_checkpoint(cp['checkpoint'], bundle.log_verifier)
    status, proof = call(app, 'GET', '/v1/proofs/inclusion?index=17', MEMBER_P1)
    assert status == 200
    merkle.verify_inclusion(base64.b64decode(proof['leaf_hash']), 17, 30,
                            [base64.b64decode(p) for p in proof['proof']], checkpoint.root)
    _s, record = call(app, 'GET', '/v1/records/17', ADMIN)
    assert merkle.hash_leaf(base64.b64decode(record['record']['record'])) == \
        base64.b64decode(proof['leaf_hash'])
    status, cons = call(app, 'GET', '/v1/proofs/consistency?first=11', MEMBER_P1)
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
    app, *_ = env
    status, body = call(app, 'GET', path, ADMIN)
    assert status == 400 and field in body['error']['message'], body


def test_append_goes_to_the_bus_and_validates(env):
    app, _store, publisher, _tmp = env
    ok = {'event_type': 'object.delete', 'payload': {'path': '/v1/AUTH_p1/c/o'}}
    assert call(app, 'POST', '/v1/records', SERVICE, ok)[0] == 202
    # attributed to the caller (user swift of project service), not to the API service
    assert publisher.sent == [('user:swift', 'service', 'object.delete',
                               {'path': '/v1/AUTH_p1/c/o'})]
    assert call(app, 'POST', '/v1/records', MEMBER_P1, ok)[0] == 403
    for body, message in ((b'{not json', 'body: malformed JSON'),
                          ({'payload': {}}, 'event_type: is required'),
                          ({'event_type': 7, 'payload': {}}, 'event_type: must be of type'),
                          ({'event_type': 'x', 'payload': {}, 'extra': 1}, 'unknown field')):
        status, resp = call(app, 'POST', '/v1/records', SERVICE, body)
        assert status == 400 and message in resp['error']['message'], resp
    assert len(publisher.sent) == 1


def test_osc_commands_against_the_api(env, tmp_path, monkeypatch):
    """The OSC commands through keystoneauth1 and requests against the API over HTTP."""
    import threading
    import types

    from keystoneauth1 import session as ks_session
    from osc_lib import exceptions as osc_exc

    from tclouds_openstack.osc.v1 import securelog as osc

    app, _store, publisher, _tmp = env

    server = wsgi.make_server(app, '127.0.0.1', 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv('OS_SECURE_LOG_ENDPOINT', 'http://127.0.0.1:%d' % server.server_port)
    session = ks_session.Session(additional_headers=AUDITOR)
    fake_app = types.SimpleNamespace(client_manager=types.SimpleNamespace(
        session=session, interface=None, region_name=None))
    vkey = (tmp_path / 'state' / 'auditor' / 'log.vkey').read_text().strip()

    def run(cls, argv):
        cmd = cls(fake_app, None)
        return cmd.take_action(cmd.get_parser('openstack').parse_args(argv))

    try:
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
    finally:
        server.shutdown()
        server.server_close()
