"""A real Keystone (sqlite, fernet tokens) in a subprocess, for authentication tests.

Set up with ``keystone-manage`` (db_sync, fernet and credential keys, bootstrap) in a
temporary directory; served by wsgiref on 127.0.0.1 with a free port. The caller stops it.

Setting a Keystone up costs seconds (``keystone-manage`` imports Keystone four times); a
test module that needs a fresh one calls :meth:`Keystone.from_template` with a directory
prepared once per process (:func:`template`), which only copies files and starts the
server. The ``prepare`` callable given to :func:`template` adds users, projects and roles
to the template while it runs, so every copy starts with them.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import requests

from tests import hermetic
from tests import watchdog

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADMIN_PASSWORD = 'admin-secret'


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


_SERVE = """
import sys
from wsgiref import simple_server
conf_file, port, repo = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.argv = sys.argv[:1]      # keystone parses the command line for its own options
sys.path.insert(0, repo)
from tests import hermetic
# conf_file only: keystone and its oslo.middleware look in /etc/keystone otherwise
hermetic.NoDefaultConfigDirs().setUp()
from keystone.server.flask import core
app = core.initialize_application('public', config_files=[conf_file])
simple_server.make_server('127.0.0.1', port, app).serve_forever()
"""

# bcrypt's cheapest cost: every token request checks a password, and test passwords
# protect nothing.
_CONF = ('[database]\nconnection = sqlite:///%(d)s/keystone.db\n'
         '[fernet_tokens]\nkey_repository = %(d)s/fernet\n'
         '[fernet_receipts]\nkey_repository = %(d)s/receipts\n'
         '[credential]\nkey_repository = %(d)s/credential\n'
         '[identity]\npassword_hash_rounds = 4\n'
         '[token]\nprovider = fernet\n' + hermetic.POLICY_SECTION)


class Keystone:
    def __init__(self, workdir):
        self.dir = workdir
        self.port = _free_port()
        self.url = 'http://127.0.0.1:%d/v3' % self.port
        self.conf = os.path.join(workdir, 'keystone.conf')
        self.proc = None
        self.log = None

    @classmethod
    def from_template(cls, template_dir, workdir):
        """A Keystone in ``workdir`` with the database and keys of ``template_dir``."""
        for name in ('keystone.db', 'fernet', 'receipts', 'credential'):
            src, dst = os.path.join(template_dir, name), os.path.join(workdir, name)
            (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, dst)
        server = cls(workdir)
        server._write_conf()
        return server

    def _write_conf(self):
        with open(self.conf, 'w') as f:
            f.write(_CONF % {'d': self.dir})

    def setup(self):
        """Create the database, keys and bootstrap admin with ``keystone-manage``."""
        self._write_conf()
        manage = [os.path.join(os.path.dirname(sys.executable), 'keystone-manage')] + \
            hermetic.service_args(self.conf, self.dir)
        for step in (['db_sync'],
                     ['fernet_setup', '--keystone-user', str(os.getuid()),
                      '--keystone-group', str(os.getgid())],
                     ['credential_setup', '--keystone-user', str(os.getuid()),
                      '--keystone-group', str(os.getgid())],
                     ['bootstrap', '--bootstrap-password', ADMIN_PASSWORD,
                      '--bootstrap-public-url', self.url]):
            watchdog.run(manage + step, check=True, capture_output=True)
        return self

    def start(self):
        """Serve (after :meth:`setup`, or on a copy from :meth:`from_template`)."""
        if not os.path.exists(os.path.join(self.dir, 'keystone.db')):
            self.setup()
        self.log = open(os.path.join(self.dir, 'keystone.log'), 'ab')
        self.proc = subprocess.Popen([sys.executable, '-c', _SERVE, self.conf, str(self.port),
                                      REPO], stdout=self.log, stderr=self.log)

        def answers():
            try:
                return requests.get(self.url, timeout=60).status_code == 200
            except requests.RequestException:
                return False

        try:
            watchdog.wait_until(answers, 'keystone to answer on %s' % self.url, proc=self.proc,
                                interval=0.2)
        except AssertionError as exc:
            self.stop()
            raise RuntimeError('%s; see %s/keystone.log' % (exc, self.dir))
        self._point_catalog_here()
        return self

    def _point_catalog_here(self):
        """The identity endpoint in the catalog is this server's URL (a copy's port differs)."""
        headers = self.admin_headers()
        endpoints = requests.get(self.url + '/endpoints?interface=public', headers=headers,
                                 timeout=60)
        endpoints.raise_for_status()
        for endpoint in endpoints.json()['endpoints']:
            if endpoint['url'] != self.url:
                requests.patch(self.url + '/endpoints/' + endpoint['id'], headers=headers,
                               json={'endpoint': {'url': self.url}},
                               timeout=60).raise_for_status()

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None

    # ------------------------------------------------------------------ admin helpers
    def admin_token(self):
        return self.password_token('admin', ADMIN_PASSWORD, project='admin')

    def admin_headers(self):
        return {'X-Auth-Token': self.admin_token()}

    def password_token(self, user, password, project=None, system=False, project_id=None):
        """A token of the user called ``user`` (default domain), project or system scoped."""
        user = {'name': user, 'domain': {'id': 'default'}, 'password': password}
        if system:
            scope = {'system': {'all': True}}
        elif project_id is not None:
            scope = {'project': {'id': project_id}}
        else:
            scope = {'project': {'name': project, 'domain': {'id': 'default'}}}
        body = {'auth': {'identity': {'methods': ['password'], 'password': {'user': user}},
                         'scope': scope}}
        resp = requests.post(self.url + '/auth/tokens', json=body, timeout=60)
        resp.raise_for_status()
        return resp.headers['X-Subject-Token']

    def _token(self, user, password):
        return self.password_token(user, password, project='admin')

    def api(self, method, path, **kwargs):
        """An admin call to the identity API; the JSON answer (None for 204)."""
        resp = requests.request(method, self.url + path, headers=self.admin_headers(),
                                timeout=60, **kwargs)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def find(self, kind, name):
        """The id of the role/project/user called ``name`` (None if there is none)."""
        found = self.api('GET', '/%ss?name=%s' % (kind, name))['%ss' % kind]
        return found[0]['id'] if found else None

    def ensure_role(self, name):
        return self.find('role', name) or self.api(
            'POST', '/roles', json={'role': {'name': name}})['role']['id']

    def ensure_project(self, name):
        return self.find('project', name) or self.api('POST', '/projects', json={
            'project': {'name': name, 'domain_id': 'default'}})['project']['id']

    def add_user(self, name, password):
        return self.api('POST', '/users', json={'user': {
            'name': name, 'password': password, 'domain_id': 'default'}})['user']['id']

    def grant(self, user_id, role, project=None, system=False):
        """``role`` (a name) on a project (name) or on the whole system."""
        role_id = self.ensure_role(role)
        if system:
            path = '/system/users/%s/roles/%s' % (user_id, role_id)
        else:
            path = '/projects/%s/users/%s/roles/%s' % (self.ensure_project(project), user_id,
                                                       role_id)
        self.api('PUT', path)

    def create_user(self, name, password, role='reader'):
        """A user in the default domain with ``role`` on the admin project."""
        user_id = self.add_user(name, password)
        self.grant(user_id, role, project='admin')
        return user_id


_TEMPLATES = {}


def template(key, prepare=None):
    """A directory holding a set-up Keystone, made once per process for ``key``.

    ``prepare(keystone)`` runs against it (served) before it is stopped; its return value
    is kept and returned with the directory: ``(dir, prepared)``.
    """
    if key not in _TEMPLATES:
        workdir = tempfile.mkdtemp(prefix='keystone-template-')
        server = Keystone(workdir)
        try:
            server.start()
            prepared = prepare(server) if prepare is not None else None
        except BaseException:
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        server.stop()
        import atexit
        atexit.register(shutil.rmtree, workdir, True)
        _TEMPLATES[key] = (workdir, prepared)
    return _TEMPLATES[key]
