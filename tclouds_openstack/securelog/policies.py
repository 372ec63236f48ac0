"""oslo.policy defaults of the secure log API, built on the personas of common.policy.

Checkpoints and proofs are open to every persona that verifies (any project reader,
system readers, services, admins): verifiability is the point, and they reveal only hashes
and the tree size. A compute host's credential (role ``tclouds_host``) gets key release and
nothing else, so not these either. Records are read in full by operators
(admin, system reader); a project's readers read only the records whose tenant is their
own project (the list is filtered by project in the store's query, a record of another
project or of the operator is a 404). Appending through the API is for services and admins.
A project's data-protection report is for the project's readers (members and managers
included) and operators.
"""
from tclouds_openstack.common import policy as base

CHECKPOINT_GET = 'securelog:checkpoint:get'
PROOF_GET = 'securelog:proof:get'
RECORD_LIST_ALL = 'securelog:record:list_all'
RECORD_LIST = 'securelog:record:list'
RECORD_CREATE = 'securelog:record:create'
REPORT_GET = 'securelog:report:get'


def list_rules():
    r = base.rule
    return [
        r(CHECKPOINT_GET, base.LOG_VERIFIER,
          'Read the latest (or a given) signed checkpoint.', ['GET /v1/checkpoint'],
          base.SYSTEM_OR_PROJECT),
        r(PROOF_GET, base.LOG_VERIFIER, 'Get RFC 9162 inclusion and consistency proofs.',
          ['GET /v1/proofs/inclusion', 'GET /v1/proofs/consistency'], base.SYSTEM_OR_PROJECT),
        r(RECORD_LIST_ALL, base.OPERATOR_READER,
          'List and read the records of every project and of the operator.',
          ['GET /v1/records', 'GET /v1/records/{index}'], base.SYSTEM_OR_PROJECT),
        r(RECORD_LIST, base.PROJECT_READER,
          'List and read the records of one\'s own project (checked against the '
          'record\'s project).', ['GET /v1/records', 'GET /v1/records/{index}'],
          base.PROJECT),
        r(RECORD_CREATE, base.SERVICE_OR_ADMIN,
          'Append an event (sealed by the API service as its own source).',
          ['POST /v1/records'], base.PROJECT),
        r(REPORT_GET, base.PROJECT_READER_OR_OPERATOR,
          'Get a project\'s data-protection report (its resources, the hosts and clouds '
          'they used, key releases, refusals and integrity faults, with proofs).',
          ['GET /v1/projects/{project_id}/report'], base.SYSTEM_OR_PROJECT),
    ]
