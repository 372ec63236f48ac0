"""Endorsement key certificates: is this EK a genuine TPM's? (TCG EK Credential Profile 2.5).

:func:`verify_ek_certificate` builds the chain from the EK certificate to a self-signed
root in the operator's CA bundle (intermediates may be in the bundle too), checking each
signature, validity period, and the issuers' basicConstraints (CA, pathLen) and keyUsage
(keyCertSign when present); then that the certified key is the TPM's EK.

What is accepted on the EK certificate itself: TPM EK certificates carry TCG-specific
content that generic X.509 path validation rejects (an empty or placeholder subject with a
*critical* subjectAltName directoryName of TPM manufacturer/model/version attributes,
subjectDirectoryAttributes with the TPM specification, the tcg-kp-EKCertificate EKU, a
keyUsage of keyEncipherment or keyAgreement only). These are parsed but not interpreted,
and unrecognised critical extensions in the leaf do not fail it. The leaf must not be a CA
(basicConstraints cA=TRUE is refused). Revocation (CRL/OCSP) is not checked: the
operator removes a compromised CA from the bundle.
"""
import datetime

from cryptography import exceptions as crypto_exceptions
from cryptography.hazmat.primitives import serialization
from cryptography import x509

from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import structures

MAX_CHAIN_DEPTH = 8
_CHECK = 'ek_certificate'


def _fail(reason):
    return errors.VerificationError(_CHECK, reason)


def _der_length(data):
    """Length of the outer DER TLV, so NV padding after the certificate can be dropped."""
    if len(data) < 2 or data[0] != 0x30:
        return len(data)
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if not 0 < count <= 4 or len(data) < 2 + count:
        return len(data)
    return 2 + count + int.from_bytes(data[2:2 + count], 'big')


def load_certificate(data):
    """An X.509 certificate from DER (trailing NV padding ignored) or PEM bytes."""
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise errors.ParseError('EKCertificate', '(input)', 0, 'expected bytes')
    data = bytes(data)
    try:
        if data.lstrip().startswith(b'-----BEGIN'):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data[:_der_length(data)])
    except ValueError as e:
        raise errors.ParseError('EKCertificate', 'certificate', 0,
                                'not an X.509 certificate: %s' % e) from None


def load_ca_bundle(pem):
    """The certificates of a PEM bundle (at least one)."""
    if isinstance(pem, str):
        pem = pem.encode()
    try:
        certs = x509.load_pem_x509_certificates(bytes(pem))
    except (ValueError, TypeError) as e:
        raise errors.ParseError('CABundle', 'certificates', 0,
                                'not a PEM certificate bundle: %s' % e) from None
    return certs


def _describe(cert):
    try:
        subject = cert.subject.rfc4514_string() or '(empty subject)'
    except ValueError:
        subject = '(unparsable subject)'
    return '%s (serial %x)' % (subject, cert.serial_number)


def _check_validity(cert, now, role):
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise _fail('%s %s is not valid at %s (valid %s to %s)'
                    % (role, _describe(cert), now.isoformat(),
                       cert.not_valid_before_utc.isoformat(),
                       cert.not_valid_after_utc.isoformat()))


def _extension(cert, oid):
    try:
        return cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as e:
        raise errors.ParseError('EKCertificate', 'extensions', 0,
                                '%s: malformed extensions: %s' % (_describe(cert), e)) from None


def _check_issuer(issuer, now, below):
    """``issuer`` may sign certificates with ``below`` intermediate CAs under it."""
    _check_validity(issuer, now, 'CA certificate')
    constraints = _extension(issuer, x509.oid.ExtensionOID.BASIC_CONSTRAINTS)
    if constraints is None or not constraints.ca:
        raise _fail('%s is not a CA (basicConstraints cA is not TRUE)' % _describe(issuer))
    if constraints.path_length is not None and constraints.path_length < below:
        raise _fail('%s allows %d intermediate CAs below it, the chain has %d'
                    % (_describe(issuer), constraints.path_length, below))
    usage = _extension(issuer, x509.oid.ExtensionOID.KEY_USAGE)
    if usage is not None and not usage.key_cert_sign:
        raise _fail('%s keyUsage lacks keyCertSign' % _describe(issuer))


def _find_issuer(cert, bundle):
    candidates = [ca for ca in bundle if ca.subject == cert.issuer]
    if not candidates:
        raise _fail('no certificate in the CA bundle is the issuer %s of %s'
                    % (cert.issuer.rfc4514_string(), _describe(cert)))
    problems = []
    for ca in candidates:
        try:
            cert.verify_directly_issued_by(ca)
            return ca
        except crypto_exceptions.InvalidSignature:
            problems.append('signature by %s does not verify' % _describe(ca))
        except (ValueError, TypeError, crypto_exceptions.UnsupportedAlgorithm) as e:
            problems.append('%s cannot verify it: %s' % (_describe(ca), e))
    raise _fail('%s: %s' % (_describe(cert), '; '.join(problems)))


def _is_self_signed(cert):
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
        return True
    except (crypto_exceptions.InvalidSignature, ValueError, TypeError,
            crypto_exceptions.UnsupportedAlgorithm):
        return False


def _spki(key):
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def verify_ek_certificate(cert_bytes, ca_bundle_pem, ek_public=None, at=None):
    """Verify an EK certificate (DER or PEM) against a CA bundle; returns the x509 cert.

    ``ek_public``: the TPM's EK (TPM2B_PUBLIC bytes or TPMTPublic); when given, the
    certified key must be exactly that key. ``at``: the time to check validity at
    (default now). Raises VerificationError('ek_certificate', reason) or ParseError.
    """
    cert = load_certificate(cert_bytes)
    bundle = load_ca_bundle(ca_bundle_pem)
    now = at or datetime.datetime.now(datetime.timezone.utc)
    try:
        _check_validity(cert, now, 'EK certificate')
        constraints = _extension(cert, x509.oid.ExtensionOID.BASIC_CONSTRAINTS)
        if constraints is not None and constraints.ca:
            raise _fail('%s is a CA certificate, not an EK certificate' % _describe(cert))
        if ek_public is not None:
            ek = ek_public if isinstance(ek_public, structures.TPMTPublic) else \
                structures.parse_tpm2b_public(ek_public)
            try:
                certified = _spki(cert.public_key())
            except (ValueError, crypto_exceptions.UnsupportedAlgorithm) as e:
                raise _fail('the certified public key is unusable: %s' % e) from None
            if certified != _spki(ek.public_key()):
                raise _fail('the certificate %s certifies another key than this TPM\'s EK'
                            % _describe(cert))
        current = cert
        for below in range(MAX_CHAIN_DEPTH):
            issuer = _find_issuer(current, bundle)
            _check_issuer(issuer, now, below)
            if _is_self_signed(issuer):
                return cert
            current = issuer
    except ValueError as e:
        # cryptography decodes fields lazily: a malformed one surfaces here.
        raise errors.ParseError('EKCertificate', 'certificate', 0,
                                'malformed certificate: %s' % e) from None
    raise _fail('no self-signed root in the CA bundle within %d certificates of %s'
                % (MAX_CHAIN_DEPTH, _describe(cert)))
