"""The key release API over real HTTP: compute-role castellan driver, key-service anchor and
format mark, per Cinder volume.

Authentication runs with ``[api] auth_strategy = noauth`` here (identity from X-User-*
headers, standing in for keystonemiddleware's validated token); test_release_keystone.py
and test_volume_release.py run with a real Keystone (and a real Cinder). Cinder's answers
are a table here; which credential stands for which host comes from the backend.
"""
import datetime
import os
import threading

from castellan.common import exception as castellan_exc
from keystoneauth1 import session as ks_session
import pytest
import requests

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.blockstore import errors as bs_errors
from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.blockstore import storage
from tclouds_openstack.common import cinder
from tclouds_openstack.common import context as tc_context
from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack.keymgr import api
from tclouds_openstack.keymgr import client
from tclouds_openstack.keymgr import driver
from tclouds_openstack.keymgr import release
from tests.unit.keymgr import helpers

PROJECT = 'p-alice'


class Backend(base.AttestationBackend):
    credentials = {'id-node1': 'node1', 'id-node2': 'node2', 'id-node3': 'node3'}

    def get_verdicts(self, hosts):
        now = datetime.datetime.now(datetime.timezone.utc)      # made when asked
        known = {'node1': base.Verdict('node1', base.TRUSTED, (), now),
                 'node2': base.Verdict('node2', base.UNTRUSTED, ('IMA: /usr/bin/evil',), now),
                 'node3': base.Verdict('node3', base.TRUSTED, (),
                                       now - datetime.timedelta(hours=1))}
        return {h: known.get(h, base.unknown(h, 'never attested')) for h in hosts}

    def host_for_credential(self, credential_id):
        return self.credentials.get(credential_id)


class Volumes:
    """Cinder's answers: volume -> (key, host attached to)."""

    def __init__(self):
        self.table = {}

    def attach(self, volume_id, key_id, host):
        self.table[volume_id] = cinder.Volume(
            id=volume_id, project_id=PROJECT, status='in-use', encryption_key_id=key_id,
            attachments=(cinder.Attachment('att-' + volume_id, 'attached', 'srv', host),))

    def volume(self, volume_id):
        return self.table.get(volume_id)


@pytest.fixture
def service(tmp_path):
    policy.reset()
    conf = helpers.keymgr_conf(tmp_path, **{'api.auth_strategy': 'noauth'})
    volumes = Volumes()
    gate = release.Gate(conf, backend=Backend(conf), notifier=helpers.memory_notifier(conf),
                        cinder=volumes)
    server = wsgi.make_server(api.build_app(conf, gate=gate), '127.0.0.1', 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield conf, 'http://127.0.0.1:%d' % server.server_port, volumes
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        policy.reset()


def headers(host, roles='tclouds_host'):
    return {'X-User-Name': 'tclouds-host-' + host, 'X-User-Id': 'id-' + host,
            'X-User-Domain-Id': 'default', 'X-Project-Id': 'service', 'X-Roles': roles}


def host_client(url, host, roles='tclouds_host'):
    return client.KeyReleaseClient(ks_session.Session(additional_headers=headers(host, roles)),
                                   endpoint_override=url, timeout=10)


def compute_manager(tmp_path, url, host):
    """The driver as nova-compute runs it (role compute), with its own configuration."""
    compute_dir = tmp_path / 'compute'
    compute_dir.mkdir(exist_ok=True)
    km = driver.TcloudsKeyManager(helpers.keymgr_conf(
        compute_dir, **{'tclouds_key_manager.role': 'compute'}))
    km._client = host_client(url, host)
    return km


def new_key(conf):
    owner = tc_context.RequestContext(user_id='alice', project_id=PROJECT)
    controller = driver.TcloudsKeyManager(conf)
    key_id = controller.create_key(owner, 'AES', 256)
    return owner, key_id, controller.get(owner, key_id).get_encoded()


def test_attached_host_gets_its_volume_key_cinder_created(service, tmp_path):
    conf, url, volumes = service
    owner, key_id, expected = new_key(conf)
    volumes.attach('vol-1', key_id, 'node1')
    key = compute_manager(tmp_path, url, 'node1').get_volume_key(owner, 'vol-1', key_id)
    assert key.get_encoded() == expected and key.bit_length == 256
    assert [n[0] for n in helpers.notifications()] == [release.RELEASED]


@pytest.mark.parametrize('host,attached,reason', [
    ('node2', 'node2', 'untrusted: IMA: /usr/bin/evil'),
    ('node7', 'node7', 'credential id-node7 stands for no enrolled compute host'),
    ('node3', 'node3', 'verdict of host node3 is stale'),
    ('node1', 'node2', 'volume vol-1 is not attached to host node1 (Cinder: attached to '
                       'node2)'),
])
def test_refused_hosts_get_403_with_reason(service, tmp_path, host, attached, reason):
    conf, url, volumes = service
    owner, key_id, _ = new_key(conf)
    volumes.attach('vol-1', key_id, attached)
    with pytest.raises(castellan_exc.Forbidden) as exc:
        compute_manager(tmp_path, url, host).get_volume_key(owner, 'vol-1', key_id)
    assert reason in str(exc.value)
    ((event_type, _, payload),) = helpers.notifications()
    assert event_type == release.REFUSED and reason in payload['reason']


def test_not_a_host_and_old_routes(service):
    conf, url, volumes = service
    _, key_id, _ = new_key(conf)
    volumes.attach('vol-1', key_id, 'node1')
    member = host_client(url, 'node1', roles='member,reader')
    with pytest.raises(castellan_exc.Forbidden) as exc:
        member.release_volume_key('vol-1', key_id)
    assert 'not a compute host credential: policy does not allow ' \
           'keymgr:volume:key:release' in str(exc.value)
    # the routes that named no volume answer 410 with the route to use, release nothing
    for method, path in (('POST', '/v1/keys/%s/release' % key_id), ('GET', '/v1/anchors/x'),
                         ('PUT', '/v1/anchors/x')):
        resp = requests.request(method, url + path, headers=headers('node1'), timeout=30)
        assert resp.status_code == 410 and 'POST /v1/volumes/{volume_id}/key' in resp.text
        assert 'secret' not in resp.json()


def test_unknown_key_of_an_attached_volume_is_refused(service, tmp_path):
    conf, url, volumes = service
    owner, key_id, _ = new_key(conf)
    volumes.attach('vol-1', 'another-key', 'node1')
    with pytest.raises(castellan_exc.Forbidden) as exc:
        compute_manager(tmp_path, url, 'node1').get_volume_key(owner, 'vol-1', key_id)
    assert 'is not the encryption key of volume vol-1' in str(exc.value)
    # Cinder names a key the store does not have: not found (castellan's contract)
    volumes.attach('vol-2', 'no-such-key', 'node1')
    with pytest.raises(castellan_exc.ManagedObjectNotFoundError):
        compute_manager(tmp_path, url, 'node1').get_volume_key(owner, 'vol-2', 'no-such-key')


def test_volume_anchored_and_marked_in_the_key_service(service, tmp_path):
    conf, url, volumes = service
    _, key_id, _ = new_key(conf)
    volumes.attach('vol-1', key_id, 'node1')
    node1 = host_client(url, 'node1')
    anchor = client.KeyServiceAnchor(node1, 'vol-1')
    kek = os.urandom(32)
    st = storage.FileStorage(str(tmp_path / 'vol'))
    assert node1.format_mark('vol-1') is None
    vol = fmt.Volume.create(st, kek, anchor, 1 << 20)
    assert node1.claim_format_mark('vol-1', vol.uuid) is True
    assert node1.claim_format_mark('vol-1', 'another') is False       # formatted once
    assert node1.format_mark('vol-1')['blockstore_uuid'] == vol.uuid
    vol.write(0, b'\x07' * 4096)
    vol.flush()
    assert fmt.Volume.open(st, kek, anchor).read(0, 4096) == b'\x07' * 4096
    stale = anchor.load(vol.uuid)
    with pytest.raises(bs_errors.AnchorError) as exc:   # versions only grow
        anchor.commit(vol.uuid, dict(stale, version=1), stale['version'])
    assert 'refus' in str(exc.value)
    # another trusted host the volume is not attached to: neither anchor nor mark
    volumes.attach('vol-2', key_id, 'node2')
    other = client.KeyServiceAnchor(host_client(url, 'node3'), 'vol-1')
    with pytest.raises(bs_errors.AnchorError) as exc:
        fmt.Volume.open(st, kek, other)
    assert 'stale' in str(exc.value)
    untrusted = client.KeyServiceAnchor(host_client(url, 'node2'), 'vol-1')
    with pytest.raises(bs_errors.AnchorError) as exc:
        fmt.Volume.open(st, kek, untrusted)
    assert 'untrusted' in str(exc.value)
    with pytest.raises(bs_errors.AnchorError) as exc:
        host_client(url, 'node2').claim_format_mark('vol-1', 'x')
    assert 'untrusted' in str(exc.value)
    st.close()
