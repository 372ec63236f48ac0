"""The one persona and policy layer of every tclouds API (oslo.policy, Secure RBAC).

Personas are named check strings, written once here, from which every area's rules are
built (as ``nova/policies/base.py`` does): an area declares ``list_rules()`` in
``tclouds_openstack/<area>/policies.py`` with :func:`rule`, which insists on
``scope_types``; the API calls :func:`register_rules` once and checks with
:func:`authorize`, which raises :class:`~tclouds_openstack.common.exception.Forbidden`
naming the rule and why.

The model (OpenStack's "Consistent and Secure Default RBAC"):

- **operators**: ``admin`` (role admin) changes anything; a **system reader** (role reader
  on a system-scoped token) reads everything an operator sees. A reader, member or manager
  *of a project* is never an operator, whatever its roles: Keystone gives every member
  ``reader`` by implication (manager -> member -> reader).
- **tenants** see their own project's objects only: the project persona rules compare the
  token's project with the **object's** ``project_id`` (the target), so a controller passes
  the object's project, and lists filter by the caller's project in the query.
- **service** (role service: Nova, Cinder, the trust reactor) reads what the other
  services need in batch (verdicts, requirements) and nothing tenant-private beyond it.
- **host** (role ``tclouds_host``): a compute host's own credential; it gets key release
  and nothing else.

Scope is enforced (a rule's ``scope_types`` lists the token scopes it accepts; a
domain-scoped token matches none of ours) and only the new defaults count: the
``[oslo_policy]`` defaults are set by :func:`set_defaults` before the enforcer reads them.
"""
from oslo_policy import opts as policy_opts
from oslo_policy import policy

from tclouds_openstack.common import exception

# ---------------------------------------------------------------------------- personas
# Single personas. Project personas need the object's project as ``project_id`` in the
# target (authorize() drops an empty one, so it can never match a token without project).
ADMIN = 'role:admin'
SYSTEM_READER = 'role:reader and system_scope:all'
PROJECT_MANAGER = 'role:manager and project_id:%(project_id)s'
PROJECT_MEMBER = 'role:member and project_id:%(project_id)s'
PROJECT_READER = 'role:reader and project_id:%(project_id)s'
SERVICE = 'role:service'
HOST = 'role:tclouds_host'
ANY_AUTHENTICATED = '@'


def any_of(*check_strs):
    """The check string allowing any of ``check_strs`` (each parenthesised)."""
    return ' or '.join('(%s)' % c for c in check_strs)


# What the areas' rules use.
OPERATOR_READER = any_of(ADMIN, SYSTEM_READER)
PROJECT_READER_OR_OPERATOR = any_of(ADMIN, SYSTEM_READER, PROJECT_READER)
PROJECT_MEMBER_OR_ADMIN = any_of(ADMIN, PROJECT_MEMBER)
PROJECT_MANAGER_OR_ADMIN = any_of(ADMIN, PROJECT_MANAGER)
SERVICE_OR_OPERATOR_READER = any_of(ADMIN, SYSTEM_READER, SERVICE)
SERVICE_OR_ADMIN = any_of(ADMIN, SERVICE)
# Every authenticated persona but host (whose role grants key release and nothing else):
# the verifiers of the secure log (checkpoints, proofs), which hold no project data.
LOG_VERIFIER = '%s and not %s' % (ANY_AUTHENTICATED, HOST)

# scope_types: operators hold project-scoped admin tokens or system-scoped reader tokens;
# tenants, services and hosts hold project-scoped tokens.
SYSTEM_OR_PROJECT = ('system', 'project')
PROJECT = ('project',)


def rule(name, check_str, description, operations, scope_types):
    """A DocumentedRuleDefault; ``operations`` are 'METHOD /path' strings.

    ``scope_types`` is required: a rule without one would accept any token scope.
    """
    if not scope_types or not set(scope_types) <= {'system', 'domain', 'project'}:
        raise ValueError('rule %s: scope_types must name token scopes' % name)
    ops = []
    for operation in operations:
        method, path = operation.split(' ', 1)
        ops.append({'method': method, 'path': path})
    return policy.DocumentedRuleDefault(name=name, check_str=check_str,
                                        description=description, operations=ops,
                                        scope_types=list(scope_types))


# ---------------------------------------------------------------------------- enforcer
_ENFORCER = None
_RULES = {}


def set_defaults(conf):
    """Our ``[oslo_policy]`` defaults: scope enforced, only the new defaults count.

    (oslo.policy 6 always enforces scope and has no ``enforce_scope`` option any more;
    an older one gets it switched on here.)
    """
    policy_opts.set_defaults(conf)
    for name in ('enforce_scope', 'enforce_new_defaults'):
        if name in conf.oslo_policy:
            conf.set_default(name, True, group='oslo_policy')


def register_rules(rules):
    """Register default rules (idempotent: a rule registered twice is kept once)."""
    for r in rules:
        _RULES[r.name] = r
    if _ENFORCER is not None:
        _ENFORCER.register_defaults([r for r in rules if r.name not in _ENFORCER.registered_rules])


def get_enforcer(conf=None):
    """The process's enforcer, bound to ``conf`` (default: the global CONF)."""
    global _ENFORCER
    if _ENFORCER is not None and conf is not None and _ENFORCER.conf is not conf:
        reset()
    if _ENFORCER is None:
        from tclouds_openstack.conf import CONF
        conf = conf or CONF
        set_defaults(conf)
        _ENFORCER = policy.Enforcer(conf)
        _ENFORCER.register_defaults(list(_RULES.values()))
    return _ENFORCER


def all_rules():
    """Every tclouds rule, from the ``tclouds.*`` ``oslo.policy.policies`` entry points."""
    import importlib.metadata
    rules = []
    for ep in importlib.metadata.entry_points(group='oslo.policy.policies'):
        if ep.name.startswith('tclouds.'):
            rules.extend(ep.load()())
    return rules


def get_enforcer_for_tools(conf=None):
    """The enforcer with every tclouds rule (``oslo.policy.enforcer`` entry point ``tclouds``).

    For oslopolicy-policy-generator, oslopolicy-checker and oslopolicy-list-redundant,
    which read the operator's policy file through it: without ``conf`` it parses the global
    configuration (``/etc/tclouds/tclouds.conf``) as a service would.
    """
    if conf is None:
        from tclouds_openstack.conf import CONF as conf
        conf([], project='tclouds')
    register_rules(all_rules())
    return get_enforcer(conf)


def reset():
    """Forget the enforcer (tests, or after the policy file changed)."""
    global _ENFORCER
    if _ENFORCER is not None:
        _ENFORCER.clear()
    _ENFORCER = None


def _clean(target):
    # oslo.policy compares str() of both sides: a target project_id of None would match
    # the 'None' of a token without a project. A missing key never matches.
    return {k: v for k, v in target.items() if v not in (None, '')}


def allowed(context, rule_name, target):
    """True when ``context`` may do ``rule_name`` on ``target`` (for filters)."""
    try:
        authorize(context, rule_name, target)
    except exception.Forbidden:
        return False
    return True


def authorize(context, rule_name, target):
    """Raise Forbidden unless ``context`` may do ``rule_name`` on ``target``.

    ``target``: the object's attributes the rule compares, at least the object's
    ``project_id`` for project personas (``{}`` for operator-only objects).
    """
    enforcer = get_enforcer()
    if rule_name not in enforcer.registered_rules:
        raise exception.Forbidden('policy rule %s is not registered' % rule_name)
    try:
        enforcer.authorize(rule_name, _clean(target), context.to_policy_values(),
                           do_raise=True)
    except policy.InvalidScope:
        raise exception.Forbidden(
            'policy %s does not accept a %s-scoped token (it accepts %s scope)'
            % (rule_name, _token_scope(context),
               ' or '.join(enforcer.registered_rules[rule_name].scope_types)))
    except policy.PolicyNotAuthorized:
        raise exception.Forbidden('policy does not allow %s' % rule_name)


def _token_scope(context):
    if context.system_scope:
        return 'system'
    return 'domain' if context.domain_id else 'project'
