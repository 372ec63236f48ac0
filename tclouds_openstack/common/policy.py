"""oslo.policy: one Enforcer per process; each area registers its defaults in code.

An area declares ``list_rules()`` in ``tclouds_openstack/<area>/policies.py`` returning
``DocumentedRuleDefault``s, calls :func:`register_rules` once, and checks with
:func:`authorize`, which raises :class:`~tclouds_openstack.common.exception.Forbidden`
naming the rule.
"""
from oslo_policy import policy

from tclouds_openstack.common import exception

# Base check strings shared by the areas' defaults (Keystone's default roles).
ADMIN = 'role:admin'
READER = 'role:admin or role:reader or role:auditor'
PROJECT_MEMBER = 'role:admin or (role:member and project_id:%(project_id)s)'
PROJECT_READER = ('role:admin or role:reader or role:auditor or '
                  '(role:member and project_id:%(project_id)s)')

_ENFORCER = None
_RULES = {}


def register_rules(rules):
    """Register default rules (idempotent: a rule registered twice is kept once)."""
    for rule in rules:
        _RULES[rule.name] = rule
    if _ENFORCER is not None:
        _ENFORCER.register_defaults([r for r in rules if r.name not in _ENFORCER.registered_rules])


def get_enforcer(conf=None):
    global _ENFORCER
    if _ENFORCER is None:
        from tclouds_openstack.conf import CONF
        _ENFORCER = policy.Enforcer(conf or CONF)
        _ENFORCER.register_defaults(list(_RULES.values()))
    return _ENFORCER


def reset():
    """Forget the enforcer (tests, or after the policy file changed)."""
    global _ENFORCER
    if _ENFORCER is not None:
        _ENFORCER.clear()
    _ENFORCER = None


def authorize(context, rule, target=None):
    """Raise Forbidden unless ``context`` may do ``rule`` on ``target``."""
    target = target if target is not None else {'project_id': context.project_id}
    try:
        get_enforcer().authorize(rule, target, context.to_policy_values(), do_raise=True)
    except policy.PolicyNotAuthorized:
        raise exception.Forbidden('policy does not allow %s' % rule)
