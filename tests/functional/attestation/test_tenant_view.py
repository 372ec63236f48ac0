"""The tenant view of trust (``GET /v1/trust/servers``): real Nova, real Keystone tokens.

Projects A and B of the personas' Keystone (tests/functional/personas.py) boot servers on
one compute host whose name is secret to tenants; the attestation API validates each
caller's token with keystonemiddleware. Each project's members see the trust of the host
running their own servers, never its name, and another project's server is a 404 like a
server that does not exist.
"""
import json
import shutil
import sys
import tempfile

from tclouds_openstack.conf import attestation as attestation_conf  # noqa: I100
from tclouds_openstack.conf import CONF

# This directory's conftest loaded our options before Nova's: give [DEFAULT] host back to
# Nova, which registers its own (the order in a Nova process, see conf/attestation.py).
# The module runs in a process of its own (tests/isolation.py: it imports nova).
if 'nova.conf' not in sys.modules:
    CONF.unregister_opt(attestation_conf.default_opts[0])

import nova.tests.functional  # noqa: F401,I100,E402  (nova's patching first)

from keystoneauth1 import session as ks_session  # noqa: E402
from nova.tests.functional.api import client as nova_api_client
from nova.tests.functional import integrated_helpers
from oslo_config import cfg
import pytest
import webob

from tclouds_openstack.attestation import compute
from tclouds_openstack.attestation.service import api
from tclouds_openstack.attestation.service import store as store_mod
from tclouds_openstack.common import policy
from tclouds_openstack import conf as tconf
from tests.functional.attestation import conftest as fx
from tests.functional import nova_harness
from tests.functional import personas as personas_mod
from tests import hermetic

HOST = 'cn-secret-rack7'


@pytest.mark.forked
class TestTenantView(nova_harness.NovaHarness, integrated_helpers.ProviderUsageBaseTestCase):
    compute_driver = 'fake.MediumFakeDriver'
    microversion = 'latest'

    def setUp(self):
        super().setUp()
        self._start_compute(HOST)
        name, url = fx.mariadb_url()
        self.addCleanup(fx.drop_mariadb, name)
        workdir = tempfile.mkdtemp(prefix='tenant-view-')
        self.addCleanup(shutil.rmtree, workdir, True)
        # a forked test process exits without atexit: no per-process template to leave
        self.personas = personas_mod.start(workdir, from_template=False)
        self.addCleanup(self.personas.stop)
        conf_file = '%s/api.conf' % workdir
        with open(conf_file, 'w') as f:
            f.write('[api]\nauth_strategy = keystone\n' + self.personas.authtoken_conf()
                    + hermetic.POLICY_SECTION)
        conf = cfg.ConfigOpts()
        tconf.register_opts(conf)
        hermetic.parse(conf, [conf_file], project='tclouds-test')
        conf.set_override('max_verdict_age', 600, group='attestation')
        conf.set_override('connection', url, group='attestation')
        self.store = store_mod.Store(url)
        self.store.migrate()
        fx.simfleet.admit_host(self.store, HOST, ak_name='aa' * 34)
        self.store.save_verdict(HOST, 'trusted', [], store_mod.utcnow(), 'w')
        # the attestation API's Nova client: service credentials with the admin role
        session = ks_session.Session(additional_headers={
            'X-Auth-User': 'admin', 'X-User-Id': 'admin',
            'X-Auth-Project-Id': 'service', 'X-Roles': 'admin'})
        nova_client = compute.ComputeClient(session, endpoint_override=self.api.base_url)
        policy.reset()
        self.addCleanup(policy.reset)
        self.app = api.create_app(conf, self.store, compute=nova_client)
        self.mine = self._boot(self._nova_of('A'))
        self.theirs = self._boot(self._nova_of('B'))

    def _nova_of(self, project):
        """A Nova client of a member of ``project`` (Nova's own test auth: headers)."""
        client = nova_api_client.TestOpenStackClient(
            'member-%s' % project, self.api.base_url,
            project_id=self.personas.project_id(project), roles=['member', 'reader'])
        client.microversion = 'latest'
        return client

    def _boot(self, api_client):
        server = api_client.post_server({'server': self._build_server(networks='none')})
        return self._wait_for_server_parameter(server, {'status': 'ACTIVE'}, 60)

    def get(self, path, hdrs):
        resp = webob.Request.blank(path, headers=hdrs).get_response(self.app)
        return resp.status_int, resp.body.decode()

    def test_member_sees_own_servers_trust_without_the_host_name(self):
        mine = self.personas.headers('member_a')
        self.assertEqual(HOST, self.mine['OS-EXT-SRV-ATTR:host'])
        status, raw = self.get('/v1/trust/servers/%s' % self.mine['id'], mine)
        self.assertEqual(200, status, raw)
        view = json.loads(raw)['server']
        self.assertEqual('trusted', view['status'])
        self.assertEqual(self.mine['hostId'], view['host_id'])
        self.assertNotIn(HOST, raw)
        status, raw = self.get('/v1/trust/servers', mine)
        self.assertEqual(200, status, raw)
        self.assertEqual([self.mine['id']], [s['server'] for s in json.loads(raw)['servers']])
        self.assertNotIn(HOST, raw)
        self.assertNotIn(self.theirs['id'], raw)
        theirs = self.personas.headers('member_b')
        status, raw = self.get('/v1/trust/servers', theirs)
        self.assertEqual([self.theirs['id']], [s['server'] for s in json.loads(raw)['servers']])

    def test_other_projects_server_is_404_like_a_missing_one(self):
        mine = self.personas.headers('member_a')
        status, raw = self.get('/v1/trust/servers/%s' % self.theirs['id'], mine)
        self.assertEqual(404, status, raw)
        self.assertNotIn(HOST, raw)
        missing = self.get('/v1/trust/servers/1b0c0d5e-0000-4000-8000-000000000000', mine)
        self.assertEqual(404, missing[0])
        # the same answer apart from the id: nothing tells the two apart
        self.assertEqual(raw.replace(self.theirs['id'], 'X'),
                         missing[1].replace('1b0c0d5e-0000-4000-8000-000000000000', 'X'))
        # an admin and a system reader see any server
        for operator in ('admin', 'system_reader'):
            status, raw = self.get('/v1/trust/servers/%s' % self.theirs['id'],
                                   self.personas.headers(operator))
            self.assertEqual(200, status, raw)

    def test_callers_without_a_project_role_are_403(self):
        # the service and host credentials hold no reader role on any tenant's project
        for persona in ('service', 'host'):
            for path in ('/v1/trust/servers', '/v1/trust/servers/%s' % self.mine['id']):
                status, raw = self.get(path, self.personas.headers(persona))
                self.assertEqual(403, status, raw)
        self.assertEqual(401, self.get('/v1/trust/servers', {})[0])
        # identity headers a caller sets itself count for nothing
        forged = {'X-Auth-Token': 'forged', 'X-Roles': 'admin',
                  'X-Project-Id': self.personas.project_id('A')}
        self.assertEqual(401, self.get('/v1/trust/servers', forged)[0])

    def test_untrusted_host_reason_is_generic(self):
        self.store.save_verdict(HOST, 'untrusted', ['ima: /usr/sbin/backdoor not in allowlist'],
                                store_mod.utcnow(), 'w')
        status, raw = self.get('/v1/trust/servers/%s' % self.mine['id'],
                               self.personas.headers('reader_a'))
        self.assertEqual(200, status, raw)
        view = json.loads(raw)['server']
        self.assertEqual('untrusted', view['status'])
        self.assertEqual(api.TENANT_REASONS['untrusted'], view['reasons'])
        self.assertNotIn('backdoor', raw)
