"""Appraisal policies in the JSON formats Keylime writes, parsed once into immutable values.

Three formats, so operators reuse what ``keylime-policy create`` produces:

- **tpm_policy** (PCR allowlist): ``{"<pcr>": ["<hex>", ...], "mask": "0x..."}``; the
  accepted values of each listed PCR (Keylime ``tpm_policy``, ``keylime/tpm/tpm_main.py``).
- **runtime policy** (IMA allowlist, ``keylime-policy create runtime``, schema in
  ``keylime/ima/ima.py``): ``digests`` maps a path to accepted file hashes (hex),
  ``excludes`` lists regular expressions of paths that are not appraised,
  ``ima.log_hash_alg`` the template-hash algorithm of the log.
- **measured-boot reference state** (``keylime-policy create measured-boot``, consumed by
  Keylime's ``example`` policy): S-CRTM and firmware digests, Secure Boot variables,
  MOK digests and the kernels (shim, grub, kernel authenticode hashes, initrd, command line).

This module is pure and never mutates its input (Keylime's ``check_quote`` appends boot
aggregates to the caller's runtime policy; we copy). Every malformed policy raises
:class:`PolicyError` naming the JSON path of the offending field.
"""
import dataclasses
import json
import re
import types

HASH_SIZES = {'sha1': 20, 'sha256': 32, 'sha384': 48, 'sha512': 64, 'sm3_256': 32}


class PolicyError(ValueError):
    """A policy document that is not in the expected format: ``<field>: reason``."""

    def __init__(self, field, reason):
        self.field = field
        self.reason = reason
        super().__init__('%s: %s' % (field, reason))


def _hex(value, field, sizes=None):
    """Normalise a Keylime hex digest ("0x.."/"..", any case) to lowercase bare hex."""
    if not isinstance(value, str):
        raise PolicyError(field, 'expected a hex string, got %s' % type(value).__name__)
    text = value.lower()
    if text.startswith('0x'):
        text = text[2:]
    if not text or len(text) % 2 or not re.fullmatch(r'[0-9a-f]+', text):
        raise PolicyError(field, 'not a hex digest: %r' % value[:80])
    if sizes is not None and len(text) // 2 not in sizes:
        raise PolicyError(field, 'digest of %d bytes, expected one of %s'
                          % (len(text) // 2, sorted(sizes)))
    return text


def _load(document, field):
    """Accept a JSON text, bytes or an already decoded dict (copied, never kept)."""
    if isinstance(document, (bytes, bytearray)):
        try:
            document = document.decode('utf-8')
        except UnicodeDecodeError as exc:
            raise PolicyError(field, 'not UTF-8 at byte %d' % exc.start)
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise PolicyError(field, 'not JSON: %s' % exc)
    if not isinstance(document, dict):
        raise PolicyError(field, 'expected a JSON object, got %s' % type(document).__name__)
    return document


def _list(document, key, field, default=()):
    value = document.get(key, default)
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise PolicyError('%s.%s' % (field, key), 'expected a list')
    return value


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


def parse_tpm_policy(document, field='tpm_policy'):
    document = _load(document or {}, field)
    pcrs = {}
    mask = 0
    for key, value in document.items():
        if key == 'mask':
            try:
                mask = int(value, 16) if isinstance(value, str) else int(value)
            except (TypeError, ValueError):
                raise PolicyError('%s.mask' % field, 'not a hex bit mask: %r' % (value,))
            continue
        if not (isinstance(key, str) and key.isdigit() and 0 <= int(key) <= 23):
            raise PolicyError('%s.%s' % (field, key), 'not a PCR index 0-23')
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value:
            raise PolicyError('%s.%s' % (field, key), 'expected a non-empty list of hex digests')
        pcrs[int(key)] = frozenset(_hex(v, '%s.%s[%d]' % (field, key, i), HASH_SIZES.values())
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
    meta = document.get('meta', {})
    if not isinstance(meta, dict):
        raise PolicyError('%s.meta' % field, 'expected an object')
    version = meta.get('version', 1)
    if version != 1:
        raise PolicyError('%s.meta.version' % field, 'unsupported version %r (Keylime writes 1)'
                          % (version,))
    raw_digests = document.get('digests', {})
    if not isinstance(raw_digests, dict):
        raise PolicyError('%s.digests' % field, 'expected an object of path -> [hex]')
    digests = {}
    for path, values in raw_digests.items():
        where = '%s.digests[%s]' % (field, json.dumps(path))
        if not isinstance(values, (list, tuple)):
            raise PolicyError(where, 'expected a list of hex digests')
        digests[path] = frozenset(_hex(v, '%s[%d]' % (where, i), HASH_SIZES.values())
                                  for i, v in enumerate(values))
    excludes = tuple(_list(document, 'excludes', field))
    compiled = []
    for i, pattern in enumerate(excludes):
        if not isinstance(pattern, str):
            raise PolicyError('%s.excludes[%d]' % (field, i), 'expected a regular expression')
        try:
            re.compile(pattern)
        except re.error as exc:
            raise PolicyError('%s.excludes[%d]' % (field, i),
                              'invalid regular expression: %s' % exc)
        compiled.append('(?:%s)' % pattern)
    # Keylime joins the excludes into one alternation and uses re.match (anchored at start).
    exclude_re = re.compile('|'.join(compiled)) if compiled else None
    ima = document.get('ima', {}) or {}
    if not isinstance(ima, dict):
        raise PolicyError('%s.ima' % field, 'expected an object')
    log_hash_alg = ima.get('log_hash_alg', 'sha1')
    if log_hash_alg not in HASH_SIZES:
        raise PolicyError('%s.ima.log_hash_alg' % field, 'unknown hash algorithm %r'
                          % (log_hash_alg,))
    ignored = tuple(_list(ima, 'ignored_keyrings', '%s.ima' % field))
    return RuntimePolicy(digests=types.MappingProxyType(digests), excludes=excludes,
                         exclude_re=exclude_re, log_hash_alg=log_hash_alg,
                         ignored_keyrings=ignored)


# ----------------------------------------------------------------------------- measured boot
@dataclasses.dataclass(frozen=True)
class Kernel:
    shim_authcode_sha256: str
    grub_authcode_sha256: str
    kernel_authcode_sha256: str
    initrd_plain_sha256: str
    kernel_cmdline: object    # compiled regex, fullmatch


@dataclasses.dataclass(frozen=True)
class MeasuredBootRefstate:
    """``keylime-policy create measured-boot`` output, validated."""
    has_secureboot: bool
    scrtm_and_bios: tuple      # ((scrtm hex, frozenset of firmware hex), ...)
    pk: frozenset              # {(owner lower, data hex)}
    kek: frozenset
    db: frozenset
    dbx: frozenset
    vendor_db: frozenset
    mokdig: frozenset
    mokxdig: frozenset
    kernels: tuple


def _signatures(document, key, field):
    out = set()
    for i, item in enumerate(_list(document, key, field)):
        where = '%s.%s[%d]' % (field, key, i)
        if not isinstance(item, dict):
            raise PolicyError(where, 'expected {"SignatureOwner", "SignatureData"}')
        owner = item.get('SignatureOwner')
        if not isinstance(owner, str):
            raise PolicyError(where + '.SignatureOwner', 'expected a GUID string')
        out.add((owner.lower(), _hex(item.get('SignatureData'), where + '.SignatureData')))
    return frozenset(out)


def _sha256_list(document, key, field):
    out = set()
    for i, item in enumerate(_list(document, key, field)):
        where = '%s.%s[%d]' % (field, key, i)
        if not isinstance(item, dict) or 'sha256' not in item:
            raise PolicyError(where, 'expected {"sha256": "0x..."}')
        out.add(_hex(item['sha256'], where + '.sha256', (32,)))
    return frozenset(out)


def parse_mb_refstate(document, field='mb_refstate'):
    document = _load(document, field)
    secureboot = document.get('has_secureboot', False)
    if not isinstance(secureboot, bool):
        raise PolicyError('%s.has_secureboot' % field, 'expected true or false')
    bios = []
    for i, item in enumerate(_list(document, 'scrtm_and_bios', field)):
        where = '%s.scrtm_and_bios[%d]' % (field, i)
        if not isinstance(item, dict) or not isinstance(item.get('scrtm'), dict):
            raise PolicyError(where, 'expected {"scrtm": {"sha256"}, "platform_firmware": [...]}')
        scrtm = _hex(item['scrtm'].get('sha256'), where + '.scrtm.sha256', (32,))
        bios.append((scrtm, _sha256_list(item, 'platform_firmware', where)))
    kernels = []
    for i, item in enumerate(_list(document, 'kernels', field)):
        where = '%s.kernels[%d]' % (field, i)
        if not isinstance(item, dict):
            raise PolicyError(where, 'expected an object')
        values = {}
        for key in ('shim_authcode_sha256', 'grub_authcode_sha256', 'kernel_authcode_sha256',
                    'initrd_plain_sha256'):
            values[key] = (_hex(item[key], '%s.%s' % (where, key), (32,))
                           if item.get(key) is not None else None)
        cmdline = item.get('kernel_cmdline')
        if cmdline is not None:
            if not isinstance(cmdline, str):
                raise PolicyError(where + '.kernel_cmdline', 'expected a regular expression')
            try:
                cmdline = re.compile(cmdline)
            except re.error as exc:
                raise PolicyError(where + '.kernel_cmdline', 'invalid regular expression: %s' % exc)
        kernels.append(Kernel(kernel_cmdline=cmdline, **values))
    return MeasuredBootRefstate(
        has_secureboot=secureboot, scrtm_and_bios=tuple(bios),
        pk=_signatures(document, 'pk', field), kek=_signatures(document, 'kek', field),
        db=_signatures(document, 'db', field), dbx=_signatures(document, 'dbx', field),
        vendor_db=_signatures(document, 'vendor_db', field),
        mokdig=_sha256_list(document, 'mokdig', field),
        mokxdig=_sha256_list(document, 'mokxdig', field), kernels=tuple(kernels))


# ----------------------------------------------------------------------------- the bundle
@dataclasses.dataclass(frozen=True)
class Policy:
    """What one host is appraised against; any part may be absent (not checked)."""
    name: str = 'default'
    tpm_policy: TpmPolicy = TpmPolicy(pcrs=types.MappingProxyType({}))
    runtime_policy: RuntimePolicy = None
    mb_refstate: MeasuredBootRefstate = None


def parse_policy(name, tpm_policy=None, runtime_policy=None, mb_refstate=None):
    """Build a :class:`Policy` from the three Keylime documents (JSON text or dicts)."""
    return Policy(name=name,
                  tpm_policy=parse_tpm_policy(tpm_policy or {}),
                  runtime_policy=(parse_runtime_policy(runtime_policy)
                                  if runtime_policy is not None else None),
                  mb_refstate=(parse_mb_refstate(mb_refstate)
                               if mb_refstate is not None else None))


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
