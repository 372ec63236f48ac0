"""A simulated fleet of compute hosts for tests, benchmarks and demos (not for production).

- :func:`make_conf`: a private ConfigOpts with every tclouds and oslo.messaging option,
  RabbitMQ on 127.0.0.1 and unique topics and exchange, so concurrent runs on one broker
  never consume each other's messages (RabbitMQ names queues by topic, whatever the
  exchange).
- :class:`SimHost`: one swtpm (manufactured by a local CA, or bare) with the simulated
  measured boot and IMA list of :mod:`.agent.simulated_boot` applied, and its agent.
- :class:`Fleet`: a store, registrar and verifier workers over one database, plus hosts,
  each enrolled with its EK by default, as an operator does before a host registers.
- :func:`admit_host`: a registration made active directly in a store, without a TPM (API
  and scheduling tests that need a registered host, not a registration).
"""
import concurrent.futures
import hashlib
import os
import uuid

from oslo_config import cfg
import oslo_messaging as messaging

from tclouds_openstack.attestation.agent import agent as agent_mod
from tclouds_openstack.attestation.agent import simulated_boot
from tclouds_openstack.attestation.agent import swtpm as swtpm_mod
from tclouds_openstack.attestation.agent import tpm_device
from tclouds_openstack.attestation.appraisal import measured_boot
from tclouds_openstack.attestation.appraisal import policy as pol
from tclouds_openstack.attestation.service import registrar as registrar_mod
from tclouds_openstack.attestation.service import store as store_mod
from tclouds_openstack.attestation.service import verifier as verifier_mod
from tclouds_openstack.common import messaging as common_messaging
from tclouds_openstack import conf as tconf
from tclouds_openstack.tpm import eventlog
from tclouds_openstack.tpm import ima
from tclouds_openstack.tpm import structures

RABBIT = 'rabbit://guest:guest@127.0.0.1:5672/'
OWNER = '77fa9abd-0359-4d32-bd60-28f4e78f784b'


def make_conf(connection, **attestation):
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    common_messaging.register_opts(conf)
    conf([], project='tclouds-test', default_config_files=[])
    conf.set_override('transport_url', RABBIT)
    # RabbitMQ queues are named by topic, whatever the exchange: every test gets its own
    # topics so concurrent runs on the same broker never consume each other's messages
    unique = uuid.uuid4().hex[:12]
    conf.set_override('control_exchange', 'tclouds-test-%s' % unique)
    conf.set_override('agent_topic', 'tclouds-attestation-agent-%s' % unique,
                      group='attestation')
    conf.set_override('registrar_topic', 'tclouds-attestation-%s' % unique,
                      group='attestation')
    conf.set_override('topics', ['notifications-%s' % unique],
                      group='oslo_messaging_notifications')
    conf.set_override('connection', connection, group='attestation')
    conf.set_override('require_ek_certificate', True, group='attestation')
    for key, value in attestation.items():
        conf.set_override(key, value, group='attestation')
    return conf


def transport(conf):
    return common_messaging.get_transport(conf)


def signature_list(*certs):
    return measured_boot.signature_list([(OWNER, c) for c in certs])


def simulated(**overrides):
    kwargs = dict(pk=signature_list(b'P' * 40), kek=signature_list(b'K' * 40),
                  db=signature_list(b'D' * 40), dbx=signature_list(b'X' * 32))
    kwargs.update(overrides)
    return simulated_boot.measured_boot(**kwargs)


def golden_policy_documents(uefi_log=None, refstate=None):
    """Policies a freshly booted SimHost passes (simulated boot, or ``uefi_log``)."""
    if uefi_log is None:
        mb = simulated()
        log, pcrs = mb.log, mb.pcrs
    else:
        log, pcrs = uefi_log, eventlog.replay(eventlog.parse_eventlog(uefi_log))
    measured = simulated_boot.ima_measurements(pcrs)
    refstate = refstate or measured_boot.create_refstate(eventlog.parse_eventlog(log))
    runtime = pol.create_runtime_policy(measured.entries, excludes=['/var/log/.*'])
    return {'tpm_policy': {}, 'runtime_policy': runtime, 'mb_refstate': refstate}


def admit_host(store, name, ek_public=None, ak_name=None):
    """Enrol, register and activate ``name`` in ``store`` (what the registrar and an admin do).

    No TPM: ``ek_public`` stands for the EK (default: derived from the name), its hash is
    its SHA-256. Returns the AK name recorded.
    """
    ek_public = ek_public or ('ek-of-%s' % name).encode()
    ek_sha256 = hashlib.sha256(ek_public).hexdigest()
    ak_name = ak_name or hashlib.sha256(b'ak-of-' + name.encode()).hexdigest() + '000b'
    digest = hashlib.sha256(b'challenge-of-' + name.encode()).hexdigest()
    store.enrol(name, ek_sha256)
    store.register(name, ek_public, ek_sha256, None, b'ak', ak_name, digest)
    store.activate(name, ak_name, digest)
    return ak_name


class SimHost(object):
    """A simulated compute host: swtpm + its boot measurements + an agent."""

    def __init__(self, name, conf, trans, ca, workdir, uefi_log=None):
        self.name = name
        self.conf = conf
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.tpm = swtpm_mod.Swtpm(os.path.join(self.dir, 'tpm'), ca=ca).start()
        self.uefi = os.path.join(self.dir, 'binary_bios_measurements')
        self.ima = os.path.join(self.dir, 'ascii_runtime_measurements')
        self.agent = agent_mod.Agent(conf, trans, host=name, tcti=self.tpm.tcti,
                                     state_dir=os.path.join(self.dir, 'agent'),
                                     uefi_eventlog=self.uefi, ima_log=self.ima)
        self.boot(uefi_log)

    def boot(self, uefi_log=None, **overrides):
        """Measure a boot: the simulated one, or the recorded ``uefi_log`` replayed."""
        self._measure(self.agent.device(), uefi_log, overrides)

    def _measure(self, device, uefi_log, overrides):
        if uefi_log is None:
            mb = simulated(**overrides)
            log, extends, pcrs = mb.log, mb.extends, mb.pcrs
        else:
            parsed = eventlog.parse_eventlog(uefi_log)
            log, pcrs = uefi_log, eventlog.replay(parsed)
            extends = [(e.pcr_index, dict(e.digests)) for e in parsed.events[1:]
                       if e.event_type != eventlog.EV_NO_ACTION]
        measured = simulated_boot.ima_measurements(pcrs)
        with open(self.uefi, 'wb') as f:
            f.write(log)
        with open(self.ima, 'w') as f:
            f.write(measured.text)
        for pcr, digests in extends + measured.extends:
            device.pcr_extend(pcr, digests)

    def ek_sha256(self):
        """The hash under which an operator enrols this host's EK."""
        ek = structures.parse_tpm2b_public(self.agent.device().ek_public())
        return registrar_mod.key_sha256(ek.public_key())

    def reboot(self, orderly=True, **overrides):
        """Reboot: a TPM reset, then the new boot measured, while the agent answers nothing.

        A real host's agent does not run while the host boots; here a quote request waits
        on the agent's TPM lock until the new boot is measured (a quote of a half-measured
        boot would be a false "untrusted"). ``orderly`` False: a power loss.
        """
        with self.agent._lock:      # what Agent.device() takes
            device, self.agent._device = self.agent._device, None
            if device is not None:
                device.close()
            self.tpm.reboot(orderly=orderly)
            with tpm_device.TPMDevice(self.tpm.tcti) as device:
                self._measure(device, None, overrides)

    def run_file(self, path, contents):
        """The kernel measures a file: IMA entry appended, PCR 10 extended."""
        entry = ima.make_entry(path, hashlib.sha256(contents).digest())
        with open(self.ima, 'a') as f:
            f.write(ima.format_entry(entry) + '\n')
        self.agent.device().pcr_extend(entry.pcr, ima.template_hashes(entry))

    def stop(self):
        self.agent.stop()
        self.tpm.stop(keep_state=True)


class Fleet(object):
    def __init__(self, conf, workdir, ca):
        self.conf = conf
        self.workdir = workdir
        self.ca = ca
        self.transport = transport(conf)
        self.store = store_mod.Store(conf.attestation.connection)
        self.store.migrate()
        self.hosts = {}
        self.servers = []
        self.verifiers = []
        self.events = []
        self.listener = None

    def start_registrar(self, bundle, require_ek_certificate=True, allow_unenrolled=True):
        registrar = registrar_mod.Registrar(self.store, bundle, require_ek_certificate,
                                            'default', allow_unenrolled=allow_unenrolled)
        target = messaging.Target(topic=self.conf.attestation.registrar_topic,
                                  server='registrar')
        server = messaging.get_rpc_server(self.transport,
                                          target, [verifier_mod.RegistrarEndpoint(registrar)],
                                          executor='threading')
        server.start()
        self.servers.append(server)
        return registrar

    def listen_notifications(self):
        fleet = self

        class Endpoint(object):
            def info(self, ctxt, publisher_id, event_type, payload, metadata):
                fleet.events.append((publisher_id, event_type, payload))

        ntransport = common_messaging.get_notification_transport(self.conf)
        self.listener = messaging.get_notification_listener(
            ntransport,
            [messaging.Target(topic=self.conf.oslo_messaging_notifications.topics[0])],
            [Endpoint()],
            executor='threading')
        self.listener.start()

    def enrol(self, name, credentials=None):
        """The operator enrols host ``name``'s EK (and credentials) for that name."""
        self.store.enrol(name, self.hosts[name].ek_sha256(), credentials)

    def approve_all(self):
        """Approve every registration awaiting it (benchmarks: hosts registered elsewhere)."""
        for host in self.store.list_hosts():
            if host.registration == 'awaiting_approval':
                self.store.approve(host.name)

    def add_host(self, name, ca=None, register=True, serve=True, enrol=True):
        """A SimHost, enrolled (``enrol``), registered and serving as asked."""
        host = SimHost(name, self.conf, self.transport, ca or self.ca, self.workdir)
        self.hosts[name] = host
        if enrol:
            self.enrol(name)
        if register:
            host.agent.register()
        if serve:
            host.agent.start()
        return host

    def start_verifier(self, worker='worker-1', conf=None):
        conf = conf or self.conf
        notifier = common_messaging.get_notifier(
            conf, 'tclouds-attestation.%s' % worker,
            transport=common_messaging.get_notification_transport(conf))
        verifier = verifier_mod.Verifier(conf, self.store, self.transport, notifier=notifier,
                                         worker=worker)
        self.verifiers.append(verifier)
        return verifier.start(tick=0.1)

    def status(self, name):
        return self.store.get_host(name).status

    def close(self):
        for verifier in self.verifiers:
            verifier._stop.set()
        # stopping an oslo.messaging server takes a poll period: stop them all at once
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            jobs = [pool.submit(v.stop) for v in self.verifiers]
            jobs += [pool.submit(h.stop) for h in self.hosts.values()]
            jobs += [pool.submit(lambda s=s: (s.stop(), s.wait())) for s in self.servers]
            if self.listener is not None:
                jobs.append(pool.submit(lambda: (self.listener.stop(), self.listener.wait())))
            for job in jobs:
                try:
                    job.result()
                except Exception:  # teardown must stop every swtpm even if one agent fails
                    pass
        for host in self.hosts.values():
            host.tpm.stop(keep_state=True)
        self.transport.cleanup()
