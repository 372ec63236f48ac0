"""A real Keystone (sqlite, fernet tokens) in a subprocess, for authentication tests.

Set up with ``keystone-manage`` (db_sync, fernet and credential keys, bootstrap) in a
temporary directory; served by wsgiref on 127.0.0.1 with a free port. The caller stops it.
"""
import os
import socket
import subprocess
import sys
import time

import requests

ADMIN_PASSWORD = 'admin-secret'


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


_SERVE = """
import sys
from wsgiref import simple_server
from keystone.server.flask import core
conf_file, port = sys.argv[1], int(sys.argv[2])
sys.argv = sys.argv[:1]      # keystone parses the command line for its own options
app = core.initialize_application('public', config_files=[conf_file])
simple_server.make_server('127.0.0.1', port, app).serve_forever()
"""


class Keystone:
    def __init__(self, workdir):
        self.dir = workdir
        self.port = _free_port()
        self.url = 'http://127.0.0.1:%d/v3' % self.port
        self.conf = os.path.join(workdir, 'keystone.conf')
        self.proc = None

    def start(self):
        d = self.dir
        with open(self.conf, 'w') as f:
            f.write('[database]\nconnection = sqlite:///%s/keystone.db\n'
                    '[fernet_tokens]\nkey_repository = %s/fernet\n'
                    '[fernet_receipts]\nkey_repository = %s/receipts\n'
                    '[credential]\nkey_repository = %s/credential\n'
                    '[token]\nprovider = fernet\n' % (d, d, d, d))
        manage = [os.path.join(os.path.dirname(sys.executable), 'keystone-manage'),
                  '--config-file', self.conf]
        for step in (['db_sync'],
                     ['fernet_setup', '--keystone-user', str(os.getuid()),
                      '--keystone-group', str(os.getgid())],
                     ['credential_setup', '--keystone-user', str(os.getuid()),
                      '--keystone-group', str(os.getgid())],
                     ['bootstrap', '--bootstrap-password', ADMIN_PASSWORD,
                      '--bootstrap-public-url', self.url]):
            subprocess.run(manage + step, check=True, capture_output=True, timeout=300)
        self.log = open(os.path.join(d, 'keystone.log'), 'ab')
        self.proc = subprocess.Popen([sys.executable, '-c', _SERVE, self.conf, str(self.port)],
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(self.url, timeout=2).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError('keystone did not start; see %s/keystone.log' % d)
            time.sleep(0.2)

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.log.close()

    def admin_token(self):
        return self._token('admin', ADMIN_PASSWORD)

    def _token(self, user, password):
        body = {'auth': {'identity': {'methods': ['password'], 'password': {'user': {
            'name': user, 'domain': {'id': 'default'}, 'password': password}}},
            'scope': {'project': {'name': 'admin', 'domain': {'id': 'default'}}}}}
        resp = requests.post(self.url + '/auth/tokens', json=body, timeout=30)
        resp.raise_for_status()
        return resp.headers['X-Subject-Token']

    def create_user(self, name, password, role='reader'):
        """A user in the default domain with ``role`` on the admin project."""
        headers = {'X-Auth-Token': self.admin_token()}
        resp = requests.post(self.url + '/users', headers=headers, timeout=30, json={
            'user': {'name': name, 'password': password, 'domain_id': 'default'}})
        resp.raise_for_status()
        user_id = resp.json()['user']['id']
        project = requests.get(self.url + '/projects?name=admin', headers=headers,
                               timeout=30).json()['projects'][0]['id']
        role_id = requests.get(self.url + '/roles?name=%s' % role, headers=headers,
                               timeout=30).json()['roles'][0]['id']
        requests.put(self.url + '/projects/%s/users/%s/roles/%s' % (project, user_id, role_id),
                     headers=headers, timeout=30).raise_for_status()
        return user_id
