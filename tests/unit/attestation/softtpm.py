"""A software stand-in for a TPM's quoting, for fast unit tests of the appraisal core.

It produces byte-exact TPMS_ATTEST / TPMT_SIGNATURE / TPM2B_PUBLIC structures signed with
an ECC P-256 key in ``cryptography``, so :func:`tclouds_openstack.tpm.quote.verify_quote`
checks them exactly as it checks swtpm's (the functional tests use swtpm itself).
"""
import hashlib

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils
from cryptography.hazmat.primitives import hashes

from tclouds_openstack.attestation.appraisal import core
from tclouds_openstack.tpm import constants as c
from tclouds_openstack.tpm import structures

AK_ATTRIBUTES = (c.TPMA_OBJECT_RESTRICTED | c.TPMA_OBJECT_SIGN_ENCRYPT | c.TPMA_OBJECT_FIXEDTPM
                 | c.TPMA_OBJECT_FIXEDPARENT | c.TPMA_OBJECT_SENSITIVEDATAORIGIN
                 | c.TPMA_OBJECT_USERWITHAUTH)
BANKS = ('sha1', 'sha256')
# PCRs 0-10 and 14: what a policy with IMA and the example measured-boot engine needs
DEFAULT_PCRS = tuple(range(0, 11)) + (14,)


class SoftTPM:
    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        self.public = structures.TPMTPublic(
            type=c.TPM_ALG_ECC, name_alg='sha256', object_attributes=AK_ATTRIBUTES,
            scheme=structures.TPMTScheme(c.TPM_ALG_ECDSA, 'sha256'),
            curve_id=c.TPM_ECC_NIST_P256, unique_x=numbers.x.to_bytes(32, 'big'),
            unique_y=numbers.y.to_bytes(32, 'big'))
        self.ak_public = self.public.marshal_tpm2b_public()
        self.reset_count = 0
        self.restart_count = 0
        self.clock = 1000
        self.safe = True
        self.firmware_version = 0x20191023
        self.pcrs = None
        self.reboot(count=False)

    def reboot(self, count=True):
        self.pcrs = {b: {i: bytes(hashlib.new(b).digest_size) for i in range(24)} for b in BANKS}
        if count:
            self.reset_count += 1

    def extend(self, pcr, digests):
        for bank, digest in digests.items():
            if bank in self.pcrs:
                self.pcrs[bank][pcr] = hashlib.new(bank, self.pcrs[bank][pcr] + digest).digest()

    def apply(self, extends):
        for pcr, digests in extends:
            self.extend(pcr, digests)

    def quote(self, nonce, pcrs=DEFAULT_PCRS, bank='sha256'):
        """(attest, signature, pcr_values) over ``pcrs`` of ``bank``."""
        selection = [(bank, sorted(pcrs))]
        values = {bank: {i: self.pcrs[bank][i] for i in pcrs}}
        from tclouds_openstack.tpm import quote as tpm_quote
        digest = tpm_quote.pcr_composite_digest(selection, values, 'sha256')
        self.clock += 10
        attest = structures.TPMSAttest(
            magic=c.TPM_GENERATED_VALUE, type=c.TPM_ST_ATTEST_QUOTE,
            qualified_signer=self.public.name, extra_data=bytes(nonce),
            clock_info=structures.TPMSClockInfo(self.clock, self.reset_count,
                                                self.restart_count, self.safe),
            firmware_version=self.firmware_version,
            attested=structures.TPMSQuoteInfo(selection, digest)).marshal()
        der = self.key.sign(attest, ec.ECDSA(hashes.SHA256()))
        r, s = asym_utils.decode_dss_signature(der)
        sig = structures.TPMTSignature(c.TPM_ALG_ECDSA, 'sha256', r=r.to_bytes(32, 'big'),
                                       s=s.to_bytes(32, 'big')).marshal()
        return attest, sig, values

    def evidence(self, nonce, uefi_log=None, ima_log=None, ima_offset=0, pcrs=DEFAULT_PCRS):
        attest, sig, values = self.quote(nonce, pcrs)
        return core.Evidence(ak_public=self.ak_public, attest=attest, signature=sig,
                             pcr_values=values, uefi_log=uefi_log, ima_log=ima_log,
                             ima_offset=ima_offset)
