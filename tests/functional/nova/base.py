"""Real Nova in-process (API, conductor, scheduler, Placement, fake-virt computes) with the
trust plugins enabled: request filter, TrustedHostFilter, JurisdictionFilter, trait sync.

Workarounds from ../shared/notes/feasibility-openstack.md: nova.tests.functional imported
first; the wheel's api-paste.ini, ``_clear_attrs`` kept under pytest, no machine
configuration and no fixed waits come from tests/functional/nova_harness.py. Every test class
using this base runs in a forked process (global oslo.config state).
"""
import datetime

import nova.tests.functional  # noqa: F401,I100  (nova's patching first)

import fixtures
from keystoneauth1 import session as ks_session
from nova import context as nova_context
from nova.tests import fixtures as nova_fixtures
from nova.tests.functional import integrated_helpers

from tclouds_openstack.attestation.backends import base as backend_base
from tclouds_openstack.nova import placement as trust_placement
from tclouds_openstack.nova import scheduler as trust_scheduler
from tclouds_openstack.nova import verdicts as trust_verdicts
from tclouds_openstack.requirements import model
from tests.functional import nova_harness

# host1 is preferred by the weigher, then host2, then host3.
WEIGHTS = {'host1': 100, 'host2': 50, 'host3': 10}


def now():
    return datetime.datetime.now(datetime.timezone.utc)


class ControlledBackend(backend_base.AttestationBackend):
    """A verdict source the test sets directly; records every batched call."""

    def __init__(self, conf=None):
        super().__init__(conf)
        self.states = {}
        self.available = True
        self.calls = []

    def set(self, host, status, reason='', age=0):
        self.states[host] = backend_base.Verdict(
            host=host, status=status, reasons=(reason,) if reason else (),
            verified_at=now() - datetime.timedelta(seconds=age))

    def get_verdicts(self, hosts):
        hosts = list(hosts)
        self.calls.append(hosts)
        if not self.available:
            raise backend_base.BackendUnavailable('connection refused (test)')
        return {h: self.states.get(h) or backend_base.unknown(h, 'never attested')
                for h in hosts}


class TrustTestBase(nova_harness.NovaHarness, integrated_helpers.ProviderUsageBaseTestCase):
    compute_driver = 'fake.MediumFakeDriver'
    microversion = 'latest'
    hosts = ('host1', 'host2', 'host3')
    # {host: country}: aggregate labels created in setUp
    labels = {}
    translate_to_traits = True

    def setUp(self):
        self.flags(
            available_filters=['nova.scheduler.filters.all_filters',
                               'tclouds_openstack.nova.scheduler.TrustedHostFilter',
                               'tclouds_openstack.nova.scheduler.JurisdictionFilter'],
            enabled_filters=['ComputeFilter', 'TrustedHostFilter', 'JurisdictionFilter'],
            group='filter_scheduler')
        self.flags(project_requirements=False, translate_to_traits=self.translate_to_traits,
                   verdict_cache_ttl=0, group='trust_scheduling')
        self.flags(max_verdict_age=120, group='attestation')
        self.useFixture(nova_fixtures.HostNameWeigherFixture(WEIGHTS))
        super().setUp()
        self.backend = self.make_backend()
        self.useFixture(fixtures.MockPatchObject(
            trust_scheduler, 'VERDICTS', trust_verdicts.VerdictCache(lambda: self.backend)))
        for host in self.hosts:
            self._start_compute(host)
        self.ctxt = nova_context.get_admin_context()
        for country in sorted(set(self.labels.values())):
            agg = self.admin_api.post_aggregate(
                {'aggregate': {'name': 'agg-%s' % country}})
            self.admin_api.post_aggregate_action(
                agg['id'], {'set_metadata': {'metadata': {
                    model.AGGREGATE_JURISDICTION_KEY: country}}})
            for host, c in sorted(self.labels.items()):
                if c == country:
                    self.admin_api.add_host_to_aggregate(agg['id'], host)
        self.sync = trust_placement.TraitSync(
            self.flags_conf(), self.placement_client(), self.nova_client(), self.backend)

    def make_backend(self):
        return ControlledBackend()

    def flags_conf(self):
        from tclouds_openstack import conf
        return conf.CONF

    def placement_client(self):
        session = ks_session.Session(additional_headers={'X-Auth-Token': 'admin'})
        return trust_placement.PlacementClient(
            session, endpoint_override=self.placement.fixture.endpoint)

    def nova_client(self):
        session = ks_session.Session(additional_headers={
            'X-Auth-User': 'admin', 'X-User-Id': 'admin',
            'X-Auth-Project-Id': self.api.project_id,
            'X-Roles': 'admin,member,reader'})
        from novaclient import client as nova_client
        return nova_client.Client(trust_placement.NOVA_MICROVERSION, session=session,
                                  endpoint_override=self.api.base_url)

    # -- helpers
    def trust_all(self, *hosts):
        for host in hosts or self.hosts:
            self.backend.set(host, backend_base.TRUSTED)

    def traits_of(self, host):
        return set(self._get_provider_traits(self._get_provider_uuid_by_host(host)))

    def flavor_with(self, name, **specs):
        flavor_id = self._create_flavor(name=name, memory_mb=512, vcpu=1, disk=1,
                                        extra_spec=specs)
        return flavor_id

    def default_flavor(self):
        """The ID of Nova's stock m1.tiny flavor (no trust extra specs)."""
        return next(f['id'] for f in self.api.get_flavors() if f['name'] == 'm1.tiny')

    def boot(self, flavor_id=None, hints=None, expected='ACTIVE'):
        # Nova's helper picks the first flavor listed when none is given: a flavor a test
        # created (with a random ID) may sort first, so the default is named explicitly.
        flavor_id = flavor_id or self.default_flavor()
        server = self._build_server(networks='none', flavor_id=flavor_id)
        req = {'server': server}
        if hints:
            req['os:scheduler_hints'] = hints
        server = self.api.post_server(req)
        return self._wait_for_state_change(server, expected)

    def host_of(self, server):
        return server['OS-EXT-SRV-ATTR:host']

    def candidates(self):
        """Host lists that reached TrustedHostFilter, one per scheduling request."""
        return [sorted(c) for c in self.backend.calls]
