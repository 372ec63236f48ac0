"""A project's own rules beyond the matrix, with real Keystone tokens (conftest.py ``apis``).

The policy matrix (test_matrix.py) says which persona may call which route; here the
decisions a route makes inside, on who the caller is: a member may set and tighten its
project's trust requirement but only the project's manager may relax or remove it (the
refusal says what would be relaxed), through the API and through ``openstack trust
requirement``; another project's member neither reads nor writes it; a token whose role
the policy does not know is refused.
"""
import secrets
import types

from osc_lib import exceptions
import pytest
import requests

from tclouds_openstack.osc.v1 import trust

PATH = '/v1/requirements/{A}'


@pytest.fixture
def requirement_of_a(apis):
    """PUT/GET/DELETE of project A's requirement as a persona; none stored at the start."""
    url = apis.attestation + PATH.format(A=apis.project['A'])
    apis.call('admin', 'DELETE', url)

    def call(persona, method, body=None):
        return apis.call(persona, method, url, body)
    yield call
    apis.call('admin', 'DELETE', url)


def test_member_sets_and_reads_own_project(apis, requirement_of_a):
    call = requirement_of_a
    assert call('member_a', 'GET')[0] == 404
    status, body = call('member_a', 'PUT',
                        {'requirement': {'trusted_host': 'required', 'jurisdictions': ['eu']}})
    assert status == 200, body
    req = body['requirement']
    assert req['trusted_host'] == 'required' and req['jurisdictions'] == ['EU']
    assert len(req['effective_jurisdictions']) == 27
    assert req['updated_by'] == apis.personas.user_id('member_a')
    status, body = call('service', 'GET')
    assert status == 200 and body['requirement']['jurisdictions'] == ['EU']
    # another project sees nothing of it and changes nothing
    status, body = call('member_b', 'GET')
    assert status == 403 and 'EU' not in str(body)
    assert call('member_b', 'PUT', {'requirement': {'trusted_host': 'optional'}})[0] == 403
    assert call('member_a', 'GET')[1]['requirement']['trusted_host'] == 'required'


def test_partial_update_tightens_and_relaxing_needs_manager(apis, requirement_of_a):
    call = requirement_of_a
    call('member_a', 'PUT',
         {'requirement': {'trusted_host': 'required', 'jurisdictions': 'DE,FR'}})
    status, body = call('member_a', 'PUT', {'requirement': {'jurisdictions': ['DE']}})
    assert status == 200 and body['relaxed'] == []
    assert body['requirement']['trusted_host'] == 'required'   # kept
    for persona in ('member_a', 'reader_a'):
        status, body = call(persona, 'PUT', {'requirement': {'jurisdictions': ['DE', 'US']}})
        assert status == 403, (persona, body)
        if persona == 'member_a':
            assert 'adds jurisdictions US' in body['error']['message']
    status, body = call('member_a', 'PUT', {'requirement': {'trusted_host': None}})
    assert status == 403 and 'drops the trusted-host requirement' in body['error']['message']
    assert call('member_a', 'DELETE')[0] == 403
    assert call('member_a', 'GET')[1]['requirement']['jurisdictions'] == ['DE']
    status, body = call('manager_a', 'PUT', {'requirement': {'jurisdictions': None}})
    assert status == 200 and body['relaxed'] == ['removes the jurisdiction restriction']
    assert call('manager_a', 'DELETE')[0] == 204
    assert call('admin', 'DELETE')[0] == 404


def test_a_role_the_policy_does_not_know_is_refused(apis):
    """A valid token whose only role on project A is ``observer`` reads nothing of A."""
    keystone = apis.personas.keystone
    password = secrets.token_hex(16)
    user_id = keystone.add_user('observer-of-a', password)
    keystone.grant(user_id, 'observer', project='A')
    token = keystone.password_token('observer-of-a', password, project='A')
    for path in ('/v1/trust/servers', '/v1/trust/servers/server-a',
                 PATH.format(A=apis.project['A'])):
        resp = requests.get(apis.attestation + path, headers={'X-Auth-Token': token},
                            timeout=120)
        assert resp.status_code == 403, (path, resp.text)
        assert 'server-a' not in resp.text and 'compute-' not in resp.text


class _NoIdentity(object):
    def __getattr__(self, name):
        raise RuntimeError('no identity service in this test')


def _run(apis, persona, cls, *argv):
    """``openstack trust requirement ...`` authenticated as ``persona``."""
    tclouds = types.SimpleNamespace(session=apis.personas.session(persona), interface=None,
                                    region_name=None)
    app = types.SimpleNamespace(client_manager=types.SimpleNamespace(
        tclouds=tclouds, identity=_NoIdentity()))
    command = cls(app, None)
    parsed = command.get_parser('openstack trust requirement').parse_args(list(argv))
    return command.take_action(parsed)


def test_osc_set_show_unset(apis, requirement_of_a, monkeypatch):
    monkeypatch.setenv(trust.ENDPOINT_ENV, apis.attestation)
    project = apis.project['A']
    columns, values = _run(apis, 'member_a', trust.SetRequirement, '--project', project,
                           '--trusted-host', '--jurisdiction', 'DE', '--jurisdiction', 'fr')
    shown = dict(zip(columns, values))
    assert shown['trusted_host'] == 'required'
    assert shown['jurisdictions'] == 'DE,FR' and shown['relaxed'] == '-'
    shown = dict(zip(*_run(apis, 'member_a', trust.ShowRequirement, '--project', project)))
    assert shown['effective_jurisdictions'] == 'DE,FR'
    assert shown['updated_by'] == apis.personas.user_id('member_a')
    # a member may not relax it; the error says why
    with pytest.raises(exceptions.CommandError, match='only the project manager'):
        _run(apis, 'member_a', trust.UnsetRequirement, '--project', project, '--jurisdiction')
    # nor may another project's member read it
    with pytest.raises(exceptions.CommandError, match='403|policy does not allow'):
        _run(apis, 'member_b', trust.ShowRequirement, '--project', project)
    _run(apis, 'manager_a', trust.UnsetRequirement, '--project', project, '--jurisdiction')
    shown = dict(zip(*_run(apis, 'member_a', trust.ShowRequirement, '--project', project)))
    assert shown['jurisdictions'] == 'any' and shown['trusted_host'] == 'required'
    _run(apis, 'manager_a', trust.UnsetRequirement, '--project', project)
    with pytest.raises(exceptions.CommandError, match='no trust requirement'):
        _run(apis, 'member_a', trust.ShowRequirement, '--project', project)
