"""WSGI entry points (tclouds_openstack.wsgi): configuration files, lazy building, and each
API's application built from a configuration as uwsgi does."""
import json

from oslo_config import cfg
import pytest
import webob

from tclouds_openstack.attestation.service import store as store_mod
from tclouds_openstack.common import policy
from tclouds_openstack import conf as tconf
from tclouds_openstack import wsgi
from tclouds_openstack.wsgi import attestation_api
from tclouds_openstack.wsgi import key_release_api
from tclouds_openstack.wsgi import securelog_api

ADMIN = {'X-Roles': 'admin', 'X-User-Id': 'u1', 'X-Project-Id': 'p1'}


@pytest.fixture(autouse=True)
def fresh_policy():
    policy.reset()
    yield
    policy.reset()


def private_conf():
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    return conf


def load(path):
    return wsgi.load_conf('t', files=[path], conf=private_conf(), setup_logging=False,
                          project='tclouds-test')


def write_conf(tmp_path, text):
    path = tmp_path / 'tclouds.conf'
    path.write_text(text)
    return str(path)


def get(app, path, headers=None):
    resp = webob.Request.blank(path, headers=headers or {}).get_response(app)
    return resp.status_int, (json.loads(resp.body) if resp.body else None)


def test_config_files_default_and_list():
    assert wsgi.config_files({}) == ['/etc/tclouds/tclouds.conf']
    assert wsgi.config_files({'TCLOUDS_CONFIG_FILE': '/a.conf, /b.conf,'}) == \
        ['/a.conf', '/b.conf']


def test_load_conf_reads_the_files(tmp_path):
    path = write_conf(tmp_path, '[attestation]\napi_port = 9999\n')
    conf = load(path)
    assert conf.attestation.api_port == 9999


def test_load_conf_names_a_missing_file(tmp_path):
    missing = str(tmp_path / 'nope.conf')
    with pytest.raises(RuntimeError, match='nope.conf'):
        load(missing)


def test_lazy_application_builds_once_and_retries_a_failure():
    calls = []

    def build(conf):
        calls.append(conf)
        if len(calls) == 1:
            raise RuntimeError('database unreachable')
        return webob.Response(json_body={'ok': True})

    app = wsgi.LazyApplication('t', build, load=lambda prog: prog)
    assert calls == []              # importing/creating reads nothing
    with pytest.raises(RuntimeError):
        get(app, '/')
    assert get(app, '/') == (200, {'ok': True})
    assert get(app, '/') == (200, {'ok': True})
    assert calls == ['t', 't']


def attestation_conf(tmp_path):
    db = 'sqlite:///%s' % (tmp_path / 'a.sqlite')
    path = write_conf(tmp_path, '[api]\nauth_strategy = noauth\n[attestation]\n'
                                'connection = %s\n' % db)
    return load(path), db


def test_attestation_api_refuses_an_unmigrated_database(tmp_path):
    conf, _ = attestation_conf(tmp_path)
    with pytest.raises(RuntimeError, match='not|schema|migrat'):
        attestation_api.build(conf)


def test_attestation_api_serves_hosts(tmp_path):
    conf, db = attestation_conf(tmp_path)
    store_mod.Store(db).migrate()
    app = attestation_api.build(conf)
    status, body = get(app, '/v1/hosts', ADMIN)
    assert (status, body) == (200, {'hosts': []})


def test_key_release_api_authenticates_with_keystone(tmp_path):
    key = tmp_path / 'master.key'
    key.write_text('00' * 32)
    path = write_conf(tmp_path, '[tclouds_key_manager]\nlocal_store_path = %s\n'
                                'master_key_file = %s\n[keystone_authtoken]\n'
                                'www_authenticate_uri = http://127.0.0.1:9/identity\n'
                      % (tmp_path / 'keys.sqlite', key))
    conf = load(path)
    app = key_release_api.build(conf)
    # keystonemiddleware in front: no token, no key
    assert get(app, '/v1/volumes/v/key')[0] == 401


def test_securelog_api_serves_the_checkpoint(tmp_path):
    from tclouds_openstack.securelog import store
    path = write_conf(tmp_path, '[api]\nauth_strategy = noauth\n[DEFAULT]\n'
                                'transport_url = fake:/\n[securelog]\n'
                                'connection = sqlite:///%s\nstate_dir = %s\n'
                                'auditor_dir = %s\n'
                                % (tmp_path / 's.sqlite', tmp_path / 'state',
                                   tmp_path / 'auditor'))
    conf = load(path)
    st = store.SecureLogStore.from_conf(conf)
    st.signer
    st.checkpoint()
    app = securelog_api.build(conf)
    status, body = get(app, '/v1/checkpoint', ADMIN)
    assert status == 200
    assert body['tree_size'] == 0


def test_console_scripts_serve_the_wsgi_builders_applications(tmp_path, monkeypatch):
    """tclouds-securelog-api and tclouds-attestation-api build nothing of their own."""
    from tclouds_openstack.cmd import attestation_api as attestation_cmd
    from tclouds_openstack.cmd import securelog as securelog_cmd
    from tclouds_openstack.common import wsgi as wsgi_server
    served, built = [], []
    monkeypatch.setattr(wsgi_server, 'serve', lambda app, host, port, conf: served.append(app))
    real_build = securelog_api.build
    monkeypatch.setattr(securelog_api, 'build',
                        lambda conf: built.append(real_build(conf)) or built[-1])
    path = write_conf(tmp_path, '[api]\nauth_strategy = noauth\n[DEFAULT]\n'
                                'transport_url = fake:/\n[securelog]\n'
                                'connection = sqlite:///%s\nstate_dir = %s\n'
                                'auditor_dir = %s\n[oslo_policy]\npolicy_file = %s\n'
                                % (tmp_path / 's.sqlite', tmp_path / 'state',
                                   tmp_path / 'auditor', tmp_path / 'policy.yaml'))
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert securelog_cmd.api_main(['--config-file', path, '--config-dir', str(empty)]) == 0
    assert served == built and len(built) == 1

    # the attestation API refuses an unmigrated database through the builder: exit 1
    conf_path = write_conf(tmp_path, '[api]\nauth_strategy = noauth\n[attestation]\n'
                                     'connection = sqlite:///%s\n[oslo_policy]\n'
                                     'policy_file = %s\n'
                           % (tmp_path / 'a.sqlite', tmp_path / 'policy.yaml'))
    try:
        assert attestation_cmd.main(['--config-file', conf_path,
                                     '--config-dir', str(empty)]) == 1
    finally:
        tconf.CONF.reset()
        tconf.CONF.clear()
    assert len(served) == 1
