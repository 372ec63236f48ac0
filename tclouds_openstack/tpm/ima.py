"""Linux IMA measurement list (``ascii_runtime_measurements``): parse, marshal, replay.

Each line is ``<pcr> <template-hash> <template-name> <template fields...>`` (Linux
``security/integrity/ima/ima_fs.c``). Templates (``ima_template.c``, Documentation/security/
IMA-templates.rst):

- ``ima-ng``:  d-ng | n-ng           shown as ``<alg>:<hex> <path>``
- ``ima-sig``: d-ng | n-ng | sig     shown as ``<alg>:<hex> <path> <sig hex>`` (sig may be empty)
- ``ima-buf``: d-ng | n-ng | buf     shown as ``<alg>:<hex> <name> <buf hex>``
- ``ima`` (legacy): d | n            shown as ``<sha1 hex> <path>``

The template data the kernel hashes is, for every field, a u32 little-endian length followed
by the field, where d-ng = ``<alg>:\\0`` || digest and n-ng = path || ``\\0``. The legacy
``ima`` template instead hashes the 20-byte digest followed by the name NUL-padded to 256
bytes, without lengths. The SHA-1 bank is extended with the logged template hash, every other
bank with that bank's hash of the template data; a violation (template hash all zeros) is
extended as all 0xFF bytes in every bank.

Pure: bytes or text in, values out. Malformed input raises only
:class:`~tclouds_openstack.tpm.errors.ImaLogError`, naming the line and field. Paths may
contain spaces and bytes that are not UTF-8; they are kept as ``str`` decoded with
``surrogateescape`` so the exact bytes (and so the template hash) survive a round trip.
"""
import binascii
import dataclasses
import hashlib
import struct

from tclouds_openstack.tpm import constants
from tclouds_openstack.tpm.errors import ImaLogError

IMA_PCR = 10
# The boot_aggregate entry covers PCR 0-9 (ima_calc_boot_aggregate, Linux >= 5.8; 0-7 before).
BOOT_AGGREGATE_NAME = 'boot_aggregate'
BOOT_AGGREGATE_PCRS = tuple(range(10))
TEMPLATES = ('ima-ng', 'ima-sig', 'ima-buf', 'ima')
# IMA_EVENT_NAME_LEN_MAX (ima.h): the legacy template's fixed name field is this + 1 bytes.
IMA_EVENT_NAME_LEN_MAX = 255
# Kernel hash_algo_name[] entries IMA may use for file digests, with their sizes.
FILE_DIGEST_SIZES = {
    'md4': 16, 'md5': 16, 'sha1': 20, 'rmd160': 20, 'sha224': 28, 'sha256': 32,
    'sha384': 48, 'sha512': 64, 'wp256': 32, 'wp384': 48, 'wp512': 64, 'tgr128': 16,
    'tgr160': 20, 'tgr192': 24, 'sm3': 32, 'streebog256': 32, 'streebog512': 64,
    'sha3-256': 32, 'sha3-384': 48, 'sha3-512': 64,
}
# A template hash is SHA-1 in the ascii list (ima_fs.c shows the sha1 bank's digest).
_TEMPLATE_HASH_SIZE = 20
_U32 = struct.Struct('<I')
_pack_u32 = _U32.pack
_VIOLATION_HASH = bytes(_TEMPLATE_HASH_SIZE)
_ENCODING = 'utf-8'
_ERRORS = 'surrogateescape'
# the parser's lookups by the bytes of the line (one dict probe, no decode per entry)
_TEMPLATE_NAMES = {name.encode('ascii'): name for name in TEMPLATES}
_ALGORITHMS = {name.encode('ascii'): (name, size) for name, size in FILE_DIGEST_SIZES.items()}
_DIGEST_NG_PREFIXES = {name: name.encode('ascii') + b':\0' for name in FILE_DIGEST_SIZES}
_SIGNATURE_PREFIXES = frozenset(a + b for a in (b'03', b'06') for b in (b'02', b'03'))


@dataclasses.dataclass(frozen=True)
class ImaEntry:
    """One measurement of the list.

    ``template_hash`` is the logged SHA-1; ``signature`` is the ima-sig field (None when the
    template has none or it is empty); ``buffer`` is ima-buf's data. ``line`` is 1-based in
    the list it was parsed from (0 for built entries).
    """

    line: int
    pcr: int
    template_hash: bytes
    template_name: str
    digest_algorithm: str
    file_digest: bytes
    path: str
    signature: object = None
    buffer: object = None

    @property
    def is_violation(self):
        """A ToMToU/open-writers violation: logged template hash all zeros (ima_api.c)."""
        return self.template_hash == _VIOLATION_HASH


def _path_bytes(path, line=0):
    try:
        return path.encode(_ENCODING, _ERRORS)
    except UnicodeEncodeError as e:
        raise ImaLogError(line, 'n-ng', 'the path has a character that is not encodable at '
                          'position %d' % e.start)


def _field(data):
    return _U32.pack(len(data)) + data


def template_data(entry):
    """The bytes the kernel hashes for ``entry``'s template hash in every bank."""
    path = _path_bytes(entry.path, entry.line)
    name = entry.template_name
    if name == 'ima':
        # ima_calc_field_array_hash_tfm(): no lengths, name padded to 256 bytes
        return entry.file_digest + path.ljust(IMA_EVENT_NAME_LEN_MAX + 1, b'\0')
    prefix = _DIGEST_NG_PREFIXES.get(entry.digest_algorithm)
    if prefix is None:
        prefix = entry.digest_algorithm.encode('ascii') + b':\0'
    digest = entry.file_digest
    data = (_pack_u32(len(prefix) + len(digest)) + prefix + digest
            + _pack_u32(len(path) + 1) + path + b'\0')
    if name == 'ima-sig':
        data += _field(entry.signature or b'')
    elif name == 'ima-buf':
        data += _field(entry.buffer or b'')
    return data


def template_hashes(entry, banks=('sha1', 'sha256')):
    """{bank: digest} the kernel extends into ``entry.pcr`` for this entry."""
    out = {}
    for bank in banks:
        size = constants.DIGEST_SIZES[bank]
        if entry.is_violation:
            out[bank] = b'\xff' * size
        elif bank == 'sha1':
            out[bank] = entry.template_hash
        else:
            out[bank] = hashlib.new(bank, template_data(entry)).digest()
    return out


def template_hash_matches(entry):
    """True when the logged SHA-1 template hash is SHA-1 of the entry's template data.

    A line whose file digest was rewritten keeps its old template hash: the SHA-1 replay
    still matches the TPM, so appraisal must check this (or replay a non-SHA-1 bank).
    Violations have no template data to check and return True.
    """
    return entry.is_violation or (
        hashlib.sha1(template_data(entry)).digest() == entry.template_hash)


def replay(entries, banks=('sha1', 'sha256'), start=None):
    """PCR values after extending ``entries``: ``{bank: {pcr: bytes}}``.

    ``start`` ({bank: {pcr: value}}) continues from earlier values, so a verifier that
    fetches the list incrementally replays only the new entries. PCRs no entry touches
    and that ``start`` does not name are left out.
    """
    for bank in banks:
        if bank not in constants.DIGEST_SIZES:
            raise ImaLogError(0, 'banks', 'unknown PCR bank %r' % (bank,))
    values = {bank: dict((start or {}).get(bank, {})) for bank in banks}
    for entry in entries:
        for bank, digest in template_hashes(entry, banks).items():
            current = values[bank].get(entry.pcr, bytes(len(digest)))
            values[bank][entry.pcr] = hashlib.new(bank, current + digest).digest()
    return values


def boot_aggregate(pcr_values, bank='sha256'):
    """The boot_aggregate file digest: ``bank`` hash over PCR 0-9 of that bank.

    ``pcr_values`` is {bank: {pcr: bytes}}; a PCR it lacks counts as never extended (zeros),
    which is what a TPM holds for a PCR no boot component measured.
    """
    size = constants.DIGEST_SIZES[bank]
    values = pcr_values.get(bank, {})
    return hashlib.new(bank, b''.join(values.get(i, bytes(size))
                                      for i in BOOT_AGGREGATE_PCRS)).digest()


# -- writing --------------------------------------------------------------------------------


def make_entry(path, file_digest, digest_algorithm='sha256', template_name='ima-ng',
               signature=None, buffer=None, pcr=IMA_PCR, violation=False):
    """An :class:`ImaEntry` as the kernel would record it (template hash computed).

    Raises ImaLogError for what no log line can carry: an empty path, or one holding a
    newline or NUL.
    """
    if not path or '\n' in path or '\0' in path or '\r' in path:
        raise ImaLogError(0, 'n-ng', 'a path must be non-empty, without newline, CR or NUL')
    entry = ImaEntry(0, pcr, bytes(_TEMPLATE_HASH_SIZE), template_name,
                     'sha1' if template_name == 'ima' else digest_algorithm,
                     bytes(file_digest), path, signature or None, buffer)
    if violation:
        return entry
    return dataclasses.replace(entry, template_hash=hashlib.sha1(template_data(entry)).digest())


def format_entry(entry):
    """The ascii_runtime_measurements line (no newline) for ``entry``.

    As ima_fs.c shows it: every template field is preceded by one space, and an empty field
    shows as nothing.
    """
    head = '%d %s %s ' % (entry.pcr, entry.template_hash.hex(), entry.template_name)
    if entry.template_name == 'ima':
        return head + entry.file_digest.hex() + ' ' + entry.path
    line = head + '%s:%s %s' % (entry.digest_algorithm, entry.file_digest.hex(), entry.path)
    if entry.template_name == 'ima-sig':
        line += ' ' + (entry.signature or b'').hex()
    elif entry.template_name == 'ima-buf':
        line += ' ' + (entry.buffer or b'').hex()
    return line


def marshal(entries):
    """The whole ascii list for ``entries``, one line each, newline-terminated."""
    return ''.join(format_entry(e) + '\n' for e in entries)


# -- parsing --------------------------------------------------------------------------------


_unhexlify = binascii.unhexlify


def _unhex(value):
    """Strict hex (pairs of [0-9a-fA-F] only, no whitespace) -> bytes, None otherwise."""
    try:
        return _unhexlify(value)
    except (binascii.Error, ValueError):
        return None


def _hex(value, lineno, field):
    decoded = _unhex(value)
    if decoded is None:
        raise ImaLogError(lineno, field, 'is not an even-length hexadecimal string')
    return decoded


def _digest_ng(token, lineno):
    algorithm, sep, digest_hex = token.partition(b':')
    if not sep:
        raise ImaLogError(lineno, 'd-ng', 'expected <algorithm>:<hex digest>, found %r'
                          % token[:80])
    known = _ALGORITHMS.get(algorithm)
    if known is None:
        raise ImaLogError(lineno, 'd-ng', 'unknown digest algorithm %r'
                          % algorithm.decode('ascii', 'replace')[:40])
    name, size = known
    try:
        digest = _unhexlify(digest_hex)
    except (binascii.Error, ValueError):
        raise ImaLogError(lineno, 'd-ng', 'is not an even-length hexadecimal string')
    if len(digest) != size:
        raise ImaLogError(lineno, 'd-ng', '%s digest has %d bytes, must be %d'
                          % (name, len(digest), size))
    return name, digest


def _looks_like_signature(token):
    # signature_v2_hdr (integrity.h): type EVM_IMA_XATTR_DIGSIG (3) or IMA_VERITY_DIGSIG (6),
    # version 2 or 3, hash_algo, keyid[4], sig_size[2]: at least 9 bytes.
    return (len(token) >= 18 and token[:4] in _SIGNATURE_PREFIXES
            and _unhex(token) is not None)


def _split_trailing_hex(rest, lineno, field, is_value):
    """``<name> <hex>`` -> (name, bytes or None); the name may contain spaces."""
    if rest.endswith(b' '):
        # ima_fs.c prints the separator before an empty field
        return rest[:-1], None
    name, sep, last = rest.rpartition(b' ')
    if sep and is_value(last):
        return name, _hex(last, lineno, field)
    return rest, None


def _parse_line(raw, lineno):
    try:
        pcr_text, template_hash_hex, name_bytes, rest = raw.split(b' ', 3)
    except ValueError:
        raise ImaLogError(lineno, 'line', 'expected "<pcr> <template-hash> <template-name> '
                          '<fields>", found %d fields' % (raw.count(b' ') + 1))
    pcr = int(pcr_text) if pcr_text.isdigit() and len(pcr_text) <= 2 else None
    if pcr is None or pcr >= constants.PCR_COUNT:
        raise ImaLogError(lineno, 'pcr', '%r is not a PCR index 0..%d'
                          % (pcr_text[:20], constants.PCR_COUNT - 1))
    try:
        template_hash = _unhexlify(template_hash_hex)
    except (binascii.Error, ValueError):
        raise ImaLogError(lineno, 'template-hash', 'is not an even-length hexadecimal string')
    if len(template_hash) != _TEMPLATE_HASH_SIZE:
        raise ImaLogError(lineno, 'template-hash', 'has %d bytes, must be %d (SHA-1)'
                          % (len(template_hash), _TEMPLATE_HASH_SIZE))
    template_name = _TEMPLATE_NAMES.get(name_bytes)
    if template_name is None:
        raise ImaLogError(lineno, 'template-name', 'unsupported template %r (supported: %s)'
                          % (name_bytes.decode('ascii', 'replace')[:40], ', '.join(TEMPLATES)))
    digest_token, sep, rest = rest.partition(b' ')
    if not sep:
        raise ImaLogError(lineno, 'n-ng', 'the path is missing')
    signature = buffer = None
    if template_name == 'ima':
        algorithm, digest = 'sha1', _hex(digest_token, lineno, 'd')
        if len(digest) != 20:
            raise ImaLogError(lineno, 'd', 'has %d bytes, must be 20 (SHA-1)' % len(digest))
        if len(rest) > IMA_EVENT_NAME_LEN_MAX:
            raise ImaLogError(lineno, 'n', 'is %d bytes, longer than the template allows (%d)'
                              % (len(rest), IMA_EVENT_NAME_LEN_MAX))
    else:
        algorithm, digest = _digest_ng(digest_token, lineno)
        if template_name == 'ima-sig':
            rest, signature = _split_trailing_hex(rest, lineno, 'sig', _looks_like_signature)
        elif template_name == 'ima-buf':
            rest, buffer = _split_trailing_hex(rest, lineno, 'buf',
                                               lambda t: _unhex(t) is not None)
    if not rest:
        raise ImaLogError(lineno, 'n-ng', 'the path is empty')
    if b'\0' in rest:
        raise ImaLogError(lineno, 'n-ng', 'the path contains a NUL byte')
    return ImaEntry(lineno, pcr, template_hash, template_name, algorithm, digest,
                    rest.decode(_ENCODING, _ERRORS), signature, buffer)


def parse_ima_log(data):
    """Parse ``ascii_runtime_measurements`` (bytes or str) into a list of :class:`ImaEntry`.

    Raises ImaLogError naming the 1-based line and field for anything malformed. A final
    newline is optional; an empty line elsewhere is an error.
    """
    if isinstance(data, str):
        try:
            data = data.encode(_ENCODING, _ERRORS)
        except UnicodeEncodeError as e:
            raise ImaLogError(data.count('\n', 0, e.start) + 1, 'line',
                              'character %r cannot be encoded' % data[e.start])
    elif isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    elif not isinstance(data, bytes):
        raise ImaLogError(0, 'log', 'expected bytes or str, got %s' % type(data).__name__)
    lines = data.split(b'\n')
    if lines and lines[-1] == b'':
        lines.pop()
    entries = []
    for lineno, raw in enumerate(lines, 1):
        if not raw:
            raise ImaLogError(lineno, 'line', 'empty line')
        if b'\r' in raw:
            raise ImaLogError(lineno, 'line', 'contains a carriage return')
        entries.append(_parse_line(raw, lineno))
    return entries
