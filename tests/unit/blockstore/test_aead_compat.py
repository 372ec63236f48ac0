"""The blockstore's AES-GCM on cryptography releases without encrypt_into/decrypt_into.

OpenStack's upper-constraints pins cryptography 43.0.3 (no ``*_into``); the tested set has
them. Both paths must give the same bytes, and a volume must read back under either.
"""
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
import pytest

from tclouds_openstack.blockstore import format as fmt


def test_copying_aead_seals_and_opens_like_cryptography():
    key, nonce, aad = os.urandom(32), os.urandom(12), os.urandom(28)
    data = bytearray(os.urandom(4096))
    copying = fmt._CopyingAESGCM(key)
    sealed = bytearray(len(data) + 16)
    assert copying.encrypt_into(memoryview(nonce), memoryview(data), aad, memoryview(sealed)) \
        == len(sealed)
    assert bytes(sealed) == AESGCM(key).encrypt(nonce, bytes(data), aad)
    plain = bytearray(len(data))
    assert copying.decrypt_into(nonce, memoryview(sealed), aad, memoryview(plain)) == len(data)
    assert plain == data
    assert copying.decrypt(nonce, bytes(sealed), aad) == data      # the plain API too
    assert copying.encrypt(nonce, bytes(data), aad) == sealed
    sealed[7] ^= 1
    with pytest.raises(InvalidTag):
        copying.decrypt_into(nonce, sealed, aad, plain)
    if hasattr(AESGCM, 'encrypt_into'):         # the tested set: the very same bytes
        native = bytearray(len(data) + 16)
        AESGCM(key).encrypt_into(nonce, bytes(data), aad, native)
        assert native == AESGCM(key).encrypt(nonce, bytes(data), aad)
