"""TPM 2.0 structures a verifier reads: keys, attestations, signatures, PCR selections.

Names are those of TPM 2.0 Library Part 2 (rev 1.59): TPMT_PUBLIC / TPM2B_PUBLIC (12.2),
TPMS_ATTEST with TPMS_CLOCK_INFO and TPMS_QUOTE_INFO (10.12), TPMT_SIGNATURE (11.3.4),
TPML_PCR_SELECTION (10.9.7). Plus the PCR-values file that ``tpm2_quote -o`` writes, which is
not TPM marshalling but tpm2-tools' in-memory C structs (see :func:`parse_pcrs_file`).

Every ``parse_*`` accepts exactly one structure (no trailing bytes), rejects algorithms it
does not know and sizes beyond the specification's maxima, and raises only
:class:`~tclouds_openstack.tpm.errors.ParseError` naming the field and byte offset.
``parse(marshal(x)) == x`` for every structure here.
"""
import dataclasses
import functools
import hashlib

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa

from tclouds_openstack.tpm import constants as c
from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import marshal

# Buffer maxima (Part 2, 10.4 and 11.2; MAX_RSA_KEY_BYTES / MAX_ECC_KEY_BYTES of a TPM
# supporting RSA-4096 and NIST P-521).
MAX_DIGEST_BUFFER = 64          # sizeof(TPMU_HA)
MAX_NAME_BUFFER = 2 + 64        # sizeof(TPMU_NAME) = sizeof(TPMT_HA)
MAX_DATA_BUFFER = 2 + 64        # TPM2B_DATA: sizeof(TPMT_HA)
MAX_RSA_KEY_BYTES = 512
MAX_ECC_KEY_BYTES = 66
# TPML_PCR_SELECTION: at most one entry per bank (HASH_COUNT) and PCR_SELECT_MAX bytes.
MAX_PCR_BANKS = 16
PCR_SELECT_MAX = 4
PCR_SELECT_SIZE = 3             # what a 24-PCR PC Client TPM marshals

RSA_KEY_BITS = (1024, 2048, 3072, 4096)
CURVES = {
    c.TPM_ECC_NIST_P256: (ec.SECP256R1, 32),
    c.TPM_ECC_NIST_P384: (ec.SECP384R1, 48),
    c.TPM_ECC_NIST_P521: (ec.SECP521R1, 66),
}
# TPMT_RSA_SCHEME / TPMT_ECC_SCHEME / TPMT_KDF_SCHEME members with a TPMS_SCHEME_HASH body
# (Part 2, 11.2.3-11.2.5); RSAES has an empty body.
RSA_SCHEMES = (c.TPM_ALG_RSASSA, c.TPM_ALG_RSAPSS, c.TPM_ALG_OAEP, c.TPM_ALG_RSAES)
ECC_SCHEMES = (c.TPM_ALG_ECDSA, c.TPM_ALG_ECDH, c.TPM_ALG_ECSCHNORR)
TPM_ALG_MGF1 = 0x0007
TPM_ALG_KDF2 = 0x0021
KDF_SCHEMES = (TPM_ALG_MGF1, c.TPM_ALG_KDF1_SP800_56A, TPM_ALG_KDF2, c.TPM_ALG_KDF1_SP800_108)
SYMMETRIC_MODES = (0x0040, 0x0041, 0x0042, c.TPM_ALG_CFB, 0x0044, c.TPM_ALG_NULL)
SIGNATURE_ALGORITHMS = (c.TPM_ALG_RSASSA, c.TPM_ALG_RSAPSS, c.TPM_ALG_ECDSA)


def _hash_alg(reader, field, allow_null=False):
    """A TPMI_ALG_HASH as its hashlib name (None for TPM_ALG_NULL when allowed)."""
    start = reader.offset
    alg = reader.u16(field)
    if allow_null and alg == c.TPM_ALG_NULL:
        return None
    if alg not in c.HASH_ALGORITHMS_BY_ID:
        raise reader.error(field, 'unsupported hash algorithm 0x%04x' % alg, start)
    return c.HASH_ALGORITHMS_BY_ID[alg]


def _hash_id(name):
    return c.TPM_ALG_NULL if name is None else c.HASH_ALGORITHMS_BY_NAME[name]


# --------------------------------------------------------------------------- PCR selections

def normalize_selection(selection):
    """{bank: [idx]} or [(bank, [idx])] -> [(bank, sorted unique indexes)], banks in order."""
    items = selection.items() if isinstance(selection, dict) else selection
    out = []
    for bank, indexes in items:
        if bank not in c.HASH_ALGORITHMS_BY_NAME:
            raise ValueError('unknown PCR bank %r' % (bank,))
        indexes = sorted(set(indexes))
        if any(not 0 <= i < c.PCR_COUNT for i in indexes):
            raise ValueError('PCR indexes must be 0..%d' % (c.PCR_COUNT - 1))
        if any(b == bank for b, _ in out):
            raise ValueError('PCR bank %s selected twice' % bank)
        out.append((bank, indexes))
    return out


def selection_as_sets(selection):
    """{bank: set(indexes)} without empty banks, for comparing selections."""
    return {bank: set(idx) for bank, idx in selection if idx}


def _bitmap_indexes(reader, bitmap, field, start):
    indexes = [i for i in range(len(bitmap) * 8) if bitmap[i // 8] & (1 << (i % 8))]
    if indexes and indexes[-1] >= c.PCR_COUNT:
        raise reader.error(field, 'PCR %d selected; a TPM has PCRs 0..%d'
                           % (indexes[-1], c.PCR_COUNT - 1), start)
    return indexes


def _bitmap(indexes, size=PCR_SELECT_SIZE):
    bitmap = bytearray(size)
    for i in indexes:
        bitmap[i // 8] |= 1 << (i % 8)
    return bytes(bitmap)


def _read_pcr_selection(reader, prefix):
    start = reader.offset
    count = reader.u32(prefix + '.count')
    if count > MAX_PCR_BANKS:
        raise reader.error(prefix + '.count', '%d banks exceeds the maximum %d'
                           % (count, MAX_PCR_BANKS), start)
    selection = []
    for n in range(count):
        field = '%s.pcrSelections[%d]' % (prefix, n)
        hash_start = reader.offset
        bank = _hash_alg(reader, field + '.hash')
        if any(b == bank for b, _ in selection):
            raise reader.error(field + '.hash', 'bank %s selected twice' % bank, hash_start)
        size_start = reader.offset
        size = reader.u8(field + '.sizeofSelect')
        if size > PCR_SELECT_MAX:
            raise reader.error(field + '.sizeofSelect', '%d exceeds the maximum %d'
                               % (size, PCR_SELECT_MAX), size_start)
        bitmap_start = reader.offset
        bitmap = reader.take(size, field + '.pcrSelect')
        selection.append((bank, _bitmap_indexes(reader, bitmap, field + '.pcrSelect',
                                                bitmap_start)))
    return selection


def _write_pcr_selection(writer, selection):
    selection = normalize_selection(selection)
    writer.u32(len(selection))
    for bank, indexes in selection:
        writer.u16(c.HASH_ALGORITHMS_BY_NAME[bank]).u8(PCR_SELECT_SIZE).raw(_bitmap(indexes))


def parse_tpml_pcr_selection(data):
    """TPML_PCR_SELECTION (Part 2, 10.9.7) -> [(bank name, sorted indexes)]."""
    reader = marshal.Reader(data, 'TPML_PCR_SELECTION')
    selection = _read_pcr_selection(reader, 'TPML_PCR_SELECTION')
    reader.expect_end()
    return selection


def marshal_tpml_pcr_selection(selection):
    writer = marshal.Writer()
    _write_pcr_selection(writer, selection)
    return writer.getvalue()


# --------------------------------------------------------------------------- TPMT_PUBLIC

@dataclasses.dataclass(frozen=True)
class TPMTSymDefObject:
    """TPMT_SYM_DEF_OBJECT (Part 2, 11.1.7); ``None`` in its place means TPM_ALG_NULL."""
    algorithm: int
    key_bits: int
    mode: int


@dataclasses.dataclass(frozen=True)
class TPMTScheme:
    """A TPMT_*_SCHEME with a TPMS_SCHEME_HASH body (``hash_alg`` None for RSAES)."""
    scheme: int
    hash_alg: str = None


@dataclasses.dataclass(frozen=True)
class TPMTPublic:
    """TPMT_PUBLIC of an RSA or ECC key (Part 2, 12.2.4).

    RSA keys use ``key_bits``, ``exponent`` (0 means 65537) and ``unique`` (the modulus);
    ECC keys use ``curve_id``, ``kdf`` and ``unique_x``/``unique_y``. ``symmetric``,
    ``scheme`` and ``kdf`` are None for TPM_ALG_NULL.
    """
    type: int
    name_alg: str
    object_attributes: int
    auth_policy: bytes = b''
    symmetric: TPMTSymDefObject = None
    scheme: TPMTScheme = None
    key_bits: int = 0
    exponent: int = 0
    curve_id: int = 0
    kdf: TPMTScheme = None
    unique: bytes = b''
    unique_x: bytes = b''
    unique_y: bytes = b''

    def marshal(self):
        """The marshalled TPMT_PUBLIC."""
        w = marshal.Writer()
        w.u16(self.type).u16(_hash_id(self.name_alg)).u32(self.object_attributes)
        w.tpm2b(self.auth_policy)
        if self.symmetric is None:
            w.u16(c.TPM_ALG_NULL)
        else:
            w.u16(self.symmetric.algorithm).u16(self.symmetric.key_bits).u16(self.symmetric.mode)
        _write_scheme(w, self.scheme)
        if self.type == c.TPM_ALG_RSA:
            w.u16(self.key_bits).u32(self.exponent).tpm2b(self.unique)
        else:
            w.u16(self.curve_id)
            _write_scheme(w, self.kdf)
            w.tpm2b(self.unique_x).tpm2b(self.unique_y)
        return w.getvalue()

    def marshal_tpm2b_public(self):
        """The marshalled TPM2B_PUBLIC, as ``tpm2_createak -u`` writes it."""
        return marshal.tpm2b(self.marshal())

    @functools.cached_property
    def name(self):
        """TPM Name (Part 1, 16): nameAlg (UINT16) || H_nameAlg(marshalled TPMT_PUBLIC)."""
        alg = c.HASH_ALGORITHMS_BY_NAME[self.name_alg]
        return alg.to_bytes(2, 'big') + hashlib.new(self.name_alg, self.marshal()).digest()

    def has_attributes(self, mask):
        return self.object_attributes & mask == mask

    @functools.cached_property
    def _key(self):
        try:
            if self.type == c.TPM_ALG_RSA:
                return rsa.RSAPublicNumbers(self.exponent or 65537,
                                            int.from_bytes(self.unique, 'big')).public_key()
            curve, _ = CURVES[self.curve_id]
            return ec.EllipticCurvePublicNumbers(int.from_bytes(self.unique_x, 'big'),
                                                 int.from_bytes(self.unique_y, 'big'),
                                                 curve()).public_key()
        except ValueError as e:
            return errors.ParseError('TPMT_PUBLIC', 'unique', 0, 'not a valid public key: %s' % e)

    def public_key(self):
        """The key as a ``cryptography`` public key; ParseError if it is not a valid key."""
        key = self._key
        if isinstance(key, errors.ParseError):
            raise key
        return key


def _write_scheme(writer, scheme):
    if scheme is None:
        writer.u16(c.TPM_ALG_NULL)
        return
    writer.u16(scheme.scheme)
    if scheme.hash_alg is not None:
        writer.u16(_hash_id(scheme.hash_alg))


def _read_scheme(reader, field, allowed):
    start = reader.offset
    alg = reader.u16(field + '.scheme')
    if alg == c.TPM_ALG_NULL:
        return None
    if alg not in allowed:
        raise reader.error(field + '.scheme', 'unsupported scheme 0x%04x' % alg, start)
    if alg == c.TPM_ALG_RSAES:      # TPMS_EMPTY body
        return TPMTScheme(alg)
    return TPMTScheme(alg, _hash_alg(reader, field + '.details.hashAlg'))


def _read_tpmt_public(reader):
    start = reader.offset
    key_type = reader.u16('type')
    if key_type not in (c.TPM_ALG_RSA, c.TPM_ALG_ECC):
        raise reader.error('type', 'unsupported key type 0x%04x (RSA and ECC only)' % key_type,
                           start)
    name_alg = _hash_alg(reader, 'nameAlg')
    attributes = reader.u32('objectAttributes')
    auth_policy = reader.tpm2b('authPolicy', MAX_DIGEST_BUFFER)
    sym_start = reader.offset
    sym_alg = reader.u16('parameters.symmetric.algorithm')
    symmetric = None
    if sym_alg != c.TPM_ALG_NULL:
        if sym_alg != c.TPM_ALG_AES:
            raise reader.error('parameters.symmetric.algorithm',
                               'unsupported symmetric algorithm 0x%04x' % sym_alg, sym_start)
        bits_start = reader.offset
        key_bits = reader.u16('parameters.symmetric.keyBits')
        if key_bits not in (128, 192, 256):
            raise reader.error('parameters.symmetric.keyBits',
                               'AES key size %d is not 128, 192 or 256' % key_bits, bits_start)
        mode_start = reader.offset
        mode = reader.u16('parameters.symmetric.mode')
        if mode not in SYMMETRIC_MODES:
            raise reader.error('parameters.symmetric.mode', 'unsupported mode 0x%04x' % mode,
                               mode_start)
        symmetric = TPMTSymDefObject(sym_alg, key_bits, mode)
    fields = dict(type=key_type, name_alg=name_alg, object_attributes=attributes,
                  auth_policy=auth_policy, symmetric=symmetric)
    if key_type == c.TPM_ALG_RSA:
        fields['scheme'] = _read_scheme(reader, 'parameters.scheme', RSA_SCHEMES)
        bits_start = reader.offset
        fields['key_bits'] = reader.u16('parameters.keyBits')
        if fields['key_bits'] not in RSA_KEY_BITS:
            raise reader.error('parameters.keyBits', 'unsupported RSA key size %d'
                               % fields['key_bits'], bits_start)
        fields['exponent'] = reader.u32('parameters.exponent')
        mod_start = reader.offset
        fields['unique'] = reader.tpm2b('unique.rsa', MAX_RSA_KEY_BYTES)
        if len(fields['unique']) != fields['key_bits'] // 8:
            raise reader.error('unique.rsa', 'modulus of %d bytes for a %d-bit key'
                               % (len(fields['unique']), fields['key_bits']), mod_start)
    else:
        fields['scheme'] = _read_scheme(reader, 'parameters.scheme', ECC_SCHEMES)
        curve_start = reader.offset
        fields['curve_id'] = reader.u16('parameters.curveID')
        if fields['curve_id'] not in CURVES:
            raise reader.error('parameters.curveID', 'unsupported curve 0x%04x'
                               % fields['curve_id'], curve_start)
        fields['kdf'] = _read_scheme(reader, 'parameters.kdf', KDF_SCHEMES)
        size = CURVES[fields['curve_id']][1]
        for coord in ('x', 'y'):
            coord_start = reader.offset
            value = reader.tpm2b('unique.ecc.' + coord, MAX_ECC_KEY_BYTES)
            if len(value) > size:
                raise reader.error('unique.ecc.' + coord, 'coordinate of %d bytes on a %d-byte '
                                   'curve' % (len(value), size), coord_start)
            fields['unique_' + coord] = value
    return TPMTPublic(**fields)


def parse_tpmt_public(data):
    """A marshalled TPMT_PUBLIC (no size prefix)."""
    reader = marshal.Reader(data, 'TPMT_PUBLIC')
    public = _read_tpmt_public(reader)
    reader.expect_end()
    return public


def parse_tpm2b_public(data):
    """A marshalled TPM2B_PUBLIC, as written by ``tpm2_createak -u`` / ``tpm2_createek -u``."""
    reader = marshal.Reader(data, 'TPM2B_PUBLIC')
    size = reader.u16('size')
    if size != reader.remaining:
        raise reader.error('size', 'size %d but %d bytes follow' % (size, reader.remaining), 0)
    reader.structure = 'TPM2B_PUBLIC.publicArea'
    public = _read_tpmt_public(reader)
    if reader.remaining:
        raise reader.error('(end)', 'publicArea is %d bytes shorter than its size'
                           % reader.remaining)
    return public


# --------------------------------------------------------------------------- TPMS_ATTEST

@dataclasses.dataclass(frozen=True)
class TPMSClockInfo:
    """TPMS_CLOCK_INFO (Part 2, 10.11.1)."""
    clock: int
    reset_count: int
    restart_count: int
    safe: bool


@dataclasses.dataclass(frozen=True)
class TPMSQuoteInfo:
    """TPMS_QUOTE_INFO (Part 2, 10.12.4): ``pcr_select`` as [(bank, sorted indexes)]."""
    pcr_select: list
    pcr_digest: bytes


@dataclasses.dataclass(frozen=True)
class TPMSCertifyInfo:
    """TPMS_CERTIFY_INFO (Part 2, 10.12.3)."""
    name: bytes
    qualified_name: bytes


@dataclasses.dataclass(frozen=True)
class TPMSAttest:
    """TPMS_ATTEST (Part 2, 10.12.12) of a quote or a certification."""
    magic: int
    type: int
    qualified_signer: bytes
    extra_data: bytes
    clock_info: TPMSClockInfo
    firmware_version: int
    attested: object

    def marshal(self):
        w = marshal.Writer()
        w.u32(self.magic).u16(self.type).tpm2b(self.qualified_signer).tpm2b(self.extra_data)
        ci = self.clock_info
        w.u64(ci.clock).u32(ci.reset_count).u32(ci.restart_count).u8(1 if ci.safe else 0)
        w.u64(self.firmware_version)
        if self.type == c.TPM_ST_ATTEST_QUOTE:
            _write_pcr_selection(w, self.attested.pcr_select)
            w.tpm2b(self.attested.pcr_digest)
        else:
            w.tpm2b(self.attested.name).tpm2b(self.attested.qualified_name)
        return w.getvalue()


def parse_tpms_attest(data):
    """A marshalled TPMS_ATTEST (``tpm2_quote -m``) of type quote or certify.

    The magic is returned as found: the quote verifier reports a wrong magic as a failed
    check, not a parse error.
    """
    r = marshal.Reader(data, 'TPMS_ATTEST')
    magic = r.u32('magic')
    type_start = r.offset
    attest_type = r.u16('type')
    if attest_type not in (c.TPM_ST_ATTEST_QUOTE, c.TPM_ST_ATTEST_CERTIFY):
        raise r.error('type', 'unsupported attestation type 0x%04x' % attest_type, type_start)
    qualified_signer = r.tpm2b('qualifiedSigner', MAX_NAME_BUFFER)
    extra_data = r.tpm2b('extraData', MAX_DATA_BUFFER)
    clock = r.u64('clockInfo.clock')
    reset_count = r.u32('clockInfo.resetCount')
    restart_count = r.u32('clockInfo.restartCount')
    safe_start = r.offset
    safe = r.u8('clockInfo.safe')
    if safe > 1:
        raise r.error('clockInfo.safe', 'TPMI_YES_NO value %d is not 0 or 1' % safe, safe_start)
    firmware_version = r.u64('firmwareVersion')
    if attest_type == c.TPM_ST_ATTEST_QUOTE:
        attested = TPMSQuoteInfo(_read_pcr_selection(r, 'attested.quote.pcrSelect'),
                                 r.tpm2b('attested.quote.pcrDigest', MAX_DIGEST_BUFFER))
    else:
        attested = TPMSCertifyInfo(r.tpm2b('attested.certify.name', MAX_NAME_BUFFER),
                                   r.tpm2b('attested.certify.qualifiedName', MAX_NAME_BUFFER))
    r.expect_end()
    return TPMSAttest(magic, attest_type, qualified_signer, extra_data,
                      TPMSClockInfo(clock, reset_count, restart_count, bool(safe)),
                      firmware_version, attested)


# --------------------------------------------------------------------------- TPMT_SIGNATURE

@dataclasses.dataclass(frozen=True)
class TPMTSignature:
    """TPMT_SIGNATURE (Part 2, 11.3.4): RSASSA/RSAPSS use ``signature``, ECDSA ``r``/``s``."""
    sig_alg: int
    hash_alg: str
    signature: bytes = b''
    r: bytes = b''
    s: bytes = b''

    def marshal(self):
        w = marshal.Writer().u16(self.sig_alg).u16(_hash_id(self.hash_alg))
        if self.sig_alg == c.TPM_ALG_ECDSA:
            w.tpm2b(self.r).tpm2b(self.s)
        else:
            w.tpm2b(self.signature)
        return w.getvalue()


def parse_tpmt_signature(data):
    """A marshalled TPMT_SIGNATURE (``tpm2_quote -s``) with an RSASSA, RSAPSS or ECDSA body."""
    r = marshal.Reader(data, 'TPMT_SIGNATURE')
    alg = r.u16('sigAlg')
    if alg not in SIGNATURE_ALGORITHMS:
        raise r.error('sigAlg', 'unsupported signature algorithm 0x%04x' % alg, 0)
    hash_alg = _hash_alg(r, 'signature.hash')
    if alg == c.TPM_ALG_ECDSA:
        sig_r = r.tpm2b('signature.ecdsa.signatureR', MAX_ECC_KEY_BYTES)
        sig_s = r.tpm2b('signature.ecdsa.signatureS', MAX_ECC_KEY_BYTES)
        sig = TPMTSignature(alg, hash_alg, r=sig_r, s=sig_s)
    else:
        sig = TPMTSignature(alg, hash_alg, signature=r.tpm2b('signature.rsa.sig',
                                                             MAX_RSA_KEY_BYTES))
    r.expect_end()
    return sig


# --------------------------------------------------------------------------- tpm2_quote -o file

# tpm2-tools (lib/pcr.c, pcr_fwrite_serialized) fwrite()s host structs: TPML_PCR_SELECTION
# (UINT32 count + 16 TPMS_PCR_SELECTION of {UINT16 hash, UINT8 sizeofSelect,
# BYTE pcrSelect[4], 1 pad byte}), a UINT32 number of TPML_DIGEST chunks, then each chunk
# (UINT32 count + 8 TPM2B_DIGEST of {UINT16 size, BYTE buffer[64]}), one chunk per
# TPM2_PCR_Read (at most 8 digests). Little-endian on the x86/ARM hosts that write it;
# padding and unused slots are ignored. Keylime reads the same format.
_FILE_BANK_SLOTS = 16
_FILE_MAX_CHUNKS = 32            # tpm2_pcrs.pcr_values[TPM2_MAX_PCRS]
_FILE_DIGESTS_PER_CHUNK = 8


@dataclasses.dataclass(frozen=True)
class PCRsFile:
    """``selection`` = [(bank, sorted indexes)], ``values`` = {bank: {index: digest}}."""
    selection: list
    values: dict


def parse_pcrs_file(data):
    """The PCR values file written by ``tpm2_quote -o`` / ``tpm2_pcrread -o`` (serialized)."""
    r = marshal.Reader(data, 'PCRS_FILE', marshal.LITTLE_ENDIAN)
    count = r.u32('pcr_select.count')
    if count > _FILE_BANK_SLOTS:
        raise r.error('pcr_select.count', '%d banks exceeds the maximum %d'
                      % (count, _FILE_BANK_SLOTS), 0)
    selection = []
    for n in range(count):
        field = 'pcr_select.pcrSelections[%d]' % n
        slot_start = r.offset
        slot = r.take(8, field)
        alg = int.from_bytes(slot[0:2], 'little')
        if alg not in c.HASH_ALGORITHMS_BY_ID:
            raise r.error(field + '.hash', 'unsupported hash algorithm 0x%04x' % alg, slot_start)
        bank = c.HASH_ALGORITHMS_BY_ID[alg]
        if any(b == bank for b, _ in selection):
            raise r.error(field + '.hash', 'bank %s selected twice' % bank, slot_start)
        size = slot[2]
        if size > PCR_SELECT_MAX:
            raise r.error(field + '.sizeofSelect', '%d exceeds the maximum %d'
                          % (size, PCR_SELECT_MAX), slot_start + 2)
        selection.append((bank, _bitmap_indexes(r, slot[3:3 + size], field + '.pcrSelect',
                                                slot_start + 3)))
    r.take(8 * (_FILE_BANK_SLOTS - count), 'pcr_select.pcrSelections[%d]' % count)
    chunks_start = r.offset
    chunks = r.u32('pcrs.count')
    if chunks > _FILE_MAX_CHUNKS:
        raise r.error('pcrs.count', '%d digest lists exceeds the maximum %d'
                      % (chunks, _FILE_MAX_CHUNKS), chunks_start)
    digests = []
    for j in range(chunks):
        field = 'pcrs.pcr_values[%d]' % j
        n_start = r.offset
        n = r.u32(field + '.count')
        if n > _FILE_DIGESTS_PER_CHUNK:
            raise r.error(field + '.count', '%d digests exceeds the maximum %d'
                          % (n, _FILE_DIGESTS_PER_CHUNK), n_start)
        for k in range(n):
            d_start = r.offset
            size = r.u16('%s.digests[%d].size' % (field, k))
            if size > MAX_DIGEST_BUFFER:
                raise r.error('%s.digests[%d].size' % (field, k), 'size %d exceeds %d'
                              % (size, MAX_DIGEST_BUFFER), d_start)
            buf = r.take(MAX_DIGEST_BUFFER, '%s.digests[%d].buffer' % (field, k))
            digests.append((buf[:size], d_start))
        r.take((2 + MAX_DIGEST_BUFFER) * (_FILE_DIGESTS_PER_CHUNK - n),
               '%s.digests[%d]' % (field, n))
    r.expect_end()
    expected = sum(len(idx) for _, idx in selection)
    if len(digests) != expected:
        raise r.error('pcrs', '%d digests for %d selected PCRs' % (len(digests), expected),
                      chunks_start)
    values = {}
    it = iter(digests)
    for bank, indexes in selection:
        bank_values = values.setdefault(bank, {})
        for index in indexes:
            digest, offset = next(it)
            if len(digest) != c.DIGEST_SIZES[bank]:
                raise r.error('pcrs', '%s PCR %d value has %d bytes, not %d'
                              % (bank, index, len(digest), c.DIGEST_SIZES[bank]), offset)
            bank_values[index] = digest
    return PCRsFile(selection, values)


def marshal_pcrs_file(selection, values):
    """Write the ``tpm2_quote -o`` file for ``selection`` with ``values`` {bank: {idx: bytes}}."""
    selection = normalize_selection(selection)
    if len(selection) > _FILE_BANK_SLOTS:
        raise ValueError('at most %d banks' % _FILE_BANK_SLOTS)
    w = marshal.Writer(marshal.LITTLE_ENDIAN)
    w.u32(len(selection))
    digests = []
    for bank, indexes in selection:
        w.u16(c.HASH_ALGORITHMS_BY_NAME[bank]).u8(PCR_SELECT_SIZE)
        w.raw(_bitmap(indexes, PCR_SELECT_MAX)).u8(0)
        for i in indexes:
            digest = bytes(values[bank][i])
            if len(digest) != c.DIGEST_SIZES[bank]:
                raise ValueError('%s PCR %d: %d bytes' % (bank, i, len(digest)))
            digests.append(digest)
    w.raw(b'\0' * 8 * (_FILE_BANK_SLOTS - len(selection)))
    chunks = [digests[i:i + _FILE_DIGESTS_PER_CHUNK]
              for i in range(0, len(digests), _FILE_DIGESTS_PER_CHUNK)]
    if len(chunks) > _FILE_MAX_CHUNKS:
        raise ValueError('too many PCRs for one file')
    w.u32(len(chunks))
    for chunk in chunks:
        w.u32(len(chunk))
        for digest in chunk:
            w.u16(len(digest)).raw(digest.ljust(MAX_DIGEST_BUFFER, b'\0'))
        w.raw(b'\0' * (2 + MAX_DIGEST_BUFFER) * (_FILE_DIGESTS_PER_CHUNK - len(chunk)))
    return w.getvalue()
