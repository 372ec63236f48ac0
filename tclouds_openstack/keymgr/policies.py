"""oslo.policy defaults of the key release API, on the common persona layer.

Only a compute host credential (persona ``host``: role ``tclouds_host`` on a project-scoped
token) may ask; the rule is the first of the key release checks, not the last: the caller
must also be an enrolled host credential in ``[tclouds_key_manager] host_domain_id``, its
host trusted and fresh, and the volume attached to it in Cinder (``release.Gate``). No
other persona, admin included, ever receives a volume key through this API. To rename the
host role, override these rules (and grant the new role to the host credentials).
"""
from tclouds_openstack.common import policy as base


def list_rules():
    return [
        base.rule('keymgr:volume:key:release', base.HOST,
                  'Receive the key of a volume attached to the calling compute host.',
                  ['POST /v1/volumes/{volume_id}/key'], base.PROJECT),
        base.rule('keymgr:volume:anchor:get', base.HOST,
                  'Read the freshness anchor of a volume attached to the calling compute '
                  'host.', ['GET /v1/volumes/{volume_id}/anchor'], base.PROJECT),
        base.rule('keymgr:volume:anchor:update', base.HOST,
                  'Move the freshness anchor of a volume attached to the calling compute '
                  'host (compare-and-set).', ['PUT /v1/volumes/{volume_id}/anchor'],
                  base.PROJECT),
        base.rule('keymgr:volume:format_mark:get', base.HOST,
                  'Read the format mark of a volume attached to the calling compute host.',
                  ['GET /v1/volumes/{volume_id}/format-mark'], base.PROJECT),
        base.rule('keymgr:volume:format_mark:create', base.HOST,
                  'Claim the format mark of a volume attached to the calling compute host '
                  '(once: the host formats it only after claiming), or record the block '
                  'format the volume it names opened in (never lowered).',
                  ['PUT /v1/volumes/{volume_id}/format-mark'], base.PROJECT),
    ]
