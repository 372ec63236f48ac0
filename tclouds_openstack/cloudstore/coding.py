"""DepSky-CA encoding of one version: AEAD, key shares, erasure code, value objects.

Bessani et al. 2011, section 3.3 (DepSky-CA): the writer encrypts the value with a fresh
key, splits the key with secret sharing (threshold f + 1), erasure-codes the ciphertext
into n fragments of which any f + 1 rebuild it, and stores share i and fragment i on
cloud i. No single cloud holds more than one share and one fragment, so f clouds together
learn nothing about the key and cannot rebuild the ciphertext.

Cipher: AES-256-GCM (NIST SP 800-38D) with a random 96-bit nonce; the associated data
binds the ciphertext to its data unit and version. Erasure code: pyeclib's
``isa_l_rs_vand`` (Reed-Solomon over GF(2^8), Vandermonde, as Swift's own EC policies),
k = f + 1 data fragments, m = n - k parity fragments.

The value object stored on cloud i::

    magic "DSCA" | format 1 (1 byte) | cloud index i (1 byte) | share (67 bytes) | fragment
"""
import functools
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyeclib import ec_iface

from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import shamir

KEY_BYTES = 32
NONCE_BYTES = 12
EC_TYPE = 'isa_l_rs_vand'
VALUE_MAGIC = b'DSCA'
VALUE_FORMAT = 1
SHARE_BYTES = 1 + shamir.SHARE_Y_BYTES
VALUE_HEADER_BYTES = len(VALUE_MAGIC) + 2 + SHARE_BYTES


def associated_data(data_unit, version):
    """AEAD associated data: the ciphertext only decrypts as this data unit and version."""
    return b'tclouds-depsky-ca/1\x00%s\x00%d' % (data_unit.encode('utf-8'), version)


def digest(data):
    """SHA-256 hex digest of a value object (what the signed metadata lists per cloud)."""
    return hashlib.sha256(data).hexdigest()


@functools.lru_cache(maxsize=16)
def ec_driver(k, m):
    """The pyeclib driver for k data + m parity fragments (cached: creation is costly)."""
    return ec_iface.ECDriver(k=k, m=m, ec_type=EC_TYPE)


def encrypt(plaintext, data_unit, version):
    """Return ``(key, nonce, ciphertext)`` under a fresh random key."""
    key = AESGCM.generate_key(bit_length=8 * KEY_BYTES)
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, associated_data(data_unit, version))
    return key, nonce, ciphertext


def decrypt(key, nonce, ciphertext, data_unit, version):
    """Inverse of :func:`encrypt`; raises :class:`~.errors.FragmentError` on a bad tag."""
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, associated_data(data_unit, version))
    except InvalidTag:
        raise errors.FragmentError('ciphertext', 0, 'AES-GCM tag does not verify for %s '
                                   'version %d' % (data_unit, version))


def encode_value_objects(key, ciphertext, n, f):
    """Split ``key`` (threshold f + 1) and erasure-code ``ciphertext`` into n value objects."""
    k = f + 1
    shares = shamir.split(key, k, n)
    fragments = ec_driver(k, n - k).encode(ciphertext)
    return [VALUE_MAGIC + bytes([VALUE_FORMAT, index]) + shamir.encode_share(shares[index])
            + fragments[index] for index in range(n)]


def parse_value_object(data, expected_index):
    """Return ``(share, fragment)`` of a value object meant for cloud ``expected_index``.

    Raises :class:`~.errors.FragmentError` naming the offset of the first bad field.
    """
    if len(data) < VALUE_HEADER_BYTES + 1:
        raise errors.FragmentError('length', len(data), 'value object is %d bytes, shorter '
                                   'than its %d-byte header plus a fragment'
                                   % (len(data), VALUE_HEADER_BYTES))
    if data[:4] != VALUE_MAGIC:
        raise errors.FragmentError('magic', 0, 'expected %r, found %r'
                                   % (VALUE_MAGIC, bytes(data[:4])))
    if data[4] != VALUE_FORMAT:
        raise errors.FragmentError('format', 4, 'unknown format %d' % data[4])
    if data[5] != expected_index:
        raise errors.FragmentError('index', 5, 'value object of cloud %d served as cloud %d'
                                   % (data[5], expected_index))
    share = shamir.decode_share(bytes(data[6:6 + SHARE_BYTES]))
    if share[0] != expected_index + 1:
        raise errors.FragmentError('share.x', 6, 'share index %d, expected %d'
                                   % (share[0], expected_index + 1))
    return share, bytes(data[VALUE_HEADER_BYTES:])


def decode(value_objects, f, metadata):
    """Rebuild the plaintext from ``{index: value object}`` of at least f + 1 clouds.

    The caller has already checked each value object against ``metadata.digests``; this
    still re-parses every field and raises :class:`~.errors.FragmentError` on any
    inconsistency (pyeclib errors included), never another exception type.
    """
    k = f + 1
    if len(value_objects) < k:
        raise errors.FragmentError('fragments', 0, 'need %d fragments, have %d'
                                   % (k, len(value_objects)))
    chosen = sorted(value_objects.items())[:k]
    shares = []
    fragments = []
    for index, data in chosen:
        share, fragment = parse_value_object(data, index)
        shares.append(share)
        fragments.append(fragment)
    key = shamir.combine(shares, KEY_BYTES)
    try:
        ciphertext = ec_driver(k, metadata.n - k).decode(fragments)
    except Exception as exc:  # pyeclib raises its own ECDriverError family and ValueError
        raise errors.FragmentError('fragment', VALUE_HEADER_BYTES,
                                   'erasure decoding failed: %s' % exc)
    if len(ciphertext) != metadata.ciphertext_size:
        raise errors.FragmentError('fragment', VALUE_HEADER_BYTES,
                                   'decoded %d bytes, metadata says %d'
                                   % (len(ciphertext), metadata.ciphertext_size))
    return decrypt(key, metadata.nonce, ciphertext, metadata.data_unit, metadata.version)
