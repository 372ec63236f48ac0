"""Keep Placement traits of compute nodes in sync with verdicts and jurisdiction labels.

Each compute node's resource provider carries ``CUSTOM_TCLOUDS_TRUSTED`` exactly while its
host has a fresh ``trusted`` verdict, and ``CUSTOM_JURISDICTION_<CC>`` for the country its
host aggregates label it with (``trust:jurisdiction=<CC>``). Only these traits are touched:
nova-compute's own (``COMPUTE_*``, ``OWNER_NOVA``, ...) are kept, and every write carries
the provider generation, so a concurrent nova-compute update makes one side retry instead
of overwriting the other (Placement API, "Resource Provider Traits", PUT with generation).
Nova-compute in turn re-reads the provider after a generation conflict and keeps custom
traits it did not set, so the traits survive its periodic provider-tree updates.
"""
import logging

from novaclient import client as nova_client

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.common import client
from tclouds_openstack.nova import verdicts as trust_verdicts
from tclouds_openstack.requirements import model

LOG = logging.getLogger(__name__)

# Placement 1.18: traits API and ?required= on GET /resource_providers.
PLACEMENT_MICROVERSION = '1.18'
# Nova 2.53: hypervisor ids are compute node UUIDs (= resource provider UUIDs).
NOVA_MICROVERSION = '2.53'
_RETRIES = 4
_HYPERVISOR_PAGE = 500


class PlacementClient(client.ServiceClient):
    service_type = 'placement'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http.default_microversion = PLACEMENT_MICROVERSION

    def ensure_trait(self, name):
        self.put('/traits/%s' % name)

    def get_traits(self, rp_uuid):
        body = self.get('/resource_providers/%s/traits' % rp_uuid)
        return set(body['traits']), body['resource_provider_generation']

    def put_traits(self, rp_uuid, traits, generation):
        return self.put('/resource_providers/%s/traits' % rp_uuid,
                        {'traits': sorted(traits), 'resource_provider_generation': generation})

    def providers_with_trait(self, trait):
        body = self.get('/resource_providers', params={'required': trait})
        return {rp['uuid']: rp['name'] for rp in body['resource_providers']}


def desired_traits(current, trusted, country):
    """``current`` with our traits replaced: TRUSTED iff ``trusted``, one jurisdiction."""
    ours = {t for t in current
            if t == model.TRAIT_TRUSTED or t.startswith(model.TRAIT_JURISDICTION_PREFIX)}
    wanted = set(current) - ours
    if trusted:
        wanted.add(model.TRAIT_TRUSTED)
    if country:
        wanted.add(model.jurisdiction_trait(country))
    return wanted


def make_nova(session, conf):
    opts = conf.trust_scheduling
    return nova_client.Client(NOVA_MICROVERSION, session=session,
                              endpoint_override=opts.compute_endpoint_override,
                              region_name=opts.region_name)


def make_placement(session, conf):
    opts = conf.trust_scheduling
    return PlacementClient(session, endpoint_override=opts.placement_endpoint_override,
                           region_name=opts.region_name, timeout=30)


class TraitSync(object):
    """Reconcile traits for one host (on a notification) or for the fleet (periodically)."""

    def __init__(self, conf, placement, nova, backend=None):
        self.conf = conf
        self.placement = placement
        self.nova = nova
        self.backend = backend
        self._traits_ready = set()

    # -- inventory from Nova: which providers a host has, which country it is in
    def compute_nodes(self):
        """{service host: [resource provider uuid]} for every compute node."""
        nodes = {}
        marker = None
        while True:
            # Nova pages hypervisors ([api] max_limit, 1,000 by default): follow the marker
            page = self.nova.hypervisors.list(detailed=True, marker=marker,
                                              limit=_HYPERVISOR_PAGE)
            for hyp in page:
                nodes.setdefault(hyp.service['host'], []).append(hyp.id)
            if not page:
                return nodes
            marker = page[-1].id

    def jurisdictions(self):
        """{host: country} from aggregate metadata.

        Hosts with bad or clashing labels map to None (no jurisdiction trait: only requests
        without a jurisdiction may use them).
        """
        labels, bad = {}, set()
        for agg in self.nova.aggregates.list():
            value = (agg.metadata or {}).get(model.AGGREGATE_JURISDICTION_KEY)
            if value is None:
                continue
            try:
                code = model.parse_host_label(value, 'aggregate %s metadata %s' % (
                    agg.name, model.AGGREGATE_JURISDICTION_KEY))
            except model.InvalidRequirement as e:
                LOG.error('%s: hosts %s get no jurisdiction trait', e, ', '.join(agg.hosts))
                bad.update(agg.hosts)
                continue
            for host in agg.hosts:
                if labels.get(host, code) != code:
                    LOG.error('host %s is labelled %s and %s by its aggregates: no '
                              'jurisdiction trait', host, labels[host], code)
                    bad.add(host)
                labels[host] = code
        return {h: (None if h in bad else c) for h, c in labels.items()}

    # -- writes
    def _ensure_traits(self, traits):
        for trait in set(traits) - self._traits_ready:
            self.placement.ensure_trait(trait)
            self._traits_ready.add(trait)

    def set_provider(self, rp_uuid, trusted, country):
        """Write our traits of one provider; True when something changed."""
        self._ensure_traits([model.TRAIT_TRUSTED]
                            + ([model.jurisdiction_trait(country)] if country else []))
        for attempt in range(_RETRIES):
            current, generation = self.placement.get_traits(rp_uuid)
            wanted = desired_traits(current, trusted, country)
            if wanted == current:
                return False
            try:
                self.placement.put_traits(rp_uuid, wanted, generation)
                LOG.info('provider %s traits: +%s -%s', rp_uuid,
                         sorted(wanted - current), sorted(current - wanted))
                return True
            except client.ClientError as e:
                if e.status != 409 or attempt == _RETRIES - 1:
                    raise
                # nova-compute updated the provider meanwhile: re-read and retry.

    def sync_host(self, host, trusted, country=None, nodes=None):
        """Apply one host's state (from a notification or the full pass)."""
        if nodes is None:
            nodes = self.compute_nodes().get(host, [])
            country = self.jurisdictions().get(host) if country is None else country
        changed = False
        for rp_uuid in nodes:
            changed |= self.set_provider(rp_uuid, trusted, country)
        return changed

    def full_sync(self):
        """Reconcile every compute node; returns {host: (trusted, reason)}.

        The backend being unavailable removes the trusted trait everywhere (fail closed):
        a trait must never claim more than the verdicts currently prove.
        """
        nodes = self.compute_nodes()
        countries = self.jurisdictions()
        names = sorted(nodes)
        verdicts = {}
        try:
            for start in range(0, len(names), trust_verdicts.MAX_BATCH):
                verdicts.update(self.backend.get_verdicts(
                    names[start:start + trust_verdicts.MAX_BATCH]))
        except base.BackendUnavailable as e:
            LOG.error('attestation backend unavailable, removing %s from every host: %s',
                      model.TRAIT_TRUSTED, e)
            verdicts = {}
        max_age = self.conf.attestation.max_verdict_age
        result = {}
        for host, rps in sorted(nodes.items()):
            trusted, reason = base.check_trusted(verdicts.get(host), max_age)
            result[host] = (trusted, reason)
            self.sync_host(host, trusted, countries.get(host), nodes=rps)
        # Providers not (or no longer) backed by a compute node keep no trust trait.
        known = {rp for rps in nodes.values() for rp in rps}
        for rp_uuid in set(self.placement.providers_with_trait(model.TRAIT_TRUSTED)) - known:
            self.set_provider(rp_uuid, False, None)
        return result
