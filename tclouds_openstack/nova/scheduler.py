"""Nova scheduler plugins: trust requirements -> Placement traits, and fail-closed filters.

Operators enable them in nova.conf of the scheduler::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = tclouds_openstack.nova.scheduler.TrustedHostFilter
    available_filters = tclouds_openstack.nova.scheduler.JurisdictionFilter
    enabled_filters = ComputeFilter,...,TrustedHostFilter,JurisdictionFilter

* :func:`trust_request_filter` runs before the Placement query (Nova's request-filter
  stage) and adds ``CUSTOM_TCLOUDS_TRUSTED`` / ``CUSTOM_JURISDICTION_<CC>`` to the
  request's ``root_required`` traits, so Placement only returns qualifying hosts. Nova
  has no plug-in point for request filters: importing this module (which the scheduler
  does when it loads the filters above) appends it to
  ``nova.scheduler.request_filter.ALL_REQUEST_FILTERS``.
* :class:`TrustedHostFilter` re-checks the surviving candidates against fresh verdicts in
  ONE batched call per request (traits can outlive a dead attestation service).
* :class:`JurisdictionFilter` checks host aggregate labels (``trust:jurisdiction``).

Every refusal is logged with its reason; when a filter leaves no host it raises
NoValidHost with the reasons, which Nova records as the instance fault.
"""
import logging
import time

from nova import exception
from nova import objects
from nova.scheduler.client import report
from nova.scheduler import filters
from nova.scheduler import request_filter

from tclouds_openstack.attestation import backends
from tclouds_openstack.attestation.backends import base
from tclouds_openstack import conf as tclouds_conf
from tclouds_openstack.nova import verdicts
from tclouds_openstack.requirements import client as req_client
from tclouds_openstack.requirements import model

LOG = logging.getLogger(__name__)
CONF = tclouds_conf.CONF

# How many per-host reasons a fault quotes before summarising.
_MAX_REASONS = 5


VERDICTS = verdicts.VerdictCache(lambda: backends.get_backend(CONF))
PROJECTS = req_client.ProjectRequirements(CONF)


def request_requirement(spec_obj):
    """Merge project, flavor, image and boot-hint requirements of a RequestSpec.

    Raises model.InvalidRequirement (malformed spec) or RequirementsUnavailable.
    """
    parts = [PROJECTS.get(spec_obj.project_id)]
    flavor = spec_obj.flavor if spec_obj.obj_attr_is_set('flavor') else None
    if flavor is not None:
        parts.append(model.from_specs(flavor.extra_specs, 'flavor %s' % flavor.name))
    image = spec_obj.image if spec_obj.obj_attr_is_set('image') else None
    if image is not None and image.obj_attr_is_set('properties'):
        traits = image.properties.get('traits_required', None) or []
        name = 'image %s' % image.id if image.obj_attr_is_set('id') else 'image'
        parts.append(model.from_traits(set(traits), name))
    hints = {}
    if spec_obj.obj_attr_is_set('scheduler_hints') and spec_obj.scheduler_hints:
        hints = spec_obj.scheduler_hints
    parts.append(model.from_hints(hints))
    return model.merge(parts, source='request')


def _requirement_or_fail(spec_obj):
    try:
        return request_requirement(spec_obj)
    except model.InvalidRequirement as e:
        raise exception.NoValidHost(reason='invalid trust requirement: %s' % e)
    except req_client.RequirementsUnavailable as e:
        raise exception.NoValidHost(reason='%s; refusing to schedule unverified' % e)


def _spec_requirement(spec_obj):
    """The merged requirement, computed once per RequestSpec (filters run per instance)."""
    cached = getattr(spec_obj, '_tclouds_requirement', None)
    if cached is None:
        cached = _requirement_or_fail(spec_obj)
        # RequestSpec is a versioned object; a private attribute is not persisted.
        object.__setattr__(spec_obj, '_tclouds_requirement', cached)
    return cached


def _summarise(reasons):
    shown = reasons[:_MAX_REASONS]
    more = len(reasons) - len(shown)
    return '; '.join(shown) + (' (and %d more)' % more if more > 0 else '')


# trait -> monotonic time it was last seen on a provider. Only "yes" is cached: it only
# decides whether a boot fails early with a precise reason or goes to Placement (which
# then returns no candidate anyway), so a stale "yes" never lets anything through.
_TRAITS_SEEN = {}
_TRAIT_SEEN_TTL = 30.0


def _trait_in_use(ctxt, trait):
    """Does any resource provider carry ``trait``? (one cheap Placement call)."""
    seen = _TRAITS_SEEN.get(trait)
    if seen is not None and time.monotonic() - seen < _TRAIT_SEEN_TTL:
        return True
    try:
        resp = report.report_client_singleton().get(
            '/traits?associated=true&name=in:%s' % trait, version='1.6',
            global_request_id=getattr(ctxt, 'global_id', None))
    except Exception as e:
        LOG.warning('cannot ask Placement about trait %s: %s', trait, e)
        return True  # let the allocation-candidate query decide
    if resp is None or resp.status_code != 200:
        return True
    if trait in resp.json().get('traits', []):
        _TRAITS_SEEN[trait] = time.monotonic()
        return True
    return False


@request_filter.trace_request_filter
def trust_request_filter(ctxt, request_spec):
    """Translate trust requirements into required root-provider traits."""
    if not CONF.trust_scheduling.translate_to_traits:
        return False
    try:
        req = request_requirement(request_spec)
    except model.InvalidRequirement as e:
        raise exception.RequestFilterFailed(reason='invalid trust requirement: %s' % e)
    except req_client.RequirementsUnavailable as e:
        raise exception.RequestFilterFailed(reason='%s; refusing to schedule unverified' % e)
    object.__setattr__(request_spec, '_tclouds_requirement', req)
    if req.is_empty:
        return False
    if not req.satisfiable:
        raise exception.RequestFilterFailed(
            reason='the trust requirements contradict each other: %s' % '; '.join(req.conflicts))
    wanted = []
    if req.requires_trust:
        wanted.append((model.TRAIT_TRUSTED,
                       'no compute host is currently attested as trusted (no resource '
                       'provider has trait %s): check the attestation service and '
                       'tclouds-trust-reactor' % model.TRAIT_TRUSTED))
    if req.jurisdictions is not None and len(req.jurisdictions) == 1:
        (code,) = req.jurisdictions
        wanted.append((model.jurisdiction_trait(code),
                       'no compute host is labelled with jurisdiction %s (no resource '
                       'provider has trait %s; label aggregates with %s=%s)'
                       % (code, model.jurisdiction_trait(code),
                          model.AGGREGATE_JURISDICTION_KEY, code)))
    # Several allowed countries: Placement's root_required has no any-of ("in:") form;
    # JurisdictionFilter enforces those.
    for trait, why in wanted:
        if not _trait_in_use(ctxt, trait):
            raise exception.RequestFilterFailed(reason=why)
        _require_trait(request_spec, trait)
    LOG.debug('trust requirement %s -> required traits %s', req.describe(),
              [t for t, _ in wanted])
    return True


def _require_trait(request_spec, trait):
    """Require ``trait`` in the unnumbered request group (``required=`` in Placement).

    Added as an image-required trait of this scheduling copy of the request spec (Nova
    puts image traits in the unnumbered group): Placement then filters in its SQL
    query. ``root_required`` would work too for compute nodes, but Placement applies it
    only after building every candidate, which costs as much as not filtering at all.
    The conductor's copy of the spec is not changed.
    """
    image = request_spec.image if request_spec.obj_attr_is_set('image') else None
    if image is None:
        request_spec.root_required.add(trait)
        return
    if not getattr(request_spec, '_tclouds_own_image', False):
        # never change an ImageMeta another request might share: work on a copy
        image = request_spec.image = image.obj_clone()
        object.__setattr__(request_spec, '_tclouds_own_image', True)
    if not image.obj_attr_is_set('properties') or image.properties is None:
        image.properties = objects.ImageMetaProps()
    traits = list(image.properties.get('traits_required', None) or [])
    if trait not in traits:
        image.properties.traits_required = traits + [trait]


def _register_request_filter():
    if trust_request_filter not in request_filter.ALL_REQUEST_FILTERS:
        request_filter.ALL_REQUEST_FILTERS.append(trust_request_filter)


_register_request_filter()


class _TrustFilterBase(filters.BaseHostFilter):
    # Rebuild keeps the host: it must still satisfy the requirement (new image traits).
    RUN_ON_REBUILD = True

    def filter_all(self, filter_obj_list, spec_obj):
        hosts = list(filter_obj_list)
        if not hosts:
            return hosts
        req = _spec_requirement(spec_obj)
        if not self.applies(req):
            return hosts
        if not req.satisfiable:
            raise exception.NoValidHost(
                reason='the trust requirements contradict each other: %s'
                       % '; '.join(req.conflicts))
        passed, reasons = self.check_hosts(hosts, req, spec_obj)
        for host, reason in reasons:
            LOG.info('%s rejected host %s for instance %s: %s', type(self).__name__, host,
                     spec_obj.instance_uuid, reason)
        if not passed:
            raise exception.NoValidHost(reason='%s: %s (requirement: %s)' % (
                self.none_left, _summarise([r for _, r in reasons]), req.describe()))
        return passed


class TrustedHostFilter(_TrustFilterBase):
    """Only hosts with a fresh ``trusted`` verdict, for requests that require trust."""

    none_left = 'no candidate host is attested as trusted'

    def applies(self, req):
        return req.requires_trust

    def check_hosts(self, hosts, req, spec_obj):
        try:
            found = VERDICTS.lookup(h.host for h in hosts)
        except base.BackendUnavailable as e:
            LOG.error('attestation backend unavailable, refusing %d candidate host(s) for '
                      'instance %s: %s', len(hosts), spec_obj.instance_uuid, e)
            raise exception.NoValidHost(
                reason='the attestation service is unreachable (%s): a host cannot be '
                       'verified as trusted, refusing to schedule unverified' % e)
        max_age = CONF.attestation.max_verdict_age
        passed, reasons = [], []
        for host in hosts:
            ok, why = base.check_trusted(found.get(host.host), max_age,
                                         max_skew=CONF.attestation.max_clock_skew)
            if ok:
                passed.append(host)
            else:
                reasons.append((host.host, why if host.host in why
                                else 'host %s: %s' % (host.host, why)))
        return passed, reasons


def host_jurisdiction(host_state):
    """(country or None, problem or None) from the host's aggregates' metadata."""
    labels = set()
    for aggregate in getattr(host_state, 'aggregates', None) or []:
        value = (aggregate.metadata or {}).get(model.AGGREGATE_JURISDICTION_KEY)
        if value is None:
            continue
        try:
            labels.add(model.parse_host_label(
                value, 'aggregate %s metadata %s' % (aggregate.name,
                                                     model.AGGREGATE_JURISDICTION_KEY)))
        except model.InvalidRequirement as e:
            return None, str(e)
    if len(labels) > 1:
        return None, 'host is labelled with several jurisdictions (%s) by its aggregates' % (
            model.format_codes(labels))
    return (labels.pop() if labels else None), None


class JurisdictionFilter(_TrustFilterBase):
    """Only hosts whose aggregate jurisdiction label is allowed by the request."""

    none_left = 'no candidate host is in an allowed jurisdiction'

    def applies(self, req):
        return req.jurisdictions is not None

    def check_hosts(self, hosts, req, spec_obj):
        passed, reasons = [], []
        for host in hosts:
            country, problem = host_jurisdiction(host)
            ok, why = (False, problem) if problem else req.allows(country)
            if ok:
                passed.append(host)
            else:
                reasons.append((host.host, 'host %s: %s' % (host.host, why)))
        return passed, reasons
