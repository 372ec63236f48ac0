"""Key store, release gate and castellan driver of the attestation-gated key manager."""
import datetime
import os

from castellan.common import exception as castellan_exc
from castellan.common.objects import passphrase
import pytest
from stevedore import driver as sd_driver
from stevedore import extension

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.common import cinder
from tclouds_openstack.common import context as tc_context
from tclouds_openstack.common import policy
from tclouds_openstack.keymgr import driver
from tclouds_openstack.keymgr import policies
from tclouds_openstack.keymgr import release
from tclouds_openstack.keymgr import store
from tests.unit.keymgr import helpers


class FakeBackend(base.AttestationBackend):
    """A test attestation backend: verdicts and enrolled credentials from dicts."""

    verdicts = {}
    credentials = {'u-node1': 'node1', 'u-node2': 'node2', 'u-node3': 'node3',
                   'appcred-node1': 'node1'}
    down = False

    def get_verdicts(self, hosts):
        if self.down:
            raise base.BackendUnavailable('verifier at http://127.0.0.1:1 refused')
        return {h: self.verdicts.get(h, base.unknown(h, 'host not registered')) for h in hosts}

    def host_for_credential(self, credential_id):
        if self.down:
            raise base.BackendUnavailable('verifier at http://127.0.0.1:1 refused')
        return self.credentials.get(credential_id)


def volume(volume_id='vol-1', key='key-1', project='p-alice', attachments=()):
    return cinder.Volume(id=volume_id, project_id=project, status='in-use',
                         encryption_key_id=key, attachments=tuple(attachments))


def attached(host, status='attached', server='srv-1', attachment='att-1'):
    return cinder.Attachment(id=attachment, status=status, instance_id=server, host=host)


class FakeCinder:
    """What Cinder's API answers (the functional tests ask a real Cinder)."""

    def __init__(self, *volumes):
        self.volumes = {v.id: v for v in volumes}
        self.down = False

    def volume(self, volume_id):
        if self.down:
            raise cinder.CinderUnavailable('Cinder unreachable for volume %s: connection '
                                           'refused' % volume_id)
        return self.volumes.get(volume_id)


class FakeNova:
    def __init__(self, servers=None, migrations=None):
        self.servers = servers or {}
        self.migrations = migrations or {}

    def server(self, server_id):
        host = self.servers.get(server_id)
        return None if host is None else ('p-alice', host, 'hostid')

    def migration_destinations(self, server_id, statuses):
        return [dest for dest, status in self.migrations.get(server_id, ())
                if status in statuses]


@pytest.fixture
def conf(tmp_path):
    policy.reset()
    policy.register_rules(policies.list_rules())
    conf = helpers.keymgr_conf(tmp_path, **{'tclouds_key_manager.max_verdict_age': 300})
    policy.get_enforcer(conf)
    yield conf
    policy.reset()


@pytest.fixture
def gate(conf):
    # verdicts made now: collecting and running the suite before this test takes time
    now = datetime.datetime.now(datetime.timezone.utc)
    backend_cls = type('Backend', (FakeBackend,), {'verdicts': {
        'node1': base.Verdict('node1', base.TRUSTED, (), now),
        'node2': base.Verdict('node2', base.UNTRUSTED, ('PCR 7 mismatch',), now),
        'node3': base.Verdict('node3', base.TRUSTED, (),
                              now - datetime.timedelta(seconds=600)),
    }})
    # Loaded the way get_backend loads one, through stevedore's test helper.
    mgr = sd_driver.DriverManager.make_test_instance(
        extension.Extension('fake', None, backend_cls, backend_cls(conf)))
    volumes = FakeCinder(volume('vol-1', attachments=[attached('node1')]),
                         volume('vol-2', key='key-2', attachments=[attached('node2')]),
                         volume('vol-3', key='key-3', attachments=[attached('node3')]),
                         volume('vol-plain', key=None, attachments=[attached('node1')]))
    return release.Gate(conf, backend=mgr.driver, notifier=helpers.memory_notifier(conf),
                        cinder=volumes, compute=None)


def host_ctx(name, roles=('tclouds_host',), domain='default', user_id=None):
    return tc_context.RequestContext(user_id=user_id or 'u-' + name, user_name=name,
                                     user_domain_id=domain, project_id='service',
                                     roles=list(roles))


RULE = 'keymgr:volume:key:release'


def test_enrolled_trusted_host_gets_the_key_of_its_volume(gate):
    host, vol = gate.authorize(host_ctx('node1'), 'vol-1', key_id='key-1', rule=RULE)
    assert (host, vol.project_id) == ('node1', 'p-alice')
    ((event_type, priority, payload),) = helpers.notifications()
    assert (event_type, priority) == (release.RELEASED, 'INFO')
    assert (payload['host'], payload['subject'], payload['volume_id']) == (
        'node1', 'key-1', 'vol-1')
    assert 'volume vol-1 is attached to host node1' in payload['reason']


@pytest.mark.parametrize('ctx,volume_id,key_id,reason', [
    (host_ctx('node2'), 'vol-2', 'key-2', 'untrusted: PCR 7 mismatch'),
    (host_ctx('node3'), 'vol-3', 'key-3', 'node3 is stale'),
    # names decide nothing: a user named like a host, not enrolled
    (host_ctx('tclouds-host-node1', user_id='u-impostor'), 'vol-1', 'key-1',
     'credential u-impostor stands for no enrolled compute host'),
    # an enrolled host's user ID in a token without the host role
    (host_ctx('node1', roles=('member', 'reader')), 'vol-1', 'key-1',
     'not a compute host credential: policy does not allow'),
    (host_ctx('node1', domain='d-tenant'), 'vol-1', 'key-1',
     'its user is in domain d-tenant, host credentials live in domain default'),
    # per volume: another host's volume, another volume's key, a volume without key
    (host_ctx('node1'), 'vol-2', 'key-2', 'volume vol-2 is not attached to host node1 '
                                          '(Cinder: attached to node2)'),
    (host_ctx('node1'), 'vol-1', 'key-2', 'key key-2 is not the encryption key of volume vol-1'),
    (host_ctx('node1'), 'vol-plain', 'key-1', 'volume vol-plain is not encrypted'),
    (host_ctx('node1'), 'vol-9', 'key-1', 'Cinder has no volume vol-9'),
])
def test_refusals_carry_the_reason(gate, ctx, volume_id, key_id, reason):
    with pytest.raises(release.Refused) as exc:
        gate.authorize(ctx, volume_id, key_id=key_id, rule=RULE)
    assert reason in exc.value.reason
    ((event_type, priority, payload),) = helpers.notifications()
    assert (event_type, priority) == (release.REFUSED, 'WARN')
    assert reason in payload['reason'] and payload['volume_id'] == volume_id


def test_the_configured_clock_skew_bounds_future_verdicts(gate, conf):
    """[attestation] max_clock_skew holds for key release too (it used the default 5 s)."""
    ahead = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=3)
    gate.backend.verdicts['node1'] = base.Verdict('node1', base.TRUSTED, (), ahead)
    conf.set_override('max_clock_skew', 0, group='attestation')
    with pytest.raises(release.Refused) as exc:
        gate.authorize(host_ctx('node1'), 'vol-1', key_id='key-1', rule=RULE)
    assert 'from the future' in exc.value.reason
    conf.set_override('max_clock_skew', 30, group='attestation')
    gate.backend.verdicts['node1'] = base.Verdict(
        'node1', base.TRUSTED, (), ahead + datetime.timedelta(seconds=20))
    assert gate.authorize(host_ctx('node1'), 'vol-1', key_id='key-1', rule=RULE)[0] == 'node1'


def test_a_volume_is_named_by_its_exact_id(gate):
    """cinderclient puts the ID in the URL unquoted: 'vol-1?x' asks Cinder for vol-1."""
    real = gate.cinder.volumes
    gate.cinder.volume = lambda volume_id: real.get(volume_id.split('?')[0].split('#')[0])
    for alias in ('vol-1?x', 'vol-1#x'):
        with pytest.raises(release.Refused) as exc:
            gate.authorize(host_ctx('node1'), alias, key_id='key-1', rule=RULE)
        assert ('Cinder answered with volume vol-1 when asked for volume %s' % alias
                in exc.value.reason)


def test_notifications_name_the_volumes_project(gate):
    """The project's data-protection report (securelog/report.py) joins on it."""
    gate.authorize(host_ctx('node1'), 'vol-1', key_id='key-1', rule=RULE)
    for ctx in (host_ctx('node1'), host_ctx('node2')):     # Cinder asked / refused before
        with pytest.raises(release.Refused):
            gate.authorize(ctx, 'vol-2', key_id='key-2', rule=RULE)
    assert [p['project_id'] for _e, _p, p in helpers.notifications()] == [
        'p-alice', 'p-alice', None]


def test_application_credential_id_decides_over_the_user(gate):
    token_info = {'token': {'application_credential': {'id': 'appcred-node1'}}}
    ctx = host_ctx('node1', user_id='u-node2')      # the app credential's owner
    assert gate.authorize(ctx, 'vol-1', key_id='key-1', rule=RULE,
                          token_info=token_info)[0] == 'node1'
    unknown = {'token': {'application_credential': {'id': 'appcred-other'}}}
    with pytest.raises(release.Refused) as exc:
        gate.authorize(host_ctx('node1'), 'vol-1', key_id='key-1', rule=RULE,
                       token_info=unknown)
    assert 'credential appcred-other stands for no enrolled' in exc.value.reason


def test_unreachable_services_fail_closed(gate):
    gate.cinder.down = True
    with pytest.raises(release.Refused) as exc:
        gate.authorize(host_ctx('node1'), 'vol-1', key_id='key-1', rule=RULE)
    assert 'cannot check volume vol-1: Cinder unreachable' in exc.value.reason
    gate.cinder.down = False
    gate._backend.down = True
    with pytest.raises(release.Refused) as exc:
        gate.authorize(host_ctx('node1'), 'vol-1', key_id='key-1', rule=RULE)
    assert 'attestation backend unavailable' in exc.value.reason
    gate._backend.down = False
    gate._cinder = None         # built from [tclouds_cinder]: nothing configured
    with pytest.raises(release.Refused) as exc:
        gate.authorize(host_ctx('node1'), 'vol-1', key_id='key-1', rule=RULE)
    assert 'no Cinder credentials ([tclouds_cinder])' in exc.value.reason


def test_attaching_volume_and_migration_target_are_asked_of_nova(gate):
    gate.cinder.volumes['vol-m'] = volume('vol-m', key='key-m', attachments=[
        attached('node2', server='srv-m', attachment='old'),
        attached(None, status='attaching', server='srv-m', attachment='new')])
    # no Nova credentials: an attachment without host proves nothing
    with pytest.raises(release.Refused) as exc:
        gate.authorize(host_ctx('node1'), 'vol-m', key_id='key-m', rule=RULE)
    assert 'no Nova credentials ([attestation_compute])' in exc.value.reason
    # Nova: the server runs on node2 and is not migrating to node1
    gate._compute = FakeNova(servers={'srv-m': 'node2'},
                             migrations={'srv-m': [('node1', 'completed')]})
    with pytest.raises(release.Refused) as exc:
        gate.authorize(host_ctx('node1'), 'vol-m', key_id='key-m', rule=RULE)
    assert 'not attached to host node1 (Cinder: attached to node2)' in exc.value.reason
    # a live migration to node1 under way: the destination connects the volume
    gate._compute = FakeNova(servers={'srv-m': 'node2'},
                             migrations={'srv-m': [('node1', 'running')]})
    host, _ = gate.authorize(host_ctx('node1'), 'vol-m', key_id='key-m', rule=RULE)
    assert host == 'node1'
    assert 'Nova places its server srv-m there' in helpers.notifications()[-1][2]['reason']


def test_credential_id_prefers_the_application_credential():
    ctx = tc_context.RequestContext(user_id='u1')
    assert release.credential_id(ctx) == 'u1'
    assert release.credential_id(ctx, {'token': {}}) == 'u1'
    assert release.credential_id(ctx, {'token': {'application_credential': {
        'id': 'ac1'}}}) == 'ac1'


def test_store_encrypts_at_rest_and_anchor_cas(conf, tmp_path):
    ks = store.LocalKeyStore(str(tmp_path / 's.sqlite'), os.urandom(32))
    ks.put('id1', 'symmetric', b'\x42' * 32, project_id='p1', algorithm='AES',
           bit_length=256)
    assert ks.get('id1')['secret'] == b'\x42' * 32
    assert b'\x42' * 32 not in (tmp_path / 's.sqlite').read_bytes()
    other = store.LocalKeyStore(str(tmp_path / 's.sqlite'), os.urandom(32))
    with pytest.raises(store.KeyStoreError) as exc:
        other.get('id1')
    assert 'wrong master key' in str(exc.value)
    ks.anchor_commit('v', {'version': 1}, None)
    with pytest.raises(store.AnchorConflict):
        ks.anchor_commit('v', {'version': 2}, None)
    with pytest.raises(store.AnchorConflict):
        ks.anchor_commit('v', {'version': 1}, 1)
    ks.anchor_commit('v', {'version': 2}, 1)
    assert ks.anchor_load('v') == {'version': 2}


def test_master_key_errors(tmp_path):
    bad = tmp_path / 'bad'
    bad.write_text('xyz')
    with pytest.raises(store.KeyStoreError) as exc:
        store.load_master_key(str(bad))
    assert '64 hexadecimal' in str(exc.value)
    with pytest.raises(store.KeyStoreError):
        store.load_master_key(str(tmp_path / 'missing'))


def test_driver_controller_roundtrip_and_isolation(conf):
    km = driver.TcloudsKeyManager(conf)
    alice = tc_context.RequestContext(user_id='a', project_id='p-alice')
    bob = tc_context.RequestContext(user_id='b', project_id='p-bob')
    key_id = km.create_key(alice, 'AES', 256, name='vol')
    key = km.get(alice, key_id)
    assert key.bit_length == 256 and len(key.get_encoded()) == 32
    with pytest.raises(castellan_exc.ManagedObjectNotFoundError):
        km.get(bob, key_id)
    pw_id = km.store(alice, passphrase.Passphrase(b'secret'))
    assert km.get(alice, pw_id).get_encoded() == b'secret'
    assert {o.id for o in km.list(alice)} == {key_id, pw_id}
    km.add_consumer(alice, key_id, {'service': 'cinder', 'resource_id': 'v1'})
    assert km.get(alice, key_id, metadata_only=True).consumers
    km.delete(alice, key_id)
    with pytest.raises(castellan_exc.ManagedObjectNotFoundError):
        km.get(alice, key_id)
    with pytest.raises(castellan_exc.Forbidden):
        km.get(None, pw_id)


def test_compute_role_cannot_create_or_delete(conf):
    conf.set_override('role', 'compute', 'tclouds_key_manager')
    km = driver.TcloudsKeyManager(conf)
    ctx = tc_context.RequestContext(user_id='a', project_id='p')
    with pytest.raises(castellan_exc.KeyManagerError) as exc:
        km.create_key(ctx, 'AES', 256)
    assert 'compute host' in str(exc.value)
    with pytest.raises(castellan_exc.KeyManagerError):
        km.delete(ctx, 'x')
    # castellan get() names no volume: a compute host never asks for a key that way
    with pytest.raises(castellan_exc.KeyManagerError) as exc:
        km.get(ctx, 'key-1')
    assert 'does not name the volume' in str(exc.value)
    with pytest.raises(castellan_exc.KeyManagerError) as exc:
        km.get_volume_key(ctx, None, 'key-1')
    assert 'volume it belongs to is not known' in str(exc.value)


def test_castellan_loads_the_driver_by_name(conf):
    from castellan import key_manager
    from castellan import options
    options.set_defaults(conf, backend='tclouds')
    assert isinstance(key_manager.API(conf), driver.TcloudsKeyManager)


def test_driver_module_imports_stay_light():
    """castellan instantiates every driver while nova.conf imports: no oslo.messaging."""
    import subprocess
    import sys
    code = ('import sys, tclouds_openstack.keymgr.driver; '
            'print([m for m in ("oslo_messaging", "sqlite3", "tclouds_openstack.keymgr.release")'
            ' if m in sys.modules])')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == '[]'
