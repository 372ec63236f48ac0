"""The key release API over real HTTP: compute-role castellan driver, key-service anchor and
format mark, per Cinder volume.

The API runs behind keystonemiddleware validating real Keystone tokens
(release_harness.serve, the personas of tests/functional/personas.py): every host has a
compute host credential of its own (role ``tclouds_host``, in the driver's configuration as
on a compute node); the refused callers are the tenant, admin and service personas.
Cinder's answers are a table; which credential stands for which host (the enrolment) and
the verdicts come from the backend here (test_volume_release.py asks the attestation API
and a real Cinder).
"""
import datetime
import os

from castellan.common import exception as castellan_exc
import pytest
import requests

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.blockstore import errors as bs_errors
from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.blockstore import storage
from tclouds_openstack.common import context as tc_context
from tclouds_openstack.keymgr import client
from tclouds_openstack.keymgr import driver
from tclouds_openstack.keymgr import release
from tests.functional.keymgr import release_harness
from tests.unit.keymgr import helpers

HOSTS = ('node1', 'node2', 'node3', 'node7')     # node7's credential is not enrolled


class Backend(base.AttestationBackend):
    credentials = {}        # the enrolment: user ID of a host credential -> host

    def get_verdicts(self, hosts):
        now = datetime.datetime.now(datetime.timezone.utc)      # made when asked
        known = {'node1': base.Verdict('node1', base.TRUSTED, (), now),
                 'node2': base.Verdict('node2', base.UNTRUSTED, ('IMA: /usr/bin/evil',), now),
                 'node3': base.Verdict('node3', base.TRUSTED, (),
                                       now - datetime.timedelta(hours=1))}
        return {h: known.get(h, base.unknown(h, 'never attested')) for h in hosts}

    def host_for_credential(self, credential_id):
        return self.credentials.get(credential_id)


@pytest.fixture(scope='module')
def hosts(personas):
    """host -> persona of its credential; all but node7's enrolled."""
    hosts = {host: personas.host_persona(host) for host in HOSTS}
    Backend.credentials = {personas.user_id(persona): host for host, persona in hosts.items()
                           if host != 'node7'}
    return hosts


@pytest.fixture
def service(personas, hosts, tmp_path):
    with release_harness.serve(personas, tmp_path, Backend) as (url, conf, volumes):
        yield conf, url, volumes


def release_client(personas, url, persona):
    """The key release client with ``persona``'s Keystone session."""
    return client.KeyReleaseClient(personas.session(persona), endpoint_override=url,
                                   timeout=10)


def compute_manager(tmp_path, personas, hosts, url, host):
    """The driver as nova-compute runs it (role compute) with ``host``'s credential."""
    return release_harness.compute_driver(tmp_path, personas, hosts[host], url)


def new_key(conf):
    owner = tc_context.RequestContext(user_id='alice', project_id='p-alice')
    controller = driver.TcloudsKeyManager(conf)
    key_id = controller.create_key(owner, 'AES', 256)
    return owner, key_id, controller.get(owner, key_id).get_encoded()


def test_attached_host_gets_its_volume_key_cinder_created(service, personas, hosts, tmp_path):
    conf, url, volumes = service
    owner, key_id, expected = new_key(conf)
    volumes.attach('vol-1', key_id, 'node1')
    key = compute_manager(tmp_path, personas, hosts, url, 'node1').get_volume_key(
        owner, 'vol-1', key_id)
    assert key.get_encoded() == expected and key.bit_length == 256
    ((event_type, _, payload),) = helpers.notifications()
    assert event_type == release.RELEASED and payload['host'] == 'node1'
    assert payload['user_id'] == personas.user_id(hosts['node1'])


@pytest.mark.parametrize('host,attached,reason', [
    ('node2', 'node2', 'untrusted: IMA: /usr/bin/evil'),
    ('node7', 'node7', 'credential {node7} stands for no enrolled compute host'),
    ('node3', 'node3', 'verdict of host node3 is stale'),
    ('node1', 'node2', 'volume vol-1 is not attached to host node1 (Cinder: attached to '
                       'node2)'),
])
def test_refused_hosts_get_403_with_reason(service, personas, hosts, tmp_path, host,
                                           attached, reason):
    conf, url, volumes = service
    reason = reason.format(node7=personas.user_id(hosts['node7']))
    owner, key_id, _ = new_key(conf)
    volumes.attach('vol-1', key_id, attached)
    with pytest.raises(castellan_exc.Forbidden) as exc:
        compute_manager(tmp_path, personas, hosts, url, host).get_volume_key(
            owner, 'vol-1', key_id)
    assert reason in str(exc.value)
    ((event_type, _, payload),) = helpers.notifications()
    assert event_type == release.REFUSED and reason in payload['reason']


def test_not_a_host_and_old_routes(service, personas, hosts):
    conf, url, volumes = service
    _, key_id, _ = new_key(conf)
    volumes.attach('vol-1', key_id, 'node1')
    # a tenant, the cloud's admin and a service credential are no compute host
    for persona in ('member_a', 'admin', 'service'):
        with pytest.raises(castellan_exc.Forbidden) as exc:
            release_client(personas, url, persona).release_volume_key('vol-1', key_id)
        assert 'not a compute host credential: policy does not allow ' \
               'keymgr:volume:key:release' in str(exc.value), persona
    assert release.RELEASED not in [n[0] for n in helpers.notifications()]
    # the routes that named no volume answer 410 with the route to use, release nothing
    for method, path in (('POST', '/v1/keys/%s/release' % key_id), ('GET', '/v1/anchors/x'),
                         ('PUT', '/v1/anchors/x')):
        resp = requests.request(method, url + path, headers=personas.headers(hosts['node1']),
                                timeout=30)
        assert resp.status_code == 410 and 'POST /v1/volumes/{volume_id}/key' in resp.text
        assert 'secret' not in resp.json()


def test_unknown_key_of_an_attached_volume_is_refused(service, personas, hosts, tmp_path):
    conf, url, volumes = service
    owner, key_id, _ = new_key(conf)
    volumes.attach('vol-1', 'another-key', 'node1')
    node1 = compute_manager(tmp_path, personas, hosts, url, 'node1')
    with pytest.raises(castellan_exc.Forbidden) as exc:
        node1.get_volume_key(owner, 'vol-1', key_id)
    assert 'is not the encryption key of volume vol-1' in str(exc.value)
    # Cinder names a key the store does not have: not found (castellan's contract)
    volumes.attach('vol-2', 'no-such-key', 'node1')
    with pytest.raises(castellan_exc.ManagedObjectNotFoundError):
        node1.get_volume_key(owner, 'vol-2', 'no-such-key')


def test_volume_anchored_and_marked_in_the_key_service(service, personas, hosts, tmp_path):
    conf, url, volumes = service
    _, key_id, _ = new_key(conf)
    volumes.attach('vol-1', key_id, 'node1')

    def host_client(host):
        return release_client(personas, url, hosts[host])

    node1 = host_client('node1')
    anchor = client.KeyServiceAnchor(node1, 'vol-1')
    kek = os.urandom(32)
    st = storage.FileStorage(str(tmp_path / 'vol'))
    assert node1.format_mark('vol-1') is None
    vol = fmt.Volume.create(st, kek, anchor, 1 << 20)
    assert node1.claim_format_mark('vol-1', vol.uuid) is True
    assert node1.claim_format_mark('vol-1', 'another') is False       # formatted once
    assert node1.format_mark('vol-1')['blockstore_uuid'] == vol.uuid
    # a mark from before formats were recorded: the first verified open records the
    # format, which is never lowered, and only for the volume the mark names
    assert node1.format_mark('vol-1')['format_version'] is None
    assert node1.record_format('vol-1', vol.uuid, 2)['format_version'] == 2
    assert node1.record_format('vol-1', vol.uuid, 1)['format_version'] == 2
    with pytest.raises(bs_errors.AnchorError) as exc:
        node1.record_format('vol-1', 'another', 3)
    assert 'formatted already (blockstore volume %s' % vol.uuid in str(exc.value)
    assert node1.format_mark('vol-1')['format_version'] == 2
    vol.write(0, b'\x07' * 4096)
    vol.flush()
    assert fmt.Volume.open(st, kek, anchor).read(0, 4096) == b'\x07' * 4096
    stale = anchor.load(vol.uuid)
    with pytest.raises(bs_errors.AnchorError) as exc:   # versions only grow
        anchor.commit(vol.uuid, dict(stale, version=1), stale['version'])
    assert 'refus' in str(exc.value)
    # another trusted host the volume is not attached to: neither anchor nor mark
    volumes.attach('vol-2', key_id, 'node2')
    other = client.KeyServiceAnchor(host_client('node3'), 'vol-1')
    with pytest.raises(bs_errors.AnchorError) as exc:
        fmt.Volume.open(st, kek, other)
    assert 'stale' in str(exc.value)
    untrusted = client.KeyServiceAnchor(host_client('node2'), 'vol-1')
    with pytest.raises(bs_errors.AnchorError) as exc:
        fmt.Volume.open(st, kek, untrusted)
    assert 'untrusted' in str(exc.value)
    with pytest.raises(bs_errors.AnchorError) as exc:
        host_client('node2').claim_format_mark('vol-1', 'x')
    assert 'untrusted' in str(exc.value)
    st.close()
