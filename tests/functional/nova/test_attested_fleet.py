"""Issue 4 acceptance with the real attestation service: real Nova (API, conductor,
scheduler, Placement, fake computes host1..host3) whose hosts are swtpm-backed agents
attested over RabbitMQ by the real registrar and verifier; the filters read verdicts from
the real attestation API over HTTP (``tclouds`` backend); tclouds-trust-reactor's logic
consumes the real notifications from RabbitMQ and acts through the Nova and Placement APIs.

Tamper host1 (an unknown binary runs) -> its trait goes, its compute service is disabled
with the reason, new trust-requiring boots avoid it; reboot it clean -> re-enabled.
"""
import json
import os
import threading

import nova.tests.functional  # noqa: F401,I100  (nova's patching first)
import nova.conf  # noqa: F401,H306,I100  (nova's [DEFAULT] host before tclouds_openstack.conf)

import pytest

from tclouds_openstack.attestation.backends import tclouds as tclouds_backend
from tclouds_openstack.attestation import client as att_client
from tclouds_openstack.attestation.service import api as att_api
from tclouds_openstack.common import messaging as common_messaging
from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack.nova import reaction
from tclouds_openstack.requirements import model
from tests.functional.attestation import conftest as fx
from tests.functional.nova import base
from tests.functional import personas as personas_mod
from tests.functional.tpm.conftest import local_ca  # noqa: F401
from tests.watchdog import wait_for  # no time limit: see tests/watchdog.py

INTERVAL = 1.0


class RecordingBackend(tclouds_backend.TCloudsBackend):
    """The real ``tclouds`` backend, remembering which hosts each batch asked for."""

    calls = None

    def get_verdicts(self, hosts):
        hosts = list(hosts)
        if self.calls is None:
            self.calls = []
        self.calls.append(hosts)
        return super().get_verdicts(hosts)


@pytest.mark.forked
class TestAttestedFleet(base.TrustTestBase):

    @pytest.fixture(autouse=True)
    def _pytest_fixtures(self, local_ca, tmp_path):  # noqa: F811
        self.ca = local_ca
        self.workdir = str(tmp_path)

    def make_backend(self):
        conf = fx.make_conf('sqlite:///%s/attestation.sqlite' % self.workdir,
                            interval=INTERVAL, jitter=0.2, max_verdict_age=6,
                            rpc_timeout=2.0, concurrency=4)
        conf.set_override('driver', ['messagingv2'], group='oslo_messaging_notifications')
        self.aconf = conf
        self.fleet = fx.Fleet(conf, self.workdir, self.ca)
        self.addCleanup(self.fleet.close)
        first = self.fleet.add_host('host1', register=False, serve=False)
        self.fleet.start_registrar(self.ca.ca_bundle_pem())
        first.agent.register()
        first.agent.start()
        for name in ('host2', 'host3'):
            self.fleet.add_host(name)
        self.fleet.store.create_policy('default', **{
            k: json.dumps(v) for k, v in fx.golden_policy_documents().items()})
        # the attestation API (with the requirements routes) on a free port, behind
        # keystonemiddleware: the filters' backend holds the service persona's real token
        # (a forked test process exits without atexit: no per-process Keystone template)
        os.makedirs(self.workdir + '/keystone')
        personas = personas_mod.start(self.workdir + '/keystone', from_template=False)
        self.addCleanup(personas.stop)
        api_conf = personas.api_conf(self.workdir, '[attestation]\nconnection = %s\n'
                                     % conf.attestation.connection)
        policy.reset()
        self.api_server = wsgi.make_server(att_api.create_app(api_conf, self.fleet.store),
                                           '127.0.0.1', 0)
        threading.Thread(target=self.api_server.serve_forever, daemon=True).start()
        self.addCleanup(self._stop_api)
        url = 'http://127.0.0.1:%d' % self.api_server.server_port
        self.fleet.listen_notifications()
        self.fleet.start_verifier()
        assert wait_for(lambda: all(self.fleet.status(h) == 'trusted'
                                    for h in ('host1', 'host2', 'host3')), 60), \
            [(h, self.fleet.store.get_host(h).reasons) for h in self.fleet.hosts]
        client = att_client.AttestationClient(
            personas.session('service'), endpoint_override=url)
        return RecordingBackend(conf, client=client)

    def _stop_api(self):
        if self.api_server is not None:
            self.api_server.shutdown()
            self.api_server.server_close()
            self.api_server = None

    def setUp(self):
        self.api_server = None
        super().setUp()
        self.secure = self.flavor_with('secure', **{model.SPEC_TRUSTED_HOST: 'required'})
        self.sync.full_sync()
        # the reactor, as tclouds-trust-reactor runs it: real notifications from RabbitMQ
        notifier = common_messaging.get_notifier(self.aconf, 'trust-reactor.test')
        self.reactor = reaction.TrustReactor(self.aconf, self.nova_client(), self.sync,
                                             notifier)
        # this run's private topics and pool (concurrent runs share the broker)
        self.listener = reaction.get_listener(
            common_messaging.get_notification_transport(self.aconf), self.reactor,
            topics=self.aconf.oslo_messaging_notifications.topics,
            pool='tclouds-trust-reactor-%s' % self.aconf.control_exchange)
        self.listener.start()
        self.addCleanup(lambda: (self.listener.stop(), self.listener.wait()))

    def service(self, host):
        return self.admin_api.get_services(host=host, binary='nova-compute')[0]

    def events(self, event_type, host):
        return [e for e in self.fleet.events if e[1] == event_type and e[2]['host'] == host]

    def test_tamper_disable_avoid_recover(self):
        for host in ('host1', 'host2', 'host3'):
            self.assertIn(model.TRAIT_TRUSTED, self.traits_of(host))
        self.assertEqual('host1', self.host_of(self.boot(self.secure)))

        # tamper: an unknown binary is executed on host1 (IMA entry, PCR 10 extended)
        self.fleet.hosts['host1'].run_file('/usr/local/bin/miner', b'evil')
        self.assertTrue(wait_for(lambda: self.service('host1')['status'] == 'disabled', 30))
        reason = self.service('host1')['disabled_reason']
        self.assertTrue(reason.startswith('tclouds: host attestation untrusted:'), reason)
        self.assertIn('/usr/local/bin/miner', reason)
        self.assertNotIn(model.TRAIT_TRUSTED, self.traits_of('host1'))
        self.assertTrue(wait_for(lambda: self.events('trust.host.disabled', 'host1'), 10))
        self.assertTrue(self.events('trust.host.trait_removed', 'host1'))

        # new boots avoid it (trust-requiring and plain alike: the service is disabled);
        # Placement no longer offers host1: it never reaches the filter as a candidate
        del self.backend.calls[:]
        self.assertEqual('host2', self.host_of(self.boot(self.secure)))
        self.assertEqual([['host2', 'host3']], [sorted(c) for c in self.backend.calls])
        self.assertEqual('host2', self.host_of(self.boot()))

        # recovery: a clean reboot -> trusted -> re-enabled, trait back
        self.fleet.hosts['host1'].reboot()
        self.assertTrue(wait_for(lambda: self.service('host1')['status'] == 'enabled', 30))
        self.assertIn(model.TRAIT_TRUSTED, self.traits_of('host1'))
        self.assertTrue(wait_for(lambda: self.events('trust.host.enabled', 'host1'), 10))
        self.assertEqual('host1', self.host_of(self.boot(self.secure)))

    def test_attestation_api_unreachable_fails_closed(self):
        # traits still say trusted, but the service cannot confirm: never land unverified
        self._stop_api()
        server = self.boot(self.secure, expected='ERROR')
        self.assertIn('attestation service is unreachable', server['fault']['message'])
        self.assertEqual('host1', self.host_of(self.boot()))
