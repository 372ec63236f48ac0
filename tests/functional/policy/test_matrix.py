"""The policy matrix: every API route x every persona -> allowed or not, with real tokens.

One table, one row per route (a route may have several rows: objects of different
owners). Each row says which personas may do it; every other persona must get 403, or
404 where the object must stay invisible to it (another project's server or record); a
caller without a token gets 401. List rows also say WHAT each persona sees. The requests
go over HTTP to the real APIs behind keystonemiddleware (see conftest.py), with tokens of
the personas of tests/functional/personas.py.

To add an API (the key release API): serve it in conftest.py, list its router in
``ROUTERS`` and add its rows; ``test_every_route_has_a_row`` fails until every route has one.

The last tests replay the review's attacks (issue 11, point 3) as member of project A and
look for the leaked data in the raw answers.
"""
import hashlib
import json

import pytest

from tclouds_openstack.attestation.service import api as attestation_api
from tclouds_openstack.keymgr import api as keymgr_api
from tclouds_openstack.requirements import store as requirements_store
from tclouds_openstack.securelog import api as securelog_api
from tests.functional.policy import conftest as fx

PERSONAS = ('admin', 'system_reader', 'manager_a', 'member_a', 'reader_a', 'member_b',
            'service', 'host')
OPERATORS = {'admin', 'system_reader'}
ADMIN = {'admin'}
OF_A = {'manager_a', 'member_a', 'reader_a'}
EVERYONE = set(PERSONAS)


class Row(object):
    """One route called one way, and who may.

    ``url`` is formatted with ``persona`` and the stores' objects (``A``, ``B``: project
    ids; ``record_A``...: record indexes); ``prepare(apis, persona)`` runs before each
    call (fresh objects for deletes); ``visible(apis, persona, body)`` checks an allowed
    answer.
    """

    def __init__(self, api, method, route, allowed, url=None, body=None, ok=200,
                 hidden=(), prepare=None, visible=None):
        self.api, self.method, self.route = api, method, route
        self.allowed, self.hidden = set(allowed), set(hidden)
        self.url, self.body, self.ok = url or route, body, ok
        self.prepare, self.visible = prepare, visible

    def __repr__(self):
        return '%s %s %s' % (self.api, self.method, self.url)

    def expected(self, persona):
        if persona is None:
            return 401
        if persona in self.allowed:
            return self.ok
        return 404 if persona in self.hidden else 403


# ------------------------------------------------------------------ preparations
def _fresh_host(apis, persona):
    fx.add_host(apis.attestation_store, 'gone-%s' % persona)


def _fresh_policy(apis, persona):
    apis.attestation_store.create_policy('old-%s' % persona, '{"4": ["%s"]}' % fx.GOLDEN_PCR,
                                         None, None)


def _requirement(trusted, jurisdictions):
    def prepare(apis, persona):
        store = requirements_store.Store(apis.conf.attestation.connection)
        store.put(apis.project['A'], trusted, jurisdictions, 'matrix')
    return prepare


# ------------------------------------------------------------------ visibility checks
def _hosts_listed(apis, persona, body):
    assert {h['host'] for h in body['hosts']} >= {'compute-1', 'compute-2'}


def _servers_of_own_project(apis, persona, body):
    own = {'manager_a': ['server-a'], 'member_a': ['server-a'], 'reader_a': ['server-a'],
           'member_b': ['server-b'], 'admin': []}[persona]
    assert [s['server'] for s in body['servers']] == own
    assert 'compute-' not in json.dumps(body)       # host names stay hidden


def _all_requirements(apis, persona, body):
    projects = {r['project_id'] for r in body['requirements']}
    assert projects >= {apis.project['A'], apis.project['B']}


def _records_of_own_project(apis, persona, body):
    owners = {r['payload']['note'][len('secret-of-'):] for r in body['records']
              if isinstance(r.get('payload'), dict) and 'note' in r['payload']}
    tenants = {r['tenant'] for r in body['records']}
    if persona in OPERATORS:
        assert owners == {'A', 'B', 'C', 'operator'}
    else:
        own = 'A' if persona in OF_A else 'B'
        assert owners == {own} and tenants == {apis.project[own]}


def _records_of_b(apis, persona, body):
    assert {r['tenant'] for r in body['records']} == {apis.project['B']}


def _report_of(owner):
    """The report is the owner's, verifies with the log's key, and names no other project."""
    def check(apis, persona, body):
        from tclouds_openstack.securelog import report
        assert body['project_id'] == apis.project[owner]
        report.verify(body['report'].encode(), apis.securelog_store.signer.verifier(),
                      project=apis.project[owner])
        others = [apis.project[p] for p in ('A', 'B', 'C') if p != owner]
        assert not [p for p in others if p in body['report']]
    return check


TIGHTEN = {'requirement': {'trusted_host': 'required'}}
RELAX = {'requirement': {'jurisdictions': None}}

ROWS = [
    # ---------------------------------------------------------------- attestation: hosts
    Row('attestation', 'GET', '/v1/hosts', OPERATORS, visible=_hosts_listed),
    Row('attestation', 'GET', '/v1/hosts/{host}', OPERATORS, url='/v1/hosts/compute-1'),
    Row('attestation', 'PATCH', '/v1/hosts/{host}', ADMIN, url='/v1/hosts/compute-1',
        body={'policy': 'golden'}),
    Row('attestation', 'DELETE', '/v1/hosts/{host}', ADMIN, url='/v1/hosts/gone-{persona}',
        ok=204, prepare=_fresh_host),
    Row('attestation', 'GET', '/v1/hosts/{host}/history', OPERATORS,
        url='/v1/hosts/compute-1/history'),
    Row('attestation', 'POST', '/v1/hosts/{host}/attest', ADMIN,
        url='/v1/hosts/compute-1/attest', ok=202),
    Row('attestation', 'GET', '/v1/verdicts', OPERATORS | {'service'},
        url='/v1/verdicts?hosts=compute-1,compute-2'),
    # ---------------------------------------------------------------- attestation: policies
    Row('attestation', 'GET', '/v1/policies', OPERATORS),
    Row('attestation', 'POST', '/v1/policies', ADMIN, ok=201,
        body={'name': 'new-{persona}', 'tpm_policy': {'4': [fx.GOLDEN_PCR]}}),
    Row('attestation', 'GET', '/v1/policies/{name}', OPERATORS, url='/v1/policies/golden'),
    Row('attestation', 'DELETE', '/v1/policies/{name}', ADMIN, url='/v1/policies/old-{persona}',
        ok=204, prepare=_fresh_policy),
    # ---------------------------------------------------------------- attestation: tenants
    Row('attestation', 'GET', '/v1/trust/servers', OF_A | {'member_b', 'admin'},
        visible=_servers_of_own_project),
    Row('attestation', 'GET', '/v1/trust/servers/{server_id}', OPERATORS | OF_A,
        url='/v1/trust/servers/server-a', hidden={'member_b'}),
    Row('attestation', 'GET', '/v1/trust/servers/{server_id}', OPERATORS | {'member_b'},
        url='/v1/trust/servers/server-b', hidden=OF_A),
    # ---------------------------------------------------------------- trust requirements
    Row('attestation', 'GET', '/v1/requirements', OPERATORS, visible=_all_requirements),
    Row('attestation', 'GET', '/v1/requirements/{project_id}', OPERATORS | OF_A | {'service'},
        url='/v1/requirements/{A}', prepare=_requirement(True, ['EU'])),
    Row('attestation', 'GET', '/v1/requirements/{project_id}',
        OPERATORS | {'member_b', 'service'}, url='/v1/requirements/{B}'),
    Row('attestation', 'PUT', '/v1/requirements/{project_id}',
        {'admin', 'manager_a', 'member_a'}, url='/v1/requirements/{A}', body=TIGHTEN,
        prepare=_requirement(False, ['EU'])),
    Row('attestation', 'PUT', '/v1/requirements/{project_id}', {'admin', 'member_b'},
        url='/v1/requirements/{B}', body=TIGHTEN),
    Row('attestation', 'PUT', '/v1/requirements/{project_id}', {'admin', 'manager_a'},
        url='/v1/requirements/{A}', body=RELAX, prepare=_requirement(True, ['DE'])),
    Row('attestation', 'DELETE', '/v1/requirements/{project_id}', {'admin', 'manager_a'},
        url='/v1/requirements/{A}', ok=204, prepare=_requirement(True, ['DE'])),
    Row('attestation', 'POST', '/v1/requirements/{project_id}/resolve', OPERATORS | OF_A,
        url='/v1/requirements/{A}/resolve', body={}, prepare=_requirement(True, ['EU'])),
    # ---------------------------------------------------------------- secure log
    # every verifier, not a compute host (its role grants key release and nothing else)
    Row('securelog', 'GET', '/v1/checkpoint', EVERYONE - {'host'}),
    Row('securelog', 'GET', '/v1/proofs/inclusion', EVERYONE - {'host'},
        url='/v1/proofs/inclusion?index=0'),
    Row('securelog', 'GET', '/v1/proofs/consistency', EVERYONE - {'host'},
        url='/v1/proofs/consistency?first=1'),
    Row('securelog', 'GET', '/v1/records', OPERATORS | OF_A | {'member_b'},
        url='/v1/records?limit=1000', visible=_records_of_own_project),
    Row('securelog', 'GET', '/v1/records', OPERATORS | {'member_b'},
        url='/v1/records?project_id={B}', visible=_records_of_b),
    Row('securelog', 'GET', '/v1/records/{index}', OPERATORS | OF_A,
        url='/v1/records/{record_A}', hidden={'member_b'}),
    Row('securelog', 'GET', '/v1/records/{index}', OPERATORS | {'member_b'},
        url='/v1/records/{record_B}', hidden=OF_A),
    Row('securelog', 'GET', '/v1/records/{index}', OPERATORS,
        url='/v1/records/{record_operator}', hidden=OF_A | {'member_b'}),
    Row('securelog', 'POST', '/v1/records', {'admin', 'service'}, ok=202,
        body={'event_type': 'matrix.check', 'payload': {'by': '{persona}'}}),
    Row('securelog', 'GET', '/v1/projects/{project_id}/report', OPERATORS | OF_A,
        url='/v1/projects/{A}/report', visible=_report_of('A')),
    Row('securelog', 'GET', '/v1/projects/{project_id}/report', OPERATORS | {'member_b'},
        url='/v1/projects/{B}/report?from=2020-01-01T00:00:00Z', visible=_report_of('B')),
]

# ---------------------------------------------------------------------- key release rows
HOST = {'host'}
ANCHOR = {'uuid': 'bs-a', 'version': 1, 'root': 'ab', 'size': 1, 'mac': 'cd'}


def _no_anchor(apis, persona):
    with apis.keystore._db() as db:
        db.execute('DELETE FROM anchors WHERE volume = ?', ('vol-a',))


def _anchor(apis, persona):
    _no_anchor(apis, persona)
    apis.keystore.anchor_commit('vol-a', ANCHOR, None)


def _no_mark(apis, persona):
    with apis.keystore._db() as db:
        db.execute('DELETE FROM format_marks WHERE volume = ?', ('vol-a',))


def _mark(apis, persona):
    _no_mark(apis, persona)
    apis.keystore.claim_format_mark('vol-a', 'bs-a', 'compute-1')


def _the_volume_key(apis, persona, body):
    assert body['secret'] == apis.keystore.get(apis.key_id)['secret'].hex()


KEY_RELEASE_ROWS = [
    # only compute-1's enrolled credential, for the volume Cinder shows attached to it
    Row('keymgr', 'POST', '/v1/volumes/{volume_id}/key', HOST, url='/v1/volumes/vol-a/key',
        body={'key_id': '{key_id}'}, visible=_the_volume_key),
    Row('keymgr', 'GET', '/v1/volumes/{volume_id}/anchor', HOST,
        url='/v1/volumes/vol-a/anchor', prepare=_anchor),
    Row('keymgr', 'PUT', '/v1/volumes/{volume_id}/anchor', HOST,
        url='/v1/volumes/vol-a/anchor', body={'state': ANCHOR, 'expected': None},
        prepare=_no_anchor),
    Row('keymgr', 'GET', '/v1/volumes/{volume_id}/format-mark', HOST,
        url='/v1/volumes/vol-a/format-mark', prepare=_mark),
    Row('keymgr', 'PUT', '/v1/volumes/{volume_id}/format-mark', HOST,
        url='/v1/volumes/vol-a/format-mark', body={'blockstore_uuid': 'bs-a'}, ok=201,
        prepare=_no_mark),
    # the routes that named no volume are gone for everyone
    Row('keymgr', 'POST', '/v1/keys/{key_id}/release', EVERYONE,
        url='/v1/keys/{key_id}/release', ok=410),
    Row('keymgr', 'GET', '/v1/anchors/{volume}', EVERYONE, url='/v1/anchors/bs-a', ok=410),
    Row('keymgr', 'PUT', '/v1/anchors/{volume}', EVERYONE, url='/v1/anchors/bs-a', ok=410,
        body={'state': ANCHOR, 'expected': None}),
]
ROWS += KEY_RELEASE_ROWS

# the attestation service's enrolments (after the key release rows: they keep compute-1's
# credential enrolled)
ROWS += [
    Row('attestation', 'POST', '/v1/hosts/{host}/approve', ADMIN,
        url='/v1/hosts/compute-1/approve', body={}),
    Row('attestation', 'PUT', '/v1/hosts/{host}/enrolment', ADMIN,
        url='/v1/hosts/compute-1/enrolment', body={
            'ek_sha256': hashlib.sha256(b'ek-compute-1').hexdigest(),
            'credentials': ['{host_user}']}),
    Row('attestation', 'GET', '/v1/hosts/{host}/enrolment', OPERATORS,
        url='/v1/hosts/compute-1/enrolment'),
    Row('attestation', 'GET', '/v1/enrolments', OPERATORS),
    # allowed callers learn that an unknown credential stands for no host (404)
    Row('attestation', 'GET', '/v1/host-credentials/{credential_id}', OPERATORS | {'service'},
        url='/v1/host-credentials/unknown-credential', ok=404),
]


def _routes(apis):
    """(api, method, route) of every route the API routers serve."""
    routers = {
        'attestation': attestation_api.build_router(apis.conf, apis.attestation_store,
                                                    apis.nova),
        'securelog': securelog_api.build_router(apis.securelog_store, apis.notifier),
        'keymgr': keymgr_api.build_router(apis.conf, apis.gate),
    }
    found = set()
    for name, router in routers.items():
        for route in router.mapper.matchlist:
            for method in route.conditions['method']:
                if route.routepath != '/':          # the version document is public
                    found.add((name, method, route.routepath))
    return found


def _format(value, apis, persona):
    values = dict(persona=persona, A=apis.project['A'], B=apis.project['B'],
                  host_user=apis.personas.user_id('host'),
                  key_id=apis.key_id,
                  **{'record_%s' % owner: index for owner, index in apis.record_of.items()})
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, dict):
        return {k: _format(v, apis, persona) for k, v in value.items()}
    if isinstance(value, list):
        return [_format(v, apis, persona) for v in value]
    return value


def _base(apis, row):
    return {'attestation': apis.attestation, 'securelog': apis.securelog,
            'keymgr': apis.keymgr}[row.api]


@pytest.mark.parametrize('row', ROWS, ids=repr)
def test_matrix(apis, row):
    wrong = []
    for persona in PERSONAS + (None,):
        if row.prepare is not None and persona is not None:
            row.prepare(apis, persona)
        url = _base(apis, row) + _format(row.url, apis, persona)
        status, body = apis.call(persona, row.method, url, _format(row.body, apis, persona))
        expected = row.expected(persona)
        if status != expected:
            wrong.append('%s: expected %d, got %d %s'
                         % (persona, expected, status, json.dumps(body)[:300]))
        elif row.visible is not None and persona in row.allowed:
            try:
                row.visible(apis, persona, body)
            except AssertionError as e:
                wrong.append('%s sees the wrong objects: %s' % (persona, e))
    assert not wrong, '%r:\n  ' % row + '\n  '.join(wrong)


def test_every_route_has_a_row(apis):
    rows = {(r.api, r.method, r.route) for r in ROWS}
    missing = _routes(apis) - rows
    assert not missing, 'routes without a row in the policy matrix: %s' % sorted(missing)


def test_refusals_name_the_rule(apis):
    status, body = apis.call('member_a', 'GET', apis.attestation + '/v1/hosts')
    assert status == 403 and 'attestation:host:list' in body['error']['message']
    status, body = apis.call('system_reader', 'GET', apis.attestation + '/v1/trust/servers')
    assert status == 403 and 'system-scoped' in body['error']['message']


# ---------------------------------------------------------------------- the review's attacks
# issue 11, point 3: "A plain member of A listed every host, host histories, policies with
# reference PCR values, project B's server trust, and project B's and C's secure-log
# payloads". Each answer is searched for the data that leaked.

def _raw(apis, persona, base, path):
    import requests
    resp = requests.get(base + path, headers=apis.personas.headers(persona), timeout=120)
    return resp.status_code, resp.text


@pytest.mark.parametrize('persona', ['member_a', 'reader_a', 'manager_a'])
def test_a_tenant_cannot_read_operator_data(apis, persona):
    for path in ('/v1/hosts', '/v1/hosts/compute-1', '/v1/hosts/compute-1/history',
                 '/v1/policies', '/v1/policies/golden', '/v1/verdicts?hosts=compute-1',
                 '/v1/requirements'):
        status, text = _raw(apis, persona, apis.attestation, path)
        assert status == 403, (path, status, text[:300])
        assert 'compute-1' not in text and fx.GOLDEN_PCR not in text, path


@pytest.mark.parametrize('persona', ['member_a', 'reader_a', 'manager_a'])
def test_a_tenant_cannot_read_another_projects_server_trust(apis, persona):
    status, text = _raw(apis, persona, apis.attestation, '/v1/trust/servers/server-b')
    assert status == 404
    assert 'compute-2' not in text and 'hostid-b' not in text
    status, text = _raw(apis, persona, apis.attestation,
                        '/v1/requirements/%s' % apis.project['B'])
    assert status == 403


@pytest.mark.parametrize('persona', ['member_a', 'reader_a', 'manager_a'])
def test_a_tenant_cannot_read_other_secure_log_payloads(apis, persona):
    leaks = ('secret-of-B', 'secret-of-C', 'secret-of-operator')
    status, text = _raw(apis, persona, apis.securelog, '/v1/records?limit=1000')
    assert status == 200 and 'secret-of-A' in text
    assert not [leak for leak in leaks if leak in text]
    for project in ('B', 'C'):
        status, text = _raw(apis, persona, apis.securelog,
                            '/v1/records?project_id=%s' % apis.project[project])
        assert status == 403 and not [leak for leak in leaks if leak in text]
    for owner in ('B', 'C', 'operator'):
        status, text = _raw(apis, persona, apis.securelog,
                            '/v1/records/%d' % apis.record_of[owner])
        assert status == 404 and 'secret-of-%s' % owner not in text


def test_hosts_and_services_read_no_tenant_or_operator_data(apis):
    for persona in ('host', 'service'):
        for path in ('/v1/hosts', '/v1/policies/golden', '/v1/trust/servers/server-a',
                     '/v1/requirements'):
            status, text = _raw(apis, persona, apis.attestation, path)
            assert status == 403 and fx.GOLDEN_PCR not in text, (persona, path)
        status, text = _raw(apis, persona, apis.securelog, '/v1/records?limit=1000')
        assert status == 403 and 'secret-of-' not in text, persona
