"""EK certificate chains built in software: what is accepted and what is refused."""
import datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography import x509
from cryptography.x509.oid import NameOID
import pytest

from tclouds_openstack.tpm import ekcert
from tclouds_openstack.tpm import errors
from tests.unit.tpm import builders

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
TCG_MANUFACTURER = x509.ObjectIdentifier('2.23.133.2.1')
TCG_EK_CERTIFICATE = x509.ObjectIdentifier('2.23.133.8.1')


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]) if cn else x509.Name([])


def _cert(subject, public_key, issuer_name, issuer_key, ca=False, path_length=None,
          key_cert_sign=True, not_before=NOW - DAY, not_after=NOW + 365 * DAY, tpm_ek=False):
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer_name))
         .public_key(public_key).serial_number(x509.random_serial_number())
         .not_valid_before(not_before).not_valid_after(not_after))
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), True)
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, key_cert_sign,
                                          True, False, False), True)
    if tpm_ek:
        # What TPM EK certificates carry (TCG EK Credential Profile 3.2): empty subject,
        # critical SAN with TPM attributes, the EK EKU, and an unknown critical extension.
        b = b.add_extension(x509.SubjectAlternativeName([x509.DirectoryName(x509.Name([
            x509.NameAttribute(TCG_MANUFACTURER, 'id:00001014')]))]), True)
        b = b.add_extension(x509.ExtendedKeyUsage([TCG_EK_CERTIFICATE]), False)
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier('2.23.133.99.1'),
                                                       b'\x05\x00'), True)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(*certs):
    return b''.join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@pytest.fixture(scope='module')
def pki():
    root_key, inter_key = builders.rsa_key(10), builders.ecc_key(10)
    root = _cert('Root', root_key.public_key(), 'Root', root_key, ca=True)
    inter = _cert('Issuer', inter_key.public_key(), 'Root', root_key, ca=True, path_length=0)
    ek_key = builders.rsa_key(11)
    ek = _cert(None, ek_key.public_key(), 'Issuer', inter_key, tpm_ek=True)
    return dict(root_key=root_key, inter_key=inter_key, root=root, inter=inter, ek=ek,
                ek_public=builders.ek_area(ek_key).marshal_tpm2b_public())


def _refused(*args, **kwargs):
    with pytest.raises(errors.VerificationError) as e:
        ekcert.verify_ek_certificate(*args, **kwargs)
    assert e.value.check == 'ek_certificate'
    return e.value.reason


def test_tpm_style_certificate_is_accepted(pki):
    der = pki['ek'].public_bytes(serialization.Encoding.DER)
    bundle = _pem(pki['root'], pki['inter'])
    assert ekcert.verify_ek_certificate(der, bundle, pki['ek_public']) == pki['ek']
    # PEM input, bundle order, and the NV padding some TPMs leave after the DER
    assert ekcert.verify_ek_certificate(_pem(pki['ek']), _pem(pki['inter'], pki['root']))
    assert ekcert.verify_ek_certificate(der + b'\xff' * 40, bundle.decode())


def test_key_must_be_the_ek(pki):
    other = builders.ek_area(builders.rsa_key(12)).marshal_tpm2b_public()
    assert 'another key' in _refused(_pem(pki['ek']), _pem(pki['root'], pki['inter']), other)
    ecc = builders.ek_area(builders.ecc_key(12))
    assert 'another key' in _refused(_pem(pki['ek']), _pem(pki['root'], pki['inter']), ecc)


def test_chain_must_reach_a_root_in_the_bundle(pki):
    assert 'issuer CN=Root' in _refused(_pem(pki['ek']), _pem(pki['inter']))
    assert 'issuer CN=Issuer' in _refused(_pem(pki['ek']), _pem(pki['root']))
    # Same names, other keys: the signature does not verify.
    fake_root = _cert('Root', builders.rsa_key(13).public_key(), 'Root', builders.rsa_key(13),
                      ca=True)
    fake_inter = _cert('Issuer', builders.ecc_key(13).public_key(), 'Root',
                       builders.rsa_key(13), ca=True)
    assert 'does not verify' in _refused(_pem(pki['ek']), _pem(fake_root, fake_inter))


def test_issuer_constraints(pki):
    root_key, inter_key = pki['root_key'], pki['inter_key']
    ek = pki['ek']
    not_ca = _cert('Issuer', inter_key.public_key(), 'Root', root_key)
    assert 'not a CA' in _refused(_pem(ek), _pem(pki['root'], not_ca))
    no_sign = _cert('Issuer', inter_key.public_key(), 'Root', root_key, ca=True,
                    key_cert_sign=False)
    assert 'keyCertSign' in _refused(_pem(ek), _pem(pki['root'], no_sign))
    expired = _cert('Issuer', inter_key.public_key(), 'Root', root_key, ca=True,
                    not_after=NOW - DAY / 2)
    assert 'not valid at' in _refused(_pem(ek), _pem(pki['root'], expired))
    # pathLen 0 on the root forbids the intermediate under it.
    strict_root = _cert('Root', root_key.public_key(), 'Root', root_key, ca=True, path_length=0)
    assert 'allows 0 intermediate' in _refused(_pem(ek), _pem(strict_root, pki['inter']))


def test_leaf_checks(pki):
    bundle = _pem(pki['root'], pki['inter'])
    assert 'not valid at' in _refused(_pem(pki['ek']), bundle, at=NOW + 400 * DAY)
    ca_leaf = _cert('Sub', builders.rsa_key(11).public_key(), 'Issuer', pki['inter_key'],
                    ca=True)
    assert 'is a CA certificate' in _refused(_pem(ca_leaf), bundle)


def test_chain_depth_is_bounded():
    keys = [builders.ecc_key(20 + i) for i in range(ekcert.MAX_CHAIN_DEPTH + 2)]
    certs = [_cert('CA0', keys[0].public_key(), 'CA0', keys[0], ca=True)]
    for i in range(1, len(keys)):
        certs.append(_cert('CA%d' % i, keys[i].public_key(), 'CA%d' % (i - 1), keys[i - 1],
                           ca=True))
    leaf = _cert(None, builders.rsa_key(11).public_key(), 'CA%d' % (len(keys) - 1), keys[-1])
    assert 'no self-signed root' in _refused(_pem(leaf), _pem(*certs))


@pytest.mark.parametrize('data', [b'', b'\x30\x03\x02\x01\x01', b'-----BEGIN CERTIFICATE-----',
                                  b'\x30\x84\xff\xff\xff\xff', 42])
def test_undecodable_certificate_is_a_parse_error(pki, data):
    with pytest.raises(errors.ParseError):
        ekcert.verify_ek_certificate(data, _pem(pki['root']))


def test_undecodable_bundle_is_a_parse_error(pki):
    broken = b'-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----'
    for bundle in (b'', b'not pem', broken):
        with pytest.raises(errors.ParseError):
            ekcert.verify_ek_certificate(_pem(pki['ek']), bundle)
