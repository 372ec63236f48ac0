"""REST routes of the trust requirements (ACaaS), served by the attestation API process.

::

    GET    /v1/requirements                        every stored requirement  (operator reader)
    GET    /v1/requirements/{project_id}           one project               (project reader,
                                                                              service)
    PUT    /v1/requirements/{project_id}           {"requirement": {"trusted_host":
                                                    "required"|"optional"|null,
                                                    "jurisdictions": ["DE", "EU"]|null}}
                                                   keys left out are kept; null clears
                                                   (member may tighten, manager relaxes)
    DELETE /v1/requirements/{project_id}           (project manager, admin)
    POST   /v1/requirements/{project_id}/resolve   {"flavor_extra_specs": {...},
                                                    "image_traits": [...], "hints": {...}}
                                                   -> the merged (stricter) requirement and
                                                   every conflict, as the schedulers see it

Stored in ``[attestation] connection`` (own tables and alembic version table).
"""
from tclouds_openstack.common import exception
from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack.requirements import client as req_client
from tclouds_openstack.requirements import model
from tclouds_openstack.requirements import policies
from tclouds_openstack.requirements import store as store_mod


def _bad(e):
    return exception.BadRequest(str(e).split(': ', 1)[-1], field=e.field)


def view(record):
    req = req_client.record_to_requirement(record, record['project_id'])
    return dict(record,
                trusted_host=req.to_dict()['trusted_host'],
                effective_jurisdictions=req.to_dict()['jurisdictions'])


def relaxes(old, new):
    """Does ``new`` (model.Requirement) allow anything ``old`` did not? Reasons if so."""
    reasons = []
    if old.requires_trust and not new.requires_trust:
        reasons.append('drops the trusted-host requirement')
    if old.jurisdictions is not None:
        if new.jurisdictions is None:
            reasons.append('removes the jurisdiction restriction')
        elif not new.jurisdictions <= old.jurisdictions:
            reasons.append('adds jurisdictions %s'
                           % model.format_codes(new.jurisdictions - old.jurisdictions))
    return reasons


class RequirementsController(object):
    def __init__(self, conf, store):
        self.conf = conf
        self.store = store

    def list(self, request):
        policy.authorize(request.context, policies.LIST, {})
        return {'requirements': [view(r) for r in self.store.list()]}

    def show(self, request, project_id):
        policy.authorize(request.context, policies.GET, {'project_id': project_id})
        record = self.store.get(project_id)
        if record is None:
            raise exception.NotFound('project %s has no trust requirement' % project_id)
        return {'requirement': view(record)}

    def update(self, request, project_id):
        target = {'project_id': project_id}
        policy.authorize(request.context, policies.TIGHTEN, target)
        body = wsgi.json_body(request)
        spec = wsgi.require(body, 'requirement', dict)
        unknown = set(spec) - {'trusted_host', 'jurisdictions'}
        if unknown:
            raise exception.BadRequest('unknown key(s) %s' % ', '.join(sorted(unknown)),
                                       field='requirement')
        old_record = self.store.get(project_id) or {'project_id': project_id}
        trusted = old_record.get('trusted_host')
        given = old_record.get('jurisdictions')
        try:
            if 'trusted_host' in spec:
                trusted = (None if spec['trusted_host'] is None else model.parse_trusted_host(
                    spec['trusted_host'], 'requirement.trusted_host'))
            if 'jurisdictions' in spec:
                given = spec['jurisdictions']
                if given is not None:
                    model.parse_jurisdictions(given, 'requirement.jurisdictions')
                    given = [c.strip().upper() for c in (
                        given.split(',') if isinstance(given, str) else given)]
        except model.InvalidRequirement as e:
            raise _bad(e)
        old = req_client.record_to_requirement(old_record, project_id)
        new = req_client.record_to_requirement(
            {'trusted_host': trusted, 'jurisdictions': given}, project_id)
        relaxed = relaxes(old, new)
        if relaxed:
            try:
                policy.authorize(request.context, policies.RELAX, target)
            except exception.Forbidden:
                raise exception.Forbidden('this change %s: only the project manager or an '
                                          'admin may relax a requirement (policy %s)'
                                          % ('; '.join(relaxed), policies.RELAX))
        record = self.store.put(project_id, trusted, given, request.context.user_id)
        return {'requirement': view(record), 'relaxed': relaxed}

    def delete(self, request, project_id):
        policy.authorize(request.context, policies.RELAX, {'project_id': project_id})
        if not self.store.delete(project_id):
            raise exception.NotFound('project %s has no trust requirement' % project_id)
        return 204, None

    def resolve(self, request, project_id):
        policy.authorize(request.context, policies.RESOLVE, {'project_id': project_id})
        body = wsgi.json_body(request, required=False)
        try:
            parts = [req_client.record_to_requirement(self.store.get(project_id), project_id)]
            if body.get('flavor_extra_specs') is not None:
                parts.append(model.from_specs(wsgi.require(body, 'flavor_extra_specs', dict),
                                              'flavor'))
            if body.get('image_traits') is not None:
                parts.append(model.from_traits(wsgi.require(body, 'image_traits', list),
                                               'image', field='image_traits'))
            if body.get('hints') is not None:
                parts.append(model.from_hints(wsgi.require(body, 'hints', dict)))
        except model.InvalidRequirement as e:
            raise _bad(e)
        merged = model.merge(parts, source='request')
        return {'requirement': merged.to_dict(), 'satisfiable': merged.satisfiable,
                'conflicts': list(merged.conflicts), 'summary': merged.describe()}


def add_routes(router, conf, store=None):
    """Add the requirements routes to a common.wsgi.Router (the attestation API calls it)."""
    policy.register_rules(policies.list_rules())
    if store is None:
        store = store_mod.Store(conf.attestation.connection)
        store.migrate()
    c = RequirementsController(conf, store)
    router.connect('/v1/requirements', c.list, ['GET'])
    router.connect('/v1/requirements/{project_id}', c.show, ['GET'])
    router.connect('/v1/requirements/{project_id}', c.update, ['PUT'])
    router.connect('/v1/requirements/{project_id}', c.delete, ['DELETE'])
    router.connect('/v1/requirements/{project_id}/resolve', c.resolve, ['POST'])
    return c
