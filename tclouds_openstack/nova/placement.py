"""Keep Placement traits of compute nodes in sync with verdicts and jurisdiction labels.

Each compute node's resource provider carries ``CUSTOM_TCLOUDS_TRUSTED`` exactly while its
host has a fresh ``trusted`` verdict, and ``CUSTOM_JURISDICTION_<CC>`` for the country its
host aggregates label it with (``trust:jurisdiction=<CC>``). Only these traits are touched:
nova-compute's own (``COMPUTE_*``, ``OWNER_NOVA``, ...) are kept, and every write carries
the provider generation, so a concurrent nova-compute update makes one side retry instead
of overwriting the other (Placement API, "Resource Provider Traits", PUT with generation).
Nova-compute in turn re-reads the provider after a generation conflict and keeps custom
traits it did not set, so the traits survive its periodic provider-tree updates.

Cost grows with changes, not with the fleet: every write or read of a provider's traits
is remembered with the provider generation Placement returned, and Placement bumps a
provider's generation on every change of its traits or inventory. A full pass lists all
providers with their generations in one call (``GET /resource_providers``) and reads the
traits only of providers whose generation moved since (someone else changed them), writes
only providers whose wanted traits differ: with nothing changed one Placement call, with
k changed hosts at most 1 + 2k (a read and a write each; a conflict adds a retry). Nova's
hypervisor list (host -> providers) is re-read when Placement shows a provider it does not
map yet, and again, ever less often, while a provider remains that Nova does not list as a
compute node: nova-compute creates its node's provider before ``nova-manage cell_v2
discover_hosts`` maps the host, and until then Nova's hypervisor list leaves the node out.
"""
import logging
import threading

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
# set_provider's country for providers that are no compute node: only the trust trait goes.
KEEP_JURISDICTION = object()
_HYPERVISOR_PAGE = 500
# Passes between two re-reads of Nova's hypervisors while a provider is no compute node
# Nova lists (yet): doubled after each re-read that changes nothing, up to this many.
_UNMAPPED_RECHECK_MAX_PASSES = 16


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
        """Replace the traits; returns (traits, new generation) as Placement stored them."""
        body = self.put('/resource_providers/%s/traits' % rp_uuid,
                        {'traits': sorted(traits), 'resource_provider_generation': generation})
        return set(body['traits']), body['resource_provider_generation']

    def providers_with_trait(self, trait):
        body = self.get('/resource_providers', params={'required': trait})
        return {rp['uuid']: rp['name'] for rp in body['resource_providers']}

    def provider_generations(self):
        """{rp uuid: generation} of every resource provider, in one call."""
        body = self.get('/resource_providers')
        return {rp['uuid']: rp['generation'] for rp in body['resource_providers']}


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
    """Reconcile traits for one host (on a confirmed change) or for the fleet (periodically)."""

    def __init__(self, conf, placement, nova, backend=None):
        self.conf = conf
        self.placement = placement
        self.nova = nova
        self.backend = backend
        self._traits_ready = set()
        # {rp uuid: (traits, generation)} as Placement held them when we last read or
        # wrote them: valid while Placement lists the provider at that generation.
        self._known = {}
        # {rp uuid: service host} from Nova's hypervisors (None: not a compute node).
        self._host_of = {}
        # re-reading the hypervisors while some provider maps to None: every n-th pass
        self._unmapped_every = 1
        self._unmapped_in = 1
        self._lock = threading.RLock()

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

    def _refresh_hosts(self, uuids=()):
        """Re-read Nova's compute nodes; providers in ``uuids`` it lacks are not computes."""
        nodes = self.compute_nodes()
        self._host_of = {rp: host for host, rps in nodes.items() for rp in rps}
        for rp in uuids:
            self._host_of.setdefault(rp, None)
        return nodes

    def _recheck_unmapped(self, generations):
        """Providers Nova did not list as compute nodes: ask Nova again, ever less often.

        A compute node Nova's cells do not map yet (before discover_hosts) is left out of
        its hypervisor list, and one that is no compute node (a sharing or nested provider)
        never appears there: the first must become a compute host once mapped, the second
        must not cost a hypervisor list on every pass.
        """
        self._unmapped_in -= 1
        if self._unmapped_in > 0:
            return
        before = dict(self._host_of)
        self._refresh_hosts(generations)
        if self._host_of == before:
            self._unmapped_every = min(self._unmapped_every * 2, _UNMAPPED_RECHECK_MAX_PASSES)
        else:
            self._unmapped_every = 1
        self._unmapped_in = self._unmapped_every

    def _nodes_of(self, host):
        with self._lock:
            rps = [rp for rp, h in self._host_of.items() if h == host]
            if not rps:
                rps = self._refresh_hosts().get(host, [])
            return rps

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

    def _read(self, rp_uuid):
        current, generation = self.placement.get_traits(rp_uuid)
        self._known[rp_uuid] = (frozenset(current), generation)
        return current, generation

    def set_provider(self, rp_uuid, trusted, country, generation=None):
        """Write our traits of one provider; True when something changed.

        ``generation``: the provider's generation as Placement just listed it; when it is
        the one remembered, the remembered traits are current and are not read again.
        Otherwise (or after a conflict) the traits are read first.
        """
        if country is not KEEP_JURISDICTION:
            self._ensure_traits([model.TRAIT_TRUSTED]
                                + ([model.jurisdiction_trait(country)] if country else []))
        known = self._known.get(rp_uuid)
        for attempt in range(_RETRIES):
            if attempt == 0 and known is not None and generation is not None \
                    and known[1] == generation:
                current, generation = set(known[0]), known[1]
            else:
                current, generation = self._read(rp_uuid)
            if country is KEEP_JURISDICTION:
                wanted = set(current) - {model.TRAIT_TRUSTED}
            else:
                wanted = desired_traits(current, trusted, country)
            if wanted == current:
                return False
            try:
                stored, new_generation = self.placement.put_traits(rp_uuid, wanted, generation)
            except client.ClientError as e:
                self._known.pop(rp_uuid, None)
                if e.status != 409 or attempt == _RETRIES - 1:
                    raise
                # nova-compute updated the provider meanwhile: re-read and retry.
                continue
            self._known[rp_uuid] = (frozenset(stored), new_generation)
            LOG.info('provider %s traits: +%s -%s', rp_uuid,
                     sorted(wanted - current), sorted(current - wanted))
            return True

    def sync_host(self, host, trusted, country=None, nodes=None):
        """Apply one host's state (a verdict change confirmed by the attestation service).

        Reads each provider's traits fresh (one read, at most one write per provider).
        """
        with self._lock:
            if nodes is None:
                nodes = self._nodes_of(host)
                country = self.jurisdictions().get(host) if country is None else country
            changed = False
            for rp_uuid in nodes:
                changed |= self.set_provider(rp_uuid, trusted, country)
            return changed

    def full_sync(self):
        """Reconcile every resource provider; returns {host: (trusted, reason)}.

        The backend being unavailable removes the trusted trait everywhere (fail closed):
        a trait must never claim more than the verdicts currently prove. Providers that
        are no compute node keep no trust trait.
        """
        with self._lock:
            generations = self.placement.provider_generations()
            for gone in set(self._known) - set(generations):
                del self._known[gone]
            if set(generations) - set(self._host_of):
                self._refresh_hosts(generations)
                self._unmapped_every = self._unmapped_in = 1
            elif any(self._host_of.get(rp) is None for rp in generations):
                self._recheck_unmapped(generations)
            nodes = {}
            for rp, host in self._host_of.items():
                if host is not None and rp in generations:
                    nodes.setdefault(host, []).append(rp)
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
            opts = self.conf.attestation
            result = {}
            for host, rps in sorted(nodes.items()):
                trusted, reason = base.check_trusted(verdicts.get(host), opts.max_verdict_age,
                                                     max_skew=opts.max_clock_skew)
                result[host] = (trusted, reason)
                for rp_uuid in rps:
                    self.set_provider(rp_uuid, trusted, countries.get(host),
                                      generations[rp_uuid])
            for rp_uuid in sorted(set(generations) - {rp for rps in nodes.values()
                                                      for rp in rps}):
                self.set_provider(rp_uuid, False, KEEP_JURISDICTION, generations[rp_uuid])
            return result
