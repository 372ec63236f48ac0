"""The tenant view of trust (``GET /v1/trust/servers``) against real Nova in-process.

Two projects boot servers on one compute host whose name is secret to tenants. Each
project's members see the trust of the host running their own servers, never its name,
and another project's server is a 404 like a server that does not exist.
"""
import json
import sys

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

HOST = 'cn-secret-rack7'
OTHER_PROJECT = '0ther0000000000000000000000000b2'


def headers(project, roles):
    if roles == 'member':       # keystonemiddleware passes the implied role too
        roles = 'member,reader'
    return {'X-User-Id': 'u-%s' % project[:6], 'X-Project-Id': project, 'X-Roles': roles}


@pytest.mark.forked
class TestTenantView(nova_harness.NovaHarness, integrated_helpers.ProviderUsageBaseTestCase):
    compute_driver = 'fake.MediumFakeDriver'
    microversion = 'latest'

    def setUp(self):
        super().setUp()
        self._start_compute(HOST)
        name, url = fx.mariadb_url()
        self.addCleanup(fx.drop_mariadb, name)
        conf = cfg.ConfigOpts()
        tconf.register_opts(conf)
        conf([], project='tclouds-test', default_config_files=[])
        conf.set_override('auth_strategy', 'noauth', group='api')
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
        self.other_api = nova_api_client.TestOpenStackClient(
            'other', self.api.base_url, project_id=OTHER_PROJECT, roles=['reader', 'member'])
        self.other_api.microversion = 'latest'
        self.mine = self._boot(self.api)
        self.theirs = self._boot(self.other_api)

    def _boot(self, api_client):
        server = api_client.post_server({'server': self._build_server(networks='none')})
        return self._wait_for_server_parameter(server, {'status': 'ACTIVE'}, 60)

    def get(self, path, hdrs):
        resp = webob.Request.blank(path, headers=hdrs).get_response(self.app)
        return resp.status_int, resp.body.decode()

    def test_member_sees_own_servers_trust_without_the_host_name(self):
        mine = headers(self.api.project_id, 'member')
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
        theirs = headers(OTHER_PROJECT, 'member')
        status, raw = self.get('/v1/trust/servers', theirs)
        self.assertEqual([self.theirs['id']], [s['server'] for s in json.loads(raw)['servers']])

    def test_other_projects_server_is_404_like_a_missing_one(self):
        mine = headers(self.api.project_id, 'member')
        status, raw = self.get('/v1/trust/servers/%s' % self.theirs['id'], mine)
        self.assertEqual(404, status, raw)
        self.assertNotIn(HOST, raw)
        missing = self.get('/v1/trust/servers/1b0c0d5e-0000-4000-8000-000000000000', mine)
        self.assertEqual(404, missing[0])
        # the same answer apart from the id: nothing tells the two apart
        self.assertEqual(raw.replace(self.theirs['id'], 'X'),
                         missing[1].replace('1b0c0d5e-0000-4000-8000-000000000000', 'X'))
        # an admin sees any server
        status, raw = self.get('/v1/trust/servers/%s' % self.theirs['id'],
                               headers('admin-project', 'admin'))
        self.assertEqual(200, status, raw)

    def test_role_less_caller_is_403(self):
        for path in ('/v1/trust/servers', '/v1/trust/servers/%s' % self.mine['id']):
            status, raw = self.get(path, headers(self.api.project_id, 'observer'))
            self.assertEqual(403, status, raw)
        self.assertEqual(401, self.get('/v1/trust/servers', {})[0])

    def test_untrusted_host_reason_is_generic(self):
        self.store.save_verdict(HOST, 'untrusted', ['ima: /usr/sbin/backdoor not in allowlist'],
                                store_mod.utcnow(), 'w')
        status, raw = self.get('/v1/trust/servers/%s' % self.mine['id'],
                               headers(self.api.project_id, 'member'))
        self.assertEqual(200, status, raw)
        view = json.loads(raw)['server']
        self.assertEqual('untrusted', view['status'])
        self.assertEqual(api.TENANT_REASONS['untrusted'], view['reasons'])
        self.assertNotIn('backdoor', raw)
