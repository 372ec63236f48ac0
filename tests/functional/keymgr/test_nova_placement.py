"""Attachments Cinder shows no host for are placed by real Nova (in-process).

While Nova hot-attaches a volume or moves a server, the new attachment is ``attaching`` and
Cinder's API does not show its host. The key release gate then asks Nova, with the
project's one Nova client (attestation/compute.py), where the attachment's server runs or
is moving to. Here a server is cold-migrated by real Nova from host1 to host2; Cinder's
answers are a table (test_volume_release.py asks a real Cinder).
"""
import sys

from tclouds_openstack.conf import attestation as attestation_conf  # noqa: I100
from tclouds_openstack.conf import CONF

# Give [DEFAULT] host back to Nova (see tests/functional/attestation/test_tenant_view.py).
if 'nova.conf' not in sys.modules:
    CONF.unregister_opt(attestation_conf.default_opts[0])

import nova.tests.functional  # noqa: F401,I100,E402  (nova's patching first)

from keystoneauth1 import session as ks_session  # noqa: E402
from nova.tests.functional import integrated_helpers
from oslo_config import cfg
import pytest

from tclouds_openstack.attestation import compute
from tclouds_openstack.common import cinder
from tclouds_openstack.keymgr import driver
from tclouds_openstack.keymgr import release
from tests.functional import nova_harness
from tests import hermetic


@pytest.mark.forked
class TestNovaPlacesAttachingVolumes(nova_harness.NovaHarness,
                                     integrated_helpers.ProviderUsageBaseTestCase):
    compute_driver = 'fake.MediumFakeDriver'
    microversion = 'latest'

    def setUp(self):
        super().setUp()
        self._start_compute('host1')
        self._start_compute('host2')
        conf = cfg.ConfigOpts()
        driver.register_opts(conf)
        hermetic.parse(conf, [], project='tclouds-test')
        # the key release API's Nova client: service credentials with the admin role
        session = ks_session.Session(additional_headers={
            'X-Auth-User': 'admin', 'X-User-Id': 'admin',
            'X-Auth-Project-Id': 'service', 'X-Roles': 'admin'})
        self.nova = compute.ComputeClient(session, endpoint_override=self.api.base_url)
        self.volumes = {}
        self.gate = release.Gate(conf, cinder=self, compute=self.nova)

    def volume(self, volume_id):
        """Cinder's answer (the gate's Cinder client)."""
        return self.volumes.get(volume_id)

    def test_migration_target_is_placed_by_nova(self):
        server = self._build_server(networks='none')
        server['availability_zone'] = 'nova:host1'
        server = self._wait_for_state_change(self.admin_api.post_server({'server': server}),
                                             'ACTIVE')
        # the volume's attachments: attached on host1 (Cinder shows it), and the new
        # attachment of the move, still attaching (Cinder hides its host)
        self.volumes['vol-m'] = cinder.Volume(
            id='vol-m', project_id=server['tenant_id'], status='in-use',
            encryption_key_id='key-m', attachments=(
                cinder.Attachment('old', 'attached', server['id'], 'host1'),
                cinder.Attachment('new', 'attaching', server['id'], None)))
        why, _ = self.gate.check_volume('vol-m', 'host1', 'key-m')
        self.assertIn('Cinder shows it attached', why)
        self.assertRaises(release.Refused, self.gate.check_volume, 'vol-m', 'host2', 'key-m')

        self.admin_api.post_server_action(server['id'], {'migrate': None})
        server = self._wait_for_state_change(server, 'VERIFY_RESIZE')
        self.assertEqual('host2', server['OS-EXT-SRV-ATTR:host'])
        why, _ = self.gate.check_volume('vol-m', 'host2', 'key-m')
        self.assertIn('Nova places its server %s there' % server['id'], why)
        # the migration is finished (awaiting confirmation), not under way: its record
        # names host2, the gate's "moving to" statuses do not include it
        self.assertEqual(['host2'], self.nova.migration_destinations(server['id'],
                                                                     ('finished',)))
        self.assertEqual([], self.nova.migration_destinations(server['id'], release.MIGRATING))
        # a host Nova does not put the server on gets nothing
        with self.assertRaises(release.Refused) as refused:
            self.gate.check_volume('vol-m', 'host3', 'key-m')
        self.assertIn('not attached to host host3', refused.exception.reason)
