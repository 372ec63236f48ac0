"""The key release API over real HTTP: compute-role castellan driver and key-service anchor.

Authentication runs with ``[api] auth_strategy = noauth`` here (identity from X-User-*
headers, standing in for keystonemiddleware's validated token: no Keystone in this test).
"""
import datetime
import os
import threading

from castellan.common import exception as castellan_exc
from keystoneauth1 import session as ks_session
from oslo_config import cfg
import oslo_messaging
from oslo_messaging.notify import _impl_test
import pytest

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.blockstore import errors as bs_errors
from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.blockstore import storage
from tclouds_openstack.common import context as tc_context
from tclouds_openstack.common import wsgi
from tclouds_openstack.conf import api as conf_api
from tclouds_openstack.keymgr import api
from tclouds_openstack.keymgr import client
from tclouds_openstack.keymgr import driver
from tclouds_openstack.keymgr import release

NOW = datetime.datetime.now(datetime.timezone.utc)


class Backend(base.AttestationBackend):
    def get_verdicts(self, hosts):
        known = {'node1': base.Verdict('node1', base.TRUSTED, (), NOW),
                 'node2': base.Verdict('node2', base.UNTRUSTED, ('IMA: /usr/bin/evil',), NOW)}
        return {h: known.get(h, base.unknown(h, 'never attested')) for h in hosts}


@pytest.fixture
def service(tmp_path):
    conf = cfg.ConfigOpts()
    driver.register_opts(conf)
    conf_api.register_opts(conf)
    conf([], project='tclouds')
    master = tmp_path / 'master.key'
    master.write_text(os.urandom(32).hex())
    conf.set_override('local_store_path', str(tmp_path / 'keys.sqlite'), 'tclouds_key_manager')
    conf.set_override('master_key_file', str(master), 'tclouds_key_manager')
    conf.set_override('auth_strategy', 'noauth', 'api')
    transport = oslo_messaging.get_notification_transport(conf, url='fake:/')
    notifier = oslo_messaging.Notifier(transport, driver='test', publisher_id='keymgr')
    _impl_test.reset()
    gate = release.Gate(conf, backend=Backend(conf), notifier=notifier)
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


def compute_manager(conf, url, user):
    compute_conf = cfg.ConfigOpts()
    driver.register_opts(compute_conf)
    compute_conf([], project='tclouds')
    compute_conf.set_override('role', 'compute', 'tclouds_key_manager')
    km = driver.TcloudsKeyManager(compute_conf)
    km._client = host_client(url, user)
    return km


def test_attested_host_gets_the_key_cinder_created(service):
    conf, url = service
    owner = tc_context.RequestContext(user_id='alice', project_id='p-alice')
    controller = driver.TcloudsKeyManager(conf)
    key_id = controller.create_key(owner, 'AES', 256)
    expected = controller.get(owner, key_id).get_encoded()
    ctx = tc_context.RequestContext(user_id='alice', project_id='p-alice')
    key = compute_manager(conf, url, 'tclouds-host-node1').get(ctx, key_id)
    assert key.get_encoded() == expected and key.bit_length == 256
    events = [m['event_type'] for _, m, _, _ in _impl_test.NOTIFICATIONS]
    assert events == [release.RELEASED]


@pytest.mark.parametrize('user,reason', [
    ('tclouds-host-node2', 'untrusted: IMA: /usr/bin/evil'),
    ('tclouds-host-node7', 'unknown: never attested'),
    ('alice', 'not a compute host credential'),
])
def test_refused_hosts_get_403_with_reason(service, user, reason):
    conf, url = service
    owner = tc_context.RequestContext(user_id='alice', project_id='p-alice')
    key_id = driver.TcloudsKeyManager(conf).create_key(owner, 'AES', 256)
    with pytest.raises(castellan_exc.Forbidden) as exc:
        compute_manager(conf, url, user).get(owner, key_id)
    assert reason in str(exc.value)
    ((_, note, _, _),) = _impl_test.NOTIFICATIONS
    assert note['event_type'] == release.REFUSED and reason in note['payload']['reason']


def test_unknown_key_is_not_found(service):
    conf, url = service
    with pytest.raises(castellan_exc.ManagedObjectNotFoundError):
        compute_manager(conf, url, 'tclouds-host-node1').get(
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
