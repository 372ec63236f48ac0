"""Registrar: admits a host's TPM (EK certificate chain) and its attestation key (AK).

Two steps, as in Keylime's registrar and TPM 2.0 Part 1, 24 (Credential Protection):

1. :meth:`Registrar.register`: the agent sends its EK public area, EK certificate and AK
   public area. The certificate must chain to ``[tpm] ek_ca_bundle`` and certify that EK;
   the AK must be a restricted, fixedTPM signing key. The registrar makes a credential
   (TPM2_MakeCredential in software) that only the TPM holding that EK can open, and only
   for a key with the AK's Name, and keeps the SHA-256 of the secret.
2. :meth:`Registrar.activate`: the agent returns the secret it recovered with
   TPM2_ActivateCredential. A match proves AK and EK live in the same TPM; the host is then
   active under its Nova compute host name.

Every refusal raises :class:`RegistrationRefused` with a reason the operator can act on.
"""
import hashlib
import hmac
import logging
import os

from tclouds_openstack.common import exception
from tclouds_openstack.tpm import credential
from tclouds_openstack.tpm import ekcert
from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import quote as tpm_quote
from tclouds_openstack.tpm import structures

LOG = logging.getLogger(__name__)
SECRET_SIZE = 32


class RegistrationRefused(exception.Forbidden):
    pass


def _challenge_digest(secret):
    return hashlib.sha256(secret).hexdigest()


class Registrar(object):
    def __init__(self, store, ca_bundle_pem, require_ek_certificate=True, default_policy=None):
        self.store = store
        self.ca_bundle_pem = ca_bundle_pem
        self.require_ek_certificate = require_ek_certificate
        self.default_policy = default_policy

    def register(self, host, ek_public, ek_certificate, ak_public):
        """Validate and record; returns (id_object, encrypted_secret) for the agent."""
        if not host or len(host) > 255:
            raise exception.BadRequest('must be a Nova compute host name', field='host')
        try:
            ek = structures.parse_tpm2b_public(ek_public)
        except errors.TPMError as e:
            raise exception.BadRequest(str(e), field='ek_public')
        try:
            ak = structures.parse_tpm2b_public(ak_public)
            tpm_quote.check_ak_attributes(ak)
        except errors.TPMError as e:
            raise RegistrationRefused('host %s: the attestation key is unusable: %s' % (host, e))
        if ek_certificate:
            if not self.ca_bundle_pem:
                raise RegistrationRefused('host %s: no EK CA bundle is configured ([tpm] '
                                          'ek_ca_bundle), so no EK certificate can be trusted'
                                          % host)
            try:
                ekcert.verify_ek_certificate(ek_certificate, self.ca_bundle_pem, ek)
            except errors.TPMError as e:
                LOG.warning('registration of %s refused: %s', host, e)
                raise RegistrationRefused('host %s: EK certificate refused: %s' % (host, e))
        elif self.require_ek_certificate:
            raise RegistrationRefused('host %s: no EK certificate was sent and [attestation] '
                                      'require_ek_certificate is set' % host)
        secret = os.urandom(SECRET_SIZE)
        try:
            id_object, encrypted_secret = credential.make_credential(ek, ak.name, secret)
        except (errors.TPMError, ValueError) as e:
            raise RegistrationRefused('host %s: cannot make a credential for this EK: %s'
                                      % (host, e))
        self.store.register(host, bytes(ek_public), ek_certificate or None, bytes(ak_public),
                            ak.name.hex(), _challenge_digest(secret), self.default_policy)
        LOG.info('host %s registered (AK %s), awaiting activation', host, ak.name.hex())
        return id_object, encrypted_secret

    def activate(self, host, ak_name_hex, secret):
        """Finish the registration with the secret the TPM released; refuses a wrong one."""
        digest = _challenge_digest(bytes(secret))
        record = self.store.get_host(host)
        if record.challenge_digest is None or not hmac.compare_digest(
                record.challenge_digest, digest) or record.ak_name != ak_name_hex:
            raise RegistrationRefused('host %s: the activation proof does not match the '
                                      'credential issued to this AK' % host)
        if not self.store.activate(host, ak_name_hex, digest):
            raise RegistrationRefused('host %s: registration changed during activation; '
                                      'register again' % host)
        LOG.info('host %s activated: AK %s is bound to its certified EK', host, ak_name_hex)
