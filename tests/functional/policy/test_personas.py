"""The personas' Keystone is real: tokens carry the scopes and implied roles of a cloud."""
import requests


def test_role_implications_are_keystones_defaults(personas):
    assert personas.roles('admin') == ['admin', 'manager', 'member', 'reader']
    assert personas.roles('manager_a') == ['manager', 'member', 'reader']
    assert personas.roles('member_a') == ['member', 'reader']
    assert personas.roles('reader_a') == ['reader']
    assert personas.roles('member_b') == ['member', 'reader']
    assert personas.roles('system_reader') == ['reader']
    assert personas.roles('service') == ['service']
    assert personas.roles('host') == ['tclouds_host']


def _token_body(personas, persona):
    resp = requests.get(personas.url + '/auth/tokens', timeout=60, headers={
        'X-Auth-Token': personas.token('admin'), 'X-Subject-Token': personas.token(persona)})
    resp.raise_for_status()
    return resp.json()['token']


def test_scopes(personas):
    assert _token_body(personas, 'system_reader')['system'] == {'all': True}
    for persona, project in (('member_a', 'A'), ('reader_a', 'A'), ('manager_a', 'A'),
                             ('member_b', 'B'), ('service', 'service'), ('host', 'service'),
                             ('admin', 'admin')):
        token = _token_body(personas, persona)
        assert token['project']['id'] == personas.project_id(project)
        assert token['user']['id'] == personas.user_id(persona)
    assert personas.project_id('A') != personas.project_id('B')


def test_host_credentials_are_distinct_users(personas):
    user_id, secret = personas.add_host_credential('compute-2')
    assert user_id != personas.user_id('host')
    assert personas.roles('host:compute-2') == ['tclouds_host']
    assert _token_body(personas, 'host:compute-2')['user']['id'] == user_id
    session = personas.session('host:compute-2')
    assert session.get_user_id() == user_id


def test_session_and_catalog(personas):
    session = personas.session('member_a')
    assert session.get_project_id() == personas.project_id('A')
    assert session.get_endpoint(service_type='identity', interface='public').rstrip('/') \
        in (personas.url, personas.url[:-len('/v3')])
    system = personas.session('system_reader')
    assert system.get_project_id() is None
