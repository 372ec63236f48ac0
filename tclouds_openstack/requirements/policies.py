"""oslo.policy defaults of the trust requirements API (who may set what).

Project members read their own project's requirement and may *tighten* it (require a
trusted host, narrow the jurisdictions). *Relaxing* one (dropping the trusted-host
requirement, widening or removing jurisdictions, deleting it) needs the project manager
or an admin: a compromised member account must not quietly move workloads out of the EU.
"""
from oslo_policy import policy

from tclouds_openstack.common import policy as base

PROJECT_MANAGER = 'role:admin or (role:manager and project_id:%(project_id)s)'
# A project's own readers and members; auditors and the schedulers / trust reactor
# (role service) read every project's requirement.
REQUIREMENT_READER = ('role:admin or role:auditor or role:service or '
                      '((role:reader or role:member) and project_id:%(project_id)s)')

GET = 'trust:requirement:get'
LIST = 'trust:requirement:list'
TIGHTEN = 'trust:requirement:set'
RELAX = 'trust:requirement:relax'


def _rule(name, check, description, path, method):
    return policy.DocumentedRuleDefault(name=name, check_str=check, description=description,
                                        operations=[{'path': path, 'method': method}])


def list_rules():
    return [
        _rule(GET, REQUIREMENT_READER, 'Show a project\'s trust requirement.',
              '/v1/requirements/{project_id}', 'GET'),
        _rule(LIST, 'role:admin or role:auditor or role:service',
              'List every stored requirement.',
              '/v1/requirements', 'GET'),
        _rule(TIGHTEN, base.PROJECT_MEMBER,
              'Set or tighten a project\'s requirement (also needed to resolve).',
              '/v1/requirements/{project_id}', 'PUT'),
        _rule(RELAX, PROJECT_MANAGER,
              'Relax a project\'s requirement: drop trusted host, widen or remove '
              'jurisdictions, delete it.',
              '/v1/requirements/{project_id}', 'DELETE'),
    ]
