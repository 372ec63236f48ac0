"""Software-made TPM structures for unit tests: keys in TPMT_PUBLIC form and signed quotes.

A verifier only needs the AK's public key, so a quote signed here by a ``cryptography``
key exercises exactly the code paths a TPM-made quote does (the functional tests use real
swtpm quotes).
"""
import functools
import hashlib

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils
from cryptography.hazmat.primitives import hashes

from tclouds_openstack.tpm import constants as c
from tclouds_openstack.tpm import structures

AK_ATTRIBUTES = (c.TPMA_OBJECT_RESTRICTED | c.TPMA_OBJECT_SIGN_ENCRYPT | c.TPMA_OBJECT_FIXEDTPM
                 | c.TPMA_OBJECT_FIXEDPARENT | c.TPMA_OBJECT_SENSITIVEDATAORIGIN
                 | c.TPMA_OBJECT_USERWITHAUTH)
EK_ATTRIBUTES = (c.TPMA_OBJECT_RESTRICTED | c.TPMA_OBJECT_DECRYPT | c.TPMA_OBJECT_FIXEDTPM
                 | c.TPMA_OBJECT_FIXEDPARENT | c.TPMA_OBJECT_SENSITIVEDATAORIGIN
                 | c.TPMA_OBJECT_ADMINWITHPOLICY)
HASHES = {'sha1': hashes.SHA1, 'sha256': hashes.SHA256, 'sha384': hashes.SHA384,
          'sha512': hashes.SHA512}
CURVE_IDS = {'secp256r1': c.TPM_ECC_NIST_P256, 'secp384r1': c.TPM_ECC_NIST_P384}


@functools.lru_cache(maxsize=None)
def rsa_key(n=0, bits=2048):
    return rsa.generate_private_key(65537, bits)


@functools.lru_cache(maxsize=None)
def ecc_key(n=0, curve='secp256r1'):
    return ec.generate_private_key(getattr(ec, curve.upper())())


def public_area(private_key, attributes=AK_ATTRIBUTES, scheme='default', symmetric=None,
                name_alg='sha256'):
    """TPMTPublic for a cryptography private key (scheme 'default' = the AK's scheme)."""
    public = private_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        if scheme == 'default':
            scheme = structures.TPMTScheme(c.TPM_ALG_RSASSA, 'sha256')
        return structures.TPMTPublic(
            type=c.TPM_ALG_RSA, name_alg=name_alg, object_attributes=attributes,
            symmetric=symmetric, scheme=scheme, key_bits=public.key_size, exponent=0,
            unique=public.public_numbers().n.to_bytes(public.key_size // 8, 'big'))
    if scheme == 'default':
        scheme = structures.TPMTScheme(c.TPM_ALG_ECDSA, 'sha256')
    size = (public.curve.key_size + 7) // 8
    numbers = public.public_numbers()
    return structures.TPMTPublic(
        type=c.TPM_ALG_ECC, name_alg=name_alg, object_attributes=attributes,
        symmetric=symmetric, scheme=scheme, curve_id=CURVE_IDS[public.curve.name],
        unique_x=numbers.x.to_bytes(size, 'big'), unique_y=numbers.y.to_bytes(size, 'big'))


def ek_area(private_key, name_alg='sha256'):
    return public_area(private_key, attributes=EK_ATTRIBUTES, scheme=None,
                       symmetric=structures.TPMTSymDefObject(c.TPM_ALG_AES, 128, c.TPM_ALG_CFB),
                       name_alg=name_alg)


def pcr_values(selection, seed=b'x'):
    return {bank: {i: hashlib.new(bank, seed + bytes([i])).digest() for i in idx}
            for bank, idx in structures.normalize_selection(selection)}


def attest(nonce, selection, values, hash_alg='sha256', magic=c.TPM_GENERATED_VALUE,
           attest_type=c.TPM_ST_ATTEST_QUOTE, reset_count=3):
    selection = structures.normalize_selection(selection)
    digest = hashlib.new(hash_alg)
    for bank, idx in selection:
        for i in idx:
            digest.update(values[bank][i])
    if attest_type == c.TPM_ST_ATTEST_QUOTE:
        attested = structures.TPMSQuoteInfo(selection, digest.digest())
    else:
        attested = structures.TPMSCertifyInfo(b'\x00\x0b' + bytes(32), b'\x00\x0b' + bytes(32))
    return structures.TPMSAttest(
        magic=magic, type=attest_type, qualified_signer=b'\x00\x0b' + bytes(range(32)),
        extra_data=nonce, clock_info=structures.TPMSClockInfo(12345, reset_count, 0, True),
        firmware_version=0x2011121800000000, attested=attested)


def sign(private_key, message, sig_alg=None, hash_alg='sha256'):
    """TPMT_SIGNATURE bytes over ``message``."""
    h = HASHES[hash_alg]()
    if isinstance(private_key, rsa.RSAPrivateKey):
        sig_alg = sig_alg or c.TPM_ALG_RSASSA
        if sig_alg == c.TPM_ALG_RSAPSS:
            raw = private_key.sign(message, padding.PSS(padding.MGF1(h), h.digest_size), h)
        else:
            raw = private_key.sign(message, padding.PKCS1v15(), h)
        return structures.TPMTSignature(sig_alg, hash_alg, signature=raw).marshal()
    r, s = asym_utils.decode_dss_signature(private_key.sign(message, ec.ECDSA(h)))
    size = (private_key.curve.key_size + 7) // 8
    return structures.TPMTSignature(c.TPM_ALG_ECDSA, hash_alg, r=r.to_bytes(size, 'big'),
                                    s=s.to_bytes(size, 'big')).marshal()


def quote(private_key, nonce=b'nonce-1234', selection=None, **kw):
    """(ak TPM2B_PUBLIC, attest bytes, signature bytes, values) for a valid quote."""
    selection = selection or {'sha256': [0, 1, 2, 7, 10], 'sha1': [10]}
    values = pcr_values(selection)
    sig_alg = kw.pop('sig_alg', None)
    hash_alg = kw.get('hash_alg', 'sha256')
    message = attest(nonce, selection, values, **kw).marshal()
    area = public_area(private_key, scheme=None if sig_alg else 'default')
    return (area.marshal_tpm2b_public(), message,
            sign(private_key, message, sig_alg, hash_alg), values)
