"""Demo chapter: attested compute hosts and attestation-gated key release (data flows 1, 2).

Flow 1: the operator enrols each compute host (its name, its TPM's EK hash and the
Keystone ID of its own credential); swtpm-backed compute hosts register with the
attestation service over the message bus (EK certificate chain, AK activation by
MakeCredential/ActivateCredential); a TPM claiming a name enrolled for another is refused;
the verifier attests them on its schedule with a fresh nonce per round and stores each
verdict with its reasons (sqlite); the attestation API serves the verdicts, read back
through the project's client as a Nova filter or the key service reads them.

Flow 2: Cinder creates a volume key through the ``tclouds`` castellan driver (role
controller, embedded encrypted key store); the compute host the volume is attached to asks
the key release API for it with the compute-role driver, naming the volume. The key is
released only to an enrolled host credential whose host has a fresh ``trusted`` verdict
and to which Cinder shows the volume attached: the tampered host, a credential nobody
enrolled (whatever its name), a caller that is not a host, a host the volume is not
attached to and a host whose last verdict is too old are refused, each with the reason.

Everything runs in this process: the real registrar, verifier, agents, attestation API,
key release API and castellan driver, over oslo.messaging's in-process ``fake://``
transport (no broker) and loopback HTTP. The APIs run with ``[api] auth_strategy =
noauth``: the X-User-*/X-Roles headers each client sends stand in for the Keystone token
keystonemiddleware would validate. There is no Nova or Cinder: the demo calls the
castellan driver as they would, and a table answers the key release API what Cinder's API
would (which volume has which key, attached to which host). The services' notifications
(``attestation.host.*``, ``keymgr.key.*``) are received on the bus and sealed into the
demo's secure log.
"""
import hashlib
import logging
import os
import re
import threading
import time
import traceback
import uuid

from castellan.common import exception as castellan_exc
from keystoneauth1 import session as ks_session
from oslo_config import cfg
import oslo_messaging as messaging

from tclouds_openstack.attestation.agent import swtpm as swtpm_mod
from tclouds_openstack.attestation.backends import base
from tclouds_openstack.attestation.backends import tclouds as tclouds_backend
from tclouds_openstack.attestation import client as attestation_client
from tclouds_openstack.attestation.service import api as attestation_api
from tclouds_openstack.attestation.service import verifier as verifier_mod
from tclouds_openstack.attestation import simfleet
from tclouds_openstack.common import cinder as cinder_mod
from tclouds_openstack.common import context as tc_context
from tclouds_openstack.common import messaging as common_messaging
from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack import conf as tconf
from tclouds_openstack.keymgr import api as keymgr_api
from tclouds_openstack.keymgr import driver
from tclouds_openstack.keymgr import release

TITLE = 'Attested hosts and attestation-gated volume keys (data flows 1 and 2)'
TAMPERED_KERNEL = b'simulated vmlinuz-6.1.0 with a rootkit'
BUS = 'fake://'
# The verifier attests every host each INTERVAL seconds (plus up to 20 % jitter). The
# attestation service turns a silent host unknown after ATTESTATION_MAX_AGE; the key
# service asks for fresher evidence: a verdict older than KEY_MAX_AGE releases nothing.
INTERVAL = 1.0
ATTESTATION_MAX_AGE = 60
KEY_MAX_AGE = 4
RPC_TIMEOUT = 2.0
WAIT = 30
PROJECT = 'demo-project'
VOLUME = 'volume-demo'
HOST_ROLE = 'tclouds_host'


def _short(reason):
    """A reason with its SHA-256 digests cut to 12 hex digits (table and key lines)."""
    return re.sub(r'\b([0-9a-f]{12})[0-9a-f]{52}\b', r'\1...', reason)


def _headers(user, roles, project='service', user_id=None):
    """What keystonemiddleware would put in the request for a validated token (noauth)."""
    return {'X-User-Id': user_id or 'id-%s' % user, 'X-User-Name': user,
            'X-User-Domain-Id': 'default', 'X-Project-Id': project, 'X-Roles': roles}


def _session(user, roles, project='service'):
    return ks_session.Session(additional_headers=_headers(user, roles, project))


class DemoCinder(object):
    """What Cinder's API would tell the key release API about the demo volume.

    The demo runs no Cinder: Nova attaching the volume to a host is a new attachment here.
    """

    def __init__(self):
        self.volumes = {}

    def attach(self, volume_id, key_id, project, host):
        self.volumes[volume_id] = cinder_mod.Volume(
            id=volume_id, project_id=project, status='in-use', encryption_key_id=key_id,
            attachments=(cinder_mod.Attachment(id='attachment-%s' % host, status='attached',
                                               instance_id='server-demo', host=host),))

    def volume(self, volume_id):
        return self.volumes.get(volume_id)


def _conf(**options):
    """A service's own configuration: every tclouds and oslo.messaging option.

    ``options`` maps 'group.option' (group DEFAULT for oslo.messaging's transport) to a
    value.
    """
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    common_messaging.register_opts(conf)
    conf([], project='tclouds-demo', default_config_files=[])
    for name, value in options.items():
        group, option = name.split('.')
        conf.set_override(option, value, group=None if group == 'DEFAULT' else group)
    return conf


class Announcements(object):
    """The notifications the services send on the bus (``info`` and ``warn``).

    What the secure log's collector receives in production; the demo seals them.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._events = []
        self._taken = set()

    def _add(self, publisher_id, event_type, payload):
        with self._lock:
            self._events.append((publisher_id, event_type, payload))

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._add(publisher_id, event_type, payload)

    def warn(self, ctxt, publisher_id, event_type, payload, metadata):
        self._add(publisher_id, event_type, payload)

    def take(self, prefix, match, timeout=10):
        """The first notification not taken yet with this type prefix and payload.

        Waits up to ``timeout`` seconds; None when none came.
        """
        def find():
            with self._lock:
                for i, (_, event_type, payload) in enumerate(self._events):
                    if i not in self._taken and event_type.startswith(prefix) \
                            and match(payload):
                        self._taken.add(i)
                        return event_type, payload
            return None
        return verifier_mod.wait_for(find, timeout, step=0.02)


class Servers(object):
    """Loopback HTTP servers of the APIs, each on its thread; all stopped by close()."""

    def __init__(self):
        self._running = []

    def serve(self, app):
        server = wsgi.make_server(app, '127.0.0.1', 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True,
                                  name='demo-api-%d' % server.server_port)
        thread.start()
        self._running.append((server, thread))
        return 'http://127.0.0.1:%d' % server.server_port

    def close(self):
        while self._running:
            server, thread = self._running.pop()
            server.shutdown()
            server.server_close()
            thread.join(10)


def run(demo):
    # the services log refusals as warnings: the report says it, not stderr
    quiet = logging.NullHandler()
    logging.getLogger('tclouds_openstack').addHandler(quiet)
    swtpms_before = set(swtpm_mod._running)
    started = {'servers': Servers()}
    try:
        _run(demo, started)
    except Exception as exc:
        path = os.path.join(demo.path('keys'), 'error.txt')
        with open(path, 'w') as f:
            f.write(traceback.format_exc())
        demo.report.step('chapter stopped by an unexpected error: %s: %s (details in %s)'
                         % (type(exc).__name__, str(exc).splitlines()[0] if str(exc) else '',
                            path), ok=False)
    finally:
        started['servers'].close()
        if 'listener' in started:
            started['listener'].stop()
            started['listener'].wait()
        if 'fleet' in started:
            started['fleet'].close()
        # a host whose construction failed half-way still had its swtpm started
        for tpm in set(swtpm_mod._running) - swtpms_before:
            tpm.stop(keep_state=True)
        policy.reset()
        logging.getLogger('tclouds_openstack').removeHandler(quiet)


def _run(demo, started):
    """The chapter; what it starts goes into ``started`` for run() to stop."""
    report, servers = demo.report, started['servers']
    start = len(demo.recorded)
    state = demo.path('attestation')
    state_file = os.path.join(state, 'attestation.sqlite')
    conf = simfleet.make_conf('sqlite:///%s' % state_file, interval=INTERVAL, jitter=0.2,
                              max_verdict_age=ATTESTATION_MAX_AGE, rpc_timeout=RPC_TIMEOUT,
                              concurrency=4)
    conf.set_override('transport_url', BUS)
    conf.set_override('driver', ['messagingv2'], group='oslo_messaging_notifications')
    conf.set_override('auth_strategy', 'noauth', group='api')
    ca = swtpm_mod.LocalCA(os.path.join(state, 'manufacturer-ca'))
    fleet = started['fleet'] = simfleet.Fleet(conf, demo.path('attestation', 'hosts'), ca)

    # The secure log's side of the bus: every notification the services send.
    announcements = Announcements()
    topic = conf.oslo_messaging_notifications.topics[0]
    listener = started['listener'] = messaging.get_notification_listener(
        common_messaging.get_notification_transport(conf), [messaging.Target(topic=topic)],
        [announcements], executor='threading')
    listener.start()
    report.note('attestation service: registrar and verifier on the in-process message bus '
                '(oslo.messaging %s, no broker), verdicts in %s' % (BUS, state_file))

    # The attestation API, and the operator's appraisal policy: the reference boot.
    policy.reset()
    attestation_url = servers.serve(attestation_api.create_app(conf, fleet.store))
    admin = attestation_client.AttestationClient(_session('operator', 'admin'),
                                                 endpoint_override=attestation_url)
    documents = simfleet.golden_policy_documents()
    admin.create_policy('default', **documents)
    report.step('attestation API on %s (noauth); the operator created policy "default" from '
                'the reference boot: %d PCR entries of the measured-boot reference state, '
                '%d files in the IMA allowlist'
                % (attestation_url, len(documents['mb_refstate']),
                   len(documents['runtime_policy'].get('digests', {}))))

    names = ['compute%d' % (i + 1) for i in range(demo.hosts)]
    tampered = names[-1]
    for name in names:
        uefi_log = simfleet.simulated(kernel=TAMPERED_KERNEL).log if name == tampered \
            else None
        fleet.hosts[name] = simfleet.SimHost(name, conf, fleet.transport, ca, fleet.workdir,
                                             uefi_log=uefi_log)
    report.note('started %d swtpm hosts manufactured by a private CA, each with its agent; '
                'measured boot done, %s booted a tampered kernel' % (len(names), tampered))
    # the operator enrols each host: name, its TPM's EK hash, its own credential's ID
    credentials = {name: uuid.uuid4().hex for name in names}
    for name in names:
        fleet.enrol(name, [credentials[name]])
    example = '%s sha256:%s...' % (names[0], fleet.hosts[names[0]].ek_sha256()[:12])
    report.step('the operator enrolled %s: each name bound to its TPM\'s EK (SHA-256 of the '
                'EK public key, e.g. %s) and to the Keystone user ID of the host\'s own '
                'credential' % (', '.join(names), example))
    # the registrar trusts exactly the CA that manufactured these TPMs
    fleet.start_registrar(ca.ca_bundle_pem())
    registered = []
    for name in names:
        host = fleet.hosts[name]
        try:
            host.agent.register()
        except Exception as exc:
            report.step('%s: registration refused: %s' % (name, exc), ok=False)
            continue
        record = fleet.store.get_host(name)
        report.step('%s: registered over the bus: EK certificate chains to the manufacturer '
                    'CA, AK %s... activated (MakeCredential -> ActivateCredential)'
                    % (name, record.ak_name[:16]), ok=record.registration == 'active')
        host.agent.start()
        registered.append(name)
    _rogue(report, fleet, state)
    _impostor(report, fleet, names[0], state)
    if len(registered) < len(names):
        return

    # Flow 1: the verifier attests each host over the bus, stores and notifies the verdicts.
    fleet.start_verifier()
    done = verifier_mod.wait_for(
        lambda: all(fleet.status(n) != base.UNKNOWN for n in names), WAIT)
    if not done:
        report.step('verdicts: not all hosts attested within %d s (%s)' % (WAIT, ', '.join(
            '%s %s' % (n, fleet.status(n)) for n in names)), ok=False)
        return
    for name in names:
        record = fleet.store.get_host(name)
        reasons = verifier_mod.reasons_of(record)
        expected = base.UNTRUSTED if name == tampered else base.TRUSTED
        report.step('%s: attested by the verifier (fresh nonce, quote signed by its registered '
                    'AK, measured boot and IMA against policy "default"): %s'
                    % (name, record.status), ok=record.status == expected,
                    detail='\n'.join(_short(r) for r in reasons) or None)
        _seal(demo, announcements, 'attestation.host.', lambda p, n=name: p['host'] == n,
              '%s: verdict notification' % name)

    # What a Nova filter or the key service sees: the verdicts through the API's client.
    unknown_host = 'compute%d' % (len(names) + 1)
    service = attestation_client.AttestationClient(_session('key-release', 'service'),
                                                   endpoint_override=attestation_url)
    backend = tclouds_backend.TCloudsBackend(conf, client=service)
    verdicts = backend.get_verdicts(names + [unknown_host])
    stored = {n: fleet.status(n) for n in names}
    stored[unknown_host] = base.UNKNOWN
    report.step('read back through the attestation API (GET /v1/verdicts, the "tclouds" '
                'backend of the Nova filter and the key service): %s'
                % ', '.join('%s %s' % (n, v.status) for n, v in verdicts.items()),
                ok={n: v.status for n, v in verdicts.items()} == stored,
                detail='%s: %s' % (unknown_host, '; '.join(verdicts[unknown_host].reasons)))

    # Flow 2: the key release API and the volume key Cinder creates.
    _release_keys(demo, servers, conf, announcements, service, names, tampered, unknown_host,
                  fleet, credentials)
    sealed = demo.recorded[start:]
    report.note('sealed into the demo\'s secure log: %s' % ', '.join(
        '%s x%d' % (event_type, sealed.count(event_type))
        for event_type in sorted(set(sealed))))


def _rogue(report, fleet, state):
    """A TPM from another manufacturer's CA: its EK certificate is refused."""
    rogue_ca = swtpm_mod.LocalCA(os.path.join(state, 'rogue-ca'))
    try:
        fleet.add_host('rogue1', ca=rogue_ca, register=True, serve=False)
    except Exception as exc:
        report.step('rogue1 (TPM certified by another CA): registration refused (%s)'
                    % str(exc).splitlines()[0], ok='EK certificate refused' in str(exc))
        return
    report.step('rogue1 (TPM certified by another CA): REGISTERED (must be refused)', ok=False)


def _impostor(report, fleet, victim, state):
    """Another host's genuine, certified TPM claiming ``victim``'s enrolled name: refused."""
    from tclouds_openstack.attestation.agent import agent as agent_mod
    thief = [name for name in fleet.hosts if name != victim][0]
    fleet.hosts[thief].agent.disconnect()       # swtpm serves one client at a time
    impostor = agent_mod.Agent(fleet.conf, fleet.transport, host=victim,
                               tcti=fleet.hosts[thief].tpm.tcti,
                               state_dir=os.path.join(state, 'impostor'))
    try:
        impostor.register()
    except Exception as exc:
        reason = str(exc).splitlines()[0]
        report.step('%s\'s certified TPM registering as %s: refused (%s)'
                    % (thief, victim, _short(reason)), ok='is enrolled with the EK' in reason)
    else:
        report.step('%s\'s TPM registered as %s: ACCEPTED (must be refused)'
                    % (thief, victim), ok=False)
    finally:
        impostor.disconnect()


def _seal(demo, announcements, prefix, match, what):
    """Seal the service's notification into the demo's secure log; its event type."""
    found = announcements.take(prefix, match)
    if found is None:
        demo.report.step('%s: no %s* notification received on the bus' % (what, prefix),
                         ok=False)
        return None
    event_type, payload = found
    demo.record(event_type, payload)
    return event_type, payload


def _release_keys(demo, servers, conf, announcements, service, names, tampered, unknown_host,
                  fleet, credentials):
    report = demo.report
    keys = demo.path('keys')
    master = os.path.join(keys, 'master.key')
    fd = os.open(master, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(os.urandom(32).hex())
    key_conf = _conf(**{
        'DEFAULT.transport_url': BUS,
        'DEFAULT.control_exchange': conf.control_exchange,
        'oslo_messaging_notifications.driver': ['messagingv2'],
        'oslo_messaging_notifications.topics': conf.oslo_messaging_notifications.topics,
        'api.auth_strategy': 'noauth',
        'tclouds_key_manager.local_store_path': os.path.join(keys, 'keys.sqlite'),
        'tclouds_key_manager.master_key_file': master,
        'tclouds_key_manager.max_verdict_age': KEY_MAX_AGE,
        'attestation.max_verdict_age': ATTESTATION_MAX_AGE})
    # production: the backend's client authenticates with [attestation_client]; noauth: the
    # key service's identity headers (role service) instead of its token
    backend = tclouds_backend.TCloudsBackend(key_conf, client=service)
    cinder_api = DemoCinder()
    gate = release.Gate(key_conf, backend=backend, cinder=cinder_api)
    key_url = servers.serve(keymgr_api.build_app(key_conf, gate=gate))
    report.note('key release API on %s (noauth), key store %s; it releases a volume\'s key '
                'only to the enrolled host credential of a host with a trusted verdict younger '
                'than %d s, to which Cinder shows the volume attached'
                % (key_url, keys, KEY_MAX_AGE))

    # Cinder creates the volume key through castellan (driver tclouds, role controller).
    cinder = driver.TcloudsKeyManager(key_conf)
    owner = tc_context.RequestContext(user_id='demo-user', project_id=PROJECT)
    key_id = cinder.create_key(owner, 'AES', 256, name='volume-demo encryption key')
    secret = cinder.get(owner, key_id).get_encoded()
    report.step('Cinder (castellan driver "tclouds", role controller) created the key %s of '
                '%s (AES-256, fingerprint sha256:%s...) in the encrypted local store'
                % (key_id, VOLUME, hashlib.sha256(secret).hexdigest()[:12]))

    rows = []

    def ask(caller, host, expect, label=None, user_id=None, roles=HOST_ROLE, attached=None):
        """nova-compute on ``host`` attaches the volume: the driver asks for its key.

        Nova attached the volume to ``attached`` (default ``host``); the castellan driver
        (role compute) asks the key release API, authenticated as ``caller`` (Keystone ID
        ``user_id``); ``expect`` is None for a release, else a part of the refusal reason.
        """
        cinder_api.attach(VOLUME, key_id, PROJECT, attached or host)
        compute_conf = _conf(**{'tclouds_key_manager.role': 'compute',
                                'tclouds_key_manager.release_endpoint_override': key_url,
                                'tclouds_key_manager.release_timeout': 10.0})
        manager = driver.TcloudsKeyManager(compute_conf)
        # production: the session of this host's own Keystone credential
        # ([tclouds_key_manager] keystoneauth options); noauth: its identity headers
        manager.client.http.session.additional_headers.update(
            _headers(caller, roles, 'service' if host else PROJECT, user_id))
        try:
            key = manager.get_volume_key(owner, VOLUME, key_id)
            outcome = 'released' if key.get_encoded() == secret else 'WRONG KEY'
            refusal = None
        except castellan_exc.Forbidden as exc:
            outcome, refusal = 'refused', str(exc)
        except castellan_exc.KeyManagerError as exc:
            outcome, refusal = 'error', str(exc)
        sealed = _seal(demo, announcements, 'keymgr.key.',
                       lambda p: p.get('user_name') == caller and p.get('subject') == key_id,
                       '%s: key release decision' % caller)
        payload = sealed[1] if sealed else {}
        reason = _short(payload.get('reason') or refusal or '')
        who = host or '%s (not a host)' % caller
        text = label or who
        if outcome == 'released':
            report.step('%s: got the volume key (identical to the one Cinder stored): %s'
                        % (text, reason), ok=expect is None)
        elif outcome == 'refused':
            report.step('%s: key refused: %s' % (text, reason),
                        ok=expect is not None and expect in reason)
        else:
            report.step('%s: key release failed: %s' % (text, refusal), ok=False)
        rows.append((who, payload.get('verdict_status') or '-', outcome,
                     reason if len(reason) <= 110 else reason[:107] + '...'))

    def host_ask(name, expect, label=None, attached=None):
        ask('tclouds-host-%s' % name, name, expect, label, user_id=credentials[name],
            attached=attached)

    trusted = [n for n in names if n != tampered]
    for name in trusted:
        host_ask(name, None)
    host_ask(tampered, 'is untrusted')
    # a credential nobody enrolled, named like a host credential and holding the host role
    ask('tclouds-host-%s' % unknown_host, unknown_host, 'stands for no enrolled compute host',
        label='a user named tclouds-host-%s with the host role, not enrolled'
        % unknown_host)
    ask('demo-user', None, 'not a compute host credential', roles='member,reader',
        label='demo-user (a project member, not a compute host credential)')
    if len(trusted) > 1:
        host_ask(trusted[0], 'is not attached to host %s' % trusted[0],
                 label='%s, volume attached to %s' % (trusted[0], trusted[1]),
                 attached=trusted[1])

    # A host that can no longer be attested: its last verdict ages past the key service's
    # bound; it stays "trusted" in the attestation service (limit ATTESTATION_MAX_AGE).
    silent = trusted[-1]
    fleet.hosts[silent].agent.stop()
    report.note('%s\'s agent stops answering (the host is cut off from the bus): the '
                'verifier\'s quote requests time out and its last verdict is not renewed (the '
                'attestation service keeps it trusted up to %d s)' % (silent, ATTESTATION_MAX_AGE))
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        age = backend.get_verdicts([silent])[silent].age()
        # a whole second past the bound, so that the rounded age in the reason shows it
        if age is not None and age >= KEY_MAX_AGE + 1:
            break
        time.sleep(min(1.0, max(0.1, KEY_MAX_AGE + 1 - (age or 0))))
    host_ask(silent, 'is stale', label='%s, %.0f s after its last verdict' % (silent, age or 0))
    if trusted[0] != silent:
        host_ask(trusted[0], None, label='%s, attested again meanwhile' % trusted[0])
    report.table(['host', 'verdict', 'key release', 'reason'], rows)
