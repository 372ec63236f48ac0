"""The key release API over real HTTP: compute-role castellan driver and key-service anchor.

Authentication runs with ``[api] auth_strategy = noauth`` here (identity from X-User-*
headers, standing in for keystonemiddleware's validated token); test_release_keystone.py
runs the same path with a real Keystone and keystonemiddleware.
"""
import datetime
import os
import threading

from castellan.common import exception as castellan_exc
from keystoneauth1 import session as ks_session
import pytest

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.blockstore import errors as bs_errors
from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.blockstore import storage
from tclouds_openstack.common import context as tc_context
from tclouds_openstack.common import wsgi
from tclouds_openstack.keymgr import api
from tclouds_openstack.keymgr import client
from tclouds_openstack.keymgr import driver
from tclouds_openstack.keymgr import release
from tests.unit.keymgr import helpers

NOW = datetime.datetime.now(datetime.timezone.utc)


class Backend(base.AttestationBackend):
    def get_verdicts(self, hosts):
        known = {'node1': base.Verdict('node1', base.TRUSTED, (), NOW),
                 'node2': base.Verdict('node2', base.UNTRUSTED, ('IMA: /usr/bin/evil',), NOW),
                 'node3': base.Verdict('node3', base.TRUSTED, (),
                                       NOW - datetime.timedelta(hours=1))}
        return {h: known.get(h, base.unknown(h, 'never attested')) for h in hosts}


@pytest.fixture
def service(tmp_path):
    conf = helpers.keymgr_conf(tmp_path, **{'api.auth_strategy': 'noauth'})
    gate = release.Gate(conf, backend=Backend(conf), notifier=helpers.memory_notifier(conf))
    server = wsgi.make_server(api.build_app(conf, gate=gate), '127.0.0.1', 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield conf, 'http://127.0.0.1:%d' % server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def host_client(url, user):
    sess = ks_session.Session(additional_headers={'X-User-Name': user, 'X-User-Id': 'id-' + user,
                                                  'X-Project-Id': 'service'})
    return client.KeyReleaseClient(sess, endpoint_override=url, timeout=10)


def compute_manager(tmp_path, url, user):
    """The driver as nova-compute runs it (role compute), with its own configuration."""
    compute_dir = tmp_path / 'compute'
    compute_dir.mkdir(exist_ok=True)
    km = driver.TcloudsKeyManager(helpers.keymgr_conf(
        compute_dir, **{'tclouds_key_manager.role': 'compute'}))
    km._client = host_client(url, user)
    return km


def test_attested_host_gets_the_key_cinder_created(service, tmp_path):
    conf, url = service
    owner = tc_context.RequestContext(user_id='alice', project_id='p-alice')
    controller = driver.TcloudsKeyManager(conf)
    key_id = controller.create_key(owner, 'AES', 256)
    expected = controller.get(owner, key_id).get_encoded()
    ctx = tc_context.RequestContext(user_id='alice', project_id='p-alice')
    key = compute_manager(tmp_path, url, 'tclouds-host-node1').get(ctx, key_id)
    assert key.get_encoded() == expected and key.bit_length == 256
    assert [n[0] for n in helpers.notifications()] == [release.RELEASED]


@pytest.mark.parametrize('user,reason', [
    ('tclouds-host-node2', 'untrusted: IMA: /usr/bin/evil'),
    ('tclouds-host-node7', 'unknown: never attested'),
    ('tclouds-host-node3', 'verdict of host node3 is stale'),
    ('alice', 'not a compute host credential'),
])
def test_refused_hosts_get_403_with_reason(service, tmp_path, user, reason):
    conf, url = service
    owner = tc_context.RequestContext(user_id='alice', project_id='p-alice')
    key_id = driver.TcloudsKeyManager(conf).create_key(owner, 'AES', 256)
    with pytest.raises(castellan_exc.Forbidden) as exc:
        compute_manager(tmp_path, url, user).get(owner, key_id)
    assert reason in str(exc.value)
    ((event_type, _, payload),) = helpers.notifications()
    assert event_type == release.REFUSED and reason in payload['reason']


def test_unknown_key_is_not_found(service, tmp_path):
    conf, url = service
    with pytest.raises(castellan_exc.ManagedObjectNotFoundError):
        compute_manager(tmp_path, url, 'tclouds-host-node1').get(
            tc_context.RequestContext(user_id='x'), 'no-such-key')


def test_volume_anchored_in_the_key_service(service, tmp_path):
    conf, url = service
    anchor = client.KeyServiceAnchor(host_client(url, 'tclouds-host-node1'))
    kek = os.urandom(32)
    st = storage.FileStorage(str(tmp_path / 'vol'))
    vol = fmt.Volume.create(st, kek, anchor, 1 << 20)
    vol.write(0, b'\x07' * 4096)
    vol.flush()
    assert fmt.Volume.open(st, kek, anchor).read(0, 4096) == b'\x07' * 4096
    stale = anchor.load(vol.uuid)
    with pytest.raises(bs_errors.AnchorError) as exc:   # versions only grow
        anchor.commit(vol.uuid, dict(stale, version=1), stale['version'])
    assert 'refus' in str(exc.value)
    untrusted = client.KeyServiceAnchor(host_client(url, 'tclouds-host-node2'))
    with pytest.raises(bs_errors.AnchorError) as exc:
        fmt.Volume.open(st, kek, untrusted)
    assert 'untrusted' in str(exc.value)
    st.close()
