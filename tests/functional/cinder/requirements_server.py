"""The real trust requirements API (noauth) served from a thread on 127.0.0.1:<free port>,
and the real client wired to it as the schedulers use it."""
import threading

from keystoneauth1 import session as ks_session
from oslo_config import cfg

from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack import conf as tconf
from tclouds_openstack.requirements import api
from tclouds_openstack.requirements import client as req_client

SERVICE_HEADERS = {'X-Roles': 'service', 'X-User-Id': 'scheduler', 'X-Project-Id': 'service'}
ADMIN_HEADERS = {'X-Roles': 'admin', 'X-User-Id': 'admin', 'X-Project-Id': 'admin'}


class RequirementsServer(object):
    def __init__(self, db_path):
        self.conf = cfg.ConfigOpts()
        tconf.register_opts(self.conf)
        self.conf([], project='tclouds-test', default_config_files=[])
        self.conf.set_override('auth_strategy', 'noauth', group='api')
        self.conf.set_override('connection', 'sqlite:///%s' % db_path, group='attestation')
        policy.reset()
        router = wsgi.Router()
        api.add_routes(router, self.conf)
        policy.get_enforcer(self.conf)
        self.server = wsgi.make_server(wsgi.build_app(self.conf, router), '127.0.0.1', 0)
        self.url = 'http://127.0.0.1:%d' % self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
        policy.reset()

    def client(self, headers=SERVICE_HEADERS):
        return req_client.RequirementsClient(
            ks_session.Session(additional_headers=headers), endpoint_override=self.url,
            timeout=10)
