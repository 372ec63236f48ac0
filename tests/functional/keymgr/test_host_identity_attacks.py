"""Who is a compute host, more variants (issue 11 point 1), with a real Keystone.

The key release API behind keystonemiddleware, validating real tokens of a running Keystone;
the enrolment (credential ID -> host) and the verdicts are a table (the attestation API's
answers are tested in test_volume_release.py), Cinder's attachments a table. Each case is
an attacker's or an operator's move on the Keystone side:

- the operator disables or deletes a host's Keystone user (a host found compromised): a
  token the API already accepted must stop working at once, not when keystonemiddleware's
  token cache expires;
- application credentials: of a host user (restricted or not) whose *user* ID is
  enrolled (the application credential is not), and of a non-host user;
- the host role on the wrong scope: a domain-scoped or system-scoped token of a host user;
- a host token on any other route of the API (only its volumes' key, anchor and mark).
"""
import datetime
import secrets

import pytest
import requests

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.common import context as tc_context
from tclouds_openstack.keymgr import driver
from tests.functional.keymgr import release_harness
from tests.functional import personas as personas_mod

HOSTS = ('compute-disabled', 'compute-deleted', 'compute-appcred', 'compute-scope')


class Backend(base.AttestationBackend):
    """Every host trusted now; the enrolment is ``credentials``."""

    credentials = {}

    def get_verdicts(self, hosts):
        now = datetime.datetime.now(datetime.timezone.utc)
        return {h: base.Verdict(h, base.TRUSTED, (), now) for h in hosts}

    def host_for_credential(self, credential_id):
        return self.credentials.get(credential_id)


@pytest.fixture(scope='module')
def hosts(personas):
    for host in HOSTS:
        if 'host:' + host not in personas._users:
            personas.add_host_credential(host)
    # the operator enrols each host's *user* ID
    Backend.credentials = {personas.user_id('host:' + h): h for h in HOSTS}
    return personas


@pytest.fixture
def release_api(hosts, tmp_path):
    personas = hosts
    with release_harness.serve(personas, tmp_path, Backend) as (url, conf, volumes):
        owner = tc_context.RequestContext(user_id='alice', project_id='p-alice')
        manager = driver.TcloudsKeyManager(conf)
        keys = {}
        for host in HOSTS:
            keys[host] = manager.create_key(owner, 'AES', 256)
            volumes.attach('vol-' + host, keys[host], host)
        yield url, keys


def ask(url, token, host, key_id):
    resp = requests.post('%s/v1/volumes/vol-%s/key' % (url, host), timeout=60,
                         headers={'X-Auth-Token': token}, json={'key_id': key_id})
    try:
        message = (resp.json().get('error') or {}).get('message', '')
    except ValueError:
        message = resp.text
    return resp.status_code, 'secret' in resp.text, message


def user_token(personas, persona, scope):
    body = {'auth': {'identity': {'methods': ['password'], 'password': {'user': {
        'id': personas.user_id(persona), 'password': personas.password(persona)}}},
        'scope': scope}}
    resp = requests.post(personas.url + '/auth/tokens', json=body, timeout=60)
    resp.raise_for_status()
    return resp.headers['X-Subject-Token']


def app_cred_token(personas, app_id, secret):
    body = {'auth': {'identity': {'methods': ['application_credential'],
                                  'application_credential': {'id': app_id,
                                                             'secret': secret}}}}
    resp = requests.post(personas.url + '/auth/tokens', json=body, timeout=60)
    resp.raise_for_status()
    return resp.headers['X-Subject-Token']


def make_app_cred(personas, persona, unrestricted=False):
    token = personas.token(persona)
    resp = requests.post(
        personas.url + '/users/%s/application_credentials' % personas.user_id(persona),
        headers={'X-Auth-Token': token}, timeout=60,
        json={'application_credential': {'name': 'ac-%s' % secrets.token_hex(4),
                                         'unrestricted': unrestricted}})
    resp.raise_for_status()
    cred = resp.json()['application_credential']
    return cred['id'], cred['secret']


def test_a_disabled_or_deleted_host_user_is_refused_at_once(hosts, release_api):
    personas = hosts
    url, keys = release_api
    for host, action in (('compute-disabled', 'disable'), ('compute-deleted', 'delete')):
        persona = 'host:' + host
        token = user_token(personas, persona, {'project': {'id': personas.project_id(
            'service')}})
        # accepted (and cached by keystonemiddleware) while the user is good
        status, leaked, message = ask(url, token, host, keys[host])
        assert (status, leaked) == (200, True), message
        # the operator cuts the host off in Keystone
        user = '/users/%s' % personas.user_id(persona)
        if action == 'disable':
            personas.keystone.api('PATCH', user, json={'user': {'enabled': False}})
        else:
            personas.keystone.api('DELETE', user)
        status, leaked, message = ask(url, token, host, keys[host])
        assert not leaked and status == 401, (action, status, message)


def test_application_credentials_stand_for_no_host_unless_enrolled(hosts, release_api):
    personas = hosts
    url, keys = release_api
    host = 'compute-appcred'
    persona = 'host:' + host
    for unrestricted in (False, True):
        app_id, secret = make_app_cred(personas, persona, unrestricted)
        token = app_cred_token(personas, app_id, secret)
        # the user's ID is enrolled, the application credential's is not: an application
        # credential is a credential of its own, revoked on its own
        status, leaked, message = ask(url, token, host, keys[host])
        assert not leaked and status == 403, message
        assert 'credential %s stands for no enrolled compute host' % app_id in message
    # enrolled by its own ID, it stands for the host
    Backend.credentials[app_id] = host
    try:
        status, leaked, message = ask(url, token, host, keys[host])
        assert (status, leaked) == (200, True), message
    finally:
        del Backend.credentials[app_id]
    # a tenant's member makes an application credential: no host role, refused by policy
    app_id, secret = make_app_cred(personas, 'member_a', unrestricted=True)
    status, leaked, message = ask(url, app_cred_token(personas, app_id, secret), host,
                                  keys[host])
    assert not leaked and status == 403
    assert 'not a compute host credential: policy does not allow' in message


def test_the_host_role_counts_on_a_project_scoped_token_only(hosts, release_api):
    personas = hosts
    url, keys = release_api
    host = 'compute-scope'
    persona = 'host:' + host
    user_id = personas.user_id(persona)
    role = personas.keystone.ensure_role(personas_mod.HOST_ROLE)
    personas.keystone.api('PUT', '/domains/default/users/%s/roles/%s' % (user_id, role))
    personas.keystone.api('PUT', '/system/users/%s/roles/%s' % (user_id, role))
    for scope, name in (({'domain': {'id': 'default'}}, 'domain'),
                        ({'system': {'all': True}}, 'system')):
        token = user_token(personas, persona, scope)
        status, leaked, message = ask(url, token, host, keys[host])
        assert not leaked and status == 403, (name, message)
        assert 'does not accept a %s-scoped token' % name in message


def test_a_host_token_reaches_no_other_route(hosts, release_api):
    personas = hosts
    url, keys = release_api
    token = personas.token('host:compute-scope')
    headers = {'X-Auth-Token': token}
    # another host's volume, a volume that does not exist, the old routes
    for method, path, body, expected in (
            ('POST', '/v1/volumes/vol-compute-appcred/key',
             {'key_id': keys['compute-appcred']}, 403),
            ('GET', '/v1/volumes/vol-compute-appcred/anchor', None, 403),
            ('PUT', '/v1/volumes/vol-compute-appcred/format-mark',
             {'blockstore_uuid': 'bs-x'}, 403),
            ('POST', '/v1/volumes/no-such-volume/key', {'key_id': keys['compute-scope']},
             403),
            ('POST', '/v1/keys/%s/release' % keys['compute-scope'], {}, 410),
            ('GET', '/v1/keys/%s' % keys['compute-scope'], None, 404)):
        resp = requests.request(method, url + path, headers=headers, json=body, timeout=60)
        assert resp.status_code == expected, (method, path, resp.status_code, resp.text)
        assert 'secret' not in resp.text
