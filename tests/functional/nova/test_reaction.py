"""Reaction to trust loss in real Nova: disable/enable compute, traits, instance actions,
and Placement traits surviving nova-compute's own provider updates."""
import pytest

from tclouds_openstack.attestation.backends import base as backend_base
from tclouds_openstack.nova import reaction
from tclouds_openstack.requirements import model
from tests.functional.nova import base


class Recorder(object):
    def __init__(self):
        self.sent = []

    def info(self, ctxt, event_type, payload):
        self.sent.append((event_type, payload))


@pytest.mark.forked
class TestReaction(base.TrustTestBase):
    labels = {'host1': 'DE'}

    def setUp(self):
        super().setUp()
        self.trust_all()
        self.sync.full_sync()
        self.notifier = Recorder()
        self.reactor = reaction.TrustReactor(self.flags_conf(), self.nova_client(),
                                             self.sync, self.notifier)
        self.secure = self.flavor_with('secure', **{model.SPEC_TRUSTED_HOST: 'required'})

    def service(self, host):
        return self.admin_api.get_services(host=host, binary='nova-compute')[0]

    def tamper(self, host, reason='PCR 10 does not match the policy'):
        self.backend.set(host, backend_base.UNTRUSTED, reason)
        return self.reactor.handle('attestation.host.untrusted', {
            'host': host, 'status': 'untrusted', 'previous_status': 'trusted',
            'reasons': [reason], 'verified_at': base.now().isoformat(), 'reset_count': 0,
            'ak_name': 'x'})

    def recover(self, host):
        self.backend.set(host, backend_base.TRUSTED)
        return self.reactor.handle('attestation.host.trusted', {
            'host': host, 'status': 'trusted', 'previous_status': 'untrusted', 'reasons': []})

    def test_untrusted_host_disabled_then_reenabled(self):
        emitted = self.tamper('host1')
        self.assertEqual(['trust.host.trait_removed', 'trust.host.disabled'], emitted)
        svc = self.service('host1')
        self.assertEqual('disabled', svc['status'])
        self.assertEqual('tclouds: host attestation untrusted: PCR 10 does not match the '
                         'policy', svc['disabled_reason'])
        self.assertNotIn(model.TRAIT_TRUSTED, self.traits_of('host1'))
        # new boots avoid it, with or without a requirement
        self.assertEqual('host2', self.host_of(self.boot(self.secure)))
        self.assertEqual('host2', self.host_of(self.boot()))
        # a repeated notification does nothing new
        self.assertEqual([], self.tamper('host1'))

        self.assertEqual(['trust.host.trait_added', 'trust.host.enabled'],
                         self.recover('host1'))
        self.assertEqual('enabled', self.service('host1')['status'])
        self.assertIn(model.TRAIT_TRUSTED, self.traits_of('host1'))
        self.assertEqual('host1', self.host_of(self.boot(self.secure)))
        events = [e for e, _ in self.notifier.sent]
        self.assertEqual(['trust.host.trait_removed', 'trust.host.disabled',
                          'trust.host.trait_added', 'trust.host.enabled'], events)
        self.assertEqual('host1', self.notifier.sent[1][1]['host'])
        # where the host is goes with every event (a tenant's report shows it)
        self.assertEqual({'DE'}, {p['jurisdiction'] for _e, p in self.notifier.sent})

    def test_operator_disabled_service_is_left_alone(self):
        svc = self.service('host1')
        self.admin_api.put_service(svc['id'], {'status': 'disabled',
                                               'disabled_reason': 'maintenance'})
        self.tamper('host1')
        self.assertEqual('maintenance', self.service('host1')['disabled_reason'])
        self.recover('host1')
        self.assertEqual('disabled', self.service('host1')['status'])

    def test_malformed_notification_is_ignored(self):
        with self.assertLogs('tclouds_openstack.nova.reaction', 'ERROR') as logs:
            self.assertEqual([], self.reactor.handle('attestation.host.untrusted',
                                                     {'status': 'untrusted'}))
            self.assertEqual([], self.reactor.handle('attestation.host.untrusted',
                                                     {'host': 'host1', 'status': 'trusted'}))
        self.assertIn('payload.host', logs.output[0])
        self.assertIn('payload.status', logs.output[1])
        self.assertEqual('enabled', self.service('host1')['status'])

    def test_stop_instances_that_required_trust(self):
        self.flags(instance_action='stop', group='trust_reactor')
        secure = self.boot(self.secure)
        plain = self.boot()
        self.assertEqual('host1', self.host_of(secure))
        self.assertEqual('host1', self.host_of(plain))
        emitted = self.tamper('host1')
        self.assertIn('trust.instance.stop', emitted)
        stopped = [p for e, p in self.notifier.sent if e == 'trust.instance.stop']
        self.assertEqual([(secure['id'], secure['tenant_id'], 'host1', 'DE')],
                         [(p['instance_id'], p['project_id'], p['host'], p['jurisdiction'])
                          for p in stopped])
        self._wait_for_state_change(secure, 'SHUTOFF')
        self.assertEqual('ACTIVE', self.api.get_server(plain['id'])['status'])

    def test_live_migrate_instances_that_required_trust(self):
        self.flags(instance_action='live-migrate', group='trust_reactor')
        secure = self.boot(self.secure)
        self.assertEqual('host1', self.host_of(secure))
        self.assertIn('trust.instance.live_migrate', self.tamper('host1'))
        self._wait_for_migration_status(secure, ['completed'])
        secure = self._wait_for_state_change(secure, 'ACTIVE')
        self.assertEqual('host2', self.host_of(secure))

    def test_traits_survive_nova_compute_provider_updates(self):
        rp = self._get_provider_uuid_by_host('host2')
        self.assertIn(model.TRAIT_TRUSTED, self.traits_of('host2'))
        # nova-compute rewrites the provider's traits itself when the service is disabled
        # (COMPUTE_STATUS_DISABLED) and on its periodic update_available_resource.
        svc = self.service('host2')
        self.admin_api.put_service(svc['id'], {'status': 'disabled'})
        self.assertIn('COMPUTE_STATUS_DISABLED', self.traits_of('host2'))
        self.admin_api.put_service(svc['id'], {'status': 'enabled'})
        self.assertNotIn('COMPUTE_STATUS_DISABLED', self.traits_of('host2'))
        compute = self.computes['host2']
        compute.manager.driver.capabilities = dict(compute.manager.driver.capabilities,
                                                   supports_image_type_qcow2=False)
        self._run_periodics()
        traits = self.traits_of('host2')
        self.assertIn(model.TRAIT_TRUSTED, traits)
        self.assertIn('COMPUTE_NODE', traits)
        self.assertEqual(rp, self._get_provider_uuid_by_host('host2'))
