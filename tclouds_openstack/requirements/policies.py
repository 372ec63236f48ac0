"""oslo.policy defaults of the trust requirements API, built on common.policy's personas.

A project's readers read its requirement; its members may *tighten* it (require a trusted
host, narrow the jurisdictions). *Relaxing* one (dropping the trusted-host requirement,
widening or removing jurisdictions, deleting it) needs the project's manager or an admin:
a compromised member account must not quietly move workloads out of the EU. Every rule
compares the token's project with the project in the URL. The schedulers and the trust
reactor (role service) read one project's requirement at a time; only operators list every
project's.
"""
from tclouds_openstack.common import policy as base

GET = 'trust:requirement:get'
LIST = 'trust:requirement:list'
RESOLVE = 'trust:requirement:resolve'
TIGHTEN = 'trust:requirement:set'
RELAX = 'trust:requirement:relax'

REQUIREMENT_READER = base.any_of(base.ADMIN, base.SYSTEM_READER, base.PROJECT_READER,
                                 base.SERVICE)


def list_rules():
    r = base.rule
    return [
        r(GET, REQUIREMENT_READER, 'Show a project\'s trust requirement.',
          ['GET /v1/requirements/{project_id}'], base.SYSTEM_OR_PROJECT),
        r(LIST, base.OPERATOR_READER, 'List every project\'s stored requirement.',
          ['GET /v1/requirements'], base.SYSTEM_OR_PROJECT),
        r(RESOLVE, base.PROJECT_READER_OR_OPERATOR,
          'Merge a project\'s requirement with flavor, image and hints as the schedulers '
          'would.', ['POST /v1/requirements/{project_id}/resolve'], base.SYSTEM_OR_PROJECT),
        r(TIGHTEN, base.PROJECT_MEMBER_OR_ADMIN,
          'Set or tighten a project\'s requirement.',
          ['PUT /v1/requirements/{project_id}'], base.PROJECT),
        r(RELAX, base.PROJECT_MANAGER_OR_ADMIN,
          'Relax a project\'s requirement: drop trusted host, widen or remove '
          'jurisdictions, delete it.',
          ['PUT /v1/requirements/{project_id}', 'DELETE /v1/requirements/{project_id}'],
          base.PROJECT),
    ]
