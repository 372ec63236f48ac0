"""The host credential, end to end with a real Keystone and keystonemiddleware.

A compute host's castellan driver (role compute) authenticates as its own Keystone user;
the key release API validates the token with keystonemiddleware and derives the host from
the validated user only. Identity headers a caller sets itself are ignored.
"""
import datetime
import os
import threading

from castellan.common import exception as castellan_exc
from keystoneauth1.identity import v3
from keystoneauth1 import session as ks_session
from oslo_config import cfg
import pytest

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.common import context as tc_context
from tclouds_openstack.common import wsgi
from tclouds_openstack.conf import api as conf_api
from tclouds_openstack.keymgr import api
from tclouds_openstack.keymgr import client
from tclouds_openstack.keymgr import driver
from tclouds_openstack.keymgr import release
from tests.functional.keymgr import keystone_server
from tests import hermetic
from tests.unit.keymgr import helpers

NOW = datetime.datetime.now(datetime.timezone.utc)
HOSTS = {'node1': 'pw-node1', 'node2': 'pw-node2'}


class Backend(base.AttestationBackend):
    def get_verdicts(self, hosts):
        known = {'node1': base.Verdict('node1', base.TRUSTED, (), NOW),
                 'node2': base.Verdict('node2', base.UNTRUSTED, ('PCR 4: unknown kernel',),
                                       NOW)}
        return {h: known.get(h, base.unknown(h, 'never attested')) for h in hosts}


@pytest.fixture(scope='module')
def keystone(tmp_path_factory):
    server = keystone_server.Keystone(str(tmp_path_factory.mktemp('keystone')))
    try:
        server.start()
        for host, password in HOSTS.items():
            server.create_user('tclouds-host-' + host, password)
        yield server
    finally:
        server.stop()


def _auth_section(url, user, password):
    return ('auth_type = password\nauth_url = %s\nusername = %s\npassword = %s\n'
            'project_name = admin\nuser_domain_id = default\nproject_domain_id = default\n'
            % (url, user, password))


@pytest.fixture
def release_api(keystone, tmp_path):
    master = tmp_path / 'master.key'
    master.write_text(os.urandom(32).hex())
    conf_file = tmp_path / 'api.conf'
    conf_file.write_text(
        '[api]\nauth_strategy = keystone\n'
        '[keystone_authtoken]\nwww_authenticate_uri = %s\ninterface = public\n%s'
        '[tclouds_key_manager]\nlocal_store_path = %s\nmaster_key_file = %s\n'
        % (keystone.url, _auth_section(keystone.url, 'admin', keystone_server.ADMIN_PASSWORD),
           tmp_path / 'keys.sqlite', master))
    conf = cfg.ConfigOpts()
    driver.register_opts(conf)
    conf_api.register_opts(conf)
    hermetic.parse(conf, [conf_file])
    gate = release.Gate(conf, backend=Backend(conf), notifier=helpers.memory_notifier(conf))
    server = wsgi.make_server(api.build_app(conf, gate=gate), '127.0.0.1', 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    owner = tc_context.RequestContext(user_id='alice', project_id='p-alice')
    key_id = driver.TcloudsKeyManager(conf).create_key(owner, 'AES', 256)
    try:
        yield 'http://127.0.0.1:%d' % server.server_port, key_id, owner
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def compute_driver(tmp_path, keystone, api_url, host):
    conf_file = tmp_path / ('compute-%s.conf' % host)
    conf_file.write_text('[tclouds_key_manager]\nrole = compute\n'
                         'release_endpoint_override = %s\n%s'
                         % (api_url, _auth_section(keystone.url, 'tclouds-host-' + host,
                                                   HOSTS[host])))
    conf = cfg.ConfigOpts()
    driver.register_opts(conf)
    hermetic.parse(conf, [conf_file])
    return driver.TcloudsKeyManager(conf)


def test_trusted_host_credential_gets_the_key(keystone, release_api, tmp_path):
    url, key_id, owner = release_api
    key = compute_driver(tmp_path, keystone, url, 'node1').get(owner, key_id)
    assert len(key.get_encoded()) == 32
    ((event_type, _, payload),) = helpers.notifications()
    assert event_type == release.RELEASED and payload['host'] == 'node1'


def test_untrusted_host_credential_is_refused(keystone, release_api, tmp_path):
    url, key_id, owner = release_api
    with pytest.raises(castellan_exc.Forbidden) as exc:
        compute_driver(tmp_path, keystone, url, 'node2').get(owner, key_id)
    assert 'untrusted: PCR 4: unknown kernel' in str(exc.value)


def test_identity_headers_from_the_caller_are_ignored(keystone, release_api):
    url, key_id, _ = release_api
    auth = v3.Password(auth_url=keystone.url, username='tclouds-host-node2',
                       password=HOSTS['node2'], project_name='admin',
                       user_domain_id='default', project_domain_id='default')
    spoofing = ks_session.Session(auth=auth, additional_headers={
        'X-User-Name': 'tclouds-host-node1', 'X-Identity-Status': 'Confirmed'})
    http = client.KeyReleaseClient(spoofing, endpoint_override=url)
    with pytest.raises(castellan_exc.Forbidden) as exc:
        http.release(key_id)
    assert 'node2' in str(exc.value)            # judged as the token's user, not the header
    anonymous = client.KeyReleaseClient(ks_session.Session(additional_headers={
        'X-User-Name': 'tclouds-host-node1', 'X-Identity-Status': 'Confirmed'}),
        endpoint_override=url)
    with pytest.raises(castellan_exc.Forbidden) as exc:
        anonymous.release(key_id)
    assert '401' in str(exc.value) or 'authentication' in str(exc.value).lower()


def test_volume_anchored_in_the_key_service_end_to_end(keystone, release_api, tmp_path):
    """tclouds-blockstore create/serve/check with --anchor key-service as host node1."""
    from tests.functional.blockstore import conftest as bs

    url, _, _ = release_api
    served = bs.Served(tmp_path)
    for host in HOSTS:
        (tmp_path / ('%s.conf' % host)).write_text(
            '[tclouds_key_manager]\nrelease_endpoint_override = %s\n%s'
            % (url, _auth_section(keystone.url, 'tclouds-host-' + host, HOSTS[host])))
    node1 = ['--anchor', 'key-service', '--config-file', str(tmp_path / 'node1.conf')]
    served.args = lambda key=None: [served.volume, '--key-file', key or served.key] + node1
    try:
        res = bs.cli('create', *served.args(), '--size', '2M')
        assert res.returncode == 0, res.stderr
        assert served.start() is None, served.server_log()
        assert 'wrote' in bs.qemu_io(served.sock, 'write -P 0x4b 0 64k')
        served.stop()
        assert bs.cli('check', *served.args()).returncode == 0
        assert not os.path.exists(str(tmp_path / 'anchor.json'))   # nothing local
        res = bs.cli('check', served.volume, '--key-file', served.key, '--anchor',
                     'key-service', '--config-file', str(tmp_path / 'node2.conf'))
        assert res.returncode == 2 and 'untrusted' in res.stderr
    finally:
        served.stop()
