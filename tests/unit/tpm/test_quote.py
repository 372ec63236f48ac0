"""verify_quote: every check has its own name and the signature is checked first.

Quotes are signed in software here; tests/functional/tpm uses swtpm-made ones.
"""
import hashlib

import pytest

from tclouds_openstack.tpm import constants as c
from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import quote
from tclouds_openstack.tpm import structures
from tests.unit.tpm import builders

NONCE = b'nonce-1234'


def _check_of(*args, **kwargs):
    with pytest.raises(errors.VerificationError) as e:
        quote.verify_quote(*args, **kwargs)
    return e.value.check


@pytest.mark.parametrize('key,sig_alg', [
    (builders.rsa_key(), None), (builders.rsa_key(), c.TPM_ALG_RSAPSS),
    (builders.ecc_key(), None), (builders.ecc_key(0, 'secp384r1'), None)],
    ids=['rsassa', 'rsapss', 'ecdsa-p256', 'ecdsa-p384'])
def test_valid_quote(key, sig_alg):
    ak, attest, sig, values = builders.quote(key, sig_alg=sig_alg)
    verified = quote.verify_quote(ak, attest, sig, NONCE, values,
                                  required={'sha256': [0, 10], 'sha1': [10]})
    assert verified.pcr_values == values
    assert verified.attest.clock_info.reset_count == 3
    assert verified.attest.extra_data == NONCE
    # a TPMTPublic works as well as its bytes
    assert quote.verify_quote(structures.parse_tpm2b_public(ak), attest, sig, NONCE,
                              values).attest == verified.attest


def test_signature_hash_selects_the_composite_digest():
    ak, attest, sig, values = builders.quote(builders.ecc_key(), hash_alg='sha384')
    area = structures.parse_tpm2b_public(ak)
    # The builder's AK declares ECDSA-SHA256; an AK without a fixed scheme accepts SHA-384.
    free = builders.public_area(builders.ecc_key(), scheme=None)
    assert area.scheme is not None
    verified = quote.verify_quote(free, attest, sig, NONCE, values)
    concatenated = b''.join(values['sha256'][i] for i in (0, 1, 2, 7, 10)) + values['sha1'][10]
    assert verified.attest.attested.pcr_digest == hashlib.sha384(concatenated).digest()
    assert _check_of(ak, attest, sig, NONCE, values) == 'signature'   # scheme mismatch


def test_each_failure_names_its_check():
    key = builders.rsa_key()
    ak, attest, sig, values = builders.quote(key)

    assert _check_of(ak, attest, sig, b'nonce-9999', values) == 'nonce'
    assert _check_of(ak, attest, sig, NONCE.decode(), values) == 'nonce'     # text != bytes

    altered = {b: dict(v) for b, v in values.items()}
    altered['sha256'][10] = b'\x11' * 32
    assert _check_of(ak, attest, sig, NONCE, altered) == 'pcr_digest'

    missing = {b: dict(v) for b, v in values.items()}
    del missing['sha256'][10]
    assert _check_of(ak, attest, sig, NONCE, missing) == 'pcr_selection'
    extra = {b: dict(v) for b, v in values.items()}
    extra['sha256'][16] = b'\0' * 32
    assert _check_of(ak, attest, sig, NONCE, extra) == 'pcr_selection'
    extra_bank = dict(values, sha384={0: b'\0' * 48})
    assert _check_of(ak, attest, sig, NONCE, extra_bank) == 'pcr_selection'

    assert _check_of(ak, attest, sig, NONCE, values, required={'sha256': [0, 11]}) == \
        'required_pcrs'
    assert _check_of(ak, attest, sig, NONCE, values, required={'sha384': [0]}) == \
        'required_pcrs'

    flipped = bytearray(attest)
    flipped[-1] ^= 1
    assert _check_of(ak, bytes(flipped), sig, NONCE, values) == 'signature'

    other_ak = builders.public_area(builders.rsa_key(1)).marshal_tpm2b_public()
    assert _check_of(other_ak, attest, sig, NONCE, values) == 'signature'


def test_signature_is_checked_before_anything_in_the_attest():
    """Garbage that is not even a TPMS_ATTEST fails 'signature', never a parse error."""
    ak, _, sig, values = builders.quote(builders.ecc_key())
    assert _check_of(ak, b'\xff' * 7, sig, NONCE, values) == 'signature'
    # A well-signed non-TPM message is caught by magic, a signed certify by type.
    key = builders.ecc_key()
    for kwargs, check in (({'magic': 0xDEADBEEF}, 'magic'),
                          ({'attest_type': c.TPM_ST_ATTEST_CERTIFY}, 'type')):
        ak, attest, sig, values = builders.quote(key, **kwargs)
        assert _check_of(ak, attest, sig, NONCE, values) == check


def test_ak_attributes():
    key = builders.ecc_key()
    _, attest, sig, values = builders.quote(key)
    for attributes in (builders.AK_ATTRIBUTES & ~c.TPMA_OBJECT_RESTRICTED,
                       builders.AK_ATTRIBUTES & ~c.TPMA_OBJECT_FIXEDTPM,
                       builders.EK_ATTRIBUTES):
        ak = builders.public_area(key, attributes=attributes).marshal_tpm2b_public()
        with pytest.raises(errors.VerificationError) as e:
            quote.verify_quote(ak, attest, sig, NONCE, values)
        assert e.value.check == 'ak_attributes'


def test_scheme_must_fit_the_key():
    rsa_ak, attest, _, values = builders.quote(builders.rsa_key())
    ecdsa_sig = builders.sign(builders.ecc_key(), attest)
    assert _check_of(rsa_ak, attest, ecdsa_sig, NONCE, values) == 'signature'
    # RSAPSS signature for an AK whose scheme is RSASSA
    pss = builders.sign(builders.rsa_key(), attest, c.TPM_ALG_RSAPSS)
    with pytest.raises(errors.VerificationError) as e:
        quote.verify_quote(rsa_ak, attest, pss, NONCE, values)
    assert 'differs from the key scheme' in e.value.reason


def test_malformed_signature_is_a_parse_error():
    ak, attest, sig, values = builders.quote(builders.ecc_key())
    with pytest.raises(errors.ParseError) as e:
        quote.verify_quote(ak, attest, sig[:-1], NONCE, values)
    assert e.value.structure == 'TPMT_SIGNATURE'
    with pytest.raises(errors.ParseError):
        quote.verify_quote(ak[:-1], attest, sig, NONCE, values)


def test_bad_pcr_value_types_fail_closed():
    ak, attest, sig, values = builders.quote(builders.ecc_key())
    assert _check_of(ak, attest, sig, NONCE, ['sha256']) == 'pcr_selection'
    broken = {b: {i: 'text' for i in v} for b, v in values.items()}
    assert _check_of(ak, attest, sig, NONCE, broken) == 'pcr_digest'


def test_verified_values_are_copies_of_the_quoted_pcrs():
    ak, attest, sig, values = builders.quote(builders.ecc_key(), selection={'sha256': [3]})
    values_with_empty_bank = dict(values, sha1={})
    verified = quote.verify_quote(ak, attest, sig, NONCE, values_with_empty_bank)
    assert verified.pcr_values == {'sha256': values['sha256']}
