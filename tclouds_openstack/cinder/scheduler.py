"""Cinder scheduler filter keeping a project's volumes inside its allowed jurisdictions.

Entry point ``cinder.scheduler.filters: JurisdictionFilter``; enable in cinder.conf::

    [DEFAULT]
    scheduler_default_filters = AvailabilityZoneFilter,CapacityFilter,
                                CapabilitiesFilter,JurisdictionFilter
    [trust_cinder]
    backend_jurisdictions = lvm-fra:DE,ceph-nyc:US

The requirement is the project's stored one (``openstack trust requirement set``) merged
with the volume type's ``trust:jurisdiction`` extra spec (stricter wins). A backend without
a label, or a requirement that cannot be read, excludes every backend for restricted
projects (fail closed); the reason is logged.
"""
import logging

from cinder.scheduler import filters

from tclouds_openstack import conf as tclouds_conf
from tclouds_openstack.requirements import client as req_client
from tclouds_openstack.requirements import model

LOG = logging.getLogger(__name__)
CONF = tclouds_conf.CONF

PROJECTS = req_client.ProjectRequirements(CONF)


def backend_labels(conf=CONF):
    """{backend name: country} from ``[trust_cinder] backend_jurisdictions``."""
    labels = {}
    for name, value in (conf.trust_cinder.backend_jurisdictions or {}).items():
        labels[name] = model.parse_host_label(
            value, '[trust_cinder] backend_jurisdictions %s' % name)
    return labels


def backend_country(backend_state, labels):
    """Label of a backend, by the most specific name configured.

    Tried in order: ``host@backend#pool``, ``host@backend``, ``host``, and the
    ``volume_backend_name`` the driver reports.
    """
    backend_id = getattr(backend_state, 'backend_id', None) or backend_state.host
    host_backend = backend_id.partition('#')[0]
    candidates = [backend_id, host_backend, host_backend.partition('@')[0],
                  getattr(backend_state, 'volume_backend_name', None)]
    for name in candidates:
        if name and name in labels:
            return labels[name]
    return None


def volume_requirement(filter_properties):
    spec = filter_properties.get('request_spec') or {}
    props = spec.get('volume_properties') or {}
    context = filter_properties.get('context')
    project_id = props.get('project_id') or getattr(context, 'project_id', None)
    parts = [PROJECTS.get(project_id)]
    vtype = filter_properties.get('volume_type') or spec.get('volume_type') or {}
    extra = vtype.get('extra_specs') or {}
    if model.SPEC_JURISDICTION in extra:
        parts.append(model.from_specs({model.SPEC_JURISDICTION: extra[model.SPEC_JURISDICTION]},
                                      'volume type %s' % vtype.get('name')))
    return model.merge(parts, source='volume request'), project_id


class JurisdictionFilter(filters.BaseBackendFilter):
    """Only backends labelled with a country the volume's project allows."""

    def filter_all(self, filter_obj_list, filter_properties):
        backends = list(filter_obj_list)
        try:
            req, project_id = volume_requirement(filter_properties)
            labels = backend_labels()
        except (model.InvalidRequirement, req_client.RequirementsUnavailable) as e:
            LOG.error('JurisdictionFilter refuses all %d backend(s): %s', len(backends), e)
            return []
        if req.jurisdictions is None:
            return backends
        passed = []
        for backend in backends:
            ok, why = req.allows(backend_country(backend, labels))
            if ok:
                passed.append(backend)
            else:
                LOG.info('JurisdictionFilter rejected backend %s for project %s: %s',
                         backend.backend_id, project_id, why)
        return passed

    def backend_passes(self, backend_state, filter_properties):
        return any(self.filter_all([backend_state], filter_properties))
