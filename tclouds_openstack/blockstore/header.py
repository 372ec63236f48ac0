"""The volume header (both format versions), the data keys it wraps, the anchor MAC.

Two 4 KiB slots at the start of the volume, each ``magic | fields | key check | wrap nonce
| wrapped keys | SHA-256``; the valid slot with the higher generation is the header. A
header rewrite (key rotation, resize) writes one slot at a time, so a crash never leaves
zero valid headers. Integers are big-endian.

Format 1 wraps one data key (32 bytes). Format 2 wraps up to two, each with a
*generation* number: the current one (new writes) and, only while a data key rotation is
unfinished, the previous one (sectors not yet re-encrypted). The wrapped bytes are
AES-256-GCM under the key-encryption key with every header field as associated data, so a
field changed on disk fails the unwrap. The key check (HMAC of the volume UUID under the
key-encryption key) refuses a wrong key before anything else is read.
"""
import dataclasses
import hashlib
import hmac
import os
import struct
import uuid as uuidlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tclouds_openstack.blockstore import errors

MAGIC = b'TCBSVOL\x00'
CIPHER = 'aes-256-gcm'
SECTOR_SIZE = 4096
HEADER_SLOT_SIZE = 4096
HEADER_SLOTS = 2
MAX_SECTORS = 2 ** 32
FLAG_MERKLE = 0x1
VERSIONS = (1, 2)
CURRENT_VERSION = 2

# magic, format version, flags, sector size, sector count, generation, uuid, cipher, key ref
FIELDS = struct.Struct('>8sHHIQQ16s16s64s')
_NAMES = ('magic', 'format_version', 'flags', 'sector_size', 'sector_count',
          'generation', 'uuid', 'cipher', 'key_ref')
# key check, wrap nonce, wrapped key material (+ GCM tag), checksum
WRAP = {1: struct.Struct('>32s12s48s32s'), 2: struct.Struct('>32s12s88s32s')}
# format 2 key material: current generation, key, previous generation (0: none), key
_KEYS = struct.Struct('>I32sI32s')


@dataclasses.dataclass
class Header:
    sector_count: int
    uuid: bytes
    flags: int = FLAG_MERKLE
    generation: int = 1
    key_ref: str = ''
    key_check: bytes = b''
    wrap_nonce: bytes = b''
    wrapped_key: bytes = b''
    sector_size: int = SECTOR_SIZE
    format_version: int = CURRENT_VERSION
    cipher: str = CIPHER

    @property
    def merkle(self):
        return bool(self.flags & FLAG_MERKLE)

    @property
    def uuid_str(self):
        return str(uuidlib.UUID(bytes=self.uuid))

    def fields(self):
        return FIELDS.pack(MAGIC, self.format_version, self.flags, self.sector_size,
                           self.sector_count, self.generation, self.uuid,
                           self.cipher.encode(), self.key_ref.encode())

    def pack(self):
        wrap = WRAP[self.format_version]
        body = self.fields() + wrap.pack(self.key_check, self.wrap_nonce, self.wrapped_key,
                                         bytes(32))[:-32]
        body += hashlib.sha256(body).digest()
        return body + bytes(HEADER_SLOT_SIZE - len(body))

    @classmethod
    def unpack(cls, slot, raw):
        """Parse one header slot; raise HeaderError naming the field that is wrong."""
        if len(raw) < FIELDS.size:
            raise errors.HeaderError(slot, 'length', 'slot is %d bytes, need %d'
                                     % (len(raw), FIELDS.size))
        fields = dict(zip(_NAMES, FIELDS.unpack_from(raw)))
        if fields['magic'] != MAGIC:
            raise errors.HeaderError(slot, 'magic', 'not a tclouds blockstore volume (%r)'
                                     % fields['magic'])
        version = fields['format_version']
        wrap = WRAP.get(version)
        if wrap is None:
            # The checksum's place depends on the version: say what is wrong first.
            raise errors.HeaderError(slot, 'format_version', 'version %d is not supported '
                                     '(this code reads %s)' % (
                                         version, ' and '.join(map(str, VERSIONS))))
        need = FIELDS.size + wrap.size
        if len(raw) < need:
            raise errors.HeaderError(slot, 'length', 'slot is %d bytes, need %d'
                                     % (len(raw), need))
        key_check, nonce, wrapped, checksum = wrap.unpack_from(raw, FIELDS.size)
        if hashlib.sha256(raw[:need - 32]).digest() != checksum:
            raise errors.HeaderError(slot, 'checksum', 'header bytes are corrupted')
        cipher = fields['cipher'].rstrip(b'\0').decode('ascii', 'replace')
        if cipher != CIPHER:
            raise errors.HeaderError(slot, 'cipher', 'unsupported cipher %r' % cipher)
        if fields['sector_size'] != SECTOR_SIZE:
            raise errors.HeaderError(slot, 'sector_size', 'unsupported sector size %d'
                                     % fields['sector_size'])
        if not 0 < fields['sector_count'] < MAX_SECTORS:
            raise errors.HeaderError(slot, 'sector_count', 'out of range: %d'
                                     % fields['sector_count'])
        if fields['flags'] & ~FLAG_MERKLE:
            raise errors.HeaderError(slot, 'flags', 'unknown flags 0x%x' % fields['flags'])
        if version >= 2 and not fields['flags'] & FLAG_MERKLE:
            raise errors.HeaderError(slot, 'flags', 'format %d volumes always have the '
                                     'Merkle tree flag' % version)
        return cls(sector_count=fields['sector_count'], uuid=fields['uuid'],
                   flags=fields['flags'], generation=fields['generation'],
                   key_ref=fields['key_ref'].rstrip(b'\0').decode('utf-8', 'replace'),
                   key_check=key_check, wrap_nonce=nonce, wrapped_key=wrapped,
                   format_version=version)


def magic_slots(storage):
    """The header slots ('A', 'B') that begin with the blockstore magic.

    A slot with the magic was written by a format, whether or not the rest of it reads: a
    volume showing one is never new.
    """
    return ['AB'[slot] for slot in range(HEADER_SLOTS)
            if storage.pread(len(MAGIC), slot * HEADER_SLOT_SIZE) == MAGIC]


def read_header(storage):
    """Return the newest valid header slot and the other one (or None)."""
    slots = []
    problems = []
    for slot in range(HEADER_SLOTS):
        raw = storage.pread(HEADER_SLOT_SIZE, slot * HEADER_SLOT_SIZE)
        try:
            slots.append(Header.unpack('AB'[slot], raw))
        except errors.HeaderError as exc:
            problems.append(exc)
    if not slots:
        raise problems[0]
    slots.sort(key=lambda h: h.generation, reverse=True)
    return slots[0], (slots[1] if len(slots) > 1 else None)


class DataKeys:
    """The data keys of a volume by generation.

    ``current`` and, during an unfinished data key rotation, ``previous``. Format 1 volumes
    have one key, generation 0.
    """

    def __init__(self, current_gen, current, previous_gen=0, previous=None):
        self.current_gen = current_gen
        self.current = current
        self.previous_gen = previous_gen if previous is not None else 0
        self.previous = previous

    def get(self, gen):
        if gen == self.current_gen:
            return self.current
        if self.previous is not None and gen == self.previous_gen:
            return self.previous
        return None

    def all(self):
        return [k for k in (self.current, self.previous) if k is not None]

    @property
    def rotating(self):
        return self.previous is not None


def check_kek(kek):
    if not isinstance(kek, (bytes, bytearray)) or len(kek) != 32:
        raise errors.WrongKeyError('the key must be 32 bytes (AES-256), got %s'
                                   % (len(kek) if isinstance(kek, (bytes, bytearray))
                                      else type(kek).__name__))


def _key_check(kek, volume_uuid):
    return hmac.new(kek, b'tclouds-blockstore key check\0' + volume_uuid,
                    hashlib.sha256).digest()


def wrap(header, kek, keys):
    """(Re)wrap ``keys`` (DataKeys) under ``kek``, binding them to the header fields."""
    if header.format_version < 2:
        raise errors.BlockstoreError('format %d headers are never written'
                                     % header.format_version)
    header.key_check = _key_check(kek, header.uuid)
    header.wrap_nonce = os.urandom(12)
    material = _KEYS.pack(keys.current_gen, keys.current, keys.previous_gen,
                          keys.previous or bytes(32))
    header.wrapped_key = AESGCM(kek).encrypt(header.wrap_nonce, material, header.fields())


def unwrap(header, kek):
    """Return the volume's DataKeys; WrongKeyError when ``kek`` is not this volume's key."""
    check_kek(kek)
    if not hmac.compare_digest(_key_check(kek, header.uuid), header.key_check):
        raise errors.WrongKeyError('wrong key: it does not open volume %s (key check failed)'
                                   % header.uuid_str)
    try:
        material = AESGCM(kek).decrypt(header.wrap_nonce, header.wrapped_key,
                                       header.fields())
    except InvalidTag:
        raise errors.HeaderError(header.generation, 'wrapped_key',
                                 'the key is right but the header fields were altered')
    if header.format_version == 1:
        return DataKeys(0, material)
    current_gen, current, previous_gen, previous = _KEYS.unpack(material)
    if current_gen < 1 or previous_gen >= current_gen:
        raise errors.HeaderError(header.generation, 'wrapped_key', 'data key generations '
                                 '%d/%d are inconsistent' % (current_gen, previous_gen))
    return DataKeys(current_gen, current, previous_gen, previous if previous_gen else None)


def anchor_mac(dek, state, version=CURRENT_VERSION):
    """MAC of an anchor state under a key derived from data key ``dek``."""
    mac_key = hmac.new(dek, b'tclouds-blockstore anchor key', hashlib.sha256).digest()
    msg = '%s|%d|%s|%d' % (state['uuid'], state['version'], state['root'],
                           state['sector_count'])
    if version >= 2:
        msg = 'v%d|%s' % (version, msg)
    return hmac.new(mac_key, msg.encode(), hashlib.sha256).hexdigest()


def check_anchor_state(state, keys, volume_uuid, version):
    """Raise AnchorError unless ``state`` is well formed and MAC'd under one of ``keys``."""
    if state is None:
        raise errors.AnchorError('no anchor state for volume %s: refusing to open without '
                                 'freshness information' % volume_uuid)
    try:
        anchored = state.get('format')
        if isinstance(anchored, int) and anchored > version and any(
                hmac.compare_digest(str(state['mac']), anchor_mac(k, state, anchored))
                for k in keys.all()):
            # the anchor (kept off the volume's storage) knows a newer format: the header
            # was put back from an older copy (format 1 nonces repeat after a rollback)
            raise errors.FormatVersionError(
                'volume %s: its header is format %d, but its anchor state is for format %d: '
                'refusing a format downgrade' % (volume_uuid, version, anchored))
        if version >= 2 and anchored != version:
            raise errors.AnchorError('anchor state of volume %s is for format %r, the volume '
                                     'is format %d' % (volume_uuid, state.get('format'),
                                                       version))
        macs = [anchor_mac(k, state, version) for k in keys.all()]
        good = any(hmac.compare_digest(str(state['mac']), m) for m in macs)
        if not all(isinstance(state[k], int) for k in ('version', 'sector_count')):
            raise TypeError('version and sector_count must be integers')
    except (KeyError, TypeError, AttributeError) as exc:
        raise errors.AnchorError('anchor state of volume %s is malformed: %s'
                                 % (volume_uuid, exc))
    if not good:
        raise errors.AnchorError('anchor state of volume %s fails its MAC: forged or '
                                 'written for another key' % volume_uuid)
    return state
