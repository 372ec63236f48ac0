"""The host credential, end to end with a real Keystone and keystonemiddleware.

A compute host's castellan driver (role compute) and ``tclouds-blockstore --anchor
key-service:<volume>`` authenticate with the host's own Keystone credential (the
``personas`` of tests/functional/personas.py); the key release API validates the token with
keystonemiddleware and maps the validated user ID to the host through the enrolment the
attestation API serves. Identity headers a caller sets itself are ignored. Cinder's
answers are a table here (test_volume_release.py asks a real Cinder).
"""
import datetime
import os

from castellan.common import exception as castellan_exc
from keystoneauth1 import session as ks_session
import pytest

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.common import context as tc_context
from tclouds_openstack.keymgr import client
from tclouds_openstack.keymgr import driver
from tclouds_openstack.keymgr import release
from tests.functional.keymgr import release_harness
from tests.functional import personas as personas_mod
from tests.unit.keymgr import helpers

NODE1, NODE2 = personas_mod.HOST, 'compute-2'


class Backend(base.AttestationBackend):
    """Verdicts, and the enrolment's answer for the two host credentials."""

    credentials = {}

    def get_verdicts(self, hosts):
        now = datetime.datetime.now(datetime.timezone.utc)      # made when asked
        known = {NODE1: base.Verdict(NODE1, base.TRUSTED, (), now),
                 NODE2: base.Verdict(NODE2, base.UNTRUSTED, ('PCR 4: unknown kernel',), now)}
        return {h: known.get(h, base.unknown(h, 'never attested')) for h in hosts}

    def host_for_credential(self, credential_id):
        return self.credentials.get(credential_id)


@pytest.fixture(scope='module')
def hosts(personas):
    hosts = {host: personas.host_persona(host) for host in (NODE1, NODE2)}
    Backend.credentials = {personas.user_id(persona): host for host, persona in hosts.items()}
    return hosts


@pytest.fixture
def release_api(personas, hosts, tmp_path):
    with release_harness.serve(personas, tmp_path, Backend) as (url, conf, volumes):
        owner = tc_context.RequestContext(user_id='alice', project_id='p-alice')
        key_id = driver.TcloudsKeyManager(conf).create_key(owner, 'AES', 256)
        volumes.attach('vol-1', key_id, NODE1)
        yield url, key_id, owner, volumes


def test_enrolled_host_credential_gets_its_volume_key(personas, hosts, release_api,
                                                      tmp_path):
    url, key_id, owner, _ = release_api
    key = release_harness.compute_driver(tmp_path, personas, hosts[NODE1], url).get_volume_key(
        owner, 'vol-1', key_id)
    assert len(key.get_encoded()) == 32
    ((event_type, _, payload),) = helpers.notifications()
    assert event_type == release.RELEASED and payload['host'] == NODE1
    assert payload['user_id'] == personas.user_id('host')


def test_untrusted_host_credential_is_refused(personas, hosts, release_api, tmp_path):
    url, key_id, owner, volumes = release_api
    volumes.attach('vol-2', key_id, NODE2)
    with pytest.raises(castellan_exc.Forbidden) as exc:
        release_harness.compute_driver(tmp_path, personas, hosts[NODE2], url).get_volume_key(
            owner, 'vol-2', key_id)
    assert 'untrusted: PCR 4: unknown kernel' in str(exc.value)


def test_identity_headers_from_the_caller_are_ignored(personas, hosts, release_api):
    url, key_id, _, _ = release_api
    spoofing = personas.session(hosts[NODE2])
    spoofing.additional_headers = {
        'X-User-Id': personas.user_id('host'), 'X-User-Name': 'tclouds-host-' + NODE1,
        'X-Roles': 'tclouds_host', 'X-Identity-Status': 'Confirmed'}
    http = client.KeyReleaseClient(spoofing, endpoint_override=url)
    with pytest.raises(castellan_exc.Forbidden) as exc:
        http.release_volume_key('vol-1', key_id)
    # judged as the token's user (compute-2's, untrusted), not as the headers say
    assert NODE2 in str(exc.value)
    anonymous = client.KeyReleaseClient(ks_session.Session(additional_headers={
        'X-User-Id': personas.user_id('host'), 'X-Roles': 'tclouds_host',
        'X-Identity-Status': 'Confirmed'}), endpoint_override=url)
    with pytest.raises(castellan_exc.Forbidden) as exc:
        anonymous.release_volume_key('vol-1', key_id)
    assert '401' in str(exc.value) or 'authentication' in str(exc.value).lower()


def test_volume_anchored_in_the_key_service_end_to_end(personas, hosts, release_api,
                                                       tmp_path):
    """tclouds-blockstore create/serve/check with --anchor key-service:vol-1 as compute-1."""
    from tests.functional.blockstore import conftest as bs

    url, _, _, _ = release_api
    served = bs.Served(tmp_path)
    for host, persona in hosts.items():
        (tmp_path / ('%s.conf' % host)).write_text(
            '[tclouds_key_manager]\nrelease_endpoint_override = %s\n%s'
            % (url, personas.auth_options(persona)))
    node1 = ['--anchor', 'key-service:vol-1', '--config-file',
             str(tmp_path / ('%s.conf' % NODE1))]
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
                     'key-service:vol-1', '--config-file', str(tmp_path / ('%s.conf' % NODE2)))
        assert res.returncode == 2 and 'untrusted' in res.stderr
    finally:
        served.stop()
