"""Appraisal on real swtpm quotes: crafted boot logs, TPM clock rollbacks, engine choice.

Each crafted boot (tests/unit/attestation/crafted_boot.py: extra kernels, boot
applications, initrds and other measurements; conflicting repeats of Secure Boot values) is
measured into a real swtpm, which then quotes it with an ECC attestation key: the log
matches the signed PCRs, so only the measured-boot engine can refuse it. The clock cases
roll a real TPM back by restoring a copy of its state files (what an attacker with the
host's disk or a hypervisor snapshot can do) or cut its power.
"""
import os
import shutil
import subprocess

import pytest

from tclouds_openstack.attestation.agent import simulated_boot as sb
from tclouds_openstack.attestation.agent import swtpm as swtpm_mod
from tclouds_openstack.attestation.agent import tpm_device
from tclouds_openstack.attestation import appraisal
from tclouds_openstack.attestation.appraisal import core
from tclouds_openstack.attestation.appraisal import policy as pol
from tclouds_openstack.tpm import eventlog as el
from tclouds_openstack.tpm import structures
from tests.unit.attestation import crafted_boot as cb


class Host(object):
    """One swtpm (kept state in ``state_dir``) and its ECC attestation key."""

    def __init__(self, state_dir):
        self.state_dir = state_dir
        self.tpm = swtpm_mod.Swtpm(state_dir).start()
        with tpm_device.TPMDevice(self.tpm.tcti) as device:
            self.ak = device.create_ak('ecc')
        self.log = None

    def boot(self, log, reboot=True, measured=None):
        """Measure ``log``'s events into the TPM (after an orderly reboot).

        ``measured``: the extends [(pcr, digests)] to make instead (a log that leaves some out).
        """
        if reboot:
            self.tpm.reboot()
        if measured is None:
            measured = [(e.pcr_index, e.digests) for e in el.parse_eventlog(log).events[1:]
                        if e.event_type != el.EV_NO_ACTION]
        with tpm_device.TPMDevice(self.tpm.tcti) as device:
            for pcr, digests in measured:
                device.pcr_extend(pcr, digests)
        self.log = log

    def evidence(self, nonce, policy):
        selection = core.required_pcrs(policy, 'sha256', range(10))
        with tpm_device.TPMDevice(self.tpm.tcti) as device:
            ak = device.load_ak(self.ak.public, self.ak.private)
            attest, signature, values = device.quote(ak, nonce, selection)
        return appraisal.Evidence(ak_public=self.ak.public, attest=attest, signature=signature,
                                  pcr_values=values, uefi_log=self.log)

    def appraise(self, policy, previous=None):
        nonce = os.urandom(20)
        return appraisal.appraise(self.evidence(nonce, policy), policy, nonce,
                                  previous=previous)

    # state-file manipulations: the TPM is stopped, its files copied or restored
    def stop(self, shutdown='clear'):
        self.tpm.stop(keep_state=True, shutdown=shutdown)

    def start(self):
        self.tpm = swtpm_mod.Swtpm(self.state_dir).start()

    def snapshot(self, to):
        shutil.copytree(self.state_dir, to)

    def restore(self, snapshot):
        shutil.rmtree(self.state_dir)
        shutil.copytree(snapshot, self.state_dir)

    def set_clock(self, milliseconds):
        """TPM2_ClockSet (owner): the clock can only be moved forward."""
        env = dict(os.environ, TPM2TOOLS_TCTI=self.tpm.tcti, TSS2_LOG='all+none')
        subprocess.run(['tpm2_setclock', str(milliseconds)], env=env, check=True,
                       capture_output=True, timeout=60)


def clock_of(evidence):
    return structures.parse_tpms_attest(evidence.attest).clock_info


@pytest.fixture(scope='module')
def host(tmp_path_factory):
    h = Host(str(tmp_path_factory.mktemp('swtpm-crafted') / 'state'))
    try:
        yield h
    finally:
        h.tpm.stop()


@pytest.fixture(scope='module')
def policy():
    return pol.parse_policy('golden', mb_refstate=cb.good_refstate())


def test_good_boot_is_trusted(host, policy):
    host.boot(cb.crafted(lambda events: events))
    result = host.appraise(policy)
    assert result.trusted, result.reasons


def crafted_verdict(host, case):
    host.boot(case.log())
    return host.appraise(pol.parse_policy('golden', mb_refstate=case.reference()))


@pytest.mark.parametrize('name', sorted(cb.EXTRA_COMPONENTS))
def test_extra_component_on_a_real_quote(host, name):
    result = crafted_verdict(host, cb.EXTRA_COMPONENTS[name])
    assert not result.trusted
    # the log is consistent with the signed PCRs: only the engine refuses it
    assert {f.check for f in result.failures} == {'measured_boot.policy'}, result.reasons
    assert any(cb.EXTRA_COMPONENTS[name].needle in r for r in result.reasons), result.reasons


@pytest.mark.parametrize('name', sorted(cb.UNLOGGED))
def test_measurements_left_out_of_the_log_on_a_real_quote(host, name):
    case = cb.UNLOGGED[name]
    host.boot(case.log(), measured=case.measured())
    result = host.appraise(pol.parse_policy('golden', mb_refstate=case.reference()))
    assert [f.check for f in result.failures] == ['measured_boot.invalid_pcr_14'], \
        result.reasons
    assert 'records no measurement' in result.reasons[0]


@pytest.mark.parametrize('name', sorted(cb.CONFLICTING_VALUES))
def test_conflicting_measurements_on_a_real_quote(host, name):
    result = crafted_verdict(host, cb.CONFLICTING_VALUES[name])
    assert not result.trusted
    assert {f.check for f in result.failures} == {'measured_boot.policy'}, result.reasons
    assert any(cb.CONFLICTING_VALUES[name].needle in r for r in result.reasons), \
        result.reasons


@pytest.mark.parametrize('name', sorted(cb.ACCOUNTED_FOR))
def test_what_real_boots_do_on_a_real_quote(host, name):
    result = crafted_verdict(host, cb.ACCOUNTED_FOR[name])
    assert result.trusted, result.reasons


def test_accept_all_engine_trusts_a_real_boot_the_refstate_refuses(host, policy):
    host.boot(sb.measured_boot(kernel=b'another kernel', cmdline='quiet').log)
    assert not host.appraise(policy).trusted
    accept_all = pol.parse_policy('any-boot', mb_refstate=cb.good_refstate(),
                                  mb_engine='accept-all')
    result = host.appraise(accept_all)
    assert result.trusted, result.reasons
    reject_all = pol.parse_policy('no-boot', mb_engine='reject-all')
    assert [f.check for f in host.appraise(reject_all).failures] == ['measured_boot.policy']


# ------------------------------------------------------------------ the TPM clock
PLAIN = pol.parse_policy('plain')


@pytest.fixture
def clock_host(tmp_path):
    h = Host(str(tmp_path / 'state'))
    try:
        yield h
    finally:
        h.tpm.stop()


def test_clock_going_back_within_one_boot_restored_state(clock_host, tmp_path):
    h = clock_host
    h.stop(shutdown='state')            # hibernate: the next start is a TPM Restart
    h.snapshot(str(tmp_path / 'snapshot'))
    h.start()
    first = h.appraise(PLAIN)
    assert first.trusted, first.reasons
    h.set_clock(first.state.clock + 10 ** 7)
    later = h.appraise(PLAIN, first.state)
    assert later.trusted and later.state.clock > 10 ** 7
    h.stop(shutdown='state')
    h.restore(str(tmp_path / 'snapshot'))
    h.start()
    replayed = h.appraise(PLAIN, later.state)
    assert replayed.reset_count == later.state.reset_count      # the same boot
    assert replayed.restart_count == later.state.restart_count
    assert [f.check for f in replayed.failures] == ['quote.clock'], replayed.reasons
    assert 'within one boot' in replayed.reasons[0]
    # the good clock is kept: the rolled-back TPM stays refused
    again = h.appraise(PLAIN, replayed.state)
    assert [f.check for f in again.failures] == ['quote.clock']


def test_restart_count_going_back_restored_state(clock_host, tmp_path):
    h = clock_host
    h.stop(shutdown='state')
    h.snapshot(str(tmp_path / 'snapshot'))
    h.start()
    first = h.appraise(PLAIN)
    h.stop(shutdown='state')
    h.start()
    second = h.appraise(PLAIN, first.state)
    assert second.trusted and second.restart_count == first.restart_count + 1
    h.stop(shutdown='state')
    h.restore(str(tmp_path / 'snapshot'))
    h.start()
    result = h.appraise(PLAIN, second.state)
    assert 'quote.restart_count' in [f.check for f in result.failures], result.reasons
    assert 'restartCount went back' in ' '.join(result.reasons)


def test_reset_count_going_back_restored_state(clock_host, tmp_path):
    h = clock_host
    h.stop()
    h.snapshot(str(tmp_path / 'snapshot'))
    h.start()
    first = h.appraise(PLAIN)
    h.tpm.reboot()
    second = h.appraise(PLAIN, first.state)
    assert second.trusted and second.rebooted
    h.stop()
    h.restore(str(tmp_path / 'snapshot'))
    h.start()
    result = h.appraise(PLAIN, second.state)
    assert [f.check for f in result.failures] == ['quote.reset_count'], result.reasons


def test_clock_back_across_reboot_although_safe_restored_state(clock_host, tmp_path):
    h = clock_host
    h.stop()
    h.snapshot(str(tmp_path / 'snapshot'))
    h.start()
    first = h.appraise(PLAIN)
    h.set_clock(first.state.clock + 10 ** 7)
    forward = h.appraise(PLAIN, first.state)
    assert forward.trusted
    h.stop()
    h.restore(str(tmp_path / 'snapshot'))
    h.start()
    h.tpm.reboot()      # one more reset than the copied state had: resetCount grows
    result = h.appraise(PLAIN, forward.state)
    assert result.reset_count > forward.state.reset_count
    assert [f.check for f in result.failures] == ['quote.clock'], result.reasons
    assert 'across a reboot' in result.reasons[0]


def test_power_loss_is_untrusted_unless_the_policy_allows_it(clock_host):
    h = clock_host
    first = h.appraise(PLAIN)
    allowing = pol.parse_policy('power-loss-ok', allow_unorderly_shutdown=True)
    for _ in range(5):
        h.tpm.reboot(orderly=False)
        nonce = os.urandom(20)
        evidence = h.evidence(nonce, PLAIN)
        if not clock_of(evidence).safe:
            break       # swtpm saves its clock (safe again) about 4 s after power-on
    else:
        pytest.fail('no quote with clockInfo.safe = NO after five power losses')
    refused = appraisal.appraise(evidence, PLAIN, nonce, previous=first.state)
    assert [f.check for f in refused.failures] == ['quote.clock_safe'], refused.reasons
    assert 'not shut down orderly' in refused.reasons[0]
    accepted = appraisal.appraise(evidence, allowing, nonce, previous=first.state)
    assert accepted.trusted and accepted.rebooted, accepted.reasons
