"""Measured-boot engines on crafted boots (soft TPM): every component accounted for, every
measurement of a value agreeing, Keylime's engine choice, incomplete reference states.

The same crafted boots run on real swtpm quotes in
tests/functional/attestation/test_appraisal_swtpm.py and against Keylime in the
differential test.
"""
import copy
import os

import pytest

from tclouds_openstack.attestation.agent import simulated_boot as sb
from tclouds_openstack.attestation.appraisal import core
from tclouds_openstack.attestation.appraisal import measured_boot
from tclouds_openstack.attestation.appraisal import policy as pol
from tclouds_openstack.tpm import eventlog as el
from tests.unit.attestation import crafted_boot as cb
from tests.unit.attestation import softtpm


def appraise(log, refstate=None, engine=None, measured=None, **policy):
    """``measured``: the extends the TPM saw (default: the log's events)."""
    tpm = softtpm.SoftTPM()
    parsed = el.parse_eventlog(log)
    tpm.apply(measured if measured is not None else [
        (e.pcr_index, dict(e.digests)) for e in parsed.events[1:]
        if e.event_type != el.EV_NO_ACTION])
    nonce = os.urandom(20)
    parsed_policy = pol.parse_policy('p', mb_refstate=refstate, mb_engine=engine, **policy)
    return core.appraise(tpm.evidence(nonce, uefi_log=log), parsed_policy, nonce)


@pytest.fixture(scope='module')
def refstate():
    return cb.good_refstate()


def test_good_boot_passes(refstate):
    result = appraise(cb.crafted(lambda events: events), refstate)
    assert result.trusted, result.reasons


@pytest.mark.parametrize('name', sorted(cb.EXTRA_COMPONENTS))
def test_extra_component_is_untrusted_and_named(name):
    case = cb.EXTRA_COMPONENTS[name]
    result = appraise(case.log(), case.reference())
    assert not result.trusted
    assert [f.check for f in result.failures] == ['measured_boot.policy'] * len(result.failures)
    assert any(case.needle in reason for reason in result.reasons), result.reasons


@pytest.mark.parametrize('name', sorted(cb.UNLOGGED))
def test_measurements_left_out_of_the_log_are_untrusted(name):
    """A PCR the engine reads and the log never touches must be at its reset value."""
    case = cb.UNLOGGED[name]
    result = appraise(case.log(), case.reference(), measured=case.measured())
    assert [f.check for f in result.failures] == ['measured_boot.invalid_pcr_14'], \
        result.reasons
    assert 'records no measurement' in result.reasons[0]
    # the same log, when the TPM measured only what it shows, is trusted
    assert appraise(case.log(), case.reference()).trusted


@pytest.mark.parametrize('name', sorted(cb.CONFLICTING_VALUES))
def test_every_measurement_of_a_value_must_agree(name):
    case = cb.CONFLICTING_VALUES[name]
    result = appraise(case.log(), case.reference())
    assert not result.trusted
    assert [f.check for f in result.failures] == ['measured_boot.policy'] * len(result.failures)
    assert any(case.needle in reason for reason in result.reasons), result.reasons


@pytest.mark.parametrize('name', sorted(cb.ACCOUNTED_FOR))
def test_what_real_boots_do_is_accounted_for(name):
    """The kernel measured twice, grub's modules and configuration, a repeated equal value."""
    case = cb.ACCOUNTED_FOR[name]
    result = appraise(case.log(), case.reference())
    assert result.trusted, result.reasons


def test_secure_boot_off_boot_against_its_own_refstate():
    refstate = cb.good_refstate(secure_boot=False)
    assert refstate['kernels'][0]['vmlinuz_plain_sha256']
    assert appraise(sb.measured_boot(secure_boot=False).log, refstate).trusted
    other = appraise(sb.measured_boot(secure_boot=False, kernel=b'rootkit').log, refstate)
    assert any('kernel' in r and 'not the reference' in r for r in other.reasons), \
        other.reasons


def test_real_logs_keylime_accepts_pass(shared_data):
    """Keylime's SecureBoot test log and mb_log.bin (kernel measured twice) pass."""
    data = shared_data / 'eventlogs'
    log = el.parse_eventlog((data / 'binary_bios_measurements-secureboot').read_bytes())
    keylime = pol.parse_mb_refstate((data / 'example_mb_refstate.json').read_bytes())
    assert measured_boot.appraise(log, keylime) == []
    twice = el.parse_eventlog((data / 'mb_log.bin').read_bytes())
    own = pol.parse_mb_refstate(measured_boot.create_refstate(twice))
    assert measured_boot.appraise(twice, own) == []


# ------------------------------------------------------------------ engines
def test_accept_all_trusts_a_boot_the_reference_state_refuses(refstate):
    log = sb.measured_boot(kernel=b'another kernel').log
    assert not appraise(log, refstate).trusted
    assert appraise(log, refstate, engine='accept-all').trusted
    assert appraise(log, None, engine='accept-all').trusted


def test_accept_all_still_replays_the_log_against_the_quote(refstate):
    tpm = softtpm.SoftTPM()
    good = sb.measured_boot()
    tpm.apply(good.extends)
    nonce = os.urandom(20)
    evidence = tpm.evidence(nonce, uefi_log=sb.measured_boot(kernel=b'other').log)
    result = core.appraise(evidence, pol.parse_policy('p', mb_engine='accept-all'), nonce)
    assert 'measured_boot.invalid_pcr_4' in [f.check for f in result.failures]


def test_reject_all_refuses_a_good_boot(refstate):
    result = appraise(sb.measured_boot().log, refstate, engine='reject-all')
    assert [str(f) for f in result.failures] == [
        'measured_boot.policy: the reject-all engine refuses every boot']


def test_engine_decides_the_pcrs_a_quote_must_cover(refstate):
    example = pol.parse_policy('p', mb_refstate=refstate)
    assert core.required_pcrs(example, 'sha256') == {'sha256': list(range(10)) + [14]}
    accept = pol.parse_policy('p', mb_refstate=refstate, mb_engine='accept-all')
    assert core.required_pcrs(accept, 'sha256') == {'sha256': []}


@pytest.mark.parametrize('remove,missing', [
    (['pk', 'mokdig'], ['mb_refstate.pk', 'mb_refstate.mokdig']),
    (['kernels'], ['mb_refstate.kernels']),
    (['scrtm_and_bios'], ['mb_refstate.scrtm_and_bios']),
    (['kernels.0.initrd_plain_sha256', 'kernels.0.kernel_cmdline'],
     ['mb_refstate.kernels[0].initrd_plain_sha256', 'mb_refstate.kernels[0].kernel_cmdline']),
    (['kernels.0.kernel_authcode_sha256'], ['mb_refstate.kernels[0].kernel_authcode_sha256']),
])
def test_incomplete_reference_state_names_every_missing_field(refstate, remove, missing):
    document = copy.deepcopy(refstate)
    for path in remove:
        parts = path.split('.')
        target = document
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        del target[parts[-1]]
    with pytest.raises(pol.PolicyError) as err:
        pol.parse_policy('p', mb_refstate=document)
    assert err.value.field == 'mb_refstate'
    assert 'incomplete for the example engine' in err.value.reason
    for field in missing:
        assert field in err.value.reason
    # engines that read nothing of it take it as it is
    assert pol.parse_policy('p', mb_refstate=document, mb_engine='accept-all').mb_engine \
        == 'accept-all'


def test_empty_reference_state_is_incomplete_not_accept_all():
    """Keylime takes ``{}`` for "no measured-boot policy"; the example engine refuses it."""
    with pytest.raises(pol.PolicyError) as err:
        pol.parse_policy('p', mb_refstate={})
    for field in pol.EXAMPLE_FIELDS:
        assert 'mb_refstate.%s' % field in err.value.reason


def test_without_secure_boot_the_kernel_file_digest_is_needed(refstate):
    document = copy.deepcopy(refstate)
    document['has_secureboot'] = False
    with pytest.raises(pol.PolicyError) as err:
        pol.parse_mb_refstate(document)
    assert 'mb_refstate.kernels[0].vmlinuz_plain_sha256' in err.value.reason


@pytest.mark.parametrize('engine', [
    'Example', 'accept_all', '', 7, ['example'], {'name': 'example'}])
def test_unknown_engine_is_a_policy_error(refstate, engine):
    with pytest.raises(pol.PolicyError) as err:
        pol.parse_policy('p', mb_refstate=refstate, mb_engine=engine)
    assert err.value.field == 'mb_engine'


def test_example_engine_needs_a_reference_state():
    with pytest.raises(pol.PolicyError) as err:
        pol.parse_policy('p', mb_engine='example')
    assert err.value.field == 'mb_refstate'


def test_example_engine_reads_only_the_sha256_bank(refstate):
    log = el.parse_eventlog(sb.measured_boot().log)
    parsed = pol.parse_mb_refstate(refstate)
    assert measured_boot.appraise(log, parsed, 'example', 'sha256') == []
    [(check, message)] = measured_boot.appraise(log, parsed, 'example', 'sha1')
    assert 'sha1 bank' in message
