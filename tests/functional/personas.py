"""Keystone personas for authorization tests: a real Keystone with the roles of a cloud.

Every authorization test asks *who* is calling with a real token from this Keystone (never
X-Roles headers): the APIs run behind keystonemiddleware ``auth_token``, which validates
the token and sets the identity, exactly as in production.

Projects ``A``, ``B`` and ``service`` (plus bootstrap's ``admin``), all in the default
domain, and the personas:

=============== ======================================================================
admin           role ``admin`` on project ``admin`` (keystone-manage bootstrap's user)
system_reader   role ``reader`` on the system (system-scoped token)
manager_a       role ``manager`` on project A
member_a        role ``member`` on project A
reader_a        role ``reader`` on project A
member_b        role ``member`` on project B
service         role ``service`` on project ``service`` (like DevStack's nova/cinder)
host            role ``tclouds_host`` on project ``service``: the credential of compute
                host :data:`HOST` (more with :meth:`Personas.add_host_credential`)
=============== ======================================================================

Keystone's default role implications are in effect (bootstrap makes them): admin implies
manager implies member implies reader, so a member's token carries ``reader`` too, as a
real cloud's does.

Use the module-scoped ``personas`` fixture (tests/functional/conftest.py)::

    def test_x(personas):
        personas.token('member_a')          # an X-Auth-Token value
        personas.user_id('member_a'); personas.project_id('A')
        personas.session('reader_a')        # keystoneauth1 Session
        user_id, secret = personas.add_host_credential('compute-2')
        personas.token('host:compute-2')
        personas.host_persona('compute-3')      # 'host:compute-3', made if it is not yet
        conf_text = personas.authtoken_conf()   # [keystone_authtoken] for an API
        conf = personas.api_conf(tmp_path)      # an API's ConfigOpts: keystone auth
        personas.auth_options('host')           # a client's credential options

The users and projects are made once per test process in a template Keystone; each test
module gets a copy of its database (same ids) and a server of its own.
"""
import os
import secrets
import time

from keystoneauth1.identity import v3
from keystoneauth1 import session as ks_session
import requests

from tests.functional import keystone_server

HOST_ROLE = 'tclouds_host'
HOST = 'compute-1'
PROJECTS = ('A', 'B', 'service')

# persona -> (role, project name or None for the system)
PERSONAS = {
    'admin': ('admin', 'admin'),
    'system_reader': ('reader', None),
    'manager_a': ('manager', 'A'),
    'member_a': ('member', 'A'),
    'reader_a': ('reader', 'A'),
    'member_b': ('member', 'B'),
    'service': ('service', 'service'),
    'host': (HOST_ROLE, 'service'),
}

_TOKEN_REUSE_SECONDS = 1800      # Keystone's tokens live 3600 s


def _host_user(host):
    return 'tclouds-host-cred-' + host


def _prepare(keystone):
    """Projects, users and role assignments of every persona (in the template)."""
    projects = {name: keystone.ensure_project(name) for name in PROJECTS}
    projects['admin'] = keystone.find('project', 'admin')
    users = {'admin': (keystone.find('user', 'admin'), keystone_server.ADMIN_PASSWORD)}
    for persona, (role, project) in PERSONAS.items():
        if persona == 'admin':
            continue
        password = secrets.token_hex(16)
        name = _host_user(HOST) if persona == 'host' else persona
        user_id = keystone.add_user(name, password)
        keystone.grant(user_id, role, project=project, system=project is None)
        users[persona] = (user_id, password)
    return {'projects': projects, 'users': users}


class Personas:
    """The personas of one running Keystone (see the module docstring)."""

    def __init__(self, keystone, prepared):
        self.keystone = keystone
        self.url = keystone.url
        self._projects = dict(prepared['projects'])
        self._users = dict(prepared['users'])
        self._scopes = dict(PERSONAS)
        self._names = {p: (_host_user(HOST) if p == 'host' else p) for p in PERSONAS}
        self._tokens = {}

    def stop(self):
        self.keystone.stop()

    # ------------------------------------------------------------------ identities
    def user_id(self, persona):
        return self._users[persona][0]

    def password(self, persona):
        return self._users[persona][1]

    def project_id(self, name):
        """The id of project 'A', 'B', 'service' or 'admin'."""
        return self._projects[name]

    def scope(self, persona):
        """The project name a persona's token is scoped to (None: system scope)."""
        return self._scopes[persona][1]

    def token(self, persona):
        """A valid token of ``persona`` (reused for half its lifetime)."""
        cached = self._tokens.get(persona)
        if cached is None or time.monotonic() - cached[1] > _TOKEN_REUSE_SECONDS:
            project = self.scope(persona)
            token = self.keystone.password_token(
                self._names[persona], self.password(persona), project=project,
                system=project is None)
            cached = self._tokens[persona] = (token, time.monotonic())
        return cached[0]

    def headers(self, persona):
        return {'X-Auth-Token': self.token(persona)}

    def roles(self, persona):
        """Role names in ``persona``'s token as Keystone validates it (implied ones too)."""
        resp = requests.get(self.url + '/auth/tokens', timeout=60, headers={
            'X-Auth-Token': self.token('admin'), 'X-Subject-Token': self.token(persona)})
        resp.raise_for_status()
        return sorted(r['name'] for r in resp.json()['token']['roles'])

    def auth_plugin(self, persona):
        project = self.scope(persona)
        scope = ({'system_scope': 'all'} if project is None else
                 {'project_name': project, 'project_domain_id': 'default'})
        return v3.Password(auth_url=self.url, username=self._names[persona],
                           password=self.password(persona), user_domain_id='default',
                           **scope)

    def session(self, persona, **kwargs):
        """A keystoneauth1 Session authenticating as ``persona``."""
        return ks_session.Session(auth=self.auth_plugin(persona), **kwargs)

    def add_host_credential(self, host):
        """A new compute host credential -> (user_id, secret).

        Its own user and secret, role tclouds_host on the service project; its persona
        is ``'host:<host>'``.
        """
        secret = secrets.token_hex(16)
        user_id = self.keystone.add_user(_host_user(host), secret)
        self.keystone.grant(user_id, HOST_ROLE, project='service')
        persona = 'host:' + host
        self._users[persona] = (user_id, secret)
        self._scopes[persona] = (HOST_ROLE, 'service')
        self._names[persona] = _host_user(host)
        return user_id, secret

    def host_persona(self, host):
        """The persona of compute host ``host``'s credential (made on first use)."""
        if host == HOST:
            return 'host'
        persona = 'host:' + host
        if persona not in self._users:
            self.add_host_credential(host)
        return persona

    # ------------------------------------------------------------------ configuration
    def auth_options(self, persona):
        """keystoneauth1 password options of ``persona`` (lines of a configuration section).

        What a client loads its credential from with keystoneauth1.loading.
        """
        project = self.scope(persona)
        scope = ('system_scope = all\n' if project is None else
                 'project_name = %s\nproject_domain_id = default\n' % project)
        return ('auth_type = password\nauth_url = %s\nusername = %s\npassword = %s\n'
                'user_domain_id = default\n%s'
                % (self.url, self._names[persona], self.password(persona), scope))

    def authtoken_conf(self, persona='service'):
        """``[keystone_authtoken]`` of an API validating tokens as ``persona``.

        The service user by default, as in a deployment.
        """
        return ('[keystone_authtoken]\nwww_authenticate_uri = %s\ninterface = public\n%s'
                % (self.url, self.auth_options(persona)))

    def api_conf(self, workdir, extra=''):
        """The parsed configuration of a tclouds API validating this Keystone's tokens.

        ``[api] auth_strategy = keystone`` and :meth:`authtoken_conf` (then the sections in
        ``extra``) in ``workdir/api.conf``; every tclouds option registered, no other file
        read. Values an API test needs go in ``extra``, not ``set_override`` (oslo.config
        keeps overrides in option groups some ConfigOpts share).
        """
        from oslo_config import cfg

        from tclouds_openstack import conf as tconf
        from tests import hermetic
        path = os.path.join(str(workdir), 'api.conf')
        with open(path, 'w') as f:
            f.write('[api]\nauth_strategy = keystone\n' + self.authtoken_conf() + extra)
        conf = cfg.ConfigOpts()
        tconf.register_opts(conf)
        return hermetic.parse(conf, [path], project='tclouds-test')


def start(workdir, from_template=True):
    """A Personas over a new Keystone in ``workdir`` (the caller calls ``stop()``).

    ``from_template=False`` sets it up from scratch in ``workdir`` (slower): for a process
    that exits without running atexit handlers (pytest-forked children), which would leave
    the per-process template behind.
    """
    if not from_template:
        server = keystone_server.Keystone(workdir).start()
        try:
            return Personas(server, _prepare(server))
        except BaseException:
            server.stop()
            raise
    template_dir, prepared = keystone_server.template('personas', _prepare)
    server = keystone_server.Keystone.from_template(template_dir, workdir)
    server.start()
    return Personas(server, prepared)
