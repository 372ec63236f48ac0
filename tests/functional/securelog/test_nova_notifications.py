"""A real Nova (in-process API, conductor, scheduler, Placement, fake-virt compute) whose
notifiers use the ``securelog`` driver over the real RabbitMQ; the ingestion service
appends what Nova emits while a server boots, and the audit verifies the result.

Nova sets global oslo.config state: the test runs in a forked process.
"""
import os
import subprocess

import nova.tests.functional  # noqa: F401,I100  (nova's patching first)

from tests.functional.securelog import nova_conf_order  # noqa: F401,I100

from nova import conf as nova_conf
from nova import rpc
from nova.tests.functional import integrated_helpers
import oslo_messaging
import pytest

from tclouds_openstack.conf import securelog as securelog_conf
from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import store as storemod
from tests.functional import nova_harness
from tests.functional.securelog import conftest
from tests.functional.securelog import test_ingest_rabbit as rabbit
from tests import watchdog

CONF = nova_conf.CONF


@pytest.mark.forked
class TestNovaNotificationsReachTheLog(nova_harness.NovaHarness,
                                       integrated_helpers.ProviderUsageBaseTestCase):
    compute_driver = 'fake.SmallFakeDriver'
    microversion = 'latest'

    def setUp(self):
        self.flags(notification_format='both', group='notifications')
        super().setUp()
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix='securelog-nova-')
        self.topic = 'securelog_nova_%d' % os.getpid()
        import pathlib
        self.conf_path = rabbit._write_conf(pathlib.Path(self.tmp), self.topic)
        securelog_conf.register_opts(CONF)
        self.flags(source_name='nova@functional', source_state_dir=self.tmp + '/source',
                   topic=self.topic, epoch_entries=20, group='securelog')
        self.transport = oslo_messaging.get_notification_transport(CONF, url=rabbit.RABBIT)
        self.flags(amqp_durable_queues=True, group='oslo_messaging_rabbit')
        serializer = rpc.RequestContextSerializer(rpc.JsonPayloadSerializer())
        # Nova's notifiers, as nova.rpc.init builds them, with the securelog driver.
        self.stub_out('nova.rpc.LEGACY_NOTIFIER', oslo_messaging.Notifier(
            self.transport, 'nova', serializer=serializer, driver='securelog',
            topics=['notifications']))
        self.stub_out('nova.rpc.NOTIFIER', oslo_messaging.Notifier(
            self.transport, 'nova', serializer=serializer, driver='securelog',
            topics=['versioned_notifications']))
        conftest.enroll(self.tmp + '/logstate/source-keys', self.tmp + '/source',
                        'nova@functional')
        self.ingest = rabbit._start_ingest(self.conf_path)
        self.addCleanup(self._cleanup)
        self._start_compute('host1')

    def _cleanup(self):
        rabbit._stop(self.ingest)
        self.transport.cleanup()
        rabbit._delete_queue(self.topic)
        subprocess.run(['rm', '-rf', self.tmp])

    def test_boot_notifications_are_sealed_and_verifiable(self):
        server = self._build_server(networks='none')
        server = self.api.post_server({'server': server})
        self._wait_for_state_change(server, 'ACTIVE')
        store = storemod.SecureLogStore.from_conf(rabbit._conf(self.conf_path))
        wanted = {'instance.create.end', 'compute.instance.create.end'}
        types = set()

        def sealed():
            types.update(r.event_type for r in store.list(limit=1000))
            return wanted <= types

        watchdog.wait_until(sealed, 'the log to hold %s' % sorted(wanted), interval=0.5)
        assert {'instance.create.start', 'scheduler.select_destinations.end'} <= types
        # Stop the ingestion (it signs a final checkpoint), then audit from genesis.
        rabbit._stop(self.ingest)
        bundle = keyfiles.AuditorBundle.load(self.tmp + '/logstate/auditor')
        bundle.source_keys['nova@functional'] = bytes.fromhex(
            open(self.tmp + '/source/auditor/source-nova@functional.k0').read())
        report, problems = store.audit(bundle)
        assert report.ok and not problems, report.summary()
        assert report.sources['nova@functional'] == report.size >= 4

    def test_report_of_the_servers_project(self):
        """A tenant's report from real Nova notifications (versioned and legacy, 'both').

        The server's placement is there with its host as Nova's own hostId, a boot that
        Nova cannot place is a refusal, and the report verifies offline.
        """
        import webob

        from tclouds_openstack.common import policy
        from tclouds_openstack.securelog import api
        from tclouds_openstack.securelog import report
        from tests.functional import personas as personas_mod

        server = self.api.post_server({'server': self._build_server(networks='none')})
        server = self._wait_for_state_change(server, 'ACTIVE')
        big = self._create_flavor(vcpu=16)        # the fake host has 2
        lost = self.api.post_server({'server': self._build_server(
            flavor_id=big, networks='none')})
        self._wait_for_state_change(lost, 'ERROR')
        store = storemod.SecureLogStore.from_conf(rabbit._conf(self.conf_path))
        wanted = {'instance.create.end', 'compute_task.build_instances.error'}
        types = set()

        def sealed():
            types.update(r.event_type for r in store.list(limit=1000))
            return wanted <= types
        watchdog.wait_until(sealed, 'the log to hold %s' % sorted(wanted), interval=0.5)
        rabbit._stop(self.ingest)           # its final checkpoint covers everything
        # the report API behind keystonemiddleware, read by an operator (the system
        # reader persona's real Keystone token): Nova's test projects are not Keystone's
        # (a forked test process exits without atexit: no per-process Keystone template)
        os.makedirs(self.tmp + '/keystone')
        personas = personas_mod.start(self.tmp + '/keystone', from_template=False)
        policy.reset()
        try:
            project = server['tenant_id']
            app = api.build_app(personas.api_conf(self.tmp), store)
            req = webob.Request.blank('/v1/projects/%s/report' % project,
                                      headers=personas.headers('system_reader'))
            resp = req.get_response(app)
            assert resp.status_int == 200, resp.text
        finally:
            policy.reset()
            personas.stop()
        text = resp.json['report'].encode()
        verifier = keyfiles.AuditorBundle.load(self.tmp + '/logstate/auditor').log_verifier
        verified = report.verify(text, verifier, project=project)
        placed = [ln for ln in verified.lines if ln['kind'] == 'placement'
                  and ln['resource'] == {'type': 'server', 'id': server['id']}]
        summaries = [ln['summary'] for ln in verified.lines]
        # created before it has a host, then on host1 (the versioned and the legacy
        # notification of one change make one line); Nova's hostId is the report's host
        # pseudonym: the tenant can compare them
        assert [ln.get('host') for ln in placed] == [None, server['hostId']], summaries
        assert server['hostId'] == report.host_pseudonym(project, 'host1')
        refused = [ln for ln in verified.lines if ln['kind'] == 'refusal']
        # one line for the failure Nova notifies twice (legacy and versioned), its reason
        # read from either format
        assert [ln['resource']['id'] for ln in refused] == [lost['id']], refused
        assert 'No valid host' in refused[0]['details']['reason']
        assert b'host1' not in text
