"""Adapters that drive a deployed cloud for the scenarios (thin; no decisions here).

* :class:`Creds`: one Keystone identity (the operator's admin, a tenant, a compute host's
  own credential, a storage provider's) as ``OS_*`` variables and a keystoneauth session;
* :class:`CLI`: the ``openstack`` command (with the tclouds OSC plugin) run as a persona,
  JSON output parsed, every command line kept for the report (never a password);
* :class:`REST`: the same persona's calls to catalog endpoints (polling the attestation and
  compute APIs without starting a CLI each time; the key release and tenant trust views,
  which have no CLI command);
* :class:`Objects`: Swift through python-swiftclient on the persona's session;
* :class:`Deployment`: what the deployed cloud offers the scenarios, from the plugin's
  Tempest configuration (``[tclouds]``; DevStack's test-config phase writes it) and
  command-line overrides.
"""
import configparser
import json
import os
import shlex
import subprocess
import time

from tclouds_openstack.scenarios import core


class Creds(object):
    def __init__(self, auth_url, username, password, project_name, user_domain='Default',
                 project_domain='Default', region=None, project_id=None,
                 user_domain_id=None, project_domain_id=None):
        self.auth_url, self.username, self.password = auth_url, username, password
        self.project_name, self.user_domain, self.project_domain = \
            project_name, user_domain, project_domain
        self.user_domain_id, self.project_domain_id = user_domain_id, project_domain_id
        self.region, self.project_id = region, project_id
        self._session = None

    def _domains(self):
        out = {}
        if self.user_domain_id:
            out['user_domain_id'] = self.user_domain_id
        else:
            out['user_domain_name'] = self.user_domain
        if self.project_domain_id:
            out['project_domain_id'] = self.project_domain_id
        else:
            out['project_domain_name'] = self.project_domain
        return out

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
        env.update({'OS_AUTH_URL': self.auth_url, 'OS_IDENTITY_API_VERSION': '3',
                    'OS_USERNAME': self.username, 'OS_PASSWORD': self.password,
                    'OS_PROJECT_NAME': self.project_name})
        env.update(('OS_' + k.upper(), v) for k, v in self._domains().items())
        if self.region:
            env['OS_REGION_NAME'] = self.region
        return env

    def session(self):
        if self._session is None:
            from keystoneauth1.identity import v3
            from keystoneauth1 import session as ks_session
            auth = v3.Password(auth_url=self.auth_url, username=self.username,
                               password=self.password, project_name=self.project_name,
                               **self._domains())
            self._session = ks_session.Session(auth=auth)
        return self._session

    def token_project_id(self):
        return self.session().get_project_id()

    @classmethod
    def from_cloud(cls, name=None):
        """The admin identity: clouds.yaml cloud ``name`` (or ``OS_CLOUD``), else ``OS_*``."""
        try:
            import openstack.config
        except ImportError:
            openstack = None
        name = name or os.environ.get('OS_CLOUD')
        if openstack is not None and name:
            try:
                cloud = openstack.config.OpenStackConfig().get_one(name)
            except Exception as e:
                raise core.ScenarioError('cloud %s: %s' % (name, e))
            auth = cloud.config.get('auth', {})
            return cls(auth.get('auth_url'), auth.get('username'), auth.get('password'),
                       auth.get('project_name'), auth.get('user_domain_name') or 'Default',
                       auth.get('project_domain_name') or 'Default', cloud.get_region_name(),
                       user_domain_id=auth.get('user_domain_id'),
                       project_domain_id=auth.get('project_domain_id'))
        missing = [v for v in ('OS_AUTH_URL', 'OS_USERNAME', 'OS_PASSWORD', 'OS_PROJECT_NAME')
                   if not os.environ.get(v)]
        if missing:
            raise core.ScenarioError('no admin credentials: give --cloud (clouds.yaml) or set '
                                     'OS_CLOUD, or %s' % ', '.join(missing))
        return cls(os.environ['OS_AUTH_URL'], os.environ['OS_USERNAME'],
                   os.environ['OS_PASSWORD'], os.environ['OS_PROJECT_NAME'],
                   os.environ.get('OS_USER_DOMAIN_NAME', 'Default'),
                   os.environ.get('OS_PROJECT_DOMAIN_NAME', 'Default'),
                   os.environ.get('OS_REGION_NAME'),
                   user_domain_id=os.environ.get('OS_USER_DOMAIN_ID'),
                   project_domain_id=os.environ.get('OS_PROJECT_DOMAIN_ID'))


SECRET_OPTIONS = ('--password', '--os-password')


class Transcript(object):
    """Every command a run issued, as the person running it would type it."""

    def __init__(self, echo=None):
        self.lines = []
        self.echo = echo

    def add(self, who, argv, rc):
        shown = list(argv)
        for i, arg in enumerate(shown[:-1]):
            if arg in SECRET_OPTIONS:
                shown[i + 1] = '***'
        command = ' '.join(shlex.quote(a) for a in shown)
        line = {'time': time.time(), 'as': who, 'command': command, 'exit': rc}
        self.lines.append(line)
        if self.echo:
            self.echo('  [%s] %s -> exit %s' % (who, line['command'], rc))


class CommandFailed(core.ScenarioError):
    def __init__(self, argv, rc, stderr):
        self.argv, self.rc, self.stderr = argv, rc, stderr
        super().__init__('%s: exit %d: %s' % (' '.join(argv[:4]), rc,
                                              stderr.strip()[-600:] or '(no message)'))


class CLI(object):
    def __init__(self, creds, who, transcript, binary='openstack'):
        self.creds, self.who, self.transcript, self.binary = creds, who, transcript, binary

    def run(self, *args, parse=True, check=True, timeout=600):
        argv = [self.binary] + [str(a) for a in args]
        if parse:
            argv += ['-f', 'json']
        try:
            result = subprocess.run(argv, env=self.creds.env(), capture_output=True,
                                    text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise core.ScenarioError('%s did not finish in %d s'
                                     % (' '.join(argv[:4]), timeout))
        except OSError as e:
            raise core.ScenarioError('cannot run %s: %s' % (self.binary, e))
        self.transcript.add(self.who, argv, result.returncode)
        if check and result.returncode != 0:
            raise CommandFailed(argv, result.returncode, result.stderr)
        if not parse:
            return result
        if result.returncode != 0:
            return None
        try:
            return json.loads(result.stdout) if result.stdout.strip() else {}
        except ValueError:
            raise core.ScenarioError('%s printed no JSON: %s' % (' '.join(argv[:4]),
                                                                 result.stdout[:300]))


class REST(object):
    def __init__(self, creds, who, transcript):
        self.creds, self.who, self.transcript = creds, who, transcript

    def call(self, method, service_type, path, body=None, ok=(200, 201, 202, 204)):
        """``(status, JSON body or text)`` of one call.

        Every status is returned, never raised (a refusal is an observation).
        """
        sess = self.creds.session()
        try:
            resp = sess.request(path, method, endpoint_filter={
                'service_type': service_type, 'interface': 'public',
                'region_name': self.creds.region}, json=body, raise_exc=False)
        except Exception as e:
            raise core.ScenarioError('%s %s %s: %s: %s'
                                     % (method, service_type, path, type(e).__name__, e))
        self.transcript.add(self.who, ['HTTP', method, '%s:%s' % (service_type, path)],
                            resp.status_code)
        try:
            data = resp.json()
        except ValueError:
            data = resp.text
        return resp.status_code, data


def error_text(data):
    """The message of an API error body (OpenStack style or plain)."""
    if isinstance(data, dict):
        for value in data.values():
            if isinstance(value, dict) and value.get('message'):
                return value['message']
        return data.get('message') or data.get('detail') or json.dumps(data)[:300]
    return str(data)[:300]


class Objects(object):
    """Swift as the persona (python-swiftclient on its keystoneauth session)."""

    def __init__(self, creds, who, transcript, connection=None):
        from swiftclient import client as swift
        self.swift = swift
        self.conn = connection or swift.Connection(session=creds.session(), os_options={
            'region_name': creds.region}, retries=0)
        self.who, self.transcript = who, transcript

    def _do(self, argv, fn, *args, **kwargs):
        try:
            result = fn(*args, **kwargs)
        except self.swift.ClientException as e:
            self.transcript.add(self.who, argv, e.http_status or 1)
            raise
        self.transcript.add(self.who, argv, 0)
        return result

    def create_container(self, name, policy=None):
        headers = {'X-Storage-Policy': policy} if policy else {}
        self._do(['swift', 'post'] + (['-H', 'X-Storage-Policy:%s' % policy] if policy else [])
                 + [name], self.conn.put_container, name, headers=headers)

    def put(self, container, name, data):
        return self._do(['swift', 'upload', container, name], self.conn.put_object, container,
                        name, data)

    def get(self, container, name):
        return self._do(['swift', 'download', container, name], self.conn.get_object,
                        container, name)[1]

    def list(self, container, prefix=None):
        return [o['name'] for o in self._do(['swift', 'list', container],
                                            self.conn.get_container, container,
                                            prefix=prefix, full_listing=True)[1]]

    def delete(self, container, name):
        self._do(['swift', 'delete', container, name], self.conn.delete_object, container,
                 name)

    def delete_container(self, container):
        for name in self.list(container):
            try:
                self.delete(container, name)
            except self.swift.ClientException:
                pass
        self._do(['swift', 'delete', container], self.conn.delete_container, container)


# --------------------------------------------------------------------------- deployment
class Deployment(object):
    """What the scenarios need to know about the deployed cloud.

    Read from the tclouds Tempest options (``[tclouds]`` of a tempest.conf the DevStack
    plugin wrote) when a file is given, then overridden by explicit values. Missing
    values make the step that needs them fail with the option's name.
    """

    FIELDS = ('compute_hosts', 'jurisdiction', 'encrypted_volume_type', 'cloudstore_policy',
              'tamper_command', 'restore_command', 'host_user_format', 'host_passwords',
              'host_project', 'cloudstore_backend_containers', 'cloudstore_backend_username',
              'cloudstore_backend_password', 'cloudstore_backend_project', 'openstack_cli',
              'attestation_interval')

    def __init__(self, **values):
        self.compute_hosts = []
        self.jurisdiction = ''
        self.encrypted_volume_type = ''
        self.cloudstore_policy = ''
        self.tamper_command = ''
        self.restore_command = ''
        self.host_user_format = 'tclouds-host-{host}'
        self.host_passwords = {}
        self.host_project = 'service'
        self.cloudstore_backend_containers = []
        self.cloudstore_backend_username = 'swift'
        self.cloudstore_backend_password = ''
        self.cloudstore_backend_project = 'service'
        self.openstack_cli = 'openstack'
        self.attestation_interval = 10
        self.image = None
        self.flavor = None
        self.log_vkey = None
        self.instance_action = None
        self.source = None
        for key, value in values.items():
            if value is not None:
                setattr(self, key, value)

    @classmethod
    def from_tempest_config(cls, path, **overrides):
        parser = configparser.ConfigParser(interpolation=None)
        if not parser.read(path):
            raise core.ScenarioError('cannot read the Tempest configuration %s' % path)
        if not parser.has_section('tclouds'):
            raise core.ScenarioError('%s has no [tclouds] section (the DevStack plugin\'s '
                                     'test-config phase writes it)' % path)
        sec = parser['tclouds']
        values = {}
        for name in ('jurisdiction', 'encrypted_volume_type', 'cloudstore_policy',
                     'tamper_command', 'restore_command', 'host_user_format', 'host_project',
                     'cloudstore_backend_username', 'cloudstore_backend_password',
                     'cloudstore_backend_project', 'openstack_cli'):
            if name in sec:
                values[name] = sec[name]
        for name in ('compute_hosts', 'cloudstore_backend_containers'):
            if name in sec:
                values[name] = [v.strip() for v in sec[name].split(',') if v.strip()]
        if 'host_passwords' in sec:
            values['host_passwords'] = dict(
                item.split(':', 1) for item in sec['host_passwords'].split(',') if ':' in item)
        if 'attestation_interval' in sec:
            values['attestation_interval'] = int(sec['attestation_interval'])
        # what the DevStack plugin writes besides the deployment (devstack/lib/securelog,
        # devstack/lib/scheduling): the log's public key, the trust reactor's action
        if sec.get('securelog_vkey_file'):
            values['log_vkey'] = sec['securelog_vkey_file']
        if sec.get('trust_instance_action'):
            values['instance_action'] = sec['trust_instance_action']
        if parser.has_option('compute', 'image_ref'):
            values['image'] = parser.get('compute', 'image_ref')
        if parser.has_option('compute', 'flavor_ref'):
            values['flavor'] = parser.get('compute', 'flavor_ref')
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(source=path, **values)

    def need(self, *names):
        missing = [n for n in names if not getattr(self, n)]
        if missing:
            raise core.ScenarioError('the deployment does not say %s (tempest.conf [tclouds] '
                                     'or the matching command-line option)' % ', '.join(missing))

    def host_creds(self, admin, host):
        self.need('host_passwords')
        if host not in self.host_passwords:
            raise core.ScenarioError('no credential of compute host %s (host_passwords)' % host)
        return Creds(admin.auth_url, self.host_user_format.format(host=host),
                     self.host_passwords[host], self.host_project, region=admin.region)

    def provider_creds(self, admin):
        self.need('cloudstore_backend_password', 'cloudstore_backend_containers')
        return Creds(admin.auth_url, self.cloudstore_backend_username,
                     self.cloudstore_backend_password, self.cloudstore_backend_project,
                     region=admin.region)

    def run_host_command(self, which, host, transcript):
        template = getattr(self, which)
        if not template:
            raise core.ScenarioError('no %s for a software-TPM host (tempest.conf [tclouds] %s '
                                     'or --%s)' % (which, which, which.replace('_', '-')))
        argv = shlex.split(template.format(host=host))
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise core.ScenarioError('%s %s: %s' % (which, host, e))
        transcript.add('operator', argv, result.returncode)
        if result.returncode != 0:
            raise core.ScenarioError('%s %s: exit %d: %s' % (which, host, result.returncode,
                                                             result.stderr.strip()[-400:]))


def wait_for(what, predicate, timeout, interval=2.0, clock=time.monotonic, sleep=time.sleep):
    """Poll ``predicate`` until it returns something true.

    After ``timeout`` seconds: ScenarioError naming ``what`` and the last value seen.
    """
    deadline = clock() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if clock() > deadline:
            raise core.ScenarioError('%s: not within %d s (last seen: %s)' % (
                what, timeout, json.dumps(last, default=str)[:300] if last is not None
                else 'nothing'))
        sleep(interval)
