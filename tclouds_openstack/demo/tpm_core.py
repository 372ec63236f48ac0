"""Demo chapter: the TPM 2.0 evidence core at work on swtpm-backed simulated hosts.

Each host is a swtpm manufactured by a private CA (EK certificate in NV). The chapter
checks the EK certificate, binds a fresh attestation key to the EK with
MakeCredential/ActivateCredential, performs a simulated measured boot (UEFI event log and
IMA list extended into the PCRs), takes a quote over a fresh nonce and verifies it in pure
Python, replays the logs and compares them with the quoted PCRs and with the reference
(golden) values. One host boots a tampered kernel; forged evidence is shown rejected.
Each verdict is sealed into the demo's secure log as the attestation service's
``attestation.host.<verdict>`` notification would be.
"""
import os
import secrets

from tclouds_openstack.attestation.agent import simulated_boot
from tclouds_openstack.attestation.agent import swtpm
from tclouds_openstack.attestation.agent import tpm_device
from tclouds_openstack.tpm import credential
from tclouds_openstack.tpm import ekcert
from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import eventlog
from tclouds_openstack.tpm import ima
from tclouds_openstack.tpm import quote

TITLE = 'TPM 2.0 evidence core on swtpm-backed hosts'
BANK = 'sha256'
BOOT_PCRS = list(range(10))
QUOTE_PCRS = {BANK: BOOT_PCRS + [ima.IMA_PCR]}
TAMPERED_KERNEL = b'simulated vmlinuz-6.1.0 with a rootkit'
# What each PCR measures (TCG PC Client PFP 3.3.4, grub 2, IMA), for readable reasons.
PCR_ROLES = {0: 'firmware', 1: 'firmware configuration', 2: 'option ROMs',
             3: 'option ROM configuration', 4: 'boot loader and kernel images',
             5: 'boot configuration', 6: 'platform events', 7: 'Secure Boot policy',
             8: 'boot loader commands and kernel command line', 9: 'kernel and initrd files',
             10: 'IMA runtime measurements'}


class Host(object):
    """One simulated compute host: a swtpm, its TPM client, its AK and its logs."""

    def __init__(self, name, tpm, device):
        self.name = name
        self.tpm = tpm
        self.device = device
        self.ak = None
        self.boot = None
        self.ima = None
        self.verdict = None
        self.reasons = []


def _boot(host, kernel):
    host.boot = simulated_boot.measured_boot(kernel=kernel)
    host.ima = simulated_boot.ima_measurements(boot_pcrs=host.boot.pcrs)
    for pcr, digests in host.boot.extends + host.ima.extends:
        host.device.pcr_extend(pcr, digests)


def _enroll(report, host, ca_bundle):
    ek_public = host.device.ek_public()
    try:
        cert = ekcert.verify_ek_certificate(host.device.ek_certificate(), ca_bundle, ek_public)
        report.step('%s: EK certificate chains to the manufacturer CA (%s)'
                    % (host.name, cert.subject.rfc4514_string() or 'empty subject'))
    except errors.TPMError as e:
        report.step('%s: EK certificate refused: %s' % (host.name, e), ok=False)
        return False
    host.ak = host.device.create_ak('ecc')
    secret = secrets.token_bytes(32)
    id_object, encrypted_secret = credential.make_credential(ek_public, host.ak.name, secret)
    activated = host.device.activate_credential(host.ak, id_object, encrypted_secret)
    report.step('%s: AK %s proven resident beside the certified EK (MakeCredential -> '
                'ActivateCredential)' % (host.name, host.ak.name.hex()[:16] + '...'),
                ok=activated == secret)
    return activated == secret


def _appraise(host, nonce, evidence, reference):
    """Verify the quote, replay both logs against it, compare with the reference."""
    attest, signature, pcr_values = evidence
    verified = quote.verify_quote(host.ak.public, attest, signature, nonce, pcr_values,
                                  required=QUOTE_PCRS)
    quoted = verified.pcr_values[BANK]
    replayed = eventlog.replay(eventlog.parse_eventlog(host.boot.log))[BANK]
    reasons = ['PCR %d: event log replay does not match the quote' % i
               for i in BOOT_PCRS if replayed.get(i, bytes(32)) != quoted[i]]
    ima_pcr = ima.replay(ima.parse_ima_log(host.ima.text.encode()), banks=(BANK,))[BANK]
    if ima_pcr[ima.IMA_PCR] != quoted[ima.IMA_PCR]:
        reasons.append('PCR 10: IMA list replay does not match the quote')
    reasons += ['PCR %d (%s) differs from the reference boot' % (i, PCR_ROLES[i])
                for i in BOOT_PCRS if quoted[i] != reference[i]]
    return reasons


def run(demo):
    report, workdir, hosts = demo.report, demo.workdir, demo.hosts
    ca = swtpm.LocalCA(os.path.join(workdir, 'manufacturer-ca'))
    fleet = []
    try:
        for i in range(hosts):
            tpm = swtpm.Swtpm(os.path.join(workdir, 'host%d' % (i + 1)), ca=ca).start()
            fleet.append(Host('compute%d' % (i + 1), tpm, tpm_device.TPMDevice(tpm.tcti)))
        report.note('started %d swtpm TPMs, manufactured by a private CA' % hosts)
        bundle = ca.ca_bundle_pem()
        if not all(_enroll(report, h, bundle) for h in fleet):
            return
        reference = simulated_boot.measured_boot().pcrs[BANK]
        tampered = fleet[-1]
        for host in fleet:
            _boot(host, TAMPERED_KERNEL if host is tampered else simulated_boot.DEFAULT_KERNEL)
        report.note('measured boot done: UEFI event log (%d events) and IMA list (%d entries) '
                    'extended into PCRs 0-9 and 10; %s booted a tampered kernel'
                    % (len(fleet[0].boot.events), len(fleet[0].ima.entries), tampered.name))
        for host in fleet:
            nonce = secrets.token_bytes(20)
            evidence = host.device.quote(host.ak, nonce, QUOTE_PCRS)
            host.reasons = _appraise(host, nonce, evidence, reference)
            host.verdict = 'untrusted' if host.reasons else 'trusted'
            expected = 'untrusted' if host is tampered else 'trusted'
            report.step('%s: quote signature, nonce and PCR digest verified; verdict %s'
                        % (host.name, host.verdict), ok=host.verdict == expected,
                        detail='\n'.join(host.reasons) or None)
            demo.record('attestation.host.%s' % host.verdict,
                        {'host': host.name, 'reasons': host.reasons})
        _forgeries(report, fleet[0], fleet[1] if hosts > 1 else fleet[0])
        report.table(['host', 'verdict', 'reason'],
                     [(h.name, h.verdict, h.reasons[0] if h.reasons else '') for h in fleet])
    finally:
        for host in fleet:
            host.device.close()
            host.tpm.stop()


def _forgeries(report, host, other):
    """Evidence an attacker on the network could send: each must be rejected, with why."""
    nonce = secrets.token_bytes(20)
    attest, signature, pcr_values = host.device.quote(host.ak, nonce, QUOTE_PCRS)
    altered = {BANK: dict(pcr_values[BANK])}
    altered[BANK][4] = bytes(32)
    flipped = bytearray(attest)
    flipped[-1] ^= 1
    other_attest, other_sig, other_pcrs = other.device.quote(other.ak, nonce, QUOTE_PCRS)
    cases = [
        ('replayed quote (stale nonce)', (attest, signature, pcr_values), secrets.token_bytes(20),
         host.ak.public),
        ('PCR value altered after quoting', (attest, signature, altered), nonce, host.ak.public),
        ('attest bytes altered', (bytes(flipped), signature, pcr_values), nonce, host.ak.public),
        ('quote signed by another host\'s AK', (other_attest, other_sig, other_pcrs), nonce,
         host.ak.public),
    ]
    for label, (a, s, p), expected_nonce, ak_public in cases:
        if label.startswith('quote signed') and other is host:
            continue
        try:
            quote.verify_quote(ak_public, a, s, expected_nonce, p, required=QUOTE_PCRS)
            report.step('%s: ACCEPTED (must be rejected)' % label, ok=False)
        except errors.TPMError as e:
            report.step('%s: rejected (%s)' % (label, e))
