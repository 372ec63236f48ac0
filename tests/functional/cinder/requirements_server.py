"""The real trust requirements API served from a thread on 127.0.0.1:<free port>, and the
real client wired to it as the schedulers use it.

With ``personas`` (tests/functional/personas.py) the API runs behind keystonemiddleware and
every client holds a persona's real Keystone token: the schedulers read as ``service``, the
operator sets requirements as ``admin``. Without, the API runs ``noauth`` for unit tests of
a client's input handling that decide no authorization (the caller passes its headers).
"""
import os
import threading

from keystoneauth1 import session as ks_session
from oslo_config import cfg

from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack import conf as tconf
from tclouds_openstack.requirements import api
from tclouds_openstack.requirements import client as req_client
from tests import hermetic


class RequirementsServer(object):
    def __init__(self, db_path, personas=None):
        self.personas = personas
        connection = '[attestation]\nconnection = sqlite:///%s\n' % db_path
        if personas is not None:
            self.conf = personas.api_conf(os.path.dirname(str(db_path)), connection)
        else:
            path = '%s.conf' % db_path
            with open(path, 'w') as f:
                f.write('[api]\nauth_strategy = noauth\n' + connection)
            self.conf = cfg.ConfigOpts()
            tconf.register_opts(self.conf)
            hermetic.parse(self.conf, [path], project='tclouds-test')
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

    def client(self, persona='service', headers=None):
        """A requirements client of ``persona`` (a real token), or with ``headers`` (noauth)."""
        if self.personas is not None:
            session = self.personas.session(persona)
        else:
            session = ks_session.Session(additional_headers=headers or {})
        return req_client.RequirementsClient(session, endpoint_override=self.url, timeout=10)
