"""Appraisal policies in the JSON formats Keylime writes, parsed once into immutable values.

Three formats, so operators reuse what ``keylime-policy create`` produces:

- **tpm_policy** (PCR allowlist): ``{"<pcr>": ["<hex>", ...], "mask": "0x..."}``; the
  accepted values of each listed PCR (Keylime ``tpm_policy``, ``keylime/tpm/tpm_main.py``).
  A PCR index is written in ASCII digits only (``"7"``, not ``" 7"``, ``"+7"`` or ``"٧"``,
  all of which Python's ``int`` would take for 7).
- **runtime policy** (IMA allowlist, ``keylime-policy create runtime``, schema in
  ``keylime/ima/ima.py``): ``digests`` maps a path to accepted file hashes (hex),
  ``excludes`` lists regular expressions of paths that are not appraised,
  ``ima.log_hash_alg`` the template-hash algorithm of the log.
- **measured-boot reference state** (``keylime-policy create measured-boot``), read by a
  measured-boot policy *engine* (Keylime's verifier option ``measured_boot_policy_name``):
  ``example`` (Keylime's reference-state engine: S-CRTM and firmware digests, Secure Boot
  variables, MOK digests and the kernels: shim, grub, kernel authenticode hashes, initrd,
  command line), ``accept-all`` and ``reject-all`` (which read nothing of it). A reference
  state lacking a field its engine needs is refused as incomplete, naming every missing
  field (Keylime only finds out when it first appraises a host, and then fails that host).

This module is pure and never mutates its input (Keylime's ``check_quote`` appends boot
aggregates to the caller's runtime policy; we copy). Every malformed policy raises
:class:`PolicyError` naming the JSON path of the offending field, never another exception;
a JSON text with the same key twice in one object is malformed (which of the two a reader
keeps is an accident of its JSON library).
"""
import dataclasses
import json
import re
import types

HASH_SIZES = {'sha1': 20, 'sha256': 32, 'sha384': 48, 'sha512': 64, 'sm3_256': 32}
PCR_COUNT = 24

# Measured-boot policy engines (Keylime 7.14 ``keylime/mba/elchecking/policies.py`` and
# ``example.py``), by the name Keylime gives them.
MB_ENGINES = ('example', 'accept-all', 'reject-all')
DEFAULT_MB_ENGINE = 'example'

_PCR_INDEX = re.compile(r'[0-9]{1,2}')
_HEX = re.compile(r'(?:0[xX])?([0-9a-fA-F]+)')
# A GUID in its registry format (RFC 4122 3, UEFI 2.x Appendix A); uuid.UUID would also
# take braces, "urn:uuid:" and missing hyphens.
_GUID = re.compile(r'[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-'
                   r'[0-9a-fA-F]{12}')
_SHORT = 60


class PolicyError(ValueError):
    """A policy document that is not in the expected format: ``<field>: reason``."""

    def __init__(self, field, reason):
        self.field = field
        self.reason = reason
        super().__init__('%s: %s' % (field, reason))


def _show(value):
    """A short, printable rendering of a bad value for an error message."""
    if isinstance(value, (str, int, float, bool, type(None))):
        text = json.dumps(value)
    else:
        text = type(value).__name__
    return text if len(text) <= _SHORT else text[:_SHORT] + '...'


def _member(field, key):
    """``field.key`` for plain keys, ``field["..."]`` for anything else (paths, odd keys)."""
    if isinstance(key, str) and re.fullmatch(r'[A-Za-z0-9_-]{1,40}', key):
        return '%s.%s' % (field, key)
    return '%s[%s]' % (field, _show(key))


_TYPE_NAMES = {dict: 'an object', list: 'a list', str: 'a string', bool: 'true/false',
               int: 'a number', float: 'a number', type(None): 'null'}


def _type_name(value):
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _expect(value, kind, field, what):
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PolicyError(field, 'expected %s, got %s' % (what, _type_name(value)))
    return value


def _hex(value, field, sizes=None):
    """Normalise a Keylime hex digest ("0x.."/"..", any case) to lowercase bare hex."""
    _expect(value, str, field, 'a hex string')
    match = _HEX.fullmatch(value)
    if match is None or len(match.group(1)) % 2:
        raise PolicyError(field, 'not a hex digest: %s' % _show(value))
    text = match.group(1).lower()
    if sizes is not None and len(text) // 2 not in sizes:
        raise PolicyError(field, 'digest of %d bytes, expected one of %s'
                          % (len(text) // 2, sorted(set(sizes))))
    return text


def _guid(value, field):
    _expect(value, str, field, 'a GUID string')
    if not _GUID.fullmatch(value):
        raise PolicyError(field, 'not a GUID (8-4-4-4-12 hex digits): %s' % _show(value))
    return value.lower()


def _regex(value, field):
    """Compile a regular expression; every way ``re`` can refuse one is a PolicyError."""
    _expect(value, str, field, 'a regular expression')
    try:
        return re.compile(value)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        raise PolicyError(field, 'invalid regular expression: %s' % exc)


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _load(document, field):
    """Accept a JSON text, bytes or an already decoded dict (copied, never kept)."""
    if isinstance(document, (bytes, bytearray)):
        try:
            document = bytes(document).decode('utf-8')
        except UnicodeDecodeError as exc:
            raise PolicyError(field, 'not UTF-8 at byte %d' % exc.start)
    if isinstance(document, str):
        try:
            document = json.loads(document, object_pairs_hook=_no_duplicates)
        except _DuplicateKey as exc:
            raise PolicyError(field, 'the key %s appears twice in one JSON object'
                              % _show(exc.args[0]))
        except (ValueError, RecursionError) as exc:
            raise PolicyError(field, 'not JSON: %s' % str(exc)[:200])
    return _expect(document, dict, field, 'a JSON object')


def _list(document, key, field, default=(), required=False):
    """The list at ``document[key]`` (``default`` when absent or null)."""
    if key not in document or document[key] is None:
        if required:
            raise PolicyError(_member(field, key), 'is required')
        return default
    return _expect(document[key], list, _member(field, key), 'a list')


def _object(document, key, field):
    value = document.get(key)
    if value is None:
        return {}
    return _expect(value, dict, _member(field, key), 'an object')


def _digests_object(document, key, field, sizes=HASH_SIZES.values()):
    """Keylime's digests-object: ``{name: ["hex", ...]}`` with at least one digest each."""
    out = {}
    where = _member(field, key)
    for name, values in _object(document, key, field).items():
        item = _member(where, name)
        _expect(values, list, item, 'a list of hex digests')
        if not values:
            raise PolicyError(item, 'expected at least one hex digest')
        out[name] = frozenset(_hex(v, '%s[%d]' % (item, i), sizes)
                              for i, v in enumerate(values))
    return out


# ----------------------------------------------------------------------------- tpm_policy
@dataclasses.dataclass(frozen=True)
class TpmPolicy:
    """PCR allowlist: ``pcrs`` maps a PCR index to a frozenset of accepted hex values."""
    pcrs: types.MappingProxyType
    mask: int = 0

    def to_dict(self):
        out = {str(pcr): sorted(values) for pcr, values in sorted(self.pcrs.items())}
        if self.mask:
            out['mask'] = hex(self.mask)
        return out


def pcr_index(key, field):
    """The PCR index a policy key names: ASCII digits, 0..23, else PolicyError."""
    if not isinstance(key, str) or not _PCR_INDEX.fullmatch(key) \
            or not 0 <= int(key) < PCR_COUNT:
        raise PolicyError(_member(field, key), 'not a PCR index 0-%d in ASCII digits'
                          % (PCR_COUNT - 1))
    return int(key)


def parse_tpm_policy(document, field='tpm_policy'):
    document = _load(document if document is not None else {}, field)
    pcrs = {}
    mask = 0
    for key, value in document.items():
        if key == 'mask':
            where = _member(field, 'mask')
            if isinstance(value, str):
                match = _HEX.fullmatch(value)
                if match is None:
                    raise PolicyError(where, 'not a hex bit mask: %s' % _show(value))
                mask = int(match.group(1), 16)
            else:
                mask = _expect(value, int, where, 'a hex bit mask')
            if not 0 <= mask < 1 << PCR_COUNT:
                raise PolicyError(where, 'selects PCRs outside 0-%d' % (PCR_COUNT - 1))
            continue
        index = pcr_index(key, field)
        where = _member(field, key)
        if index in pcrs:
            raise PolicyError(where, 'PCR %d is listed twice' % index)
        if isinstance(value, str):
            value = [value]
        _expect(value, list, where, 'a list of hex digests')
        if not value:
            raise PolicyError(where, 'expected a non-empty list of hex digests')
        pcrs[index] = frozenset(_hex(v, '%s[%d]' % (where, i), HASH_SIZES.values())
                                for i, v in enumerate(value))
    return TpmPolicy(pcrs=types.MappingProxyType(pcrs), mask=mask)


# ----------------------------------------------------------------------------- runtime policy
@dataclasses.dataclass(frozen=True)
class RuntimePolicy:
    """IMA allowlist: path -> accepted hex file hashes, exclude regex, log hash algorithm."""
    digests: types.MappingProxyType
    excludes: tuple
    exclude_re: object
    log_hash_alg: str
    ignored_keyrings: tuple = ()

    def excluded(self, path):
        return self.exclude_re is not None and self.exclude_re.match(path) is not None

    def boot_aggregates(self):
        return self.digests.get('boot_aggregate', frozenset())


def parse_runtime_policy(document, field='runtime_policy'):
    document = _load(document, field)
    meta = _object(document, 'meta', field)
    version = meta.get('version', 1)
    if type(version) is not int or version != 1:
        raise PolicyError('%s.meta.version' % field, 'unsupported version %s (Keylime '
                          'writes 1)' % _show(version))
    if 'generator' in meta:
        _expect(meta['generator'], int, '%s.meta.generator' % field, 'an integer')
    if meta.get('timestamp') is not None:
        _expect(meta['timestamp'], str, '%s.meta.timestamp' % field, 'a string')
    if document.get('release') is not None:
        release = _expect(document['release'], int, '%s.release' % field, 'an integer')
        if release < 0:
            raise PolicyError('%s.release' % field, 'must not be negative')
    digests = _digests_object(document, 'digests', field)
    _digests_object(document, 'keyrings', field)
    _digests_object(document, 'ima-buf', field)
    if document.get('verification-keys') is not None:
        _expect(document['verification-keys'], str, '%s.verification-keys' % field,
                'a string')
    excludes = tuple(_list(document, 'excludes', field))
    compiled = []
    for i, pattern in enumerate(excludes):
        # each alternative compiled as it will be used: '(?i)x' alone compiles, inside a
        # group it does not
        wrapped = '(?:%s)' % _expect(pattern, str, '%s.excludes[%d]' % (field, i),
                                     'a regular expression')
        _regex(wrapped, '%s.excludes[%d]' % (field, i))
        compiled.append(wrapped)
    # Keylime joins the excludes into one alternation and uses re.match (anchored at start).
    exclude_re = (_regex('|'.join(compiled), '%s.excludes' % field) if compiled else None)
    ima = _object(document, 'ima', field)
    log_hash_alg = ima.get('log_hash_alg', 'sha1')
    if not isinstance(log_hash_alg, str) or log_hash_alg not in HASH_SIZES:
        raise PolicyError('%s.ima.log_hash_alg' % field, 'unknown hash algorithm %s (one of '
                          '%s)' % (_show(log_hash_alg), ', '.join(sorted(HASH_SIZES))))
    ignored = tuple(_list(ima, 'ignored_keyrings', '%s.ima' % field))
    for i, name in enumerate(ignored):
        _expect(name, str, '%s.ima.ignored_keyrings[%d]' % (field, i), 'a keyring name')
    if ima.get('dm_policy') is not None:
        _expect(ima['dm_policy'], dict, '%s.ima.dm_policy' % field, 'an object or null')
    return RuntimePolicy(digests=types.MappingProxyType(digests), excludes=excludes,
                         exclude_re=exclude_re, log_hash_alg=log_hash_alg,
                         ignored_keyrings=ignored)


# ----------------------------------------------------------------------------- measured boot
@dataclasses.dataclass(frozen=True)
class Kernel:
    """One ``kernels`` entry of the example engine (hex digests, compiled command line)."""
    shim_authcode_sha256: str
    grub_authcode_sha256: str
    kernel_authcode_sha256: str     # Secure Boot: the kernel as shim verified it (PCR 4)
    vmlinuz_plain_sha256: str       # no Secure Boot: the kernel file grub read (PCR 9)
    initrd_plain_sha256: str
    kernel_cmdline: object          # compiled regex, fullmatch


@dataclasses.dataclass(frozen=True)
class MeasuredBootRefstate:
    """``keylime-policy create measured-boot`` output, validated for the example engine."""
    has_secureboot: bool
    scrtm_and_bios: tuple      # ((scrtm hex, (firmware hex, ...)), ...)
    pk: frozenset              # {(owner GUID lower, data hex)}
    kek: frozenset
    db: frozenset
    dbx: frozenset
    vendor_db: frozenset
    mokdig: frozenset          # {sha256 hex}
    mokxdig: frozenset
    kernels: tuple


@dataclasses.dataclass(frozen=True)
class OpaqueRefstate:
    """The reference state of an engine that reads none of it (accept-all, reject-all)."""
    keys: tuple = ()


# What the example engine reads (Keylime example.py, refstate_to_test): the top-level
# fields it requires, and the fields of each kernel with and without Secure Boot.
EXAMPLE_FIELDS = ('scrtm_and_bios', 'pk', 'kek', 'db', 'dbx', 'mokdig', 'mokxdig', 'kernels')
EXAMPLE_KERNEL_FIELDS = {
    True: ('shim_authcode_sha256', 'grub_authcode_sha256', 'kernel_authcode_sha256',
           'initrd_plain_sha256', 'kernel_cmdline'),
    False: ('shim_authcode_sha256', 'grub_authcode_sha256', 'vmlinuz_plain_sha256',
            'initrd_plain_sha256', 'kernel_cmdline'),
}


def _signatures(document, key, field):
    out = set()
    for i, item in enumerate(_list(document, key, field)):
        where = '%s.%s[%d]' % (field, key, i)
        _expect(item, dict, where, '{"SignatureOwner", "SignatureData"}')
        missing = [k for k in ('SignatureOwner', 'SignatureData') if k not in item]
        if missing:
            raise PolicyError(where, 'lacks %s' % ', '.join(missing))
        out.add((_guid(item['SignatureOwner'], where + '.SignatureOwner'),
                 _hex(item['SignatureData'], where + '.SignatureData')))
    return frozenset(out)


def _sha256_digest(item, where):
    """A Keylime digest ``{"sha256": "0x.."}`` (other algorithms may sit beside it)."""
    _expect(item, dict, where, 'a digest {"sha256": "0x..."}')
    for alg in item:
        if alg not in HASH_SIZES:
            raise PolicyError(_member(where, alg), 'unknown hash algorithm')
        _hex(item[alg], _member(where, alg), (HASH_SIZES[alg],))
    if 'sha256' not in item:
        raise PolicyError(where + '.sha256', 'is required (the engine compares SHA-256 '
                          'digests)')
    return _hex(item['sha256'], where + '.sha256', (32,))


def _sha256_list(document, key, field):
    return tuple(_sha256_digest(item, '%s.%s[%d]' % (field, key, i))
                 for i, item in enumerate(_list(document, key, field)))


def _missing_fields(document, field):
    """Every field the example engine needs that ``document`` lacks, as JSON paths."""
    secureboot = document.get('has_secureboot', True)
    missing = [f for f in EXAMPLE_FIELDS if document.get(f) is None]
    kernels = document.get('kernels')
    if isinstance(kernels, list):
        if not kernels:
            missing.append('kernels[0]')
        for i, kernel in enumerate(kernels):
            if isinstance(kernel, dict):
                missing += ['kernels[%d].%s' % (i, f)
                            for f in EXAMPLE_KERNEL_FIELDS[secureboot is not False]
                            if kernel.get(f) is None]
    bios = document.get('scrtm_and_bios')
    if isinstance(bios, list):
        if not bios:
            missing.append('scrtm_and_bios[0]')
        for i, item in enumerate(bios):
            if isinstance(item, dict):
                missing += ['scrtm_and_bios[%d].%s' % (i, f)
                            for f in ('scrtm', 'platform_firmware') if item.get(f) is None]
    return ['%s.%s' % (field, m) for m in missing]


def parse_mb_refstate(document, engine=DEFAULT_MB_ENGINE, field='mb_refstate'):
    """The reference state ``document`` as ``engine`` reads it.

    ``example``: a :class:`MeasuredBootRefstate`; a document lacking fields the engine
    needs raises PolicyError("<field>", "incomplete ... <every missing field>").
    ``accept-all`` / ``reject-all``: any JSON object (an :class:`OpaqueRefstate`).
    """
    if engine not in MB_ENGINES:
        raise PolicyError('mb_engine', 'unknown measured-boot engine %s (one of %s)'
                          % (_show(engine), ', '.join(MB_ENGINES)))
    document = _load(document, field)
    if engine != 'example':
        return OpaqueRefstate(tuple(sorted(document)))
    secureboot = document.get('has_secureboot', True)     # Keylime's default
    if not isinstance(secureboot, bool):
        raise PolicyError('%s.has_secureboot' % field, 'expected true or false')
    missing = _missing_fields(document, field)
    if missing:
        raise PolicyError(field, 'incomplete for the example engine: %s %s'
                          % ('lacks' if len(missing) == 1 else 'lacks the fields',
                             ', '.join(missing)))
    bios = []
    for i, item in enumerate(_list(document, 'scrtm_and_bios', field)):
        where = '%s.scrtm_and_bios[%d]' % (field, i)
        _expect(item, dict, where, '{"scrtm": {"sha256"}, "platform_firmware": [...]}')
        scrtm = _sha256_digest(item['scrtm'], where + '.scrtm')
        bios.append((scrtm, _sha256_list(item, 'platform_firmware', where)))
    kernels = []
    for i, item in enumerate(_list(document, 'kernels', field)):
        where = '%s.kernels[%d]' % (field, i)
        _expect(item, dict, where, 'an object')
        values = {}
        for key in ('shim_authcode_sha256', 'grub_authcode_sha256', 'kernel_authcode_sha256',
                    'vmlinuz_plain_sha256', 'initrd_plain_sha256'):
            values[key] = (_hex(item[key], '%s.%s' % (where, key), (32,))
                           if item.get(key) is not None else None)
        values['kernel_cmdline'] = _regex(item['kernel_cmdline'], where + '.kernel_cmdline')
        kernels.append(Kernel(**values))
    return MeasuredBootRefstate(
        has_secureboot=secureboot, scrtm_and_bios=tuple(bios),
        pk=_signatures(document, 'pk', field), kek=_signatures(document, 'kek', field),
        db=_signatures(document, 'db', field), dbx=_signatures(document, 'dbx', field),
        vendor_db=_signatures(document, 'vendor_db', field),
        mokdig=frozenset(_sha256_list(document, 'mokdig', field)),
        mokxdig=frozenset(_sha256_list(document, 'mokxdig', field)), kernels=tuple(kernels))


# ----------------------------------------------------------------------------- the bundle
@dataclasses.dataclass(frozen=True)
class Policy:
    """What one host is appraised against; any part may be absent (not checked).

    ``mb_engine`` names the measured-boot engine that reads ``mb_refstate`` (None: no
    measured-boot policy, the UEFI log is still replayed against the quote).
    ``allow_unorderly_shutdown``: accept a TPM whose clock is not known to be safe
    (``clockInfo.safe`` = NO after a power loss), which appraisal otherwise refuses.
    """
    name: str = 'default'
    tpm_policy: TpmPolicy = TpmPolicy(pcrs=types.MappingProxyType({}))
    runtime_policy: RuntimePolicy = None
    mb_refstate: object = None
    mb_engine: str = None
    allow_unorderly_shutdown: bool = False


def parse_policy(name, tpm_policy=None, runtime_policy=None, mb_refstate=None,
                 mb_engine=None, allow_unorderly_shutdown=False):
    """Build a :class:`Policy` from the three Keylime documents (JSON text or dicts).

    ``mb_engine``: ``example`` (the default when a reference state is given; it needs one),
    ``accept-all`` or ``reject-all`` (reference state optional, never read).
    """
    if mb_engine is None and mb_refstate is not None:
        mb_engine = DEFAULT_MB_ENGINE
    if mb_engine is not None and (not isinstance(mb_engine, str)
                                  or mb_engine not in MB_ENGINES):
        raise PolicyError('mb_engine', 'unknown measured-boot engine %s (one of %s)'
                          % (_show(mb_engine), ', '.join(MB_ENGINES)))
    if mb_engine == 'example' and mb_refstate is None:
        raise PolicyError('mb_refstate', 'the example engine needs a reference state')
    if not isinstance(allow_unorderly_shutdown, bool):
        raise PolicyError('allow_unorderly_shutdown', 'expected true or false, got %s'
                          % _type_name(allow_unorderly_shutdown))
    refstate = None
    if mb_engine is not None:
        refstate = parse_mb_refstate(mb_refstate if mb_refstate is not None else {},
                                     mb_engine)
    return Policy(name=name,
                  tpm_policy=parse_tpm_policy(tpm_policy),
                  runtime_policy=(parse_runtime_policy(runtime_policy)
                                  if runtime_policy is not None else None),
                  mb_refstate=refstate, mb_engine=mb_engine,
                  allow_unorderly_shutdown=allow_unorderly_shutdown)


def create_runtime_policy(entries, excludes=(), log_hash_alg='sha1'):
    """A Keylime runtime policy (``keylime-policy create runtime -m``) from IMA entries.

    ``entries`` are :class:`tclouds_openstack.tpm.ima.ImaEntry` of a known-good host; the
    ``boot_aggregate`` entry is kept like Keylime does. Returns the JSON dict.
    """
    digests = {}
    for entry in entries:
        if entry.template_name == 'ima-buf' or entry.is_violation:
            continue
        values = digests.setdefault(entry.path, [])
        if entry.file_digest.hex() not in values:
            values.append(entry.file_digest.hex())
    return {'meta': {'version': 1, 'generator': 3, 'timestamp': ''}, 'release': 0,
            'digests': digests, 'excludes': list(excludes), 'keyrings': {},
            'ima': {'ignored_keyrings': [], 'log_hash_alg': log_hash_alg, 'dm_policy': None},
            'ima-buf': {}, 'verification-keys': ''}
