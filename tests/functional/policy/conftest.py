"""The tclouds APIs over real HTTP behind keystonemiddleware, validating the personas' tokens.

``apis`` (module scope) serves the attestation API (with the trust requirements routes it
carries) and the secure log API from real stores, configured as in a deployment: ``[api]
auth_strategy = keystone`` and a ``[keystone_authtoken]`` section whose service user
validates each token with the personas' Keystone. Nothing in the requests says who the
caller is but the token.

The stores hold objects of both projects and of the operator:

- hosts ``compute-1`` (trusted, with history) ... and an appraisal policy ``golden`` with
  reference PCR values;
- trust requirements of projects A and B;
- secure log records of projects A, B, a third project C and the operator (no tenant),
  each payload naming its owner (``secret-of-<owner>``), so a leak shows in any answer;
- Nova's answer for two servers, ``server-a`` in project A and ``server-b`` in project B
  (the tenant view asks Nova which project and host a server has: here a table, the
  real-Nova version of the seam is tests/functional/attestation/test_tenant_view.py);
- for the key release API: the ``host`` persona's credential enrolled for ``compute-1``, a
  volume key of project A in the key store and Cinder's answer for its volume ``vol-a``,
  attached to ``compute-1`` (a table; the real-Cinder version of the seam is
  tests/functional/keymgr/test_volume_release.py).
"""
import contextlib

import oslo_messaging
import pytest
import requests

from tclouds_openstack.attestation.service import api as attestation_api
from tclouds_openstack.attestation.service import store as attestation_store
from tclouds_openstack.attestation import simfleet
from tclouds_openstack.common import policy
from tclouds_openstack.requirements import store as requirements_store
from tclouds_openstack.securelog import api as securelog_api
from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import source as srcmod
from tclouds_openstack.securelog import store as securelog_store
from tests.functional import wsgi_thread

GOLDEN_PCR = 'ab' * 32


class NovaAnswers(object):
    """What Nova answers the attestation API about servers (project, host, hostId)."""

    def __init__(self, servers):
        self.servers = servers      # server id -> (project_id, name, host, host_id)

    def server(self, server_id):
        found = self.servers.get(server_id)
        return None if found is None else (found[0], found[2], found[3])

    def project_servers(self, project_id):
        return [(sid, name, host, host_id)
                for sid, (project, name, host, host_id) in sorted(self.servers.items())
                if project == project_id]


def add_host(store, name, status='trusted'):
    """Admit ``name`` (enrolled EK ``ek-<name>``, active AK) with two verdicts in its history."""
    simfleet.admit_host(store, name, ek_public=('ek-%s' % name).encode())
    store.save_verdict(name, 'untrusted', ['PCR 4: unknown kernel'],
                       attestation_store.utcnow(), 'worker-1')
    store.save_verdict(name, status, [], attestation_store.utcnow(), 'worker-1')


class CinderAnswers(object):
    """What Cinder answers the key release API about volumes (common.cinder.Volume)."""

    def __init__(self, volumes):
        self.volumes = volumes

    def volume(self, volume_id):
        return self.volumes.get(volume_id)


class Apis(object):
    """Base URLs of the running APIs and the objects in their stores."""

    def __init__(self, personas, tmp):
        self.personas = personas
        self.tmp = tmp
        self.servers = contextlib.ExitStack()
        (tmp / 'master.key').write_text('ab' * 32)
        self.conf = conf = personas.api_conf(tmp, (
            '[attestation]\nconnection = sqlite:///%(tmp)s/attestation.sqlite\n'
            'max_verdict_age = 3600\n'
            '[tclouds_key_manager]\nlocal_store_path = %(tmp)s/keys.sqlite\n'
            'master_key_file = %(tmp)s/master.key\n') % {'tmp': tmp})
        self.project = {name: personas.project_id(name) for name in ('A', 'B', 'admin')}
        self.project['C'] = 'c0ffee' * 5 + 'cc'

        self.attestation_store = store = attestation_store.Store(conf.attestation.connection)
        store.migrate()
        add_host(store, 'compute-1')
        add_host(store, 'compute-2', status='untrusted')
        store.create_policy('golden', '{"4": ["%s"]}' % GOLDEN_PCR, None, None)
        self.nova = NovaAnswers({
            'server-a': (self.project['A'], 'vm-of-a', 'compute-1', 'hostid-a'),
            'server-b': (self.project['B'], 'vm-of-b', 'compute-2', 'hostid-b'),
        })
        policy.reset()
        self.attestation = self._serve(attestation_api.create_app(conf, store,
                                                                  compute=self.nova))
        requirements = requirements_store.Store(conf.attestation.connection)
        requirements.put(self.project['A'], True, ['EU'], 'setup')
        requirements.put(self.project['B'], False, ['US'], 'setup')

        self.securelog_store = log = securelog_store.SecureLogStore(
            'sqlite:///%s' % (tmp / 'securelog.sqlite'), str(tmp / 'log-state'),
            origin='matrix.example/log', checkpoint_interval=3600)
        src = srcmod.Source('nova@ctl', str(tmp / 'src'))
        owners = [('A', self.project['A']), ('B', self.project['B']),
                  ('C', self.project['C']), ('operator', '')]
        events = [({'event_type': 'compute.instance.create.end', 'n': i,
                    'note': 'secret-of-%s' % owner}, tenant)
                  for i in range(3) for owner, tenant in owners]
        sealed = src.seal(events)
        # the ingester appends only entries of enrolled sources (their K0, from src/auditor)
        log.enroll_source(src.name, keyfiles.read_k0(src.k0_path()))
        log.append(sealed)
        log.checkpoint()
        self.record_of = {}         # owner -> index of one of its records
        for index, (event, _) in enumerate(events):
            self.record_of.setdefault(event['note'][len('secret-of-'):], index)
        transport = oslo_messaging.get_notification_transport(conf, url='fake://')
        self.notifier = oslo_messaging.Notifier(transport, publisher_id='securelog-api',
                                                driver='test')
        self.securelog = self._serve(securelog_api.build_app(conf, log, self.notifier))
        self.keymgr = self._serve_key_release(conf, personas, tmp)

    def _serve_key_release(self, conf, personas, tmp):
        from tclouds_openstack.attestation.backends import tclouds as tclouds_backend
        from tclouds_openstack.attestation import client as attestation_client
        from tclouds_openstack.common import cinder
        from tclouds_openstack.common import context
        from tclouds_openstack.keymgr import api as keymgr_api
        from tclouds_openstack.keymgr import driver
        from tclouds_openstack.keymgr import release
        store = self.attestation_store
        store.enrol('compute-1', store.get_host('compute-1').ek_sha256,
                    [personas.user_id('host')])
        manager = driver.LocalKeyManager(conf)
        self.keystore = manager.keystore
        self.key_id = manager.create_key(context.RequestContext(project_id=self.project['A']))
        volumes = CinderAnswers({'vol-a': cinder.Volume(
            id='vol-a', project_id=self.project['A'], status='in-use',
            encryption_key_id=self.key_id, attachments=(cinder.Attachment(
                id='att-a', status='attached', instance_id='server-a', host='compute-1'),))})
        service = attestation_client.AttestationClient(personas.session('service'),
                                                       endpoint_override=self.attestation)
        self.gate = release.Gate(conf, backend=tclouds_backend.TCloudsBackend(conf, service),
                                 notifier=self.notifier, cinder=volumes, compute=self.nova)
        return self._serve(keymgr_api.build_app(conf, gate=self.gate, manager=manager))

    def _serve(self, app):
        return self.servers.enter_context(wsgi_thread.serving(app))

    def stop(self):
        self.servers.close()
        policy.reset()

    def call(self, persona, method, url, body=None):
        """(status, JSON body or None) of a request with ``persona``'s token (None: none)."""
        headers = {} if persona is None else self.personas.headers(persona)
        resp = requests.request(method, url, headers=headers, json=body, timeout=120)
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, None


@pytest.fixture(scope='module')
def apis(personas, tmp_path_factory):
    running = Apis(personas, tmp_path_factory.mktemp('apis'))
    try:
        yield running
    finally:
        running.stop()
