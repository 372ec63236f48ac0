"""Forged trust notifications change nothing (issue 11, review point 5).

Real Nova in-process (API, conductor, scheduler, Placement, fake computes host1..host3),
the real attestation API over HTTP on its own store (verdicts written as a verifier
worker writes them), the ``tclouds`` backend with its service credential, and the trust
reactor consuming ``attestation.host.*`` from the real RabbitMQ. The attacker is any bus
participant: it publishes on the reactor's topic with the attestation worker's publisher
id. A forged ``untrusted`` for a healthy host must neither disable it, nor touch its trait,
nor stop its instances; a forged ``trusted`` for an untrusted host must re-enable nothing;
with the attestation service unreachable nothing is enabled or disabled.
"""
import datetime
import hashlib
import os
import threading

import nova.tests.functional  # noqa: F401,I100  (nova's patching first)
import nova.conf  # noqa: F401,H306,I100  (nova's [DEFAULT] host before tclouds_openstack.conf)

import oslo_messaging
import pytest

from tclouds_openstack.attestation.backends import tclouds as tclouds_backend
from tclouds_openstack.attestation import client as att_client
from tclouds_openstack.attestation.service import api as att_api
from tclouds_openstack.attestation.service import store as att_store
from tclouds_openstack.attestation import simfleet
from tclouds_openstack.common import exception
from tclouds_openstack.common import messaging as common_messaging
from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack.nova import reaction
from tclouds_openstack.requirements import model
from tests.functional.attestation import test_future_verdicts as att_fixtures
from tests.functional.nova import base
from tests.functional import personas as personas_mod
from tests.watchdog import wait_for  # no time limit: see tests/watchdog.py

WAIT = 120      # generous: the machine may be busy; the waits end as soon as it happened


class Recorder(object):
    """The reactor's notifier: what it emitted, in order."""

    def __init__(self):
        self.sent = []
        self.lock = threading.Lock()

    def info(self, ctxt, event_type, payload):
        with self.lock:
            self.sent.append((event_type, payload))

    def of(self, event_type, host):
        with self.lock:
            return [p for e, p in self.sent if e == event_type and p['host'] == host]


@pytest.mark.forked
@pytest.mark.timeout(600)
class TestForgedNotifications(base.TrustTestBase):

    @pytest.fixture(autouse=True)
    def _pytest_fixtures(self, tmp_path):
        self.workdir = str(tmp_path)

    def make_backend(self):
        conf = simfleet.make_conf('sqlite:///%s/attestation.sqlite' % self.workdir,
                                  max_verdict_age=3600)
        conf.set_override('driver', ['messagingv2'], group='oslo_messaging_notifications')
        self.aconf = conf
        # the attestation API behind keystonemiddleware: the filters' backend holds the
        # service persona's real token (forked: no per-process Keystone template)
        os.makedirs(self.workdir + '/keystone')
        self.personas = personas_mod.start(self.workdir + '/keystone', from_template=False)
        self.addCleanup(self.personas.stop)
        self.api_conf = self.personas.api_conf(
            self.workdir, '[attestation]\nconnection = %s\n' % conf.attestation.connection)
        self.store = att_store.Store(conf.attestation.connection)
        self.store.migrate()
        for host in self.hosts:
            att_fixtures.add_host(self.store, host, 'trusted', att_store.utcnow())
        policy.reset()
        self.api_server = None
        self.port = 0
        self._start_api()
        self.addCleanup(self._stop_api)
        client = att_client.AttestationClient(
            self.personas.session('service'),
            endpoint_override='http://127.0.0.1:%d' % self.port)
        return tclouds_backend.TCloudsBackend(conf, client=client)

    def _start_api(self):
        self.api_server = wsgi.make_server(att_api.create_app(self.api_conf, self.store),
                                           '127.0.0.1', self.port)
        self.port = self.api_server.server_port
        threading.Thread(target=self.api_server.serve_forever, daemon=True).start()

    def _stop_api(self):
        if self.api_server is not None:
            self.api_server.shutdown()
            self.api_server.server_close()
            self.api_server = None

    def setUp(self):
        super().setUp()
        self.secure = self.flavor_with('secure', **{model.SPEC_TRUSTED_HOST: 'required'})
        self.sync.full_sync()
        self.recorder = Recorder()
        self.reactor = reaction.TrustReactor(self.aconf, self.nova_client(), self.sync,
                                             self.recorder)
        transport = common_messaging.get_notification_transport(self.aconf)
        topics = self.aconf.oslo_messaging_notifications.topics
        self.listener = reaction.get_listener(
            transport, self.reactor, topics=topics,
            pool='tclouds-trust-reactor-%s' % self.aconf.control_exchange)
        self.listener.start()
        self.addCleanup(lambda: (self.listener.stop(), self.listener.wait()))
        # the attacker: anyone with credentials on the broker, posing as a worker
        self.attacker = oslo_messaging.Notifier(
            transport, publisher_id='tclouds-attestation-worker.ctl1', driver='messagingv2',
            topics=topics)

    # -- helpers
    def verdict(self, host, status, reasons=()):
        """What a verifier worker stores after an appraisal."""
        self.store.save_verdict(host, status, list(reasons), att_store.utcnow(), 'worker-1')

    def publish(self, host, status, reasons=('PCR 10 does not match the policy',)):
        self.attacker.info({}, 'attestation.host.%s' % status, {
            'host': host, 'status': status, 'previous_status': 'trusted',
            'reasons': list(reasons), 'verified_at': base.now().isoformat(),
            'reset_count': 0, 'ak_name': '00' * 34})

    def service(self, host):
        return self.admin_api.get_services(host=host, binary='nova-compute')[0]

    # -- the attacks
    def test_forged_untrusted_for_a_healthy_host_changes_nothing(self):
        self.flags(instance_action='stop', group='trust_reactor')
        server = self.boot(self.secure)
        self.assertEqual('host1', self.host_of(server))
        with self.assertLogs('tclouds_openstack.nova.reaction', 'WARNING') as logs:
            self.publish('host1', 'untrusted')
            self.assertTrue(wait_for(
                lambda: self.recorder.of('trust.notification.mismatch', 'host1'), WAIT))
        mismatch = self.recorder.of('trust.notification.mismatch', 'host1')[0]
        self.assertEqual(('untrusted', 'trusted'),
                         (mismatch['claimed_status'], mismatch['status']))
        self.assertEqual('tclouds-attestation-worker.ctl1', mismatch['publisher_id'])
        text = '\n'.join(logs.output)
        self.assertIn('trust notification mismatch for host host1', text)
        self.assertIn('claims untrusted, the attestation service says trusted', text)
        # nothing changed: service, trait, instance
        self.assertEqual('enabled', self.service('host1')['status'])
        self.assertIn(model.TRAIT_TRUSTED, self.traits_of('host1'))
        self.assertEqual('ACTIVE', self.api.get_server(server['id'])['status'])
        self.assertEqual(['trust.notification.mismatch'],
                         [e for e, p in self.recorder.sent if p['host'] == 'host1'])
        self.assertEqual('host1', self.host_of(self.boot(self.secure)))

    def test_forged_trusted_for_an_untrusted_host_reenables_nothing(self):
        # host3 really turns untrusted: the genuine notification disables it
        self.verdict('host3', 'untrusted', ['IMA: /usr/local/bin/miner not allowed'])
        self.publish('host3', 'untrusted', ['IMA: /usr/local/bin/miner not allowed'])
        self.assertTrue(wait_for(lambda: self.recorder.of('trust.host.disabled', 'host3'),
                                 WAIT))
        svc = self.service('host3')
        self.assertEqual('disabled', svc['status'])
        self.assertIn('/usr/local/bin/miner', svc['disabled_reason'])
        self.assertNotIn(model.TRAIT_TRUSTED, self.traits_of('host3'))
        # the forgery: "host3 is trusted again"
        with self.assertLogs('tclouds_openstack.nova.reaction', 'WARNING') as logs:
            self.publish('host3', 'trusted', [])
            self.assertTrue(wait_for(
                lambda: self.recorder.of('trust.notification.mismatch', 'host3'), WAIT))
        self.assertIn('claims trusted, the attestation service says untrusted',
                      '\n'.join(logs.output))
        self.assertEqual('disabled', self.service('host3')['status'])
        self.assertNotIn(model.TRAIT_TRUSTED, self.traits_of('host3'))
        self.assertEqual([], self.recorder.of('trust.host.enabled', 'host3'))
        self.assertEqual([], self.recorder.of('trust.host.trait_added', 'host3'))

    def test_attestation_service_unreachable_enables_and_disables_nothing(self):
        self.verdict('host3', 'untrusted', ['PCR 0 changed'])
        self.reactor.handle('attestation.host.untrusted', {'host': 'host3'})
        self.assertEqual('disabled', self.service('host3')['status'])
        self._stop_api()
        with self.assertLogs('tclouds_openstack.nova.reaction', 'ERROR') as logs:
            self.publish('host1', 'untrusted')
            self.publish('host3', 'trusted', [])
            self.assertTrue(wait_for(
                lambda: (self.recorder.of('trust.action.failed', 'host1')
                         and self.recorder.of('trust.action.failed', 'host3')), WAIT))
        text = '\n'.join(logs.output)
        self.assertIn('host host1: no usable verdict (attestation service unavailable', text)
        failed = self.recorder.of('trust.action.failed', 'host1')[0]
        self.assertEqual('read_verdict', failed['action'])
        # fail closed: host1's trait goes, but it is not disabled on a message alone;
        # host3 stays disabled and gets no trait
        self.assertEqual('enabled', self.service('host1')['status'])
        self.assertNotIn(model.TRAIT_TRUSTED, self.traits_of('host1'))
        self.assertEqual('disabled', self.service('host3')['status'])
        self.assertNotIn(model.TRAIT_TRUSTED, self.traits_of('host3'))
        self.assertEqual({'host1', 'host3'}, self.reactor.pending)
        # the service answers again: the periodic re-check applies the real verdicts
        self._start_api()
        emitted = self.reactor.recheck_pending()
        self.assertIn('trust.host.trait_added', emitted)
        self.assertIn(model.TRAIT_TRUSTED, self.traits_of('host1'))
        self.assertEqual('enabled', self.service('host1')['status'])
        self.assertEqual('disabled', self.service('host3')['status'])
        self.assertEqual(set(), self.reactor.pending)

    def test_future_trust_is_not_confirmed(self):
        # the worker's clock runs an hour fast: the API shows the verdict as unknown
        self.verdict('host3', 'untrusted', ['PCR 0 changed'])
        self.reactor.handle('attestation.host.untrusted', {'host': 'host3'})
        self.store.save_verdict('host3', 'trusted', [], att_store.utcnow()
                                + datetime.timedelta(hours=1), 'worker-fast-clock')
        self.reactor.handle('attestation.host.trusted', {'host': 'host3'})
        svc = self.service('host3')
        self.assertEqual('disabled', svc['status'])
        self.assertIn('from the future', svc['disabled_reason'])
        self.assertNotIn(model.TRAIT_TRUSTED, self.traits_of('host3'))

    def test_forged_notification_for_a_host_never_appraised_disables_nothing(self):
        # host2 is a compute host outside attestation (a mixed fleet: nobody registered
        # it); host3's name is taken by a bus participant's own TPM, registered and
        # awaiting an admin's approval. Neither was ever appraised: the service's "unknown"
        # is no attestation outcome, so a forged notification must not take them down.
        self.flags(instance_action='stop', group='trust_reactor')
        self.store.delete_host('host2')
        self.store.delete_host('host3')
        ek = b'ek-of-the-attackers-tpm'
        self.store.register('host3', ek, hashlib.sha256(ek).hexdigest(), None, b'ak',
                            'aa' * 34, 'challenge')
        self.assertEqual('awaiting_approval', self.store.activate('host3', 'aa' * 34,
                                                                  'challenge'))
        for host in ('host2', 'host3'):
            self.publish(host, 'untrusted')
        # handled when both claims were found contradicted and the reactor is idle again
        self.assertTrue(wait_for(
            lambda: self.recorder.of('trust.notification.mismatch', 'host2')
            and self.recorder.of('trust.notification.mismatch', 'host3')
            and not self.reactor._lock.locked(), WAIT))
        for host in ('host2', 'host3'):
            self.reactor.handle('attestation.host.unknown', {'host': host})
        for host in ('host2', 'host3'):
            self.assertEqual('enabled', self.service(host)['status'])
            self.assertEqual([], self.recorder.of('trust.host.disabled', host))
            self.assertEqual([], self.recorder.of('trust.instance.stop', host))
            self.assertNotIn(model.TRAIT_TRUSTED, self.traits_of(host))
        reasons = self.recorder.of('trust.host.not_attested', 'host3')[0]['reasons']
        self.assertIn('awaits an admin\'s approval', reasons[0])
        self.assertIn('not registered', self.recorder.of('trust.host.not_attested',
                                                         'host2')[0]['reasons'][0])
        self.assertEqual(set(), self.reactor.pending)
        # once the approved host is appraised untrusted, the genuine notification acts
        self.store.approve('host3')
        self.verdict('host3', 'untrusted', ['PCR 0 changed'])
        self.reactor.handle('attestation.host.untrusted', {'host': 'host3'})
        self.assertEqual('disabled', self.service('host3')['status'])

    def test_re_registering_an_appraised_host_does_not_make_it_look_never_appraised(self):
        # host3 was appraised untrusted. A bus participant replays its public EK with an
        # AK of its own (the registration a compromised host or anyone could send), and
        # tries another TPM under its name: the host keeps its verdict and its time, so
        # the reactor still sees an appraisal's outcome, not a host outside the pool
        self.verdict('host3', 'untrusted', ['PCR 0 changed'])
        ek = b'ek-host3'
        self.store.register('host3', ek, hashlib.sha256(ek).hexdigest(), None, b'ak-evil',
                            'bb' * 34, 'challenge')
        with self.assertRaises(exception.Conflict) as refused:
            other = b'ek-of-the-attackers-tpm'
            self.store.register('host3', other, hashlib.sha256(other).hexdigest(), None,
                                b'ak-evil', 'cc' * 34, 'challenge2')
        self.assertIn('another endorsement key', str(refused.exception))
        verdict = self.reactor.backend.get_verdicts(['host3'])['host3']
        self.assertEqual(('untrusted', False), (verdict.status, verdict.never_appraised))
        self.publish('host3', 'trusted', [])
        self.assertTrue(wait_for(lambda: self.recorder.of('trust.host.disabled', 'host3')
                                 and not self.reactor._lock.locked(), WAIT))
        self.assertEqual('disabled', self.service('host3')['status'])
        self.assertEqual([], self.recorder.of('trust.host.not_attested', 'host3'))
        # the agent of an appraised host stops answering: an appraisal round stores
        # "unknown" with its time, an outcome that disables (not "never appraised")
        self.store.save_verdict('host2', 'unknown', ['the agent did not answer'],
                                att_store.utcnow(), 'worker-1', answered=False)
        self.reactor.handle('attestation.host.unknown', {'host': 'host2'})
        self.assertEqual('disabled', self.service('host2')['status'])
        self.assertEqual([], self.recorder.of('trust.host.not_attested', 'host2'))
