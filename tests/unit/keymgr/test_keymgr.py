"""Key store, release gate and castellan driver of the attestation-gated key manager."""
import datetime
import os

from castellan.common import exception as castellan_exc
from castellan.common.objects import passphrase
import pytest
from stevedore import driver as sd_driver
from stevedore import extension

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.common import context as tc_context
from tclouds_openstack.keymgr import driver
from tclouds_openstack.keymgr import release
from tclouds_openstack.keymgr import store
from tests.unit.keymgr import helpers

NOW = datetime.datetime.now(datetime.timezone.utc)


class FakeBackend(base.AttestationBackend):
    """A test attestation backend: verdicts from a dict, or unavailable."""

    verdicts = {}
    down = False

    def get_verdicts(self, hosts):
        if self.down:
            raise base.BackendUnavailable('verifier at http://127.0.0.1:1 refused')
        return {h: self.verdicts.get(h, base.unknown(h, 'host not registered')) for h in hosts}


@pytest.fixture
def conf(tmp_path):
    return helpers.keymgr_conf(tmp_path, **{'tclouds_key_manager.max_verdict_age': 60})


@pytest.fixture
def gate(conf):
    backend_cls = type('Backend', (FakeBackend,), {'verdicts': {
        'node1': base.Verdict('node1', base.TRUSTED, (), NOW),
        'node2': base.Verdict('node2', base.UNTRUSTED, ('PCR 7 mismatch',), NOW),
        'node3': base.Verdict('node3', base.TRUSTED, (),
                              NOW - datetime.timedelta(seconds=600)),
    }})
    # Loaded the way get_backend loads one, through stevedore's test helper.
    mgr = sd_driver.DriverManager.make_test_instance(
        extension.Extension('fake', None, backend_cls, backend_cls(conf)))
    return release.Gate(conf, backend=mgr.driver, notifier=helpers.memory_notifier(conf))


def host_ctx(name):
    return tc_context.RequestContext(user_id='u-' + name, user_name=name,
                                     project_id='service')


def test_trusted_host_released_and_notified(gate):
    assert gate.authorize(host_ctx('tclouds-host-node1'), 'key-1') == 'node1'
    ((event_type, priority, payload),) = helpers.notifications()
    assert (event_type, priority) == (release.RELEASED, 'INFO')
    assert payload['host'] == 'node1' and payload['subject'] == 'key-1'


@pytest.mark.parametrize('user,reason', [
    ('tclouds-host-node2', 'untrusted: PCR 7 mismatch'),
    ('tclouds-host-node3', 'node3 is stale'),
    ('tclouds-host-node9', 'unknown: host not registered'),
    ('alice', 'not a compute host credential'),
    ('tclouds-host-', 'not a compute host credential'),
])
def test_refusals_carry_the_reason(gate, user, reason):
    with pytest.raises(release.Refused) as exc:
        gate.authorize(host_ctx(user), 'key-1')
    assert reason in exc.value.reason
    ((event_type, priority, payload),) = helpers.notifications()
    assert (event_type, priority) == (release.REFUSED, 'WARN')
    assert reason in payload['reason']


def test_backend_down_fails_closed(gate):
    gate._backend.down = True
    with pytest.raises(release.Refused) as exc:
        gate.authorize(host_ctx('tclouds-host-node1'), 'key-1')
    assert 'unavailable' in exc.value.reason


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
