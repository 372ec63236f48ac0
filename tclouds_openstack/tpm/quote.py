"""TPM 2.0 quote verification (TPM 2.0 Library Part 3, 18.4 TPM2_Quote).

:func:`verify_quote` decides whether a TPMS_ATTEST, its TPMT_SIGNATURE and a set of PCR
values are a fresh, authentic quote by a given attestation key. Each check raises
:class:`~tclouds_openstack.tpm.errors.VerificationError` with its own check name and the
verifier never continues after a failed check. The signature is verified first, over the
exact attest bytes, before anything in them is believed (Keylime 7.14 treats an invalid
signature as success; we must not).
"""
import dataclasses
import hashlib
import hmac

from cryptography import exceptions as crypto_exceptions
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils
from cryptography.hazmat.primitives import hashes

from tclouds_openstack.tpm import constants as c
from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import structures

# An attestation key is a restricted signing key that never leaves its TPM
# (Part 1, 25.2 and TCG EK Credential Profile / TCG TPM v2.0 Provisioning Guidance).
AK_REQUIRED_ATTRIBUTES = (c.TPMA_OBJECT_RESTRICTED | c.TPMA_OBJECT_SIGN_ENCRYPT
                          | c.TPMA_OBJECT_FIXEDTPM | c.TPMA_OBJECT_FIXEDPARENT)
_CRYPTO_HASHES = {'sha1': hashes.SHA1, 'sha256': hashes.SHA256, 'sha384': hashes.SHA384,
                  'sha512': hashes.SHA512}
_SCHEMES_FOR_KEY = {c.TPM_ALG_RSA: (c.TPM_ALG_RSASSA, c.TPM_ALG_RSAPSS),
                    c.TPM_ALG_ECC: (c.TPM_ALG_ECDSA,)}


@dataclasses.dataclass(frozen=True)
class VerifiedQuote:
    """A quote that passed every check: its TPMS_ATTEST and the quoted PCR values."""
    attest: structures.TPMSAttest
    pcr_values: dict


def check_ak_attributes(ak):
    """'ak_attributes': the key is a restricted signing key, fixedTPM and fixedParent."""
    if not ak.has_attributes(AK_REQUIRED_ATTRIBUTES):
        missing = AK_REQUIRED_ATTRIBUTES & ~ak.object_attributes
        names = [n for n, bit in (('restricted', c.TPMA_OBJECT_RESTRICTED),
                                  ('sign', c.TPMA_OBJECT_SIGN_ENCRYPT),
                                  ('fixedTPM', c.TPMA_OBJECT_FIXEDTPM),
                                  ('fixedParent', c.TPMA_OBJECT_FIXEDPARENT)) if missing & bit]
        raise errors.VerificationError(
            'ak_attributes', 'objectAttributes 0x%08x lack %s: not a TPM-resident restricted '
            'signing key' % (ak.object_attributes, ', '.join(names)))


def verify_signature(ak, message, signature):
    """'signature': ``signature`` (TPMTSignature) by ``ak`` (TPMTPublic) over ``message``."""
    if signature.sig_alg not in _SCHEMES_FOR_KEY[ak.type]:
        raise errors.VerificationError(
            'signature', 'signature algorithm 0x%04x does not fit a %s key'
            % (signature.sig_alg, 'RSA' if ak.type == c.TPM_ALG_RSA else 'ECC'))
    if ak.scheme is not None and (ak.scheme.scheme, ak.scheme.hash_alg) != (
            signature.sig_alg, signature.hash_alg):
        raise errors.VerificationError(
            'signature', 'signature scheme 0x%04x/%s differs from the key scheme 0x%04x/%s'
            % (signature.sig_alg, signature.hash_alg, ak.scheme.scheme, ak.scheme.hash_alg))
    digest_alg = _CRYPTO_HASHES[signature.hash_alg]()
    key = ak.public_key()
    try:
        if signature.sig_alg == c.TPM_ALG_ECDSA:
            der = asym_utils.encode_dss_signature(int.from_bytes(signature.r, 'big'),
                                                  int.from_bytes(signature.s, 'big'))
            key.verify(der, message, ec.ECDSA(digest_alg))
        elif signature.sig_alg == c.TPM_ALG_RSASSA:
            key.verify(signature.signature, message, padding.PKCS1v15(), digest_alg)
        else:
            # The TPM's PSS salt is the digest size (Part 1, B.7) or the maximum on old
            # TPMs; AUTO accepts either.
            key.verify(signature.signature, message,
                       padding.PSS(padding.MGF1(digest_alg), padding.PSS.AUTO), digest_alg)
    except crypto_exceptions.InvalidSignature:
        raise errors.VerificationError('signature', 'the quote is not signed by this AK') from None
    except ValueError as e:
        raise errors.VerificationError('signature', 'unusable signature: %s' % e) from None


def pcr_composite_digest(pcr_select, pcr_values, hash_alg):
    """H(PCR values in selection order) (Part 3, 18.4.1: the quote's pcrDigest)."""
    h = hashlib.new(hash_alg)
    for bank, indexes in pcr_select:
        for index in indexes:
            h.update(pcr_values[bank][index])
    return h.digest()


def _as_public(ak_public):
    if isinstance(ak_public, structures.TPMTPublic):
        return ak_public
    return structures.parse_tpm2b_public(ak_public)


def verify_quote(ak_public, attest, signature, nonce, pcr_values, required=None):
    """Verify a TPM2_Quote and return :class:`VerifiedQuote`.

    ``ak_public``: TPM2B_PUBLIC bytes or a TPMTPublic; ``attest``: TPMS_ATTEST bytes;
    ``signature``: TPMT_SIGNATURE bytes; ``nonce``: the raw qualifying data the verifier
    chose; ``pcr_values``: {bank: {index: digest}} claimed for exactly the quoted PCRs;
    ``required``: {bank: [index]} the quote must cover. Malformed bytes raise ParseError;
    a failed check raises VerificationError naming it: ak_attributes, signature, magic,
    type, nonce, pcr_selection, pcr_digest, required_pcrs (checked in this order).
    """
    ak = _as_public(ak_public)
    check_ak_attributes(ak)
    sig = structures.parse_tpmt_signature(signature)
    if not isinstance(attest, (bytes, bytearray, memoryview)):
        raise errors.ParseError('TPMS_ATTEST', '(input)', 0, 'expected bytes')
    verify_signature(ak, bytes(attest), sig)
    quoted = structures.parse_tpms_attest(attest)
    if quoted.magic != c.TPM_GENERATED_VALUE:
        raise errors.VerificationError('magic', 'magic 0x%08x is not TPM_GENERATED_VALUE: the '
                                       'signed data was not made by the TPM' % quoted.magic)
    if quoted.type != c.TPM_ST_ATTEST_QUOTE:
        raise errors.VerificationError('type', 'attestation type 0x%04x is not '
                                       'TPM_ST_ATTEST_QUOTE' % quoted.type)
    if not isinstance(nonce, (bytes, bytearray)):
        raise errors.VerificationError('nonce', 'the expected nonce must be raw bytes, not %s'
                                       % type(nonce).__name__)
    if not hmac.compare_digest(quoted.extra_data, bytes(nonce)):
        raise errors.VerificationError('nonce', 'extraData does not equal the nonce sent: a '
                                       'stale or replayed quote')
    selection = quoted.attested.pcr_select
    _check_selection(selection, pcr_values)
    try:
        digest = pcr_composite_digest(selection, pcr_values, sig.hash_alg)
    except TypeError as e:
        raise errors.VerificationError('pcr_digest', 'PCR values must be bytes: %s' % e) from None
    if not hmac.compare_digest(digest, quoted.attested.pcr_digest):
        raise errors.VerificationError('pcr_digest', 'the supplied PCR values are not the '
                                       'quoted ones (composite digest differs)')
    quoted_sets = structures.selection_as_sets(selection)
    for bank, indexes in (required or {}).items():
        missing = sorted(set(indexes) - quoted_sets.get(bank, set()))
        if missing:
            raise errors.VerificationError('required_pcrs', 'the quote does not cover %s PCRs %s'
                                           % (bank, ','.join(map(str, missing))))
    values = {bank: {i: bytes(pcr_values[bank][i]) for i in indexes}
              for bank, indexes in selection if indexes}
    return VerifiedQuote(quoted, values)


def _check_selection(selection, pcr_values):
    """'pcr_selection': the supplied values cover exactly the quoted PCRs.

    Keylime does not compare them, so a PCR file could silently omit or add PCRs.
    """
    quoted = structures.selection_as_sets(selection)
    try:
        supplied = {bank: set(v) for bank, v in pcr_values.items() if v}
    except (AttributeError, TypeError):
        raise errors.VerificationError('pcr_selection', 'PCR values must be {bank: {index: '
                                       'digest}}') from None
    if supplied != quoted:
        problems = []
        for bank in sorted(set(quoted) | set(supplied), key=str):
            missing = sorted(quoted.get(bank, set()) - supplied.get(bank, set()))
            extra = sorted(supplied.get(bank, set()) - quoted.get(bank, set()), key=str)
            if missing:
                problems.append('%s %s quoted but not supplied'
                                % (bank, ','.join(map(str, missing))))
            if extra:
                problems.append('%s %s supplied but not quoted' % (bank, ','.join(map(str, extra))))
        raise errors.VerificationError('pcr_selection', '; '.join(problems))
