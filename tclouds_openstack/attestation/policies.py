"""oslo.policy defaults of the attestation API (registered through common.policy).

Admins manage hosts and policies; readers and auditors read verdicts and history; the
``service`` role (Nova filters, key manager, trust reactor) reads verdicts in batches.
Tenants (project members) read the trust of the hosts running their own project's servers
through ``/v1/trust/servers`` (host names hidden); another project's server is a 404.
"""
from oslo_policy import policy

from tclouds_openstack.common import policy as base

VERDICT_READER = base.READER + ' or role:service'


def _rule(name, check, description, path, method):
    return policy.DocumentedRuleDefault(name=name, check_str=check, description=description,
                                        operations=[{'path': path, 'method': method}])


def list_rules():
    return [
        _rule('attestation:host:list', base.READER, 'List registered hosts and verdicts.',
              '/v1/hosts', 'GET'),
        _rule('attestation:host:get', base.READER, 'Show one host and its verdict.',
              '/v1/hosts/{host}', 'GET'),
        _rule('attestation:host:history', base.READER, 'Show a host\'s verdict history.',
              '/v1/hosts/{host}/history', 'GET'),
        _rule('attestation:host:update', base.ADMIN, 'Assign an appraisal policy to a host.',
              '/v1/hosts/{host}', 'PATCH'),
        _rule('attestation:host:delete', base.ADMIN, 'Forget a host (it must re-register).',
              '/v1/hosts/{host}', 'DELETE'),
        _rule('attestation:host:attest', base.ADMIN, 'Attest a host now.',
              '/v1/hosts/{host}/attest', 'POST'),
        _rule('attestation:verdict:list', VERDICT_READER,
              'Read the verdicts of several hosts in one call (scheduler filters).',
              '/v1/verdicts', 'GET'),
        _rule('attestation:policy:list', base.READER, 'List appraisal policies.',
              '/v1/policies', 'GET'),
        _rule('attestation:policy:get', base.READER, 'Show an appraisal policy.',
              '/v1/policies/{name}', 'GET'),
        _rule('attestation:policy:create', base.ADMIN, 'Create an appraisal policy.',
              '/v1/policies', 'POST'),
        _rule('attestation:policy:delete', base.ADMIN, 'Delete an appraisal policy.',
              '/v1/policies/{name}', 'DELETE'),
        _rule('attestation:trust:server:list', base.PROJECT_READER,
              'Trust status of the hosts running the caller\'s project\'s servers (host '
              'names hidden).', '/v1/trust/servers', 'GET'),
        _rule('attestation:trust:server:get', base.PROJECT_READER,
              'Trust status of the host running one server of the caller\'s project (checked '
              'against the server\'s project; other projects\' servers are a 404).',
              '/v1/trust/servers/{server_id}', 'GET'),
    ]
