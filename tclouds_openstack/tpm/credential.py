"""Credential protection: TPM2_MakeCredential in software, as a registrar does it.

A registrar proves that an attestation key lives in the same TPM as a certified EK by
encrypting a secret to the EK, bound to the AK's Name; only that TPM can return it with
TPM2_ActivateCredential (TPM 2.0 Library Part 1, 24 "Credential Protection"). The seed
is protected with the EK (Part 1, 24.4 / Annex B.10.3 RSA-OAEP with label "IDENTITY";
Annex C.6.4 ECDH with KDFe for ECC EKs), the credential is encrypted with a key from
KDFa(seed, "STORAGE", Name) (Part 1, 11.4.10.2) in the EK's symmetric mode (AES-CFB)
and integrity-protected with an HMAC keyed by KDFa(seed, "INTEGRITY") (Part 1, 24.5).

Also the tpm2-tools credential file (``tpm2_makecredential -o`` /
``tpm2_activatecredential -i``, and Keylime's registrar): magic 0xBADCC0DE, version 1,
then the TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET.
"""
import hashlib
import hmac
import os

try:
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:     # cryptography < 47 (OpenStack's upper-constraints pins 43.0.3)
    from cryptography.hazmat.primitives.ciphers.modes import CFB
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives import hashes

from tclouds_openstack.tpm import constants as c
from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import marshal
from tclouds_openstack.tpm import structures

TOOLS_MAGIC = 0xBADCC0DE
TOOLS_VERSION = 1
MAX_CREDENTIAL_SIZE = 64        # TPM2B_DIGEST (sizeof(TPMU_HA))
# Upper bounds of TPM2B_ID_OBJECT (sizeof(TPMS_ID_OBJECT)) and TPM2B_ENCRYPTED_SECRET
# (sizeof(TPMU_ENCRYPTED_SECRET)) for the algorithms this module supports.
MAX_ID_OBJECT = 2 + 64 + 2 + 64
MAX_ENCRYPTED_SECRET = 512
_CRYPTO_HASHES = {'sha1': hashes.SHA1, 'sha256': hashes.SHA256, 'sha384': hashes.SHA384,
                  'sha512': hashes.SHA512}
_EK_ATTRIBUTES = c.TPMA_OBJECT_RESTRICTED | c.TPMA_OBJECT_DECRYPT


def kdfa(hash_alg, key, label, context_u, context_v, bits):
    """KDFa (Part 1, 11.4.10.2): SP 800-108 counter-mode HMAC KDF; ``label`` without NUL."""
    out = b''
    counter = 1
    while len(out) * 8 < bits:
        out += hmac.new(key, counter.to_bytes(4, 'big') + label + b'\0' + context_u + context_v
                        + bits.to_bytes(4, 'big'), hash_alg).digest()
        counter += 1
    return out[:(bits + 7) // 8]


def kdfe(hash_alg, z, label, party_u, party_v, bits):
    """KDFe (Part 1, 11.4.10.3): SP 800-56A concatenation KDF; ``label`` without NUL."""
    out = b''
    counter = 1
    while len(out) * 8 < bits:
        out += hashlib.new(hash_alg, counter.to_bytes(4, 'big') + z + label + b'\0' + party_u
                           + party_v).digest()
        counter += 1
    return out[:(bits + 7) // 8]


def _check_ek(ek):
    if not ek.has_attributes(_EK_ATTRIBUTES):
        raise errors.VerificationError('ek_attributes', 'objectAttributes 0x%08x: an EK is a '
                                       'restricted decryption key' % ek.object_attributes)
    if ek.symmetric is None or ek.symmetric.mode != c.TPM_ALG_CFB:
        raise errors.VerificationError('ek_attributes', 'the EK has no AES-CFB symmetric '
                                       'definition to protect credentials with')


def _check_name(name):
    """A TPM Name of an object: nameAlg || digest of that algorithm's size."""
    reader = marshal.Reader(name, 'TPM2B_NAME')
    alg = reader.u16('name.hashAlg')
    if alg not in c.HASH_ALGORITHMS_BY_ID:
        raise reader.error('name.hashAlg', 'unsupported name algorithm 0x%04x' % alg, 0)
    if reader.remaining != c.DIGEST_SIZES[c.HASH_ALGORITHMS_BY_ID[alg]]:
        raise reader.error('name.digest', '%d digest bytes for %s'
                           % (reader.remaining, c.HASH_ALGORITHMS_BY_ID[alg]))


def _seed_rsa(ek, hash_alg):
    seed = os.urandom(c.DIGEST_SIZES[hash_alg])
    digest = _CRYPTO_HASHES[hash_alg]()
    try:
        encrypted = ek.public_key().encrypt(
            seed, padding.OAEP(padding.MGF1(digest), digest, b'IDENTITY\0'))
    except ValueError as e:     # e.g. a modulus too small for OAEP with this hash
        raise errors.VerificationError('ek_attributes', 'cannot encrypt to this EK: %s'
                                       % e) from None
    return seed, encrypted


def _seed_ecc(ek, hash_alg):
    public = ek.public_key()
    ephemeral = ec.generate_private_key(public.curve)
    size = structures.CURVES[ek.curve_id][1]
    z = ephemeral.exchange(ec.ECDH(), public)           # x-coordinate, curve-size bytes
    numbers = ephemeral.public_key().public_numbers()
    x, y = numbers.x.to_bytes(size, 'big'), numbers.y.to_bytes(size, 'big')
    seed = kdfe(hash_alg, z, b'IDENTITY', x, ek.unique_x, c.DIGEST_SIZES[hash_alg] * 8)
    return seed, marshal.tpm2b(x) + marshal.tpm2b(y)    # TPMS_ECC_POINT


def make_credential(ek_public, ak_name, secret):
    """TPM2_MakeCredential: (TPM2B_ID_OBJECT bytes, TPM2B_ENCRYPTED_SECRET bytes).

    ``ek_public``: TPM2B_PUBLIC bytes or a TPMTPublic of an RSA or ECC EK; ``ak_name``: the
    Name of the key that must be loaded beside that EK; ``secret``: 1..64 bytes.
    """
    ek = ek_public if isinstance(ek_public, structures.TPMTPublic) else \
        structures.parse_tpm2b_public(ek_public)
    _check_ek(ek)
    ak_name = bytes(ak_name)
    _check_name(ak_name)
    secret = bytes(secret)
    if not 0 < len(secret) <= MAX_CREDENTIAL_SIZE:
        raise ValueError('the secret must be 1..%d bytes' % MAX_CREDENTIAL_SIZE)
    hash_alg = ek.name_alg
    if ek.type == c.TPM_ALG_RSA:
        seed, encrypted_seed = _seed_rsa(ek, hash_alg)
    else:
        seed, encrypted_seed = _seed_ecc(ek, hash_alg)
    sym_key = kdfa(hash_alg, seed, b'STORAGE', ak_name, b'', ek.symmetric.key_bits)
    encryptor = Cipher(algorithms.AES(sym_key), CFB(b'\0' * 16)).encryptor()
    enc_identity = encryptor.update(marshal.tpm2b(secret)) + encryptor.finalize()
    hmac_key = kdfa(hash_alg, seed, b'INTEGRITY', b'', b'', c.DIGEST_SIZES[hash_alg] * 8)
    outer_hmac = hmac.new(hmac_key, enc_identity + ak_name, hash_alg).digest()
    id_object = marshal.tpm2b(marshal.tpm2b(outer_hmac) + enc_identity)
    return id_object, marshal.tpm2b(encrypted_seed)


def marshal_tools_credential(id_object, encrypted_secret):
    """The tpm2-tools credential file for ``tpm2_activatecredential -i``."""
    for name, value in (('id_object', id_object), ('encrypted_secret', encrypted_secret)):
        marshal.unwrap_tpm2b(value, name)          # each must already be one TPM2B
    w = marshal.Writer().u32(TOOLS_MAGIC).u32(TOOLS_VERSION)
    return w.raw(id_object).raw(encrypted_secret).getvalue()


def parse_tools_credential(data):
    """A tpm2-tools credential file -> (TPM2B_ID_OBJECT bytes, TPM2B_ENCRYPTED_SECRET bytes)."""
    r = marshal.Reader(data, 'TOOLS_CREDENTIAL')
    magic = r.u32('magic')
    if magic != TOOLS_MAGIC:
        raise r.error('magic', '0x%08x is not 0x%08x' % (magic, TOOLS_MAGIC), 0)
    version = r.u32('version')
    if version != TOOLS_VERSION:
        raise r.error('version', 'version %d is not %d' % (version, TOOLS_VERSION), 4)
    start = r.offset
    r.tpm2b('credentialBlob', MAX_ID_OBJECT)
    id_end = r.offset
    r.tpm2b('secret', MAX_ENCRYPTED_SECRET)
    r.expect_end()
    return r.data[start:id_end], r.data[id_end:]
