"""TPM clock checks (soft TPM): clockInfo and firmwareVersion against the remembered state.

Real swtpm rollbacks (restored state files, power loss) are in
tests/functional/attestation/test_appraisal_swtpm.py; the firmware version cannot change in
swtpm, so it is only exercised here.
"""
import os

import pytest

from tclouds_openstack.attestation.appraisal import core
from tclouds_openstack.attestation.appraisal import policy as pol
from tests.unit.attestation import softtpm

POLICY = pol.parse_policy('p')


def quote(tpm, previous=None, policy=POLICY):
    nonce = os.urandom(20)
    return core.appraise(tpm.evidence(nonce), policy, nonce, previous=previous)


def checks(result):
    return sorted({f.check for f in result.failures})


@pytest.fixture
def tpm():
    return softtpm.SoftTPM()


def test_whole_clock_info_and_firmware_are_remembered(tpm):
    tpm.restart_count = 2
    first = quote(tpm)
    assert first.trusted
    state = first.state
    assert (state.reset_count, state.restart_count, state.safe, state.firmware_version) == \
        (0, 2, True, 0x20191023)
    assert state.clock == tpm.clock
    second = quote(tpm, first.state)
    assert second.trusted and second.state.clock > first.state.clock


def test_clock_going_back_within_one_boot(tpm):
    first = quote(tpm)
    tpm.clock -= 500
    result = quote(tpm, first.state)
    assert checks(result) == ['quote.clock']
    assert 'went back' in result.reasons[0] and 'within one boot' in result.reasons[0]
    # the remembered clock stays the good one: the next rolled-back quote fails again
    assert result.state.clock == first.state.clock
    assert checks(quote(tpm, result.state)) == ['quote.clock']


def test_restart_count_going_back_within_one_boot(tpm):
    tpm.restart_count = 3
    first = quote(tpm)
    tpm.restart_count = 1
    result = quote(tpm, first.state)
    assert checks(result) == ['quote.restart_count']
    assert 'restartCount went back from 3 to 1' in result.reasons[0]


def test_restart_count_starts_again_after_a_reset(tpm):
    """TPM Reset sets restartCount to 0 (Part 1, 36.6); Keylime calls that a decrease."""
    tpm.restart_count = 3
    first = quote(tpm)
    tpm.reboot()
    tpm.restart_count = 0
    result = quote(tpm, first.state)
    assert result.trusted and result.rebooted, result.reasons


def test_reset_count_going_back(tpm):
    tpm.reset_count = 5
    first = quote(tpm)
    tpm.reset_count = 4
    result = quote(tpm, first.state)
    assert checks(result) == ['quote.reset_count']
    assert result.state.reset_count == 5


def test_firmware_change_without_reset_and_downgrade(tpm):
    first = quote(tpm)
    tpm.firmware_version += 1
    same_boot = quote(tpm, first.state)
    assert checks(same_boot) == ['quote.firmware_version']
    assert 'without a TPM reset' in same_boot.reasons[0]
    # an upgrade across a reboot is a firmware update: accepted and remembered
    tpm.reboot()
    upgraded = quote(tpm, first.state)
    assert upgraded.trusted and upgraded.state.firmware_version == tpm.firmware_version
    tpm.reboot()
    tpm.firmware_version -= 2
    downgraded = quote(tpm, upgraded.state)
    assert checks(downgraded) == ['quote.firmware_version']
    assert 'downgrade' in downgraded.reasons[0]


def test_unsafe_clock_refused_unless_the_policy_allows_it(tpm):
    first = quote(tpm)
    tpm.reboot()
    tpm.safe = False
    tpm.clock -= 300     # a power loss: the clock restarts from its last saved value
    result = quote(tpm, first.state)
    assert checks(result) == ['quote.clock_safe']
    assert 'not shut down orderly' in result.reasons[0]
    allowing = pol.parse_policy('p', allow_unorderly_shutdown=True)
    assert quote(tpm, first.state, allowing).trusted


def test_clock_back_across_a_reboot_although_safe(tpm):
    """safe = YES promises no higher value was reported: a rolled-back TPM state."""
    first = quote(tpm)
    tpm.reboot()
    tpm.clock -= 300
    result = quote(tpm, first.state)
    assert checks(result) == ['quote.clock']
    assert 'across a reboot' in result.reasons[0]


def test_every_clock_failure_listed(tpm):
    tpm.restart_count = 2
    first = quote(tpm)
    tpm.restart_count = 1
    tpm.clock -= 100
    tpm.firmware_version += 1
    tpm.safe = False
    result = quote(tpm, first.state)
    assert checks(result) == ['quote.clock', 'quote.clock_safe', 'quote.firmware_version',
                              'quote.restart_count']


def test_allow_unorderly_shutdown_must_be_a_boolean():
    with pytest.raises(pol.PolicyError) as err:
        pol.parse_policy('p', allow_unorderly_shutdown='yes')
    assert err.value.field == 'allow_unorderly_shutdown'
