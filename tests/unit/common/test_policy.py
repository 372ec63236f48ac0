"""The persona layer: what each persona check string lets through, on oslo.policy itself.

Contexts are built as keystonemiddleware builds them for real tokens (implied roles
included: a member's token carries reader too). The end-to-end version with real Keystone
tokens over HTTP is tests/functional/policy/test_matrix.py.
"""
import importlib.metadata

from oslo_config import cfg
import pytest

from tclouds_openstack.common import context
from tclouds_openstack.common import exception
from tclouds_openstack.common import policy
from tests import hermetic

A, B = 'project-a', 'project-b'
CONTEXTS = {
    'admin': dict(roles=['admin', 'manager', 'member', 'reader'], project_id='admin-p'),
    'system_reader': dict(roles=['reader'], system_scope='all'),
    'system_member': dict(roles=['member', 'reader'], system_scope='all'),
    'manager_a': dict(roles=['manager', 'member', 'reader'], project_id=A),
    'member_a': dict(roles=['member', 'reader'], project_id=A),
    'reader_a': dict(roles=['reader'], project_id=A),
    'member_b': dict(roles=['member', 'reader'], project_id=B),
    'domain_reader': dict(roles=['reader'], domain_id='default'),
    'service': dict(roles=['service'], project_id='service-p'),
    'host': dict(roles=['tclouds_host'], project_id='service-p'),
}

RULES = [
    policy.rule('t:operator', policy.OPERATOR_READER, 'x', ['GET /o'], policy.SYSTEM_OR_PROJECT),
    policy.rule('t:admin', policy.ADMIN, 'x', ['POST /o'], policy.SYSTEM_OR_PROJECT),
    policy.rule('t:project_read', policy.PROJECT_READER_OR_OPERATOR, 'x', ['GET /p'],
                policy.SYSTEM_OR_PROJECT),
    policy.rule('t:project_only', policy.PROJECT_READER, 'x', ['GET /q'], policy.PROJECT),
    policy.rule('t:member', policy.PROJECT_MEMBER_OR_ADMIN, 'x', ['PUT /p'], policy.PROJECT),
    policy.rule('t:manager', policy.PROJECT_MANAGER_OR_ADMIN, 'x', ['DELETE /p'],
                policy.PROJECT),
    policy.rule('t:service', policy.SERVICE_OR_OPERATOR_READER, 'x', ['GET /v'],
                policy.SYSTEM_OR_PROJECT),
    policy.rule('t:host', policy.HOST, 'x', ['POST /k'], policy.PROJECT),
]

# rule, target -> who passes
EXPECTED = [
    ('t:operator', {}, {'admin', 'system_reader'}),
    ('t:admin', {}, {'admin'}),
    ('t:project_read', {'project_id': A}, {'admin', 'system_reader', 'manager_a', 'member_a',
                                           'reader_a'}),
    ('t:project_read', {'project_id': B}, {'admin', 'system_reader', 'member_b'}),
    # an object without project (operator data) is no project reader's
    ('t:project_read', {'project_id': None}, {'admin', 'system_reader'}),
    ('t:project_read', {'project_id': ''}, {'admin', 'system_reader'}),
    ('t:project_read', {}, {'admin', 'system_reader'}),
    ('t:project_only', {'project_id': A}, {'manager_a', 'member_a', 'reader_a'}),
    ('t:member', {'project_id': A}, {'admin', 'manager_a', 'member_a'}),
    ('t:manager', {'project_id': A}, {'admin', 'manager_a'}),
    ('t:manager', {'project_id': B}, {'admin'}),
    ('t:service', {}, {'admin', 'system_reader', 'service'}),
    ('t:host', {}, {'host'}),
]


@pytest.fixture
def rules():
    policy.reset()
    conf = cfg.ConfigOpts()
    hermetic.parse(conf)
    policy.get_enforcer(conf)
    policy.register_rules(RULES)
    yield conf
    policy.reset()


@pytest.mark.parametrize('rule_name,target,allowed', EXPECTED)
def test_personas(rules, rule_name, target, allowed):
    if 'system_reader' in allowed:
        allowed = allowed | {'system_member'}       # system member implies system reader
    for persona, values in CONTEXTS.items():
        ctx = context.RequestContext(**values)
        assert policy.allowed(ctx, rule_name, target) == (persona in allowed), persona


def test_refusals_say_why(rules):
    member = context.RequestContext(**CONTEXTS['member_a'])
    with pytest.raises(exception.Forbidden) as exc:
        policy.authorize(member, 't:operator', {})
    assert 't:operator' in str(exc.value)
    system = context.RequestContext(**CONTEXTS['system_reader'])
    with pytest.raises(exception.Forbidden) as exc:
        policy.authorize(system, 't:project_only', {'project_id': A})
    assert 'system-scoped' in str(exc.value) and 'project scope' in str(exc.value)
    with pytest.raises(exception.Forbidden) as exc:
        policy.authorize(member, 't:unknown', {})
    assert 'not registered' in str(exc.value)


def test_new_defaults_are_on(rules):
    assert rules.oslo_policy.enforce_new_defaults is True


def test_a_rule_needs_scope_types():
    with pytest.raises(ValueError):
        policy.rule('t:x', policy.ADMIN, 'x', ['GET /x'], ())
    with pytest.raises(ValueError):
        policy.rule('t:x', policy.ADMIN, 'x', ['GET /x'], ['everywhere'])


def _all_rules():
    found = {}
    for ep in importlib.metadata.entry_points(group='oslo.policy.policies'):
        if ep.name.startswith('tclouds.'):
            for r in ep.load()():
                found[r.name] = (ep.name, r)
    return found


def test_every_registered_rule_has_scope_types_and_a_persona():
    found = _all_rules()
    assert {'tclouds.attestation', 'tclouds.securelog', 'tclouds.requirements'} <= {
        area for area, _ in found.values()}
    roles = ('role:admin', 'role:reader and system_scope:all', 'role:service',
             'role:tclouds_host', 'project_id:%(project_id)s', '@')
    for name, (_, r) in found.items():
        assert r.scope_types, name
        assert set(r.scope_types) <= {'system', 'project'}, name
        assert any(x in r.check_str for x in roles), name
        # a bare role is never enough for project data: a member of any project has reader
        for bare in ('role:reader', 'role:member', 'role:manager'):
            for part in r.check_str.split(' or '):
                part = part.strip('() ')
                assert part != bare, '%s accepts %s of any project' % (name, bare)


def test_the_enforcer_of_the_oslopolicy_tools_holds_every_rule():
    policy.reset()
    conf = cfg.ConfigOpts()
    hermetic.parse(conf)
    try:
        enforcer = policy.get_enforcer_for_tools(conf)
        assert set(enforcer.registered_rules) >= {
            'attestation:host:list', 'trust:requirement:relax', 'securelog:record:list'}
        assert set(enforcer.registered_rules) >= {r.name for r in policy.all_rules()}
    finally:
        policy.reset()
