"""MakeCredential: KDFs against independent implementations, and a software
ActivateCredential (TPM 2.0 Part 1, 24) that recovers the secret with the EK private key.
"""
import hmac

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.kdf import concatkdf
from cryptography.hazmat.primitives.kdf import kbkdf
import pytest

from tclouds_openstack.tpm import credential
from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import marshal
from tclouds_openstack.tpm import structures
from tests.unit.tpm import builders


@pytest.mark.parametrize('hash_alg,bits', [('sha256', 128), ('sha256', 256), ('sha384', 384),
                                           ('sha1', 200)])
def test_kdfa_is_sp800_108_counter_mode(hash_alg, bits):
    expected = kbkdf.KBKDFHMAC(
        algorithm=builders.HASHES[hash_alg](), mode=kbkdf.Mode.CounterMode,
        length=bits // 8, rlen=4, llen=4, location=kbkdf.CounterLocation.BeforeFixed,
        label=b'STORAGE', context=b'name-u' + b'ctx-v', fixed=None).derive(b'seed' * 8)
    assert credential.kdfa(hash_alg, b'seed' * 8, b'STORAGE', b'name-u', b'ctx-v',
                           bits) == expected


@pytest.mark.parametrize('hash_alg', ['sha256', 'sha384'])
def test_kdfe_is_sp800_56a_concatenation(hash_alg):
    size = builders.HASHES[hash_alg].digest_size
    expected = concatkdf.ConcatKDFHash(builders.HASHES[hash_alg](), size * 2,
                                       b'IDENTITY\0' + b'U' * 32 + b'V' * 32).derive(b'Z' * 48)
    assert credential.kdfe(hash_alg, b'Z' * 48, b'IDENTITY', b'U' * 32, b'V' * 32,
                           size * 16) == expected


def software_activate(ek_private, ek, ak_name, id_object, encrypted_secret):
    """What TPM2_ActivateCredential does (Part 3, 12.5), written from the spec."""
    h = builders.HASHES[ek.name_alg]()
    enc = marshal.unwrap_tpm2b(encrypted_secret, 'TPM2B_ENCRYPTED_SECRET')
    if isinstance(ek_private, rsa.RSAPrivateKey):
        seed = ek_private.decrypt(enc, padding.OAEP(padding.MGF1(h), h, b'IDENTITY\0'))
    else:
        r = marshal.Reader(enc, 'TPMS_ECC_POINT')
        x, y = r.tpm2b('x', 66), r.tpm2b('y', 66)
        point = ec.EllipticCurvePublicNumbers(int.from_bytes(x, 'big'), int.from_bytes(y, 'big'),
                                              ek_private.curve).public_key()
        z = ek_private.exchange(ec.ECDH(), point)
        seed = credential.kdfe(ek.name_alg, z, b'IDENTITY', x, ek.unique_x, h.digest_size * 8)
    body = marshal.Reader(marshal.unwrap_tpm2b(id_object, 'TPM2B_ID_OBJECT'), 'TPMS_ID_OBJECT')
    integrity = body.tpm2b('integrityHMAC', 64)
    enc_identity = body.take(body.remaining, 'encIdentity')
    hmac_key = credential.kdfa(ek.name_alg, seed, b'INTEGRITY', b'', b'', h.digest_size * 8)
    if not hmac.compare_digest(hmac.new(hmac_key, enc_identity + ak_name, ek.name_alg).digest(),
                               integrity):
        raise ValueError('integrity check failed')
    key = credential.kdfa(ek.name_alg, seed, b'STORAGE', ak_name, b'', 128)
    plain = Cipher(algorithms.AES(key), credential.CFB(b'\0' * 16)).decryptor().update(enc_identity)
    return marshal.unwrap_tpm2b(plain, 'TPM2B_DIGEST')


@pytest.mark.parametrize('ek_private,name_alg', [
    (builders.rsa_key(), 'sha256'), (builders.ecc_key(), 'sha256'),
    (builders.ecc_key(0, 'secp384r1'), 'sha384')], ids=['rsa', 'p256', 'p384-sha384'])
def test_make_credential_round_trip(ek_private, name_alg):
    ek = builders.ek_area(ek_private, name_alg=name_alg)
    ak_name = builders.public_area(builders.ecc_key(1)).name
    secret = b'\x42' * 32
    id_object, encrypted = credential.make_credential(ek.marshal_tpm2b_public(), ak_name, secret)
    assert software_activate(ek_private, ek, ak_name, id_object, encrypted) == secret
    wrong_name = builders.public_area(builders.ecc_key(2)).name
    with pytest.raises(ValueError):
        software_activate(ek_private, ek, wrong_name, id_object, encrypted)
    # Fresh randomness each time.
    assert credential.make_credential(ek, ak_name, secret)[1] != encrypted


def test_make_credential_input_checks():
    ek = builders.ek_area(builders.rsa_key())
    ak_name = builders.public_area(builders.ecc_key()).name
    ak_as_ek = builders.public_area(builders.rsa_key())
    with pytest.raises(errors.VerificationError) as e:
        credential.make_credential(ak_as_ek, ak_name, b'secret')
    assert e.value.check == 'ek_attributes'
    with pytest.raises(errors.ParseError) as e:
        credential.make_credential(ek, ak_name[:-1], b'secret')
    assert e.value.field == 'name.digest'
    with pytest.raises(errors.ParseError):
        credential.make_credential(ek, b'\x00\x99' + bytes(32), b'secret')
    for secret in (b'', b'x' * 65):
        with pytest.raises(ValueError):
            credential.make_credential(ek, ak_name, secret)
    with pytest.raises(errors.ParseError):
        credential.make_credential(b'\x00\x01', ak_name, b'secret')


def test_tools_file_round_trip_and_errors():
    ek = builders.ek_area(builders.rsa_key())
    ak_name = builders.public_area(builders.ecc_key()).name
    id_object, encrypted = credential.make_credential(ek, ak_name, b's' * 16)
    data = credential.marshal_tools_credential(id_object, encrypted)
    assert data[:8] == b'\xba\xdc\xc0\xde\x00\x00\x00\x01'
    assert credential.parse_tools_credential(data) == (id_object, encrypted)
    cases = [(b'\xba\xdc\xc0\xdf' + data[4:], 'magic', 0),
             (data[:7] + b'\x02' + data[8:], 'version', 4),
             (data + b'\0', '(end)', len(data)),
             (data[:-1], 'secret', 8 + len(id_object) + 2),
             (data[:8] + b'\x01\x00' + data[10:], 'credentialBlob.size', 8)]
    for bad, field, offset in cases:
        with pytest.raises(errors.ParseError) as e:
            credential.parse_tools_credential(bad)
        assert (e.value.field, e.value.offset) == (field, offset)
    with pytest.raises(errors.ParseError):
        credential.marshal_tools_credential(id_object + b'\0', encrypted)


def test_ek_without_cfb_is_refused():
    ek = builders.ek_area(builders.rsa_key())
    no_sym = structures.TPMTPublic(type=ek.type, name_alg=ek.name_alg,
                                   object_attributes=ek.object_attributes, key_bits=ek.key_bits,
                                   unique=ek.unique)
    with pytest.raises(errors.VerificationError) as e:
        credential.make_credential(no_sym, builders.public_area(builders.ecc_key()).name, b's')
    assert 'AES-CFB' in e.value.reason
