"""Differential test: this project's appraisal vs Keylime 7.14.3's ``check_quote``.

Same evidence, same policies: real UEFI logs from ../shared/data/eventlogs with Keylime's own
measured-boot reference state, generated IMA lists and runtime policies, quotes by a
software TPM that replayed those logs. Verdicts and failure identifiers must agree, except
in the cases where Keylime is wrong, each asserted here and listed in
doc/source/attestation.rst ("Where this project and Keylime 7.14 differ").
"""
import base64
import dataclasses
import hashlib
import json
import secrets
import string

import pytest

from tclouds_openstack.attestation.agent import simulated_boot
from tclouds_openstack.attestation.appraisal import core
from tclouds_openstack.attestation.appraisal import policy as pol
from tclouds_openstack.attestation import keylime_oracle
from tclouds_openstack.tpm import eventlog as el
from tclouds_openstack.tpm import ima
from tests.unit.attestation import crafted_boot
from tests.unit.attestation import softtpm

PCRS = range(16)     # Keylime's measured-boot check wants PCRs 0-9 and 11-15 quoted


def normalize(ids):
    """Keylime's event ids mapped onto ours (same checks, different spellings)."""
    out = set()
    for event_id in ids:
        if event_id.startswith('qoute_validation'):     # sic, Keylime's spelling
            event_id = 'quote_validation'
        elif event_id.startswith('measured_boot.policy_'):
            event_id = 'measured_boot.policy'
        out.add(event_id)
    return sorted(out)


def nonce():
    # Keylime takes the nonce as text: use ASCII so both see the same bytes
    return ''.join(secrets.choice(string.ascii_letters) for _ in range(20)).encode()


@pytest.fixture(scope='module')
def keylime(tmp_path_factory):
    from tests.conftest import SHARED_DATA
    if not SHARED_DATA.is_dir():
        pytest.skip('../shared/data is not present')
    keylime_oracle.setup(str(SHARED_DATA / 'keylime-conf'),
                         str(tmp_path_factory.mktemp('keylime')))
    return SHARED_DATA


class Host(object):
    def __init__(self, log, startup_locality=None, measured=None):
        self.log = log
        self.parsed = el.parse_eventlog(log)
        self.tpm = softtpm.SoftTPM()
        if startup_locality:
            # a TPM started from locality 3 resets PCR 0 to 3 (PFP 10.4.5.3)
            for bank in softtpm.BANKS:
                size = len(self.tpm.pcrs[bank][0])
                self.tpm.pcrs[bank][0] = startup_locality.to_bytes(size, 'big')
        # measured: extends the log leaves out some of (default: the log's own events)
        self.tpm.apply(measured if measured is not None else [
            (e.pcr_index, dict(e.digests)) for e in self.parsed.events[1:]
            if e.event_type != el.EV_NO_ACTION])
        measured = simulated_boot.ima_measurements(
            {bank: dict(values) for bank, values in self.tpm.pcrs.items()})
        self.tpm.apply(measured.extends)
        self.entries = list(measured.entries)
        self.runtime = pol.create_runtime_policy(self.entries)

    def measure(self, path, contents):
        entry = ima.make_entry(path, hashlib.sha256(contents).digest())
        self.entries.append(entry)
        self.tpm.apply([(entry.pcr, ima.template_hashes(entry))])
        return entry

    def evidence(self, n):
        return self.tpm.evidence(n, uefi_log=self.log, ima_log=ima.marshal(self.entries),
                                 pcrs=PCRS)


def both(evidence, n, tpm_policy=None, runtime=None, refstate=None, expected=None,
         engine='example'):
    policy = pol.parse_policy('p', tpm_policy=tpm_policy, runtime_policy=runtime,
                              mb_refstate=refstate, mb_engine=engine if refstate else None)
    ours = core.appraise(evidence, policy, expected or n)
    passed, ids = keylime_oracle.check(evidence, expected or n, tpm_policy, runtime, refstate,
                                       mb_engine=engine)
    return (ours.trusted, sorted({f.check for f in ours.failures})), (passed, ids)


@pytest.fixture(scope='module')
def real(keylime):
    data = keylime / 'eventlogs'
    return (Host((data / 'binary_bios_measurements-secureboot').read_bytes()),
            json.loads((data / 'example_mb_refstate.json').read_text()))


def test_same_verdicts_on_real_log_and_tampered_evidence(real):
    host, refstate = real
    n = nonce()
    good = host.evidence(n)
    cases = {'good': (good, {}), 'stale nonce': (good, {'expected': nonce()}),
             'pcr allowlist mismatch': (good, {'tpm_policy': {'15': ['ff' * 32]}})}
    bsa = [e for e in host.parsed.events if e.event_type == el.EV_EFI_BOOT_SERVICES_APPLICATION]
    digest = bsa[-1].digests['sha256']
    cases['kernel digest changed in log'] = (dataclasses.replace(
        good, uefi_log=host.log.replace(digest, bytes([digest[0] ^ 1]) + digest[1:])), {})
    for label, (evidence, extra) in cases.items():
        extra.setdefault('runtime', host.runtime)
        extra.setdefault('refstate', refstate)
        ours, theirs = both(evidence, n, **extra)
        assert ours[0] == theirs[0] and ours[1] == normalize(theirs[1]), (label, ours, theirs)
    assert not both(cases['kernel digest changed in log'][0], n, runtime=host.runtime,
                    refstate=refstate)[0][0]


def test_same_verdicts_on_ima_tampering(real):
    base, refstate = real
    host = Host(base.log)
    entry = host.measure('/tmp/evil', b'evil')
    n = nonce()
    evidence = host.evidence(n)
    hidden = dataclasses.replace(evidence, ima_log=ima.marshal(host.entries[:-1]))
    good = host.entries[1]
    rewritten = dataclasses.replace(evidence, ima_log=ima.marshal(host.entries).replace(
        '%s /tmp/evil' % entry.file_digest.hex(), '%s %s' % (good.file_digest.hex(), good.path)))
    runtime = pol.create_runtime_policy(host.entries[:-1])
    for label, case in (('unknown file', evidence), ('hidden entry', hidden),
                        ('rewritten line', rewritten)):
        ours, theirs = both(case, n, runtime=runtime, refstate=refstate)
        assert ours[0] is False and theirs[0] is False, label
        assert ours[1] == normalize(theirs[1]), (label, ours, theirs)


def test_keylime_accepts_forged_quote_we_reject(real):
    """Keylime wrong #1: an invalid signature counts as success (mask-only PCR policy)."""
    host, _ = real
    n = nonce()
    evidence = host.evidence(n)
    other = softtpm.SoftTPM()
    other.pcrs = host.tpm.pcrs
    attest, signature, values = other.quote(n, PCRS)
    forged = dataclasses.replace(evidence, attest=attest, signature=signature,
                                 pcr_values=values)
    ours, theirs = both(forged, n, tpm_policy={'mask': '0xffff'})
    assert theirs == (True, [])
    assert ours == (False, ['quote_validation'])


def test_keylime_raises_on_non_utf8_event_string_we_appraise(real):
    """Keylime wrong #4: a non-UTF-8 byte in a boot-log string makes check_quote raise."""
    base, refstate = real
    event = el.new_event(8, el.EV_IPL, b'grub_cmd: echo caf\xe9\x00',
                         banks=base.parsed.spec_id.banks, measured=b'echo caf\xe9')
    log = el.marshal_eventlog(base.parsed.spec_id.banks, base.parsed.events[1:] + [event])
    host = Host(log)
    n = nonce()
    ours, theirs = both(host.evidence(n), n, runtime=host.runtime, refstate=refstate)
    assert theirs[0] is None and theirs[1].startswith('raised')
    assert ours == (True, [])


def test_keylime_misreplays_startup_locality_we_do_not(real):
    """Keylime wrong #5: tpm2-tools 5.4 extends a StartupLocality 3 event from zero."""
    base, refstate = real
    log = el.marshal_eventlog(base.parsed.spec_id.banks,
                              [el.startup_locality_event(3, base.parsed.spec_id.banks)]
                              + base.parsed.events[1:])
    host = Host(log, startup_locality=3)
    n = nonce()
    ours, theirs = both(host.evidence(n), n, runtime=host.runtime,
                        refstate=refstate)
    assert ours == (True, [])
    assert theirs[0] is False and 'measured_boot.invalid_pcr_0' in theirs[1]


def test_keylime_ignores_pcr_selection_mismatch_we_reject(real):
    """Keylime wrong #2: the PCR file's selection is never compared with the quote's.

    Keylime only checks that the digest of the file's values equals the quote's pcrDigest.
    A file that drops quoted PCR 15 and claims an unquoted PCR 16 with PCR 15's value has
    the same digest, so Keylime believes PCR 16 holds a value the TPM never reported for it.
    """
    host, _ = real
    n = nonce()
    evidence = host.evidence(n)
    relabelled = {bank: {**{i: v for i, v in values.items() if i != 15}, 16: values[15]}
                  for bank, values in evidence.pcr_values.items()}
    claimed = {'16': [evidence.pcr_values['sha256'][15].hex()]}
    ours, theirs = both(dataclasses.replace(evidence, pcr_values=relabelled), n,
                        tpm_policy=claimed, runtime=host.runtime)
    assert theirs == (True, [])
    assert ours == (False, ['quote_validation'])
    appraisal = core.appraise(dataclasses.replace(evidence, pcr_values=relabelled),
                              pol.parse_policy('p', tpm_policy=claimed), n)
    assert appraisal.failures[0].message.startswith('pcr_selection'), appraisal.failures
    # a quoted PCR merely missing from the file changes the digest: both reject it
    missing = {bank: {i: v for i, v in values.items() if i != 15}
               for bank, values in evidence.pcr_values.items()}
    ours, theirs = both(dataclasses.replace(evidence, pcr_values=missing), n)
    assert ours[0] is False and theirs[0] is False
    assert ours[1] == normalize(theirs[1]) == ['quote_validation']


def test_keylime_accepts_base64_decoded_nonce_we_reject(real):
    """Keylime wrong #3: a quote over the base64 decoding of the nonce text passes.

    Keylime also tries the nonce text as base64: a 20-letter nonce is valid base64 for 15
    other bytes.
    """
    host, refstate = real
    n = nonce()
    evidence = host.evidence(base64.b64decode(n))
    ours, theirs = both(evidence, n, runtime=host.runtime, refstate=refstate)
    assert theirs == (True, [])
    assert ours == (False, ['quote_validation'])
    appraisal = core.appraise(evidence, pol.parse_policy('p'), n)
    assert appraisal.failures[0].message.startswith('nonce'), appraisal.failures


# Generated logs (attestation/agent/simulated_boot.py) against Keylime's ``example`` policy,
# with a Secure Boot reference state made from the good boot. Without Secure Boot the
# simulation still logs the kernel as a PCR 4 boot application, while Keylime's example
# policy then expects only shim and grub there (and a vmlinuz digest in PCR 9), so a
# non-Secure-Boot boot is only used as a tampered case here.
GENERATED_CASES = {
    'good': {},
    'kernel replaced': {'kernel': b'rootkit kernel'},
    'initrd replaced': {'initrd': b'evil initrd'},
    'kernel command line changed': {'cmdline': 'root=/dev/vda1 init=/bin/sh'},
    'grub patched': {'grub': b'patched grub'},
    'firmware downgraded': {'firmware': b'old firmware'},
    'secure boot off': {'secure_boot': False},
    'db key added': {'db': simulated_boot.x509_lists(b'simulated db certificate (signs shim)',
                                                     b'attacker db certificate')},
    'pk replaced': {'pk': simulated_boot.x509_lists(b'attacker PK certificate')},
    'dbx emptied': {'dbx': b''},
}


@pytest.fixture(scope='module')
def generated_refstate(keylime):
    from tclouds_openstack.attestation.appraisal import measured_boot
    return measured_boot.create_refstate(
        el.parse_eventlog(simulated_boot.measured_boot().log))


def test_keylime_tooling_parses_generated_logs(keylime):
    """tpm2_eventlog's YAML loads and Keylime's enrichment decodes every variable."""
    from keylime.mba.elparsing import tpm2_tools_elparser
    for kwargs in ({}, {'secure_boot': False}, {'startup_locality': 3},
                   {'banks': ('sha256',)}):
        failure, parsed = tpm2_tools_elparser.parse_binary_bootlog(
            simulated_boot.measured_boot(**kwargs).log)
        assert not failure and parsed, (kwargs, failure.get_event_ids() if failure else None)
        events = {(e['EventType'], e['Event'].get('UnicodeName')): e['Event']
                  for e in parsed['events'] if isinstance(e.get('Event'), dict)}
        option = events[('EV_EFI_VARIABLE_BOOT', 'Boot0000')]['VariableData']
        assert option['Enabled'] == 'Yes' and option['Description'] == 'debian'
        assert 'shimx64.efi'.encode('utf-16-le') in bytes.fromhex(option['DevicePath'])
        db = events[('EV_EFI_VARIABLE_DRIVER_CONFIG', 'db')]['VariableData']
        assert [len(sig_list['Keys']) for sig_list in db] == [1, 1]
        if kwargs.get('secure_boot', True):
            [authority] = events[('EV_EFI_VARIABLE_AUTHORITY', 'db')]['VariableData']
            assert authority == db[0]['Keys'][0]


@pytest.mark.parametrize('label', sorted(GENERATED_CASES))
def test_same_verdicts_on_generated_logs(generated_refstate, label):
    host = Host(simulated_boot.measured_boot(**GENERATED_CASES[label]).log)
    n = nonce()
    ours, theirs = both(host.evidence(n), n, runtime=host.runtime, refstate=generated_refstate)
    assert ours[0] == theirs[0] and ours[1] == normalize(theirs[1]), (label, ours, theirs)
    assert ours == ((True, []) if label == 'good' else (False, ['measured_boot.policy']))


def test_keylime_misreplays_generated_startup_locality_3_boot(generated_refstate):
    """Keylime wrong #5 on a generated log too."""
    host = Host(simulated_boot.measured_boot(startup_locality=3).log, startup_locality=3)
    n = nonce()
    ours, theirs = both(host.evidence(n), n, runtime=host.runtime, refstate=generated_refstate)
    assert ours == (True, [])
    assert theirs[0] is False and 'measured_boot.invalid_pcr_0' in theirs[1]


# Crafted boots (tests/unit/attestation/crafted_boot.py): extra components, conflicting or
# unmeasured values, and what real boots do. Keylime's example engine reaches the same
# verdicts except on these, each a Keylime error listed in doc/source/attestation.rst:
KEYLIME_ACCEPTS = {
    # its PCR 9 rule tries "/grub" before "/initrd": a second initrd under a grub path is
    # taken for one of grub's files
    'initrd file under a grub directory',
    # it checks each MokList measurement against the allowed set, not against each other
    'MokList measured twice with different allowed digests',
    # it believes event data that the event's digest does not cover
    'SecureBoot data 1 over a measured 0',
    'kernel command line text over another measured one',
    'initrd command text hiding a second initrd',
    'enrolled MOK list logged as MokListTrusted (older shim)',
    # it checks the Secure Boot databases it finds, and accepts a boot that measured none
    'dbx not measured',
    # it accepts every grub command and takes any PCR 9 file under a grub path for one of
    # grub's own: what grub's other loaders load (ACPI tables, device trees, multiboot
    # kernels and modules, chainloaded images) and memory writes pass
    'ACPI table loaded by grub from its directory',
    'device tree loaded by grub',
    'hypervisor and dom0 booted through multiboot2',
    'EFI image chainloaded by grub',
    'kernel patched in memory after it was measured',
    'measurements switched off before a second kernel',
    # it accepts any number of separators in PCRs 0-7
    'second separator in PCR 4',
    'no separator in PCR 7',
}
KEYLIME_REFUSES = {
    # it wants dbx to be a single list of SHA-256 hashes
    'dbx with revoked certificates beside the hashes',
    # tpm2_eventlog 5.4 extends this EV_NO_ACTION event's zero digest into PCR 0, and the
    # engine refuses any EV_NO_ACTION event after the first
    'vendor event that is not a measurement',
}
CRAFTED = dict(crafted_boot.EXTRA_COMPONENTS, **crafted_boot.CONFLICTING_VALUES,
               **crafted_boot.ACCOUNTED_FOR)


@pytest.mark.parametrize('name', sorted(CRAFTED))
def test_crafted_boots(keylime, name):
    case = CRAFTED[name]
    host = Host(case.log())
    n = nonce()
    ours, theirs = both(host.evidence(n), n, runtime=host.runtime, refstate=case.reference())
    accounted = name in crafted_boot.ACCOUNTED_FOR
    assert ours == ((True, []) if accounted else (False, ['measured_boot.policy'])), ours
    if name in KEYLIME_ACCEPTS:
        assert theirs == (True, []), theirs
    elif name in KEYLIME_REFUSES:
        assert theirs[0] is False, theirs
    else:
        assert ours[0] == theirs[0] and ours[1] == normalize(theirs[1]), (name, ours, theirs)


@pytest.mark.parametrize('name', sorted(crafted_boot.UNLOGGED))
def test_measurements_left_out_of_the_log(keylime, name):
    """Both compare a PCR the engine reads and the log never touches with its reset value."""
    case = crafted_boot.UNLOGGED[name]
    host = Host(case.log(), measured=case.measured())
    n = nonce()
    ours, theirs = both(host.evidence(n), n, runtime=host.runtime, refstate=case.reference())
    assert ours == (False, ['measured_boot.invalid_pcr_14']), ours
    assert theirs[0] is False and normalize(theirs[1]) == ours[1], theirs


def test_measured_boot_engines_as_keylime_applies_them(generated_refstate):
    """accept-all accepts a boot the reference state refuses; reject-all refuses a good one."""
    other = Host(simulated_boot.measured_boot(kernel=b'another kernel').log)
    n = nonce()
    ours, theirs = both(other.evidence(n), n, runtime=other.runtime,
                        refstate=generated_refstate, engine='accept-all')
    assert ours == (True, []) and theirs == (True, [])
    good = Host(simulated_boot.measured_boot().log)
    n = nonce()
    ours, theirs = both(good.evidence(n), n, runtime=good.runtime,
                        refstate=generated_refstate, engine='reject-all')
    assert ours == (False, ['measured_boot.policy'])
    assert (theirs[0], normalize(theirs[1])) == (False, ['measured_boot.policy'])


def test_incomplete_reference_state_refused_before_any_host(generated_refstate):
    """An incomplete reference state: refused as a policy here, every host failed there.

    Keylime fails every host when it first evaluates it; this project refuses the policy,
    naming the missing fields, and an empty one too (Keylime then silently checks nothing:
    a difference listed in the docs).
    """
    host = Host(simulated_boot.measured_boot().log)
    incomplete = {k: v for k, v in generated_refstate.items() if k not in ('pk', 'mokdig')}
    n = nonce()
    evidence = host.evidence(n)
    passed, ids = keylime_oracle.check(evidence, n, None, host.runtime, incomplete)
    assert passed is False and normalize(ids) == ['measured_boot.policy']
    with pytest.raises(pol.PolicyError) as err:
        pol.parse_policy('p', runtime_policy=host.runtime, mb_refstate=incomplete)
    assert 'mb_refstate.pk' in err.value.reason and 'mb_refstate.mokdig' in err.value.reason
    assert keylime_oracle.check(evidence, n, None, host.runtime, {}) == (True, [])
    with pytest.raises(pol.PolicyError):
        pol.parse_policy('p', runtime_policy=host.runtime, mb_refstate={})


def test_boot_without_secure_boot_against_its_own_reference_state(keylime):
    """Without Secure Boot the kernel is the file grub read (vmlinuz_plain_sha256)."""
    refstate = crafted_boot.good_refstate(secure_boot=False)
    for kwargs, expected in (({}, (True, [])),
                             ({'kernel': b'rootkit kernel'}, (False, ['measured_boot.policy']))):
        host = Host(simulated_boot.measured_boot(secure_boot=False, **kwargs).log)
        n = nonce()
        ours, theirs = both(host.evidence(n), n, runtime=host.runtime, refstate=refstate)
        assert ours == expected and (theirs[0], normalize(theirs[1])) == expected, \
            (kwargs, ours, theirs)
