"""oslo.policy defaults of the attestation API, built on the personas of common.policy.

Hosts, their histories and appraisal policies (with the operator's reference PCR values and
file hashes) are operator data: admins manage them, admins and system readers read them; no
project role of any project does. The ``service`` role (Nova filters, key manager, trust
reactor) reads verdicts in batches, and nothing else here. Tenants read the trust of the
hosts running their own project's servers through ``/v1/trust/servers`` (host names
hidden); the server's project, as Nova reports it, is the rule's target, so another
project's server is a 404.
"""
from tclouds_openstack.common import policy as base

HOST_LIST = 'attestation:host:list'
HOST_GET = 'attestation:host:get'
HOST_HISTORY = 'attestation:host:history'
HOST_UPDATE = 'attestation:host:update'
HOST_DELETE = 'attestation:host:delete'
HOST_ATTEST = 'attestation:host:attest'
VERDICT_LIST = 'attestation:verdict:list'
POLICY_LIST = 'attestation:policy:list'
POLICY_GET = 'attestation:policy:get'
POLICY_CREATE = 'attestation:policy:create'
POLICY_DELETE = 'attestation:policy:delete'
SERVER_TRUST_LIST = 'attestation:trust:server:list'
SERVER_TRUST_GET = 'attestation:trust:server:get'
ENROLMENT_CREATE = 'attestation:enrolment:create'
ENROLMENT_GET = 'attestation:enrolment:get'
ENROLMENT_LIST = 'attestation:enrolment:list'
HOST_APPROVE = 'attestation:host:approve'
HOST_CREDENTIAL_GET = 'attestation:host_credential:get'


def list_rules():
    r = base.rule
    operator = admin = base.SYSTEM_OR_PROJECT      # project-scoped admin, system reader
    return [
        r(HOST_LIST, base.OPERATOR_READER, 'List registered hosts and verdicts.',
          ['GET /v1/hosts'], operator),
        r(HOST_GET, base.OPERATOR_READER, 'Show one host and its verdict.',
          ['GET /v1/hosts/{host}'], operator),
        r(HOST_HISTORY, base.OPERATOR_READER, 'Show a host\'s verdict history.',
          ['GET /v1/hosts/{host}/history'], operator),
        r(HOST_UPDATE, base.ADMIN, 'Assign an appraisal policy to a host.',
          ['PATCH /v1/hosts/{host}'], admin),
        r(HOST_DELETE, base.ADMIN, 'Forget a host (it must re-register).',
          ['DELETE /v1/hosts/{host}'], admin),
        r(HOST_ATTEST, base.ADMIN, 'Attest a host now.',
          ['POST /v1/hosts/{host}/attest'], admin),
        r(HOST_APPROVE, base.ADMIN,
          'Approve a host\'s pending registration (enrols its EK for the host name).',
          ['POST /v1/hosts/{host}/approve'], admin),
        r(ENROLMENT_CREATE, base.ADMIN,
          'Enrol the EK and Keystone credentials of a host name.',
          ['PUT /v1/hosts/{host}/enrolment'], admin),
        r(ENROLMENT_GET, base.OPERATOR_READER, 'Show the enrolment of a host.',
          ['GET /v1/hosts/{host}/enrolment'], operator),
        r(ENROLMENT_LIST, base.OPERATOR_READER, 'List every enrolment.',
          ['GET /v1/enrolments'], operator),
        r(HOST_CREDENTIAL_GET, base.SERVICE_OR_OPERATOR_READER,
          'Which enrolled host a Keystone user or application credential ID stands for '
          '(the key release API asks).', ['GET /v1/host-credentials/{credential_id}'],
          base.SYSTEM_OR_PROJECT),
        r(VERDICT_LIST, base.SERVICE_OR_OPERATOR_READER,
          'Read the verdicts of several hosts in one call (scheduler filters, key '
          'manager, trust reactor).', ['GET /v1/verdicts'], base.SYSTEM_OR_PROJECT),
        r(POLICY_LIST, base.OPERATOR_READER, 'List appraisal policies.',
          ['GET /v1/policies'], operator),
        r(POLICY_GET, base.OPERATOR_READER,
          'Show an appraisal policy with its reference values.',
          ['GET /v1/policies/{name}'], operator),
        r(POLICY_CREATE, base.ADMIN, 'Create an appraisal policy.',
          ['POST /v1/policies'], admin),
        r(POLICY_DELETE, base.ADMIN, 'Delete an appraisal policy.',
          ['DELETE /v1/policies/{name}'], admin),
        r(SERVER_TRUST_LIST, base.PROJECT_READER_OR_OPERATOR,
          'Trust status of the hosts running the servers of the token\'s project (host '
          'names hidden).', ['GET /v1/trust/servers'], base.PROJECT),
        r(SERVER_TRUST_GET, base.PROJECT_READER_OR_OPERATOR,
          'Trust status of the host running one server, checked against the server\'s '
          'project (another project\'s server is a 404).',
          ['GET /v1/trust/servers/{server_id}'], base.SYSTEM_OR_PROJECT),
    ]
