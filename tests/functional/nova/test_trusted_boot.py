"""Trusted-host scheduling in real Nova: Placement narrows, TrustedHostFilter fails closed."""
import pytest

from tclouds_openstack.attestation.backends import base as backend_base
from tclouds_openstack.requirements import model
from tests.functional.nova import base


@pytest.mark.forked
class TestTrustedBoot(base.TrustTestBase):

    def setUp(self):
        super().setUp()
        self.secure = self.flavor_with('secure', **{model.SPEC_TRUSTED_HOST: 'required'})

    def test_trust_requiring_boot_lands_on_trusted_host_only(self):
        self.backend.set('host1', backend_base.UNTRUSTED, 'PCR 10 does not match the policy')
        self.trust_all('host2', 'host3')
        self.sync.full_sync()
        self.assertNotIn(model.TRAIT_TRUSTED, self.traits_of('host1'))
        self.assertIn(model.TRAIT_TRUSTED, self.traits_of('host2'))
        del self.backend.calls[:]

        server = self.boot(self.secure)
        self.assertEqual('host2', self.host_of(server))
        # One batched verdict call for the request, and Placement already removed host1:
        # it never reached the filters as a candidate.
        self.assertEqual([['host2', 'host3']], self.candidates())

    def test_server_without_requirements_is_unaffected(self):
        self.backend.set('host1', backend_base.UNTRUSTED, 'PCR 10 does not match the policy')
        self.sync.full_sync()
        del self.backend.calls[:]
        server = self.boot()
        self.assertEqual('host1', self.host_of(server))
        self.assertEqual([], self.backend.calls)

    def test_none_trusted_goes_to_error_with_reason(self):
        for host in self.hosts:
            self.backend.set(host, backend_base.UNTRUSTED, 'secure boot disabled')
        self.sync.full_sync()
        server = self.boot(self.secure, expected='ERROR')
        fault = server['fault']['message']
        self.assertIn('No valid host', fault)
        self.assertIn('no compute host is currently attested as trusted', fault)
        self.assertIn(model.TRAIT_TRUSTED, fault)

    def test_trait_outliving_verdict_is_caught_by_the_filter(self):
        # Traits say all three are trusted, then host1 and host2 are compromised and the
        # trait sync has not run yet: the filter's fresh verdicts exclude them.
        self.trust_all()
        self.sync.full_sync()
        self.backend.set('host1', backend_base.UNTRUSTED, 'IMA: /usr/bin/evil not allowed')
        self.backend.set('host2', backend_base.TRUSTED, age=3600)  # stale verdict
        del self.backend.calls[:]
        with self.assertLogs('tclouds_openstack.nova.scheduler', 'INFO') as logs:
            server = self.boot(self.secure)
        self.assertEqual('host3', self.host_of(server))
        self.assertEqual([['host1', 'host2', 'host3']], self.candidates())
        text = '\n'.join(logs.output)
        self.assertIn('/usr/bin/evil not allowed', text)
        self.assertIn('attestation verdict of host host2 is stale', text)

    def test_every_candidate_untrusted_fault_names_reasons(self):
        self.trust_all()
        self.sync.full_sync()
        for host in self.hosts:
            self.backend.set(host, backend_base.UNTRUSTED, 'PCR 0 changed')
        server = self.boot(self.secure, expected='ERROR')
        fault = server['fault']['message']
        self.assertIn('no candidate host is attested as trusted', fault)
        self.assertIn('host host1 is untrusted: PCR 0 changed', fault)

    def test_attestation_service_unreachable_fails_closed(self):
        self.trust_all()
        self.sync.full_sync()
        self.backend.available = False
        server = self.boot(self.secure, expected='ERROR')
        fault = server['fault']['message']
        self.assertIn('attestation service is unreachable', fault)
        self.assertIn('refusing to schedule unverified', fault)
        # ... and an unrequiring server still boots.
        self.assertEqual('host1', self.host_of(self.boot()))

    def test_unreachable_service_removes_traits_on_sync(self):
        self.trust_all()
        self.sync.full_sync()
        self.backend.available = False
        self.sync.full_sync()
        for host in self.hosts:
            self.assertNotIn(model.TRAIT_TRUSTED, self.traits_of(host))

    def test_boot_hint_requires_trust(self):
        self.backend.set('host1', backend_base.UNTRUSTED, 'PCR 7 changed')
        self.trust_all('host2', 'host3')
        self.sync.full_sync()
        server = self.boot(hints={model.HINT_TRUSTED_HOST: 'required'})
        self.assertEqual('host2', self.host_of(server))

    def test_malformed_flavor_requirement_fails_with_field(self):
        bad = self.flavor_with('typo', **{model.SPEC_TRUSTED_HOST: 'requried'})
        server = self.boot(bad, expected='ERROR')
        self.assertIn('trust:trusted_host', server['fault']['message'])
