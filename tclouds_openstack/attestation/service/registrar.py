"""Registrar: admits a host's TPM (EK certificate chain) and its attestation key (AK).

Two steps, as in Keylime's registrar and TPM 2.0 Part 1, 24 (Credential Protection):

1. :meth:`Registrar.register`: the agent sends its EK public area, EK certificate and AK
   public area. The certificate must chain to ``[tpm] ek_ca_bundle`` and certify that EK;
   the AK must be a restricted, fixedTPM signing key. The registrar makes a credential
   (TPM2_MakeCredential in software) that only the TPM holding that EK can open, and only
   for a key with the AK's Name, and keeps the SHA-256 of the secret.
2. :meth:`Registrar.activate`: the agent returns the secret it recovered with
   TPM2_ActivateCredential. A match proves AK and EK live in the same TPM.

The bus authenticates nobody, so a name is bound by the operator, not by whoever claims it
first: a registration becomes ``active`` (attested, possibly trusted) only for an EK an
admin enrolled for that name (``openstack attestation host enroll``) or approved
(``openstack attestation host approve``); until then it waits in ``awaiting_approval``, or
is refused with ``[attestation] unenrolled_registration = refuse``. One EK is one host. A
host whose AK is proven keeps it, and its verdict, while a new AK awaits activation, so a
replayed EK and certificate with another AK downgrade nothing.

Every refusal raises :class:`RegistrationRefused` with a reason the operator can act on,
and is logged.
"""
import hashlib
import hmac
import logging
import os

from cryptography.hazmat.primitives import serialization

from tclouds_openstack.attestation.service import hostnames
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


def key_sha256(public_key):
    """SHA-256 (hex) of a key's DER SubjectPublicKeyInfo: an EK's identity in enrolments."""
    return hashlib.sha256(public_key.public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()


def ek_sha256_of_certificate(data):
    """The EK hash (:func:`key_sha256`) of the key an EK certificate (PEM or DER) certifies."""
    return key_sha256(ekcert.load_certificate(data).public_key())


class Registrar(object):
    def __init__(self, store, ca_bundle_pem, require_ek_certificate=True, default_policy=None,
                 allow_unenrolled=True):
        self.store = store
        self.ca_bundle_pem = ca_bundle_pem
        self.require_ek_certificate = require_ek_certificate
        self.default_policy = default_policy
        # [attestation] unenrolled_registration: await_approval (True) or refuse (False)
        self.allow_unenrolled = allow_unenrolled

    @staticmethod
    def _refuse(host, reason):
        LOG.warning('registration of %s refused: %s', host, reason)
        return RegistrationRefused('host %s: %s' % (host, reason))

    def register(self, host, ek_public, ek_certificate, ak_public):
        """Validate and record; returns (id_object, encrypted_secret) for the agent."""
        try:
            hostnames.check(host)       # one host, one spelling (no look-alike variants)
        except exception.BadRequest as e:
            LOG.warning('registration of %r refused: %s', host, e.message)
            raise
        try:
            ek = structures.parse_tpm2b_public(ek_public)
        except errors.TPMError as e:
            raise exception.BadRequest(str(e), field='ek_public')
        try:
            ek_hash = key_sha256(ek.public_key())
        except errors.TPMError as e:
            raise exception.BadRequest(str(e), field='ek_public')
        try:
            ak = structures.parse_tpm2b_public(ak_public)
            tpm_quote.check_ak_attributes(ak)
        except errors.TPMError as e:
            raise self._refuse(host, 'the attestation key is unusable: %s' % e)
        if ek_certificate:
            if not self.ca_bundle_pem:
                raise self._refuse(host, 'no EK CA bundle is configured ([tpm] ek_ca_bundle), '
                                         'so no EK certificate can be trusted')
            try:
                ekcert.verify_ek_certificate(ek_certificate, self.ca_bundle_pem, ek)
            except errors.TPMError as e:
                raise self._refuse(host, 'EK certificate refused: %s' % e)
        elif self.require_ek_certificate:
            raise self._refuse(host, 'no EK certificate was sent and [attestation] '
                                     'require_ek_certificate is set')
        secret = os.urandom(SECRET_SIZE)
        try:
            id_object, encrypted_secret = credential.make_credential(ek, ak.name, secret)
        except (errors.TPMError, ValueError) as e:
            raise self._refuse(host, 'cannot make a credential for this EK: %s' % e)
        try:
            self.store.register(host, bytes(ek_public), ek_hash, ek_certificate or None,
                                bytes(ak_public), ak.name.hex(), _challenge_digest(secret),
                                self.default_policy, allow_unenrolled=self.allow_unenrolled)
        except exception.Conflict as e:
            raise self._refuse(host, e.message)
        LOG.info('host %s registered (EK sha256:%s, AK %s), awaiting activation', host,
                 ek_hash, ak.name.hex())
        return id_object, encrypted_secret

    def activate(self, host, ak_name_hex, secret):
        """Finish the registration with the secret the TPM released; refuses a wrong one.

        Returns the registration state: ``active``, or ``awaiting_approval`` while the EK
        is not enrolled for ``host``.
        """
        digest = _challenge_digest(bytes(secret))
        try:
            record = self.store.get_host(host)
        except exception.NotFound:
            raise self._refuse(host, 'no registration awaits activation')
        expected_ak = record.pending_ak_name or record.ak_name
        if record.challenge_digest is None or not hmac.compare_digest(
                record.challenge_digest, digest) or expected_ak != ak_name_hex:
            raise self._refuse(host, 'the activation proof does not match the credential '
                                     'issued to this AK')
        state = self.store.activate(host, ak_name_hex, digest)
        if state is None:
            raise self._refuse(host, 'registration changed during activation; register again')
        if state == 'awaiting_approval':
            LOG.warning('host %s: AK %s is bound to its certified EK (sha256:%s), which is not '
                        'enrolled for this name: it is not attested until an admin runs '
                        '"openstack attestation host approve %s"', host, ak_name_hex,
                        record.ek_sha256, host)
        else:
            LOG.info('host %s activated: AK %s is bound to its certified EK', host,
                     ak_name_hex)
        return state
