"""Property tests over every TPM structure parser of the evidence core.

For random bytes, truncations, bit flips and oversized length fields of valid structures,
parsers and verifiers raise nothing but errors.TPMError subclasses; for generated
structures parse(marshal(x)) == x. Bounded so the file runs in well under a minute.
"""
from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st

from tclouds_openstack.tpm import constants as c
from tclouds_openstack.tpm import credential
from tclouds_openstack.tpm import ekcert
from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import quote
from tclouds_openstack.tpm import structures
from tests.unit.tpm import builders

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
ROUND_TRIP = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

banks = st.sampled_from(sorted(c.HASH_ALGORITHMS_BY_NAME))
selections = st.lists(st.tuples(banks, st.lists(st.integers(0, 23), unique=True).map(sorted)),
                      max_size=4, unique_by=lambda t: t[0])
hash_or_none = st.one_of(st.none(), banks)
schemes_rsa = st.one_of(
    st.none(), st.just(structures.TPMTScheme(c.TPM_ALG_RSAES)),
    st.builds(structures.TPMTScheme, st.sampled_from([c.TPM_ALG_RSASSA, c.TPM_ALG_RSAPSS,
                                                      c.TPM_ALG_OAEP]), banks))
schemes_ecc = st.one_of(st.none(), st.builds(structures.TPMTScheme,
                                             st.sampled_from(structures.ECC_SCHEMES), banks))
kdfs = st.one_of(st.none(), st.builds(structures.TPMTScheme,
                                      st.sampled_from(structures.KDF_SCHEMES), banks))
symmetrics = st.one_of(st.none(), st.builds(structures.TPMTSymDefObject, st.just(c.TPM_ALG_AES),
                                            st.sampled_from([128, 192, 256]),
                                            st.sampled_from(structures.SYMMETRIC_MODES)))


@st.composite
def public_areas(draw):
    common = dict(name_alg=draw(banks), object_attributes=draw(st.integers(0, 2 ** 32 - 1)),
                  auth_policy=draw(st.binary(max_size=64)), symmetric=draw(symmetrics))
    if draw(st.booleans()):
        bits = draw(st.sampled_from(structures.RSA_KEY_BITS))
        return structures.TPMTPublic(type=c.TPM_ALG_RSA, scheme=draw(schemes_rsa), key_bits=bits,
                                     exponent=draw(st.integers(0, 2 ** 32 - 1)),
                                     unique=draw(st.binary(min_size=bits // 8,
                                                           max_size=bits // 8)), **common)
    curve = draw(st.sampled_from(sorted(structures.CURVES)))
    size = structures.CURVES[curve][1]
    return structures.TPMTPublic(type=c.TPM_ALG_ECC, scheme=draw(schemes_ecc), curve_id=curve,
                                 kdf=draw(kdfs), unique_x=draw(st.binary(max_size=size)),
                                 unique_y=draw(st.binary(max_size=size)), **common)


@st.composite
def attests(draw):
    kind = draw(st.sampled_from([c.TPM_ST_ATTEST_QUOTE, c.TPM_ST_ATTEST_CERTIFY]))
    if kind == c.TPM_ST_ATTEST_QUOTE:
        attested = structures.TPMSQuoteInfo(draw(selections), draw(st.binary(max_size=64)))
    else:
        attested = structures.TPMSCertifyInfo(draw(st.binary(max_size=66)),
                                              draw(st.binary(max_size=66)))
    return structures.TPMSAttest(
        magic=draw(st.integers(0, 2 ** 32 - 1)), type=kind,
        qualified_signer=draw(st.binary(max_size=66)), extra_data=draw(st.binary(max_size=66)),
        clock_info=structures.TPMSClockInfo(draw(st.integers(0, 2 ** 64 - 1)),
                                            draw(st.integers(0, 2 ** 32 - 1)),
                                            draw(st.integers(0, 2 ** 32 - 1)),
                                            draw(st.booleans())),
        firmware_version=draw(st.integers(0, 2 ** 64 - 1)), attested=attested)


signatures = st.one_of(
    st.builds(structures.TPMTSignature, st.sampled_from([c.TPM_ALG_RSASSA, c.TPM_ALG_RSAPSS]),
              banks, signature=st.binary(max_size=512)),
    st.builds(structures.TPMTSignature, st.just(c.TPM_ALG_ECDSA), banks,
              r=st.binary(max_size=66), s=st.binary(max_size=66)))


@st.composite
def pcrs_files(draw):
    selection = draw(selections)
    values = {bank: {i: draw(st.binary(min_size=c.DIGEST_SIZES[bank],
                                       max_size=c.DIGEST_SIZES[bank])) for i in idx}
              for bank, idx in selection}
    return selection, values


# ------------------------------------------------------------------ round trips

@ROUND_TRIP
@given(public_areas())
def test_public_round_trip(area):
    assert structures.parse_tpm2b_public(area.marshal_tpm2b_public()) == area
    assert structures.parse_tpmt_public(area.marshal()) == area


@ROUND_TRIP
@given(attests())
def test_attest_round_trip(attest):
    assert structures.parse_tpms_attest(attest.marshal()) == attest


@ROUND_TRIP
@given(signatures)
def test_signature_round_trip(sig):
    assert structures.parse_tpmt_signature(sig.marshal()) == sig


@ROUND_TRIP
@given(selections)
def test_selection_round_trip(selection):
    data = structures.marshal_tpml_pcr_selection(selection)
    assert structures.parse_tpml_pcr_selection(data) == selection


@ROUND_TRIP
@given(pcrs_files())
def test_pcrs_file_round_trip(file):
    selection, values = file
    parsed = structures.parse_pcrs_file(structures.marshal_pcrs_file(selection, values))
    assert parsed.selection == selection
    assert parsed.values == {b: v for b, v in values.items()}


# ------------------------------------------------------------------ robustness

def _valid_samples():
    ak, attest, sig, values = builders.quote(builders.ecc_key())
    rsa_ak, rsa_attest, rsa_sig, _ = builders.quote(builders.rsa_key())
    selection = [('sha256', [0, 1, 2, 7, 10]), ('sha1', [10])]
    ek = builders.ek_area(builders.rsa_key())
    id_object, secret = credential.make_credential(ek, structures.parse_tpm2b_public(ak).name,
                                                   b'x' * 32)
    return {
        'public': [ak, rsa_ak, ek.marshal_tpm2b_public()],
        'attest': [attest],
        'signature': [sig, rsa_sig],
        'selection': [structures.marshal_tpml_pcr_selection(selection)],
        'pcrs': [structures.marshal_pcrs_file(selection, values)],
        'tools': [credential.marshal_tools_credential(id_object, secret)],
        'quote': (ak, attest, sig, values),
    }


SAMPLES = _valid_samples()
PARSERS = {
    'public': [structures.parse_tpm2b_public,
               lambda d: structures.parse_tpmt_public(d[2:]),
               lambda d: structures.parse_tpm2b_public(d).public_key()],
    'attest': [structures.parse_tpms_attest],
    'signature': [structures.parse_tpmt_signature],
    'selection': [structures.parse_tpml_pcr_selection],
    'pcrs': [structures.parse_pcrs_file],
    'tools': [credential.parse_tools_credential],
}


def _only_tpm_errors(fn, data):
    try:
        fn(data)
    except errors.TPMError:
        pass


@st.composite
def mutations(draw, kind):
    data = bytearray(draw(st.sampled_from(SAMPLES[kind])))
    how = draw(st.sampled_from(['truncate', 'flip', 'oversize', 'extend']))
    if how == 'truncate':
        return bytes(data[:draw(st.integers(0, len(data) - 1))])
    if how == 'flip':
        for _ in range(draw(st.integers(1, 4))):
            pos = draw(st.integers(0, len(data) - 1))
            data[pos] ^= 1 << draw(st.integers(0, 7))
        return bytes(data)
    if how == 'oversize':         # a length field (or anything) becomes huge
        pos = draw(st.integers(0, len(data) - 2))
        data[pos:pos + 2] = draw(st.sampled_from([b'\xff\xff', b'\x80\x00', b'\x01\x00']))
        return bytes(data)
    return bytes(data) + draw(st.binary(min_size=1, max_size=8))


def _fuzz_kind(kind):
    @FUZZ
    @given(st.one_of(st.binary(max_size=600), mutations(kind)))
    def run(data):
        for parser in PARSERS[kind]:
            _only_tpm_errors(parser, data)
    return run


test_fuzz_public = _fuzz_kind('public')
test_fuzz_attest = _fuzz_kind('attest')
test_fuzz_signature = _fuzz_kind('signature')
test_fuzz_selection = _fuzz_kind('selection')
test_fuzz_pcrs_file = _fuzz_kind('pcrs')
test_fuzz_tools_credential = _fuzz_kind('tools')


@FUZZ
@given(st.sampled_from(['ak', 'attest', 'sig']), st.data())
def test_fuzz_verify_quote(which, data):
    """A mutated AK, attest or signature is rejected with a TPMError, never accepted."""
    ak, attest, sig, values = SAMPLES['quote']
    args = {'ak': ak, 'attest': attest, 'sig': sig}
    kind = {'ak': 'public', 'attest': 'attest', 'sig': 'signature'}[which]
    mutated = data.draw(st.one_of(st.binary(max_size=300), mutations(kind)))
    if mutated == args[which]:
        return
    args[which] = mutated
    try:
        quote.verify_quote(args['ak'], args['attest'], args['sig'], b'nonce-1234', values)
    except errors.TPMError:
        return
    # Accepted: only possible if the change did not alter what is signed and checked.
    assert which == 'sig' or (which == 'ak' and
                              structures.parse_tpm2b_public(mutated).public_key()
                              .public_numbers() == structures.parse_tpm2b_public(ak)
                              .public_key().public_numbers())


@FUZZ
@given(st.one_of(st.binary(max_size=400),
                 st.binary(max_size=400).map(lambda b: b'\x30\x82' + b),
                 st.binary(max_size=300).map(
                     lambda b: b'-----BEGIN CERTIFICATE-----\n' + b
                     + b'\n-----END CERTIFICATE-----\n')))
def test_fuzz_ek_certificate(data):
    _only_tpm_errors(lambda d: ekcert.verify_ek_certificate(d, d), data)


@FUZZ
@given(st.one_of(st.binary(max_size=400), mutations('public')), st.binary(max_size=70))
def test_fuzz_make_credential(ek_bytes, name):
    _only_tpm_errors(lambda d: credential.make_credential(d, name, b'secret'), ek_bytes)
