"""oslo.policy defaults of the secure log API (registered through common.policy).

Checkpoints and proofs are public to any authenticated user: verifiability is the point,
and they reveal only hashes. Records are read by admins, readers and auditors in full;
a project member reads only its own project's records (encrypted ones stay encrypted).
Appending through the API is for services and admins.
"""
from oslo_policy import policy

from tclouds_openstack.common import policy as base

ANY_AUTHENTICATED = '@'
APPENDER = base.ADMIN + ' or role:service'


def _rule(name, check, description, path, method):
    return policy.DocumentedRuleDefault(name=name, check_str=check, description=description,
                                        operations=[{'path': path, 'method': method}])


def list_rules():
    return [
        _rule('securelog:checkpoint:get', ANY_AUTHENTICATED,
              'Read the latest (or a given) signed checkpoint.', '/v1/checkpoint', 'GET'),
        _rule('securelog:proof:get', ANY_AUTHENTICATED,
              'Get RFC 9162 inclusion and consistency proofs.', '/v1/proofs/*', 'GET'),
        _rule('securelog:record:list_all', base.READER,
              'List and read records of every project.', '/v1/records', 'GET'),
        _rule('securelog:record:list', base.PROJECT_READER,
              'List and read the records of one\'s own project.', '/v1/records', 'GET'),
        _rule('securelog:record:create', APPENDER,
              'Append an event (sealed by the API service as its own source).',
              '/v1/records', 'POST'),
    ]
