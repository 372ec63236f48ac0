"""Registration bound by the operator, attacked over real RabbitMQ with real swtpm TPMs.

The message bus authenticates nobody: any participant can send the registrar a
registration. These attacks must all fail, each with a reason in the refusal and the log:

- host B's certified TPM registers under a name enrolled for another TPM;
- one EK claims a second name;
- a host's public EK and EK certificate are replayed with another AK, to put the active
  host back to "pending" (verdict unknown, keys and scheduling stopped);
- a name nobody enrolled registers and waits, never attested, until an admin approves it
  (or is refused outright with ``[attestation] unenrolled_registration = refuse``).
"""
import json
import logging
import os

import pytest

from tclouds_openstack.attestation.agent import agent as agent_mod
from tclouds_openstack.attestation.agent import tpm_device
from tclouds_openstack.attestation import rpcapi
from tclouds_openstack.attestation.service import api
from tclouds_openstack.cmd import attestation_agent
from tclouds_openstack.common import exception
from tests.functional.attestation import conftest as fx
from tests.functional.tpm.conftest import tpm2_tools  # noqa: F401
from tests.watchdog import wait_for  # no time limit: see tests/watchdog.py

MAX_AGE = 30


@pytest.fixture
def fleet(tmp_path, local_ca):  # noqa: F811
    conf = fx.make_conf('sqlite:///%s' % (tmp_path / 'a.sqlite'), interval=1.0, jitter=0.2,
                        max_verdict_age=MAX_AGE, rpc_timeout=3.0)
    fleet = fx.Fleet(conf, str(tmp_path), local_ca)
    try:
        yield fleet
    finally:
        fleet.close()


def start(fleet, local_ca, first='compute-b', **registrar):
    """The first host (whose swtpm makes the local CA), then the registrar trusting it."""
    host = fleet.add_host(first, register=False, serve=False)
    fleet.start_registrar(local_ca.ca_bundle_pem(), **registrar)
    return host


def impostor(fleet, tpm_of, name, tmp_path):
    """An agent claiming ``name`` with the (certified) TPM of host ``tpm_of``."""
    tpm_of.agent.disconnect()       # swtpm serves one client at a time
    return agent_mod.Agent(fleet.conf, fleet.transport, host=name, tcti=tpm_of.tpm.tcti,
                           state_dir=str(tmp_path / ('impostor-%s' % name)))


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def refused(agent):
    """(the refusal the agent got, what the registrar logged meanwhile)."""
    logger = logging.getLogger('tclouds_openstack.attestation.service.registrar')
    lines = _Lines()
    logger.addHandler(lines)
    # a module imported earlier in the process (Keylime's logging setup) may have disabled
    # the loggers that existed then
    disabled, logger.disabled = logger.disabled, False
    try:
        with pytest.raises(Exception) as exc:
            agent.register()
    finally:
        logger.disabled = disabled
        logger.removeHandler(lines)
        agent.disconnect()
    return str(exc.value), '\n'.join(lines.lines)


def test_certified_tpm_of_another_host_cannot_take_an_enrolled_name(fleet, local_ca,
                                                                    tmp_path):
    b = start(fleet, local_ca)
    assert b.agent.register() == 'active'
    new = fleet.add_host('compute-new', register=False, serve=False)     # enrolled, its EK
    reason, log = refused(impostor(fleet, b, 'compute-new', tmp_path))
    expected = ('host compute-new is enrolled with the EK sha256:%s, not with this TPM\'s '
                'EK sha256:%s' % (new.ek_sha256(), b.ek_sha256()))
    assert expected in reason and expected in log
    assert [h.name for h in fleet.store.list_hosts()] == ['compute-b']
    # the real compute-new is not locked out
    assert new.agent.register() == 'active'


def test_one_ek_cannot_claim_a_second_name(fleet, local_ca, tmp_path):
    b = start(fleet, local_ca)
    b.agent.register()
    reason, log = refused(impostor(fleet, b, 'compute-x', tmp_path))
    expected = ('this TPM\'s EK (sha256:%s) is enrolled for host compute-b, not compute-x'
                % b.ek_sha256())
    assert expected in reason and expected in log
    # a TPM registered (not enrolled yet) under one name cannot take another either
    c = fleet.add_host('compute-c', register=False, serve=False, enrol=False)
    assert c.agent.register() == 'awaiting_approval'
    reason, _ = refused(impostor(fleet, c, 'compute-y', tmp_path))
    assert 'is registered as host compute-c: one TPM is one host' in reason
    assert sorted(h.name for h in fleet.store.list_hosts()) == ['compute-b', 'compute-c']


def test_replayed_ek_with_another_ak_leaves_the_active_host_trusted(
        fleet, local_ca, tmp_path):
    a = start(fleet, local_ca, first='compute-a')
    a.agent.register()
    a.agent.start()
    fleet.store.create_policy('default', **{k: json.dumps(v) for k, v in
                                            fx.golden_policy_documents().items()})
    fleet.start_verifier()
    assert wait_for(lambda: fleet.status('compute-a') == 'trusted', 30)
    before = fleet.store.get_host('compute-a')

    # the attacker replays compute-a's public EK and certificate with an AK of its own TPM
    a_ek = a.agent.device().ek_public()
    a_cert = a.agent.device().ek_certificate()
    attacker = fleet.add_host('attacker', register=False, serve=False, enrol=False)
    attacker_ak, _ = attacker.agent.load_or_create_ak()
    registrar = rpcapi.RegistrarAPI(fleet.transport, topic=fleet.conf.attestation.registrar_topic)
    id_object, encrypted_secret = registrar.register('compute-a', a_ek, a_cert,
                                                     attacker_ak.public)
    # it cannot open the credential, made for compute-a's EK: a guess is refused
    with pytest.raises(Exception) as exc:
        attacker.agent.device().activate_credential(attacker_ak, id_object, encrypted_secret)
    with pytest.raises(Exception) as exc:
        registrar.activate('compute-a', attacker_ak.name, os.urandom(32))
    assert 'the activation proof does not match' in str(exc.value)

    host = fleet.store.get_host('compute-a')
    assert (host.registration, host.ak_name, host.status) == (
        'active', before.ak_name, 'trusted')
    assert host.pending_ak_name == attacker_ak.name.hex()
    # still attested with its own AK, still trusted as consumers (key release) see it
    assert wait_for(lambda: fleet.store.get_host('compute-a').verified_at
                    > before.verified_at, 10)
    host = fleet.store.get_host('compute-a')
    assert api.effective_verdict(host, MAX_AGE) == ('trusted', [])

    # the genuine agent, after losing its AK, registers a new one: trusted throughout
    a.agent.stop()
    a.agent.state_dir = str(tmp_path / 'compute-a-new-state')
    a.agent.ak = None
    assert a.agent.register() == 'active'
    a.agent.start()
    host = fleet.store.get_host('compute-a')
    assert host.ak_name == a.agent.ak.name.hex() != before.ak_name
    assert (host.registration, host.status, host.pending_ak_name) == ('active', 'trusted',
                                                                      None)
    swapped = host.activated_at
    assert wait_for(lambda: fleet.store.get_host('compute-a').verified_at > swapped, 10)
    assert fleet.status('compute-a') == 'trusted', fleet.store.get_host('compute-a').reasons


def test_unenrolled_name_waits_for_approval(fleet, local_ca, tmp_path):
    b = start(fleet, local_ca)
    b.agent.register()
    fleet.store.create_policy('default', **{k: json.dumps(v) for k, v in
                                            fx.golden_policy_documents().items()})
    fleet.start_verifier()
    new = fleet.add_host('compute-new', register=False, enrol=False)
    assert new.agent.register() == 'awaiting_approval'
    host = fleet.store.get_host('compute-new')
    assert (host.registration, host.ek_sha256) == ('awaiting_approval', new.ek_sha256())
    status, reasons = api.effective_verdict(host, MAX_AGE)
    assert status == 'unknown' and 'awaits an admin\'s approval' in reasons[0]
    # the admin checks the hash against the host's own TPM, then approves
    with pytest.raises(exception.Conflict):
        fleet.store.approve('compute-new', ek_sha256=b.ek_sha256())
    fleet.store.approve('compute-new', ek_sha256=new.ek_sha256())
    assert wait_for(lambda: fleet.status('compute-new') == 'trusted', 30)


def test_refuse_mode_needs_enrolment_first(fleet, local_ca):
    start(fleet, local_ca, allow_unenrolled=False)
    new = fleet.add_host('compute-new', register=False, serve=False, enrol=False)
    reason, log = refused(new.agent)
    assert 'host compute-new is not enrolled' in reason and 'not enrolled' in log
    fleet.enrol('compute-new')
    assert new.agent.register() == 'active'


def test_ek_hash_of_the_agent_matches_the_documented_tools(
        fleet, local_ca, tpm2_tools):  # noqa: F811
    """doc/source/keymgr.rst: what the admin enrols is what tpm2-tools shows on the host."""
    host = start(fleet, local_ca)
    conf = fx.make_conf('sqlite://')
    conf.set_override('host', 'compute-b')
    conf.set_override('tcti', host.tpm.tcti, group='tpm')
    host.agent.disconnect()
    assert attestation_agent.show_ek(conf) == 'compute-b sha256:%s' % host.ek_sha256()
    workdir = os.path.join(fleet.workdir, 'tools')
    os.makedirs(workdir)
    tpm2_tools(host.tpm.tcti, 'tpm2_readpublic', '-c', hex(tpm_device.EK_PERSISTENT_HANDLES[
        'rsa'][0]), '-f', 'der', '-o', 'ek.der', cwd=workdir)
    import hashlib
    with open(os.path.join(workdir, 'ek.der'), 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == host.ek_sha256()


def test_look_alike_names_of_a_host_are_refused(fleet, local_ca, tmp_path):
    """One host, one spelling: variants of compute-b's name are refused, never new hosts.

    On MySQL 'Compute-B' and 'compute-b ' *are* compute-b for Nova and Placement; elsewhere
    a look-alike waits for approval next to the real host and an admin may approve the wrong
    one; a comma splits in the verdict query. The attacker has a certified TPM of its own.
    """
    b = start(fleet, local_ca)
    assert b.agent.register() == 'active'
    attacker = fleet.add_host('attacker', register=False, serve=False, enrol=False)
    for name in ('compute-b ', ' compute-b', 'compute-b\u200b', 'compute-b\n', '\u0441ompute-b',
                 'compute-b,compute-x', 'compute-b:1', 'compute-b\t', '.compute-b'):
        reason, log = refused(impostor(fleet, attacker, name, tmp_path))
        assert '%r is not a compute host name' % name in reason, (name, reason)
        assert 'registration of %r refused' % name in log
    reason, log = refused(impostor(fleet, attacker, 'Compute-B', tmp_path))
    expected = 'host name Compute-B differs from the host compute-b only in letter case'
    assert expected in reason and expected in log
    assert [h.name for h in fleet.store.list_hosts()] == ['compute-b']
    # nor can the operator's enrolment create a second spelling (the API says the same)
    with pytest.raises(exception.Conflict):
        fleet.store.enrol('COMPUTE-B', attacker.ek_sha256())
    for name in ('compute-b\u200b', 'compute-b\x00', 'x' * 256, ''):
        with pytest.raises(exception.BadRequest):
            fleet.store.enrol(name, attacker.ek_sha256())
    # the same TPM under a name of its own still waits for an admin, as before
    assert impostor(fleet, attacker, 'compute-new', tmp_path).register() == 'awaiting_approval'
