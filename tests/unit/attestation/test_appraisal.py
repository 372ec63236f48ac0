"""Appraisal core: quotes, PCR allowlist, measured boot, IMA, reboots, stale nonces."""
import copy
import hashlib
import json
import os

import pytest

from tclouds_openstack.attestation.agent import simulated_boot
from tclouds_openstack.attestation.appraisal import core
from tclouds_openstack.attestation.appraisal import measured_boot
from tclouds_openstack.attestation.appraisal import policy as pol
from tclouds_openstack.tpm import eventlog
from tclouds_openstack.tpm import ima
from tests.unit.attestation import softtpm

OWNER = '77fa9abd-0359-4d32-bd60-28f4e78f784b'


def _sigs(*certs):
    return measured_boot.signature_list([(OWNER, c) for c in certs])


def boot(**overrides):
    kwargs = dict(pk=_sigs(b'P' * 40), kek=_sigs(b'K' * 40), db=_sigs(b'D' * 40, b'E' * 40),
                  dbx=_sigs(b'X' * 32))
    kwargs.update(overrides)
    return simulated_boot.measured_boot(**kwargs)


class Host:
    """A soft TPM that booted ``mb`` and measured the default IMA files."""

    def __init__(self, mb=None):
        self.tpm = softtpm.SoftTPM()
        self.power_on(mb)

    def power_on(self, mb=None, reboot=False):
        if reboot:
            self.tpm.reboot()
        self.mb = mb or boot()
        self.tpm.apply(self.mb.extends)
        measured = simulated_boot.ima_measurements(self.mb.pcrs)
        self.ima_entries = list(measured.entries)
        self.tpm.apply(measured.extends)

    def measure(self, path, contents):
        entry = ima.make_entry(path, hashlib.sha256(contents).digest())
        self.ima_entries.append(entry)
        self.tpm.apply([(entry.pcr, ima.template_hashes(entry))])

    def evidence(self, nonce, offset=0, ima_text=None):
        text = ima_text if ima_text is not None else ima.marshal(self.ima_entries[offset:])
        return self.tpm.evidence(nonce, uefi_log=self.mb.log, ima_log=text, ima_offset=offset)


@pytest.fixture
def host():
    return Host()


@pytest.fixture
def policy(host):
    return golden_policy(host)


def golden_policy(host, tpm_policy=None):
    refstate = measured_boot.create_refstate(eventlog.parse_eventlog(host.mb.log))
    runtime = pol.create_runtime_policy(host.ima_entries)
    return pol.parse_policy('golden', tpm_policy=tpm_policy, runtime_policy=runtime,
                            mb_refstate=refstate)


def checks(result):
    return sorted({f.check for f in result.failures})


def test_good_host_is_trusted_and_state_advances(host, policy):
    nonce = os.urandom(20)
    result = core.appraise(host.evidence(nonce), policy, nonce)
    assert result.trusted, result.reasons
    assert result.state.ima_offset == len(host.ima_entries)
    assert result.state.reset_count == 0
    # incremental: the next round sends only the new entries
    host.measure('/usr/bin/nova-compute', simulated_boot.DEFAULT_FILES['/usr/bin/nova-compute'])
    nonce2 = os.urandom(20)
    again = core.appraise(host.evidence(nonce2, offset=result.state.ima_offset), policy, nonce2,
                          previous=result.state)
    assert again.trusted, again.reasons
    assert again.state.ima_offset == len(host.ima_entries)


def test_stale_nonce_rejected_with_nothing_else_believed(host, policy):
    old = os.urandom(20)
    evidence = host.evidence(old)
    result = core.appraise(evidence, policy, os.urandom(20))
    assert checks(result) == ['quote_validation']
    assert 'nonce' in result.reasons[0]


def test_forged_signature_rejected(host, policy):
    nonce = os.urandom(20)
    evidence = host.evidence(nonce)
    other = softtpm.SoftTPM()
    other.pcrs = copy.deepcopy(host.tpm.pcrs)
    attest, sig, values = other.quote(nonce)
    forged = core.Evidence(host.tpm.ak_public, attest, sig, values, evidence.uefi_log,
                           evidence.ima_log)
    result = core.appraise(forged, policy, nonce)
    assert checks(result) == ['quote_validation']
    assert 'signature' in result.reasons[0]


def test_unknown_ima_file_untrusted_with_reason(host, policy):
    host.measure('/tmp/rootkit', b'evil')
    nonce = os.urandom(20)
    result = core.appraise(host.evidence(nonce), policy, nonce)
    assert checks(result) == ['ima.validation.ima-ng.not_in_allowlist']
    assert '/tmp/rootkit' in result.reasons[0]


def test_excluded_path_and_changed_digest(host):
    host.measure('/tmp/scratch', b'anything')
    host.measure('/etc/nova/nova.conf', b'[DEFAULT]\ndebug = true\n')
    runtime = pol.create_runtime_policy(host.ima_entries[:-2], excludes=['/tmp/.*'])
    policy = pol.parse_policy('p', runtime_policy=runtime)
    nonce = os.urandom(20)
    result = core.appraise(host.evidence(nonce), policy, nonce)
    assert checks(result) == ['ima.validation.ima-ng.runtime_policy_hash']
    assert '/etc/nova/nova.conf' in result.reasons[0]


def test_hidden_ima_entry_is_pcr_mismatch(host, policy):
    host.measure('/tmp/rootkit', b'evil')
    nonce = os.urandom(20)
    hidden = ima.marshal(host.ima_entries[:-1])
    result = core.appraise(host.evidence(nonce, ima_text=hidden), policy, nonce)
    assert checks(result) == ['ima.pcr_mismatch']


def test_rewritten_ima_line_detected(host, policy):
    host.measure('/tmp/rootkit', b'evil')
    nonce = os.urandom(20)
    good = hashlib.sha256(simulated_boot.DEFAULT_FILES['/etc/nova/nova.conf']).hexdigest()
    text = ima.marshal(host.ima_entries).replace(
        'sha256:%s /tmp/rootkit' % hashlib.sha256(b'evil').hexdigest(),
        'sha256:%s /etc/nova/nova.conf' % good)
    result = core.appraise(host.evidence(nonce, ima_text=text), policy, nonce)
    assert 'ima.validation.ima_hash' in checks(result)


def test_entries_after_the_quote_wait_for_next_round(host, policy):
    nonce = os.urandom(20)
    evidence = host.evidence(nonce)
    late = ima.make_entry('/usr/bin/late', hashlib.sha256(b'late').digest())
    text = evidence.ima_log + ima.format_entry(late) + '\n'
    import dataclasses
    result = core.appraise(dataclasses.replace(evidence, ima_log=text), policy, nonce)
    assert result.trusted, result.reasons
    assert result.state.ima_offset == len(host.ima_entries)


def test_unknown_pcr_extend_fails_allowlist(host):
    nonce = os.urandom(20)
    allow = {'16': ['00' * 32]}
    policy = golden_policy(host, tpm_policy=allow)
    assert core.appraise(host.tpm.evidence(nonce, pcrs=list(softtpm.DEFAULT_PCRS) + [16],
                                           uefi_log=host.mb.log,
                                           ima_log=ima.marshal(host.ima_entries)),
                         policy, nonce).trusted
    host.tpm.extend(16, {'sha256': hashlib.sha256(b'unknown').digest()})
    nonce = os.urandom(20)
    result = core.appraise(host.tpm.evidence(nonce, pcrs=list(softtpm.DEFAULT_PCRS) + [16],
                                             uefi_log=host.mb.log,
                                             ima_log=ima.marshal(host.ima_entries)),
                           policy, nonce)
    assert checks(result) == ['pcr_validation.invalid_pcr_16']


def test_allowlisted_pcr_not_quoted_is_quote_failure(host):
    policy = golden_policy(host, tpm_policy={'16': ['00' * 32]})
    nonce = os.urandom(20)
    result = core.appraise(host.evidence(nonce), policy, nonce)
    assert checks(result) == ['quote_validation']
    assert 'required_pcrs' in result.reasons[0]


def test_boot_log_not_matching_pcrs(host, policy):
    other = boot(kernel=b'another kernel')
    nonce = os.urandom(20)
    evidence = host.evidence(nonce)
    import dataclasses
    result = core.appraise(dataclasses.replace(evidence, uefi_log=other.log), policy, nonce)
    assert 'measured_boot.invalid_pcr_4' in checks(result)


def test_refstate_rejects_other_kernel_and_cmdline():
    good = Host()
    policy = golden_policy(good)
    for change in ({'kernel': b'patched kernel'}, {'cmdline': 'init=/bin/sh'},
                   {'secure_boot': False}, {'db': _sigs(b'D' * 40, b'Z' * 40)},
                   {'firmware': b'other firmware'}):
        bad = Host(boot(**change))
        nonce = os.urandom(20)
        result = core.appraise(bad.evidence(nonce), policy, nonce)
        assert 'measured_boot.policy' in checks(result), change


def test_dbx_may_grow_not_shrink():
    good = Host()
    policy = golden_policy(good)
    nonce = os.urandom(20)
    grown = Host(boot(dbx=_sigs(b'X' * 32, b'Y' * 32)))
    result = core.appraise(grown.evidence(nonce), policy, nonce)
    assert 'measured_boot.policy' not in checks(result)
    shrunk = Host(boot(dbx=b''))
    result = core.appraise(shrunk.evidence(nonce), policy, nonce)
    assert any('dbx lacks' in r for r in result.reasons)


def test_reboot_detected_and_ima_restarts(host, policy):
    nonce = os.urandom(20)
    first = core.appraise(host.evidence(nonce), policy, nonce)
    assert first.trusted
    host.power_on(reboot=True)
    nonce = os.urandom(20)
    # the verifier asked from its old offset: the agent's shorter list starts at 0 anyway
    stale = core.appraise(host.evidence(nonce, offset=0), policy, nonce, previous=first.state)
    assert stale.rebooted and stale.trusted, stale.reasons
    assert stale.reset_count == 1 and stale.state.reset_count == 1
    # an answer continuing the old list after a reboot cannot be appraised incrementally
    nonce = os.urandom(20)
    wrong = core.appraise(host.evidence(nonce, offset=2), policy, nonce, previous=first.state)
    assert checks(wrong) == ['ima.offset']


def test_reset_count_going_back_is_rejected(host, policy):
    nonce = os.urandom(20)
    result = core.appraise(host.evidence(nonce), policy, nonce,
                           previous=core.HostState(reset_count=5))
    assert 'quote.reset_count' in checks(result)


def test_every_failure_listed(host, policy):
    host.measure('/tmp/a', b'a')
    host.measure('/tmp/b', b'b')
    nonce = os.urandom(20)
    result = core.appraise(host.evidence(nonce), policy, nonce)
    assert len(result.failures) == 2


def test_malformed_evidence_never_raises(host, policy):
    nonce = os.urandom(20)
    evidence = host.evidence(nonce)
    import dataclasses
    cases = [dataclasses.replace(evidence, attest=evidence.attest[:-3]),
             dataclasses.replace(evidence, ak_public=b'\x00\x01'),
             dataclasses.replace(evidence, pcr_values={'sha256': {0: 'zz'}}),
             dataclasses.replace(evidence, uefi_log=evidence.uefi_log[:50]),
             dataclasses.replace(evidence, ima_log=b'10 zz ima-ng\n')]
    for bad in cases:
        result = core.appraise(bad, policy, nonce)
        assert not result.trusted


def test_non_utf8_event_data_accepted_when_pcrs_match(host, policy):
    """Keylime raises on this; the kernel's device path is not measured, PCRs match."""
    nonce = os.urandom(20)
    evidence = host.evidence(nonce)
    import dataclasses
    log = evidence.uefi_log[:-7] + b'\xff\xfe' * 3 + b'x'
    result = core.appraise(dataclasses.replace(evidence, uefi_log=log), policy, nonce)
    assert result.trusted, result.reasons


def test_policy_never_mutated(host):
    runtime = pol.create_runtime_policy(host.ima_entries)
    before = json.dumps(runtime, sort_keys=True)
    policy = pol.parse_policy('p', runtime_policy=runtime)
    nonce = os.urandom(20)
    core.appraise(host.evidence(nonce), policy, nonce)
    assert json.dumps(runtime, sort_keys=True) == before


@pytest.mark.parametrize('document,field', [
    ({'99': ['00' * 32]}, 'tpm_policy.99'),
    ({'7': ['xyz']}, 'tpm_policy.7[0]'),
    ({'7': []}, 'tpm_policy.7'),
    ({'mask': 'nothex'}, 'tpm_policy.mask'),
])
def test_tpm_policy_errors_name_field(document, field):
    with pytest.raises(pol.PolicyError) as err:
        pol.parse_tpm_policy(document)
    assert err.value.field == field


@pytest.mark.parametrize('document,field', [
    ('{not json', 'runtime_policy'),
    ({'digests': {'/bin/x': 'abc'}}, 'runtime_policy.digests["/bin/x"]'),
    ({'digests': {'/bin/x': ['00' * 5]}}, 'runtime_policy.digests["/bin/x"][0]'),
    ({'excludes': ['(unclosed']}, 'runtime_policy.excludes[0]'),
    ({'meta': {'version': 7}}, 'runtime_policy.meta.version'),
    ({'ima': {'log_hash_alg': 'md77'}}, 'runtime_policy.ima.log_hash_alg'),
])
def test_runtime_policy_errors_name_field(document, field):
    with pytest.raises(pol.PolicyError) as err:
        pol.parse_runtime_policy(document)
    assert err.value.field == field


def test_mb_refstate_errors_name_field(host):
    refstate = measured_boot.create_refstate(eventlog.parse_eventlog(host.mb.log))
    bad = copy.deepcopy(refstate)
    bad['kernels'][0]['kernel_cmdline'] = '('
    with pytest.raises(pol.PolicyError) as err:
        pol.parse_mb_refstate(bad)
    assert err.value.field == 'mb_refstate.kernels[0].kernel_cmdline'
    bad = copy.deepcopy(refstate)
    bad['pk'] = [{'SignatureOwner': OWNER, 'SignatureData': 'nothex'}]
    with pytest.raises(pol.PolicyError) as err:
        pol.parse_mb_refstate(bad)
    assert err.value.field == 'mb_refstate.pk[0].SignatureData'


def test_keylime_written_policies_parse(shared_data):
    runtime = pol.parse_runtime_policy(
        (shared_data / 'eventlogs' / 'example_runtime_policy.json').read_bytes())
    assert '/usr/bin/tool0' in runtime.digests
    refstate = pol.parse_mb_refstate(
        (shared_data / 'eventlogs' / 'example_mb_refstate.json').read_bytes())
    assert refstate.has_secureboot and len(refstate.dbx) > 300


def test_real_secureboot_log_passes_its_keylime_refstate(shared_data):
    """The refstate Keylime generated from a real log accepts that log (Keylime: PASS)."""
    log = eventlog.parse_eventlog(
        (shared_data / 'eventlogs' / 'binary_bios_measurements-secureboot').read_bytes())
    refstate = pol.parse_mb_refstate(
        (shared_data / 'eventlogs' / 'example_mb_refstate.json').read_bytes())
    assert measured_boot.appraise(log, refstate) == []
    ours = pol.parse_mb_refstate(measured_boot.create_refstate(log))
    assert ours == refstate
