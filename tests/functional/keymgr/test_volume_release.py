"""Who gets a volume's key: attacks against the key release API with real parts.

Real Keystone (subprocess, real tokens, tests/functional/personas.py), keystonemiddleware in
front of the key release API and the attestation API, real Cinder in-process (encrypted
volumes whose keys the ``tclouds`` castellan driver creates, attachments made through
Cinder's attachments API naming a host) and the project's Cinder client.

The attacker holds a valid Keystone token and asks for a key on every route the API has
ever had (``POST /v1/keys/{key}/release`` before this change, ``POST
/v1/volumes/{volume}/key`` after); the key must come back from neither. Identity: a user
*named* like a host credential proves nothing (made by a tenant's domain manager in its own
domain, in another domain with only ``member``, with no role, or in the hosts' domain with
the host role but not enrolled). Per volume: an enrolled, trusted host gets only the key of
a volume Cinder shows attached to it, and moves only that volume's freshness anchor.
"""
import os
import secrets
import shutil
import tempfile
import uuid

from cinder.tests import fake_driver
from cinder.volume import configuration
import eventlet
import eventlet.wsgi
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from oslo_config import cfg
import pytest
import requests

from tclouds_openstack.attestation.backends import tclouds as tclouds_backend
from tclouds_openstack.attestation import client as attestation_client
from tclouds_openstack.attestation.service import api as attestation_api
from tclouds_openstack.attestation.service import store as store_mod
from tclouds_openstack.attestation import simfleet
from tclouds_openstack.common import cinder as cinder_mod
from tclouds_openstack.common import policy
from tclouds_openstack import conf as tconf
from tclouds_openstack.keymgr import api
from tclouds_openstack.keymgr import driver as km_driver
from tclouds_openstack.keymgr import release
from tclouds_openstack.keymgr import store
from tests.functional import cinder_harness
from tests.functional import personas as personas_mod
from tests import hermetic

ENCRYPTOR = 'tclouds_openstack.blockstore.encryptor.TcloudsEncryptor'
OTHER_PROJECT = uuid.uuid4().hex
IMPOSTOR = 'tclouds-host-' + personas_mod.HOST      # the name the old code trusted


def _serve(app):
    """Serve ``app`` on a green thread: Cinder's in-process harness runs on eventlet."""
    sock = eventlet.listen(('127.0.0.1', 0))
    thread = eventlet.spawn(eventlet.wsgi.server, sock, app, log_output=False)

    def stop():
        thread.kill()
        sock.close()
    return 'http://127.0.0.1:%d' % sock.getsockname()[1], stop


def _conf(tmp, text):
    path = os.path.join(tmp, 'tclouds-%s.conf' % secrets.token_hex(4))
    with open(path, 'w') as f:
        f.write(text)
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    return hermetic.parse(conf, [path])


class Notices:
    """The gate's notifier: Cinder's harness stubs oslo.messaging's Notifier in-process."""

    def __init__(self):
        self.sent = []

    def info(self, ctxt, event_type, payload):
        self.sent.append((event_type, payload))

    warn = info


class Identity:
    """Keystone as the attacker and the operator use it (admin calls, foreign domains)."""

    def __init__(self, personas):
        self.personas = personas
        self.keystone = personas.keystone

    def domain(self, name):
        return self.keystone.api('POST', '/domains', json={'domain': {'name': name}})[
            'domain']['id']

    def user(self, name, domain_id='default', headers=None):
        password = secrets.token_hex(12)
        resp = requests.post(self.keystone.url + '/users', timeout=60,
                             headers=headers or self.keystone.admin_headers(),
                             json={'user': {'name': name, 'password': password,
                                            'domain_id': domain_id}})
        resp.raise_for_status()
        return resp.json()['user']['id'], password

    def token(self, user_id, password, project_id=None, domain_id=None):
        scope = {}
        if project_id:
            scope = {'scope': {'project': {'id': project_id}}}
        elif domain_id:
            scope = {'scope': {'domain': {'id': domain_id}}}
        body = {'auth': dict({'identity': {'methods': ['password'], 'password': {
            'user': {'id': user_id, 'password': password}}}}, **scope)}
        resp = requests.post(self.keystone.url + '/auth/tokens', json=body, timeout=60)
        resp.raise_for_status()
        return resp.headers['X-Subject-Token']


class TestVolumeKeyRelease(cinder_harness.CinderFunctionalTest):
    _osapi_version = '3.64'

    @pytest.fixture(autouse=True)
    def _keystone(self, personas):
        self.personas = personas

    def _get_flags(self):
        f = super()._get_flags()
        f['volume_driver'] = {'v': fake_driver.__name__ + '.FakeLoggingVolumeDriver',
                              'g': configuration.SHARED_CONF_GROUP}
        f['default_volume_type'] = {'v': self._vol_type_name}
        f['backend'] = {'v': 'tclouds', 'g': 'key_manager'}
        f['local_store_path'] = {'v': os.path.join(self.tmp, 'keys.sqlite'),
                                 'g': 'tclouds_key_manager'}
        f['master_key_file'] = {'v': self.master, 'g': 'tclouds_key_manager'}
        return f

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='tclouds-release-')
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.master = os.path.join(self.tmp, 'master.key')
        with open(self.master, 'w') as f:
            f.write(os.urandom(32).hex())
        km_driver.register_opts(cfg.CONF)
        super().setUp()
        self.project = self.api.project_id
        self.api.create_type(self._vol_type_name)
        self.vtype = self.api.create_type('tclouds-protected')
        self.api.api_post('/types/%s/encryption' % self.vtype['id'], {
            'encryption': {'provider': ENCRYPTOR, 'cipher': 'aes-256-gcm', 'key_size': 256,
                           'control_location': 'front-end'}})
        self.identity = Identity(self.personas)
        self.notices = Notices()
        self.hosts = {personas_mod.HOST: 'host'}
        self.hosts['compute-2'] = self._host_credential('compute-2')
        self._start_attestation()
        self._start_key_release()

    # ------------------------------------------------------------------ the cloud
    def _host_credential(self, host):
        persona = 'host:' + host
        if persona not in self.personas._users:
            self.personas.add_host_credential(host)
        return persona

    def _start_attestation(self):
        conf = _conf(self.tmp, '[api]\nauth_strategy = keystone\n%s'
                     '[attestation]\nconnection = sqlite:///%s/attestation.sqlite\n'
                     'max_verdict_age = 600\n'
                     % (self.personas.authtoken_conf(), self.tmp))
        self.att_store = store_mod.Store(conf.attestation.connection)
        self.att_store.migrate()
        for host, persona in self.hosts.items():
            # what the operator does for each compute host: enrol its EK and credential
            simfleet.admit_host(self.att_store, host)
            self.att_store.enrol(host, self.att_store.get_host(host).ek_sha256,
                                 [self.personas.user_id(persona)])
            self.att_store.save_verdict(host, 'trusted', [], store_mod.utcnow(), 'w')
        policy.reset()
        self.addCleanup(policy.reset)
        url, stop = _serve(attestation_api.create_app(conf, self.att_store, compute=None))
        self.addCleanup(stop)
        self.att_url = url

    def cinder_client(self, url=None):
        """The key release API's Cinder client (Cinder's noauth: every token is an admin)."""
        endpoint = url or '%s/%s' % (self.auth_url, self.project)
        # [tclouds_cinder] auth_type = admin_token, with Cinder's noauth token format
        auth = token_endpoint.Token(endpoint, 'tclouds-keys:%s' % self.project)
        return cinder_mod.CinderClient(ks_session.Session(auth=auth),
                                       endpoint_override=endpoint)

    def _start_key_release(self):
        conf = _conf(self.tmp, '[api]\nauth_strategy = keystone\n%s'
                     '[tclouds_key_manager]\nlocal_store_path = %s\nmaster_key_file = %s\n'
                     'max_verdict_age = 600\n'
                     % (self.personas.authtoken_conf(), os.path.join(self.tmp, 'keys.sqlite'),
                        self.master))
        service = attestation_client.AttestationClient(self.personas.session('service'),
                                                       endpoint_override=self.att_url)
        self.gate = release.Gate(conf, backend=tclouds_backend.TCloudsBackend(conf, service),
                                 notifier=self.notices, cinder=self.cinder_client(),
                                 compute=None)
        self.key_url, stop = _serve(api.build_app(conf, gate=self.gate))
        self.addCleanup(stop)

    def encrypted_volume(self, host=None, complete=True, project=None):
        """An encrypted volume (Cinder made its key), attached to ``host`` if given."""
        if project:
            self.api.update_project(project)
        try:
            vol = self.api.post_volume({'volume': {'size': 1,
                                                   'volume_type': self.vtype['id']}})
            vol = self._poll_volume_while(vol['id'], ['creating'])
            assert vol['status'] == 'available', vol
            if host:
                self.attach(vol['id'], host, complete)
            return self.api.get_volume(vol['id'])
        finally:
            self.api.update_project(self.project)

    def attach(self, volume_id, host, complete=True):
        """What Nova does: an attachment with the host's connector, then complete."""
        att = self.api.api_post('/attachments', {'attachment': {
            'volume_uuid': volume_id, 'instance_uuid': str(uuid.uuid4()),
            'connector': {'host': host, 'initiator': 'iqn.2026-01.%s' % host,
                          'ip': '192.0.2.1', 'platform': 'x86_64', 'os_type': 'linux',
                          'multipath': False, 'mountpoint': '/dev/vdb'}}})['attachment']
        if complete:
            self.api.api_post('/attachments/%s/action' % att['id'], {'os-complete': {}},
                              check_response_status=[204])
        return att

    def secret(self, key_id):
        keystore = store.LocalKeyStore(os.path.join(self.tmp, 'keys.sqlite'),
                                       store.load_master_key(self.master))
        return keystore.get(key_id)['secret'].hex()

    # ------------------------------------------------------------------ the caller
    def ask_key(self, token, volume_id, key_id):
        """Every route a caller could use for a key: (statuses, whether a key came back)."""
        headers = {'X-Auth-Token': token}
        old = requests.post('%s/v1/keys/%s/release' % (self.key_url, key_id),
                            headers=headers, timeout=60)
        new = requests.post('%s/v1/volumes/%s/key' % (self.key_url, volume_id),
                            headers=headers, json={'key_id': key_id}, timeout=60)
        leaked = any('secret' in _json(r) for r in (old, new))
        return (old.status_code, new.status_code), leaked, _message(new)

    def anchor(self, token, volume_id, method='GET', body=None):
        resp = requests.request(method, '%s/v1/volumes/%s/anchor' % (self.key_url, volume_id),
                                headers={'X-Auth-Token': token}, json=body, timeout=60)
        return resp.status_code, _json(resp)

    def token(self, persona):
        return self.personas.token(persona)

    def refusals(self):
        return [p['reason'] for t, p in self.notices.sent if t == release.REFUSED]

    # ------------------------------------------------------------------ tests
    def test_enrolled_trusted_host_gets_the_key_of_its_attached_volume(self):
        vol = self.encrypted_volume(host=personas_mod.HOST)
        key_id = vol['encryption_key_id']
        resp = requests.post('%s/v1/volumes/%s/key' % (self.key_url, vol['id']),
                             headers={'X-Auth-Token': self.token('host')},
                             json={'key_id': key_id}, timeout=60)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body['secret'], body['host'], body['volume_id']) == (
            self.secret(key_id), personas_mod.HOST, vol['id'])
        (event_type, payload), = self.notices.sent
        assert event_type == release.RELEASED
        assert 'volume %s is attached to host %s' % (vol['id'], personas_mod.HOST) \
            in payload['reason']

    def test_names_and_prefixes_decide_nothing(self):
        vol = self.encrypted_volume(host=personas_mod.HOST)
        key_id = vol['encryption_key_id']
        identity = self.identity
        # 1. a tenant's domain manager mints a user named like the host in its own domain
        tenant_domain = identity.domain('tenant-%s' % secrets.token_hex(3))
        manager_id, manager_pw = identity.user('dm', tenant_domain)
        project = self.personas.keystone.api('POST', '/projects', json={'project': {
            'name': 'p', 'domain_id': tenant_domain}})['project']['id']
        role = self.personas.keystone.ensure_role('manager')
        self.personas.keystone.api('PUT', '/domains/%s/users/%s/roles/%s'
                                   % (tenant_domain, manager_id, role))
        manager_token = identity.token(manager_id, manager_pw, domain_id=tenant_domain)
        minted_id, minted_pw = identity.user(IMPOSTOR, tenant_domain,
                                             headers={'X-Auth-Token': manager_token})
        member = self.personas.keystone.ensure_role('member')
        requests.put(self.personas.url + '/projects/%s/users/%s/roles/%s'
                     % (project, minted_id, member), timeout=60,
                     headers={'X-Auth-Token': manager_token}).raise_for_status()
        minted = identity.token(minted_id, minted_pw, project_id=project)
        # 2. another domain, only member; 3. no role at all (unscoped token)
        other_domain = identity.domain('other-%s' % secrets.token_hex(3))
        member_id, member_pw = identity.user(IMPOSTOR, other_domain)
        self.personas.keystone.api('PUT', '/projects/%s/users/%s/roles/%s' % (
            project, member_id, member))
        other_member = identity.token(member_id, member_pw, project_id=project)
        bare_id, bare_pw = identity.user(IMPOSTOR, identity.domain(
            'bare-%s' % secrets.token_hex(3)))
        no_role = identity.token(bare_id, bare_pw)
        # 4. the hosts' domain and the host role, named like the host, but not enrolled
        named_id, named_pw = identity.user(IMPOSTOR + '-x')
        self.personas.keystone.grant(named_id, personas_mod.HOST_ROLE, project='service')
        named = identity.token(named_id, named_pw,
                               project_id=self.personas.project_id('service'))
        # 5. the host role granted in another domain (an operator's slip), not enrolled
        slipped_domain = identity.domain('slipped-%s' % secrets.token_hex(3))
        slipped_id, slipped_pw = identity.user(IMPOSTOR, slipped_domain)
        self.personas.keystone.grant(slipped_id, personas_mod.HOST_ROLE, project='service')
        slipped = identity.token(slipped_id, slipped_pw,
                                 project_id=self.personas.project_id('service'))
        for token, reason in (
                (minted, 'not a compute host credential: policy does not allow'),
                (other_member, 'not a compute host credential: policy does not allow'),
                (no_role, 'not a compute host credential'),
                (named, 'credential %s stands for no enrolled compute host' % named_id),
                (slipped, 'its user is in domain %s, host credentials live in domain '
                          'default' % slipped_domain)):
            statuses, leaked, message = self.ask_key(token, vol['id'], key_id)
            assert not leaked
            assert statuses == (410, 403), (statuses, message)
            assert reason in message
            assert reason in self.refusals()[-1]

    def test_host_gets_only_keys_of_volumes_attached_to_it(self):
        mine = self.encrypted_volume(host=personas_mod.HOST)
        theirs = self.encrypted_volume(host='compute-2')
        foreign = self.encrypted_volume(project=OTHER_PROJECT)     # not attached
        token = self.token('host')
        for volume_id, key_id, reason in (
                (theirs['id'], theirs['encryption_key_id'],
                 'volume %s is not attached to host %s (Cinder: attached to compute-2)'
                 % (theirs['id'], personas_mod.HOST)),
                (mine['id'], theirs['encryption_key_id'],
                 'key %s is not the encryption key of volume %s'
                 % (theirs['encryption_key_id'], mine['id'])),
                (foreign['id'], foreign['encryption_key_id'],
                 'volume %s is not attached to host %s (Cinder: no attachment)'
                 % (foreign['id'], personas_mod.HOST)),
                (str(uuid.uuid4()), mine['encryption_key_id'], 'Cinder has no volume')):
            statuses, leaked, message = self.ask_key(token, volume_id, key_id)
            assert not leaked and statuses == (410, 403), (statuses, message)
            assert reason in message and reason in self.refusals()[-1]
        # compute-2's own credential does get its volume's key
        statuses, leaked, _ = self.ask_key(self.token('host:compute-2'), theirs['id'],
                                           theirs['encryption_key_id'])
        assert leaked and statuses == (410, 200)

    def test_another_host_cannot_move_or_read_an_anchor(self):
        vol = self.encrypted_volume(host=personas_mod.HOST)
        owner, other = self.token('host'), self.token('host:compute-2')
        state = {'uuid': 'bs-1', 'version': 1, 'root': 'aa', 'size': 1, 'mac': 'm'}
        assert self.anchor(owner, vol['id'], 'PUT', {'state': state, 'expected': None})[0] \
            == 200
        for method, body in (('PUT', {'state': dict(state, version=99), 'expected': 1}),
                             ('GET', None)):
            status, answer = self.anchor(other, vol['id'], method, body)
            assert status == 403
            assert 'not attached to host compute-2' in answer['error']['message']
        # the owner is not locked out: it reads its state and moves on
        assert self.anchor(owner, vol['id'])[1]['state']['version'] == 1
        assert self.anchor(owner, vol['id'], 'PUT', {'state': dict(state, version=2),
                                                     'expected': 1})[0] == 200
        # the old anchor route names no volume: gone for everyone
        resp = requests.get('%s/v1/anchors/bs-1' % self.key_url, timeout=60,
                            headers={'X-Auth-Token': owner})
        assert resp.status_code == 410

    def test_cinder_unreachable_or_attachment_in_flight_fails_closed(self):
        vol = self.encrypted_volume(host=personas_mod.HOST)
        # a hot attach in flight: Cinder shows no host for it, and there is no Nova here
        attaching = self.encrypted_volume(host='compute-2', complete=False)
        statuses, leaked, message = self.ask_key(self.token('host:compute-2'),
                                                 attaching['id'],
                                                 attaching['encryption_key_id'])
        assert not leaked and statuses == (410, 403)
        assert 'still being attached' in message and '[attestation_compute]' in message
        with socket_closed() as url:
            self.gate._cinder = self.cinder_client(url)
            statuses, leaked, message = self.ask_key(self.token('host'), vol['id'],
                                                     vol['encryption_key_id'])
        assert not leaked and statuses == (410, 403)
        assert 'cannot check volume %s: Cinder unreachable' % vol['id'] in message


class socket_closed:
    """A URL on which nothing listens."""

    def __enter__(self):
        import socket
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            return 'http://127.0.0.1:%d/v3/x' % s.getsockname()[1]

    def __exit__(self, *exc):
        return False


def _json(resp):
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _message(resp):
    return (_json(resp).get('error') or {}).get('message', resp.text)
