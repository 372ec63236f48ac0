"""TPM 2.0 structures: round trips, TPM Names, and precise errors on malformed bytes."""
import hashlib
import struct

import pytest

from tclouds_openstack.tpm import constants as c
from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import marshal
from tclouds_openstack.tpm import structures
from tests.unit.tpm import builders


def _parse_error(fn, data):
    with pytest.raises(errors.ParseError) as e:
        fn(data)
    return e.value


# ------------------------------------------------------------------ marshal.Reader

def test_reader_reports_structure_field_and_offset():
    r = marshal.Reader(b'\x00\x01\x00\x05abc', 'THING')
    assert r.u16('a') == 1
    err = _parse_error(lambda _: r.tpm2b('buf', 64), None)
    assert (err.structure, err.field, err.offset) == ('THING', 'buf', 4)
    assert str(err) == 'THING.buf at offset 4: truncated: need 5 bytes, 3 left'
    r = marshal.Reader(b'\x01\x00', 'THING')
    err = _parse_error(lambda _: r.tpm2b('buf', 16), None)
    assert err.field == 'buf.size' and err.offset == 0 and 'exceeds the maximum 16' in err.reason
    err = _parse_error(lambda d: marshal.Reader(d, 'X'), 'text')
    assert err.field == '(input)'


def test_writer_tpm2b_and_little_endian():
    assert marshal.tpm2b(b'ab') == b'\x00\x02ab'
    assert marshal.Writer(marshal.LITTLE_ENDIAN).u32(1).getvalue() == b'\x01\0\0\0'
    assert marshal.unwrap_tpm2b(b'\x00\x01z', 'T') == b'z'
    assert _parse_error(lambda d: marshal.unwrap_tpm2b(d, 'T'), b'\x00\x01zz').field == '(end)'


# ------------------------------------------------------------------ TPMT_PUBLIC

@pytest.mark.parametrize('key', [builders.rsa_key(), builders.ecc_key(),
                                 builders.ecc_key(0, 'secp384r1')], ids=['rsa', 'p256', 'p384'])
def test_public_round_trip_name_and_key(key):
    area = builders.public_area(key)
    data = area.marshal_tpm2b_public()
    parsed = structures.parse_tpm2b_public(data)
    assert parsed == area
    assert parsed.marshal_tpm2b_public() == data
    assert structures.parse_tpmt_public(area.marshal()) == area
    # TPM Name (Part 1, 16): nameAlg || H(TPMT_PUBLIC)
    assert parsed.name == b'\x00\x0b' + hashlib.sha256(data[2:]).digest()
    assert parsed.public_key().public_numbers() == key.public_key().public_numbers()


def test_ek_template_fields_round_trip():
    ek = builders.ek_area(builders.rsa_key())
    parsed = structures.parse_tpm2b_public(ek.marshal_tpm2b_public())
    assert parsed.symmetric == structures.TPMTSymDefObject(c.TPM_ALG_AES, 128, c.TPM_ALG_CFB)
    assert parsed.scheme is None and parsed.exponent == 0


def _rsa_bytes():
    return builders.public_area(builders.rsa_key()).marshal_tpm2b_public()


def _ecc_bytes():
    return builders.public_area(builders.ecc_key()).marshal_tpm2b_public()


@pytest.mark.parametrize('mutate,field,offset', [
    (lambda b: b[:2] + b[2:-1], 'TPM2B_PUBLIC.size', 0),
    (lambda b: struct.pack('>H', len(b) - 2) + b'\x00\x25' + b[4:],
     'TPM2B_PUBLIC.publicArea.type', 2),
    (lambda b: b[:4] + b'\x00\x12' + b[6:], 'TPM2B_PUBLIC.publicArea.nameAlg', 4),
    (lambda b: b[:10] + b'\x00\x41' + b[12:], 'TPM2B_PUBLIC.publicArea.authPolicy.size', 10),
    (lambda b: b[:12] + b'\x00\x25' + b[14:], 'TPM2B_PUBLIC.publicArea.parameters.symmetric'
                                              '.algorithm', 12),
    (lambda b: b[:14] + b'\x00\x99' + b[16:], 'TPM2B_PUBLIC.publicArea.parameters.scheme'
                                              '.scheme', 14),
    (lambda b: b[:16] + b'\x00\x99' + b[18:], 'TPM2B_PUBLIC.publicArea.parameters.scheme.details'
                                              '.hashAlg', 16),
    (lambda b: b[:18] + b'\x04\x01' + b[20:], 'TPM2B_PUBLIC.publicArea.parameters.keyBits', 18),
])
def test_rsa_public_errors_name_field_and_offset(mutate, field, offset):
    err = _parse_error(structures.parse_tpm2b_public, mutate(_rsa_bytes()))
    assert '%s.%s' % (err.structure, err.field) == field
    assert err.offset == offset


def test_public_size_and_trailing_checks():
    data = _rsa_bytes()
    # modulus size that does not match keyBits
    bad = bytearray(data)
    bad[18:20] = struct.pack('>H', 1024)
    err = _parse_error(structures.parse_tpm2b_public, bytes(bad))
    assert err.field == 'unique.rsa' and 'modulus of 256 bytes for a 1024-bit key' in err.reason
    err = _parse_error(structures.parse_tpmt_public, data[2:] + b'\0')
    assert err.field == '(end)' and err.offset == len(data) - 2
    longer = struct.pack('>H', len(data) - 1) + data[2:] + b'\0'
    err = _parse_error(structures.parse_tpm2b_public, longer)
    assert err.field == '(end)' and 'shorter than its size' in err.reason


def test_ecc_public_errors():
    data = bytearray(_ecc_bytes())
    # curveID is after type, nameAlg, attributes, authPolicy(empty), sym NULL, scheme+hash
    assert data[18:20] == b'\x00\x03'
    data[18:20] = b'\x00\x20'
    err = _parse_error(structures.parse_tpm2b_public, bytes(data))
    assert err.field == 'parameters.curveID' and err.offset == 18
    # An x coordinate larger than the curve
    area = builders.public_area(builders.ecc_key())
    big = structures.TPMTPublic(type=area.type, name_alg=area.name_alg,
                                object_attributes=area.object_attributes, scheme=area.scheme,
                                curve_id=area.curve_id, unique_x=b'\1' * 33,
                                unique_y=area.unique_y)
    err = _parse_error(structures.parse_tpm2b_public, big.marshal_tpm2b_public())
    assert err.field == 'unique.ecc.x' and 'coordinate of 33 bytes' in err.reason
    # A point not on the curve parses but is not a usable key.
    off = structures.TPMTPublic(type=area.type, name_alg=area.name_alg,
                                object_attributes=area.object_attributes, scheme=area.scheme,
                                curve_id=area.curve_id, unique_x=b'\1' * 32, unique_y=b'\2' * 32)
    parsed = structures.parse_tpm2b_public(off.marshal_tpm2b_public())
    with pytest.raises(errors.ParseError) as e:
        parsed.public_key()
    assert e.value.field == 'unique'


# ------------------------------------------------------------------ TPMS_ATTEST

def test_attest_round_trip_quote_and_certify():
    values = builders.pcr_values({'sha256': [0, 23]})
    for kind in (c.TPM_ST_ATTEST_QUOTE, c.TPM_ST_ATTEST_CERTIFY):
        attest = builders.attest(b'nonce', {'sha256': [0, 23]}, values, attest_type=kind)
        data = attest.marshal()
        assert structures.parse_tpms_attest(data) == attest
        assert structures.parse_tpms_attest(data).marshal() == data
    parsed = structures.parse_tpms_attest(builders.attest(b'n', {'sha256': [0, 23]},
                                                          values).marshal())
    assert parsed.attested.pcr_select == [('sha256', [0, 23])]
    assert parsed.clock_info.reset_count == 3 and parsed.clock_info.safe is True


def _attest_bytes():
    values = builders.pcr_values({'sha256': [0, 1]})
    return builders.attest(b'abc', {'sha256': [0, 1]}, values).marshal()


def test_attest_errors():
    data = _attest_bytes()
    # layout: magic 0, type 4, qualifiedSigner 6 (2+34), extraData 42 (2+3),
    # clock 47, resetCount 55, restartCount 59, safe 63, firmware 64, pcrSelect 72
    bad = bytearray(data)
    bad[4:6] = b'\x80\x14'
    err = _parse_error(structures.parse_tpms_attest, bytes(bad))
    assert (err.field, err.offset) == ('type', 4)
    bad = bytearray(data)
    bad[63] = 2
    err = _parse_error(structures.parse_tpms_attest, bytes(bad))
    assert (err.field, err.offset) == ('clockInfo.safe', 63)
    bad = bytearray(data)
    bad[42:44] = b'\x00\x43'
    err = _parse_error(structures.parse_tpms_attest, bytes(bad))
    assert (err.field, err.offset) == ('extraData.size', 42)
    bad = bytearray(data)
    bad[72:76] = b'\x00\x00\x00\x11'
    err = _parse_error(structures.parse_tpms_attest, bytes(bad))
    assert (err.field, err.offset) == ('attested.quote.pcrSelect.count', 72)
    err = _parse_error(structures.parse_tpms_attest, data + b'\0')
    assert err.field == '(end)' and err.offset == len(data)
    err = _parse_error(structures.parse_tpms_attest, data[:60])
    assert err.field == 'clockInfo.restartCount' and 'truncated' in err.reason


def test_pcr_selection_parse_errors():
    good = structures.marshal_tpml_pcr_selection({'sha256': [0, 23], 'sha1': [5]})
    assert structures.parse_tpml_pcr_selection(good) == [('sha256', [0, 23]), ('sha1', [5])]
    # PCR 24+ with a 4-byte bitmap
    err = _parse_error(structures.parse_tpml_pcr_selection,
                       b'\0\0\0\1\x00\x0b\x04\0\0\0\x01')
    assert err.field == 'TPML_PCR_SELECTION.pcrSelections[0].pcrSelect' and err.offset == 7
    err = _parse_error(structures.parse_tpml_pcr_selection, b'\0\0\0\1\x00\x0b\x05' + bytes(5))
    assert err.field.endswith('sizeofSelect') and err.offset == 6
    err = _parse_error(structures.parse_tpml_pcr_selection,
                       b'\0\0\0\2\x00\x0b\x03\1\0\0\x00\x0b\x03\2\0\0')
    assert err.field == 'TPML_PCR_SELECTION.pcrSelections[1].hash' and 'twice' in err.reason
    err = _parse_error(structures.parse_tpml_pcr_selection, b'\0\0\0\1\x00\x10\x03\1\0\0')
    assert 'unsupported hash algorithm 0x0010' in err.reason


# ------------------------------------------------------------------ TPMT_SIGNATURE

def test_signature_round_trip_and_errors():
    for sig in (structures.TPMTSignature(c.TPM_ALG_RSASSA, 'sha256', signature=b'\1' * 256),
                structures.TPMTSignature(c.TPM_ALG_RSAPSS, 'sha384', signature=b'\2' * 384),
                structures.TPMTSignature(c.TPM_ALG_ECDSA, 'sha256', r=b'\3' * 32, s=b'\4' * 32)):
        assert structures.parse_tpmt_signature(sig.marshal()) == sig
    err = _parse_error(structures.parse_tpmt_signature, b'\x00\x10\x00\x0b')
    assert (err.field, err.offset) == ('sigAlg', 0)
    err = _parse_error(structures.parse_tpmt_signature, b'\x00\x18\x00\x10\0\0\0\0')
    assert (err.field, err.offset) == ('signature.hash', 2)
    err = _parse_error(structures.parse_tpmt_signature, b'\x00\x18\x00\x0b\x00\x43' + bytes(67))
    assert err.field == 'signature.ecdsa.signatureR.size'


# ------------------------------------------------------------------ tpm2_quote -o file

def test_pcrs_file_round_trip_and_layout():
    selection = [('sha256', list(range(10))), ('sha1', [0, 10])]
    values = builders.pcr_values(selection)
    data = structures.marshal_pcrs_file(selection, values)
    # 132-byte TPML_PCR_SELECTION, chunk count, two 532-byte TPML_DIGEST chunks (8 + 4)
    assert len(data) == 132 + 4 + 2 * 532
    assert struct.unpack_from('<I', data, 132)[0] == 2
    assert struct.unpack_from('<I', data, 136)[0] == 8
    assert struct.unpack_from('<I', data, 136 + 532)[0] == 4
    parsed = structures.parse_pcrs_file(data)
    assert parsed.selection == selection and parsed.values == values
    assert structures.marshal_pcrs_file(parsed.selection, parsed.values) == data


def test_pcrs_file_errors():
    selection = [('sha256', [0, 1])]
    values = builders.pcr_values(selection)
    data = structures.marshal_pcrs_file(selection, values)
    err = _parse_error(structures.parse_pcrs_file, data + b'\0')
    assert err.field == '(end)' and err.offset == len(data)
    err = _parse_error(structures.parse_pcrs_file, data[:100])
    assert err.field == 'pcr_select.pcrSelections[1]' and err.offset == 12
    bad = bytearray(data)
    bad[4:6] = b'\x99\x00'
    err = _parse_error(structures.parse_pcrs_file, bytes(bad))
    assert (err.field, err.offset) == ('pcr_select.pcrSelections[0].hash', 4)
    bad = bytearray(data)
    bad[136:140] = b'\x01\0\0\0'        # one digest for two selected PCRs
    err = _parse_error(structures.parse_pcrs_file, bytes(bad))
    assert err.field == 'pcrs' and '1 digests for 2 selected PCRs' in err.reason
    bad = bytearray(data)
    bad[140:142] = b'\x14\x00'          # a 20-byte value in the sha256 bank
    err = _parse_error(structures.parse_pcrs_file, bytes(bad))
    assert err.offset == 140 and 'sha256 PCR 0 value has 20 bytes' in err.reason
    bad = bytearray(data)
    bad[132:136] = b'\x21\0\0\0'
    err = _parse_error(structures.parse_pcrs_file, bytes(bad))
    assert (err.field, err.offset) == ('pcrs.count', 132)
    bad = bytearray(data)
    bad[140:142] = b'\x41\x00'
    err = _parse_error(structures.parse_pcrs_file, bytes(bad))
    assert err.field == 'pcrs.pcr_values[0].digests[0].size'


def test_normalize_selection_rejects_bad_input():
    assert structures.normalize_selection({'sha1': [3, 1, 3]}) == [('sha1', [1, 3])]
    for bad in ({'md5': [1]}, {'sha1': [24]}, [('sha1', [1]), ('sha1', [2])]):
        with pytest.raises(ValueError):
            structures.normalize_selection(bad)
