"""Per-tenant confidentiality of log entries: AES-256-GCM of the payload before sealing.

The ciphertext is what the source seals and the Merkle tree commits to, so anyone can
still verify integrity, order and inclusion; only holders of the tenant's key read the
event. The AAD binds the ciphertext to its tenant, so it cannot be replayed under another.
Layout: nonce (12 random bytes) || ciphertext || GCM tag (16). Pure except for
:class:`CastellanEncryptor`, the adapter that fetches keys from castellan.
"""
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import aead

NONCE_SIZE = 12
_AAD = b'tclouds-securelog/v1 tenant '


class ConfidentialError(Exception):
    """A payload that cannot be decrypted (wrong key or tenant, or damaged)."""


def _aad(tenant):
    return _AAD + tenant.encode('utf-8')


def encrypt_payload(key, tenant, plaintext):
    if len(key) != 32:
        raise ConfidentialError('tenant key of %s must be 32 bytes (AES-256), got %d'
                                % (tenant, len(key)))
    nonce = os.urandom(NONCE_SIZE)
    return nonce + aead.AESGCM(key).encrypt(nonce, plaintext, _aad(tenant))


def decrypt_payload(key, tenant, blob):
    if len(blob) < NONCE_SIZE + 16:
        raise ConfidentialError('encrypted payload is %d bytes, shorter than nonce + tag'
                                % len(blob))
    try:
        return aead.AESGCM(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], _aad(tenant))
    except InvalidTag:
        raise ConfidentialError('payload of tenant %s does not decrypt with this key (wrong '
                                'key or tenant, or the ciphertext was altered)' % tenant)
    except ValueError as exc:
        raise ConfidentialError('bad key for tenant %s: %s' % (tenant, exc))


class CastellanEncryptor(object):
    """Encrypts payloads of the projects in ``[securelog] tenant_keys`` with castellan keys.

    Keys are fetched once per process with the service's admin context and cached; a
    project whose key cannot be fetched is NOT logged in clear: the error propagates and
    the notification is refused (fail closed).
    """

    def __init__(self, conf, key_manager=None, context=None):
        self.key_ids = dict(conf.securelog.tenant_keys)
        if key_manager is None:
            from castellan import key_manager as km
            key_manager = km.API(conf)
        self.key_manager = key_manager
        self.context = context
        self._cache = {}

    def key(self, tenant):
        if tenant not in self._cache:
            managed = self.key_manager.get(self.context, self.key_ids[tenant])
            self._cache[tenant] = managed.get_encoded()
        return self._cache[tenant]

    def __call__(self, tenant, plaintext):
        if tenant not in self.key_ids:
            return None
        return encrypt_payload(self.key(tenant), tenant, plaintext)
