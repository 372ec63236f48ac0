"""The protected block format: per-sector AES-256-GCM, Merkle-tree freshness, crash safety.

Pure: it reads and writes through a ``storage`` object (``pread``/``pwrite``/``sync``/
``truncate``/``size``) and keeps freshness state in an ``anchor`` object (see
``storage.py``); no sockets, no oslo.

On disk (all integers big-endian)::

    0      header slot A (4 KiB)   two slots with a generation number: a header rewrite
    4096   header slot B (4 KiB)   (KEK rotation, resize) never leaves zero valid headers
    8192   group 0: 256 sector records (128 B each) | 256 hint leaves (32 B) | 256 sectors
           group 1: ...

A sector record holds three entries (write counter u64, GCM tag 16 B): *anchored* (the
state the anchor's Merkle root covers), *previous* and *current*. A write updates the record
first, then the data, so after a crash the data verifies against one of the entries
(old-or-new, never unverifiable; assumes 4 KiB data writes are atomic, which a process
crash guarantees and most SSDs do). Counter 0 means never written: the sector reads as
zeros, authenticated because its leaf (with counter 0) is under the Merkle root.

Nonces are deterministic and never repeat under one data key: nonce = sector (u32) ||
counter (u64), counter = epoch << 32 | sequence. Writes after anchor version V use epoch
V + 1 and the next commit is V + 2, so every epoch lies strictly between two anchor
versions; the anchor is monotonic and lives outside the volume, so a rolled-back volume can
never make us reuse a counter. (No anchor write is needed before writing: one commit per
flush.) Should the anchor go back anyway (an older copy restored), records carrying an
epoch beyond anchored version + 1 give it away and open refuses the volume.

Freshness: the anchor stores (version, Merkle root). ``flush`` commits the root of all
current entries as a new version. A volume or sector rolled back behind the anchor no longer
hashes to the anchored root: reads fail. The hint leaves (written at flush) locate the stale
sectors when they still hash to the anchored root; otherwise the whole volume is refused.
Writes after the last flush (entries of epoch V + 1 found at open: a crash) carry no
freshness guarantee, exactly like their durability: recovery accepts for each sector the
newest such entry that verifies, else the anchored one, and anchors the result.
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
from tclouds_openstack.blockstore import merkle

FORMAT_VERSION = 1
MAGIC = b'TCBSVOL\x00'
CIPHER = 'aes-256-gcm'
SECTOR_SIZE = 4096
HEADER_SLOT_SIZE = 4096
HEADER_SLOTS = 2
GROUP_SECTORS = 256
RECORD_SIZE = 128
ENTRY = struct.Struct('>Q16s')
ENTRIES = 3
ENTRY_BYTES = ENTRY.size * ENTRIES
HINT_SIZE = merkle.HASH_SIZE
RECORDS_BYTES = GROUP_SECTORS * RECORD_SIZE
HINTS_BYTES = GROUP_SECTORS * HINT_SIZE
GROUP_META = RECORDS_BYTES + HINTS_BYTES
GROUP_BYTES = GROUP_META + GROUP_SECTORS * SECTOR_SIZE
DATA_START = HEADER_SLOT_SIZE * HEADER_SLOTS
MAX_SECTORS = 2 ** 32
MAX_SEQUENCE = 2 ** 32 - 1
FLAG_MERKLE = 0x1
ZERO_TAG = bytes(16)
_ENTRIES = struct.Struct('>Q16sQ16sQ16s')
_NONCE = struct.Struct('>IQ')
ZERO_SECTOR = bytes(SECTOR_SIZE)

# magic, format version, flags, sector size, sector count, generation, uuid, cipher, key ref
_HEADER_FIELDS = struct.Struct('>8sHHIQQ16s16s64s')
_HEADER_NAMES = ('magic', 'format_version', 'flags', 'sector_size', 'sector_count',
                 'generation', 'uuid', 'cipher', 'key_ref')
_WRAP = struct.Struct('>32s12s48s32s')  # key check, wrap nonce, wrapped data key, checksum


def record_offset(sector):
    group, index = divmod(sector, GROUP_SECTORS)
    return DATA_START + group * GROUP_BYTES + index * RECORD_SIZE


def hint_offset(sector):
    group, index = divmod(sector, GROUP_SECTORS)
    return DATA_START + group * GROUP_BYTES + RECORDS_BYTES + index * HINT_SIZE


def data_offset(sector):
    group, index = divmod(sector, GROUP_SECTORS)
    return DATA_START + group * GROUP_BYTES + GROUP_META + index * SECTOR_SIZE


def file_size(sector_count):
    return data_offset(sector_count - 1) + SECTOR_SIZE


def sectors_for_capacity(nbytes):
    """How many sectors a device of ``nbytes`` holds in this format (0 if too small)."""
    avail = nbytes - DATA_START
    if avail < GROUP_META + SECTOR_SIZE:
        return 0
    groups, rest = divmod(avail, GROUP_BYTES)
    return groups * GROUP_SECTORS + max(0, (rest - GROUP_META) // SECTOR_SIZE)


def epoch_of(counter):
    return counter >> 32


def _group_runs(first, count):
    """Split sectors [first, first+count) into runs that stay inside one group."""
    end = first + count
    while first < end:
        stop = min(end, (first // GROUP_SECTORS + 1) * GROUP_SECTORS)
        yield first, stop - first
        first = stop


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
    format_version: int = FORMAT_VERSION
    cipher: str = CIPHER

    @property
    def merkle(self):
        return bool(self.flags & FLAG_MERKLE)

    def fields(self):
        return _HEADER_FIELDS.pack(MAGIC, self.format_version, self.flags, self.sector_size,
                                   self.sector_count, self.generation, self.uuid,
                                   self.cipher.encode(), self.key_ref.encode())

    def pack(self):
        body = self.fields() + _WRAP.pack(self.key_check, self.wrap_nonce, self.wrapped_key,
                                          bytes(32))[:-32]
        body += hashlib.sha256(body).digest()
        return body + bytes(HEADER_SLOT_SIZE - len(body))

    @classmethod
    def unpack(cls, slot, raw):
        """Parse one header slot; raise HeaderError naming the field that is wrong."""
        need = _HEADER_FIELDS.size + _WRAP.size
        if len(raw) < need:
            raise errors.HeaderError(slot, 'length', 'slot is %d bytes, need %d'
                                     % (len(raw), need))
        values = _HEADER_FIELDS.unpack_from(raw)
        fields = dict(zip(_HEADER_NAMES, values))
        if fields['magic'] != MAGIC:
            raise errors.HeaderError(slot, 'magic', 'not a tclouds blockstore volume (%r)'
                                     % fields['magic'])
        key_check, nonce, wrapped, checksum = _WRAP.unpack_from(raw, _HEADER_FIELDS.size)
        if hashlib.sha256(raw[:need - 32]).digest() != checksum:
            raise errors.HeaderError(slot, 'checksum', 'header bytes are corrupted')
        if fields['format_version'] != FORMAT_VERSION:
            raise errors.HeaderError(slot, 'format_version', 'version %d is not supported '
                                     '(this code reads %d)' % (fields['format_version'],
                                                               FORMAT_VERSION))
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
        return cls(sector_count=fields['sector_count'], uuid=fields['uuid'],
                   flags=fields['flags'], generation=fields['generation'],
                   key_ref=fields['key_ref'].rstrip(b'\0').decode('utf-8', 'replace'),
                   key_check=key_check, wrap_nonce=nonce, wrapped_key=wrapped)


def _key_check(kek, volume_uuid):
    return hmac.new(kek, b'tclouds-blockstore key check\0' + volume_uuid,
                    hashlib.sha256).digest()


def _check_kek(kek):
    if not isinstance(kek, (bytes, bytearray)) or len(kek) != 32:
        raise errors.WrongKeyError('the key must be 32 bytes (AES-256), got %s'
                                   % (len(kek) if isinstance(kek, (bytes, bytearray))
                                      else type(kek).__name__))


def _wrap(header, kek, dek):
    """(Re)wrap the data key under ``kek``, binding it to the header fields."""
    header.key_check = _key_check(kek, header.uuid)
    header.wrap_nonce = os.urandom(12)
    header.wrapped_key = AESGCM(kek).encrypt(header.wrap_nonce, dek, header.fields())


def unwrap_key(header, kek):
    """Return the data key; WrongKeyError when ``kek`` is not this volume's key."""
    _check_kek(kek)
    if not hmac.compare_digest(_key_check(kek, header.uuid), header.key_check):
        raise errors.WrongKeyError('wrong key: it does not open volume %s (key check failed)'
                                   % uuidlib.UUID(bytes=header.uuid))
    try:
        return AESGCM(kek).decrypt(header.wrap_nonce, header.wrapped_key, header.fields())
    except InvalidTag:
        raise errors.HeaderError(header.generation, 'wrapped_key',
                                 'the key is right but the header fields were altered')


def _anchor_mac(dek, state):
    mac_key = hmac.new(dek, b'tclouds-blockstore anchor key', hashlib.sha256).digest()
    msg = '%s|%d|%s|%d' % (state['uuid'], state['version'], state['root'],
                           state['sector_count'])
    return hmac.new(mac_key, msg.encode(), hashlib.sha256).hexdigest()


def _leaf(sector, counter, tag):
    return merkle.hash_leaf(struct.pack('>QQ', sector, counter) + tag)


class Volume:
    """An open protected volume. Use :meth:`create` or :meth:`open`.

    Not thread-safe by itself: the NBD adapter serializes requests (read-modify-write of
    partial sectors must not interleave).
    """

    def __init__(self, storage, anchor, header, dek, readonly=False, sync_metadata=False):
        self.storage = storage
        self.anchor = anchor
        self.header = header
        self._dek = dek
        self._aead = AESGCM(dek)
        self.readonly = readonly
        self.sync_metadata = sync_metadata
        self.uuid = str(uuidlib.UUID(bytes=header.uuid))
        self._aad_prefix = header.uuid
        n = header.sector_count
        # Trusted in-memory copy of every record's three entries (anchored, previous,
        # current): reads never trust metadata re-read from disk while serving.
        self._entries = bytearray(n * ENTRY_BYTES)
        self._bad = {}
        self._volume_bad = None
        self._tree = None
        self._dirty = set()
        self._state = None
        self._pending = False
        self.recovered = False

    # ------------------------------------------------------------------ create/open
    @classmethod
    def create(cls, storage, kek, anchor, size_bytes, merkle_tree=True, key_ref=''):
        """Format a new volume of ``size_bytes`` (rounded up to 4 KiB sectors)."""
        _check_kek(kek)
        sectors = -(-size_bytes // SECTOR_SIZE)
        if not 0 < sectors < MAX_SECTORS:
            raise errors.BlockstoreError('size %d bytes is out of range (1 sector to 16 TiB)'
                                         % size_bytes)
        header = Header(sector_count=sectors, uuid=uuidlib.uuid4().bytes,
                        flags=FLAG_MERKLE if merkle_tree else 0, key_ref=key_ref[:64])
        dek = AESGCM.generate_key(256)
        _wrap(header, kek, dek)
        storage.truncate(0)
        storage.truncate(file_size(sectors))
        if getattr(storage, 'is_block', False):
            for first, count in _group_runs(0, sectors):
                storage.pwrite(bytes(GROUP_META), record_offset(first))
        raw = header.pack()
        storage.pwrite(raw, 0)
        storage.pwrite(raw, HEADER_SLOT_SIZE)
        vol = cls(storage, anchor, header, dek)
        vol._tree = vol._build_tree(vol._current_leaf)
        vol._write_all_hints()
        storage.sync()
        vol._commit(version=1, expected=None)
        return vol

    @classmethod
    def read_header(cls, storage):
        """Return the newest valid header slot (and the other one, or None)."""
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

    @classmethod
    def open(cls, storage, kek, anchor, readonly=False, sync_metadata=False):
        """Open a volume: check the key, the anchor and the Merkle root; recover a crash.

        Raises WrongKeyError (before any sector is read), HeaderError, AnchorError.
        Integrity failures do not raise here: they are remembered and surface as
        IntegrityError on the affected reads and in :meth:`scrub`.
        """
        header, other = cls.read_header(storage)
        dek = unwrap_key(header, kek)
        vol = cls(storage, anchor, header, dek, readonly=readonly,
                  sync_metadata=sync_metadata)
        state = vol._load_anchor()
        if state['sector_count'] != header.sector_count and other is not None \
                and other.sector_count == state['sector_count']:
            # A resize was interrupted between the header write and the anchor commit.
            header = other
            vol = cls(storage, anchor, header, unwrap_key(header, kek), readonly=readonly,
                      sync_metadata=sync_metadata)
            state = vol._load_anchor()
        if state['sector_count'] != header.sector_count:
            raise errors.AnchorError('anchor covers %d sectors, header says %d'
                                     % (state['sector_count'], header.sector_count))
        vol._state = state
        vol._load_records(state)
        return vol

    def _load_anchor(self):
        state = self.anchor.load(self.uuid)
        if state is None:
            raise errors.AnchorError('no anchor state for volume %s: refusing to open without '
                                     'freshness information' % self.uuid)
        try:
            good = hmac.compare_digest(state['mac'], _anchor_mac(self._dek, state))
        except (KeyError, TypeError) as exc:
            raise errors.AnchorError('anchor state of volume %s is malformed: %s'
                                     % (self.uuid, exc))
        if not good:
            raise errors.AnchorError('anchor state of volume %s fails its MAC: forged or '
                                     'written for another key' % self.uuid)
        return state

    def _commit(self, version, expected):
        root = self._tree.root().hex() if self._tree is not None else ''
        state = {'uuid': self.uuid, 'version': version, 'root': root,
                 'sector_count': self.header.sector_count}
        state['mac'] = _anchor_mac(self._dek, state)
        self.anchor.commit(self.uuid, state, expected)
        self._state = state

    # ------------------------------------------------------------------ records
    def _entry(self, sector, slot):
        return ENTRY.unpack_from(self._entries, sector * ENTRY_BYTES + slot * ENTRY.size)

    def _current(self, sector):
        return ENTRY.unpack_from(self._entries, sector * ENTRY_BYTES + 2 * ENTRY.size)

    def _current_leaf(self, sector):
        counter, tag = self._current(sector)
        return _leaf(sector, counter, tag)

    def _build_tree(self, leaf_of):
        if not self.header.merkle:
            return None
        return merkle.Tree(b''.join(leaf_of(i) for i in range(self.header.sector_count)))

    def _read_disk_records(self):
        n = self.header.sector_count
        records = []
        hints = bytearray()
        for first, count in _group_runs(0, n):
            raw = self.storage.pread(count * RECORD_SIZE, record_offset(first))
            for i in range(count):
                entries = []
                for slot in range(ENTRIES):
                    entries.append(ENTRY.unpack_from(raw, i * RECORD_SIZE + slot * ENTRY.size))
                records.append(entries)
            hints += self.storage.pread(count * HINT_SIZE, hint_offset(first))
        return records, hints

    def _load_records(self, state):
        """Select each sector's anchored and current entry; verify against the anchor."""
        n = self.header.sector_count
        # Entries of epochs below the anchored version are covered by its root; entries of
        # the epoch after it were written after the last flush (a crash).
        limit = state['version']
        records, hints = self._read_disk_records()
        for sector, entries in enumerate(records):
            epoch = max(epoch_of(c) for c, _ in entries)
            if epoch > limit + 1:
                # Only writes after a later anchor version make such counters: the anchor
                # went back (an older copy, a lost commit). Writing on would reuse nonces.
                raise errors.AnchorError(
                    'sector %d of volume %s was written in epoch %d, after anchor version '
                    '%d: the anchor was rolled back or lost commits; refusing to open'
                    % (sector, self.uuid, epoch, limit))
        anchored = []
        for sector, entries in enumerate(records):
            older = [e for e in entries if epoch_of(e[0]) < limit]
            anchored.append(max(older) if older else (0, ZERO_TAG))
        if self.header.merkle:
            tree = merkle.Tree(b''.join(_leaf(i, c, t) for i, (c, t) in enumerate(anchored)))
            if tree.root().hex() != state['root']:
                self._locate_rollback(tree, anchored, hints, state)
        current = list(anchored)
        # Crash recovery of the epoch after the anchor: accept, per sector, the newest entry
        # of that epoch whose data verifies, else the anchored one.
        for sector, entries in enumerate(records):
            if sector in self._bad:
                continue
            newer = sorted((e for e in entries if epoch_of(e[0]) == limit + 1), reverse=True)
            if not newer:
                continue
            self.recovered = True
            data = self.storage.pread(SECTOR_SIZE, data_offset(sector))
            for candidate in newer + [anchored[sector]]:
                if self._verifies(sector, candidate, data):
                    current[sector] = candidate
                    break
            else:
                self._bad[sector] = errors.IntegrityError(
                    sector, 'tag', 'no record entry authenticates the data after a crash')
        for sector in range(n):
            a, c = anchored[sector], current[sector]
            _ENTRIES.pack_into(self._entries, sector * ENTRY_BYTES,
                               a[0], a[1], a[0], a[1], c[0], c[1])
        if self.header.merkle:
            self._tree = self._build_tree(self._current_leaf)
            if self._bad or self._volume_bad:
                # Keep the anchored leaves of bad sectors so the root stays what the
                # anchor says; those sectors fail reads until rewritten in full.
                self._tree.update({s: self._anchored_hint(s, hints) for s in self._bad})
        if self.recovered and not self.readonly and not self._volume_bad:
            self._write_all_hints()
            self.storage.sync()
            self._commit(state['version'] + 2, state['version'])

    def _anchored_hint(self, sector, hints):
        return bytes(hints[sector * HINT_SIZE:(sector + 1) * HINT_SIZE])

    def _locate_rollback(self, tree, anchored, hints, state):
        """The records do not hash to the anchored root: find the stale sectors.

        The hint leaves written at the last flush are trusted only if they hash to the
        anchored root; then every sector whose record differs from its hint was rolled
        back (or rewritten behind our back). Otherwise nothing can be trusted.
        """
        hint_tree = merkle.Tree(hints)
        if hint_tree.root().hex() == state['root']:
            for sector in range(self.header.sector_count):
                if tree.leaf(sector) != hint_tree.leaf(sector):
                    self._bad[sector] = errors.IntegrityError(
                        sector, 'rollback', 'record (write counter %d) does not match the '
                        'Merkle leaf anchored at version %d: the sector was rolled back or '
                        'replaced' % (anchored[sector][0], state['version']))
            return
        self._volume_bad = errors.IntegrityError(
            None, 'tree', 'the Merkle root over the sector records does not match the root '
            'anchored at version %d: the volume or its metadata was rolled back or replaced'
            % state['version'])

    def _verifies(self, sector, entry, data):
        counter, tag = entry
        if counter == 0:
            return True  # never written: the data area is not used, the sector reads zeros
        try:
            self._decrypt(sector, counter, tag, data)
            return True
        except InvalidTag:
            return False

    def _write_all_hints(self):
        level = self._tree.levels[0] if self._tree is not None else None
        if level is None:
            return
        for first, count in _group_runs(0, self.header.sector_count):
            self.storage.pwrite(bytes(level[first * HINT_SIZE:(first + count) * HINT_SIZE]),
                                hint_offset(first))

    # ------------------------------------------------------------------ crypto
    def _decrypt(self, sector, counter, tag, data):
        nonce = _NONCE.pack(sector, counter)
        return self._aead.decrypt(nonce, bytes(data) + tag, self._aad_prefix + nonce)

    # ------------------------------------------------------------------ I/O
    @property
    def size(self):
        return self.header.sector_count * SECTOR_SIZE

    def _check_range(self, offset, length):
        if offset < 0 or length < 0 or offset + length > self.size:
            raise errors.BlockstoreError('request [%d, +%d) is outside the volume (%d bytes)'
                                         % (offset, length, self.size))

    def read_sectors(self, first, count):
        """Return the plaintext of ``count`` sectors; IntegrityError names a failing one."""
        if self._volume_bad is not None:
            raise self._volume_bad
        out = bytearray(count * SECTOR_SIZE)   # never-written sectors stay zero
        out_view = memoryview(out)
        scratch = bytearray(SECTOR_SIZE + 16)
        entries = self._entries
        bad = self._bad
        aead = self._aead
        prefix = self._aad_prefix
        for start, run in _group_runs(first, count):
            raw = None
            for sector in range(start, start + run):
                if bad and sector in bad:
                    raise bad[sector]
                counter, tag = ENTRY.unpack_from(entries, sector * ENTRY_BYTES + 2 * ENTRY.size)
                if counter == 0:
                    continue
                if raw is None:
                    raw = memoryview(self.storage.pread(run * SECTOR_SIZE, data_offset(start)))
                o = (sector - start) * SECTOR_SIZE
                scratch[:SECTOR_SIZE] = raw[o:o + SECTOR_SIZE]
                scratch[SECTOR_SIZE:] = tag
                nonce = _NONCE.pack(sector, counter)
                d = (sector - first) * SECTOR_SIZE
                try:
                    aead.decrypt_into(nonce, scratch, prefix + nonce,
                                      out_view[d:d + SECTOR_SIZE])
                except InvalidTag:
                    raise errors.IntegrityError(
                        sector, 'tag', 'authentication tag mismatch (write counter %d): the '
                        'sector was modified, swapped with another, torn or rolled back'
                        % counter)
        return out

    def _read_one(self, sector):
        """read_sectors for one aligned sector: the 4 KiB random-read hot path."""
        if self._volume_bad is not None:
            raise self._volume_bad
        if self._bad and sector in self._bad:
            raise self._bad[sector]
        counter, tag = ENTRY.unpack_from(self._entries, sector * ENTRY_BYTES + 2 * ENTRY.size)
        if counter == 0:
            return ZERO_SECTOR
        nonce = _NONCE.pack(sector, counter)
        try:
            return self._aead.decrypt(
                nonce, self.storage.pread(SECTOR_SIZE, data_offset(sector)) + tag,
                self._aad_prefix + nonce)
        except InvalidTag:
            raise errors.IntegrityError(
                sector, 'tag', 'authentication tag mismatch (write counter %d): the sector '
                'was modified, swapped with another, torn or rolled back' % counter)

    def read(self, offset, length):
        self._check_range(offset, length)
        if length == 0:
            return b''
        if length == SECTOR_SIZE and not offset % SECTOR_SIZE:
            return self._read_one(offset // SECTOR_SIZE)
        first = offset // SECTOR_SIZE
        last = (offset + length - 1) // SECTOR_SIZE
        data = self.read_sectors(first, last - first + 1)
        skip = offset - first * SECTOR_SIZE
        return data[skip:skip + length]

    def write(self, offset, data):
        """Write ``data`` at ``offset`` (read-modify-write of partial edge sectors)."""
        if self.readonly:
            raise errors.BlockstoreError('volume is open read-only')
        length = len(data)
        self._check_range(offset, length)
        if length == 0:
            return
        if self._volume_bad is not None:
            raise self._volume_bad
        if length == SECTOR_SIZE and not offset % SECTOR_SIZE:
            return self._write_one(offset // SECTOR_SIZE, data)
        first = offset // SECTOR_SIZE
        last = (offset + length - 1) // SECTOR_SIZE
        head = offset - first * SECTOR_SIZE
        tail = (last + 1) * SECTOR_SIZE - (offset + length)
        if head or tail:
            buf = bytearray(self.read_sectors(first, 1))
            if last != first:
                buf += bytes((last - first - 1) * SECTOR_SIZE) + self.read_sectors(last, 1)
            buf[head:head + length] = data
            data = buf
        self.write_sectors(first, data)

    def _write_one(self, sector, data):
        """write_sectors for one aligned sector: the 4 KiB random-write hot path."""
        epoch = self._open_epoch()
        base = sector * ENTRY_BYTES
        entries = self._entries
        a_counter, a_tag, _, _, c_counter, c_tag = _ENTRIES.unpack_from(entries, base)
        if c_counter >> 32 == epoch:
            seq = (c_counter & MAX_SEQUENCE) + 1
            if seq > MAX_SEQUENCE:
                raise errors.BlockstoreError('sector %d: 2^32 writes without a flush' % sector)
        else:
            a_counter, a_tag, seq = c_counter, c_tag, 1
        counter = epoch << 32 | seq
        nonce = _NONCE.pack(sector, counter)
        sealed = self._aead.encrypt(nonce, data, self._aad_prefix + nonce)
        tag = sealed[SECTOR_SIZE:]
        record = _ENTRIES.pack(a_counter, a_tag, c_counter, c_tag, counter, tag)
        entries[base:base + ENTRY_BYTES] = record
        if self._bad:
            self._bad.pop(sector, None)
        self._dirty.add(sector)
        # Record before data (see write_sectors).
        self.storage.pwrite(record, record_offset(sector))
        if self.sync_metadata:
            self.storage.sync()
        self.storage.pwrite(memoryview(sealed)[:SECTOR_SIZE], data_offset(sector))

    def write_sectors(self, first, data):
        count = len(data) // SECTOR_SIZE
        epoch = self._open_epoch()
        view = memoryview(data)
        entries = self._entries
        aead = self._aead
        prefix = self._aad_prefix
        for start, run in _group_runs(first, count):
            records = bytearray(run * RECORD_SIZE)
            # encrypt_into writes ciphertext||tag; the tag spills into the next sector's
            # slot and is copied out before that sector overwrites it (no extra copies).
            cipher = bytearray(run * SECTOR_SIZE + 16)
            cview = memoryview(cipher)
            for k in range(run):
                sector = start + k
                base = sector * ENTRY_BYTES
                a_counter, a_tag, _, _, c_counter, c_tag = _ENTRIES.unpack_from(entries, base)
                if c_counter >> 32 == epoch:
                    seq = (c_counter & MAX_SEQUENCE) + 1
                    if seq > MAX_SEQUENCE:
                        raise errors.BlockstoreError('sector %d: 2^32 writes without a flush'
                                                     % sector)
                else:
                    # The current entry belongs to a flushed epoch: it becomes the anchored.
                    a_counter, a_tag, seq = c_counter, c_tag, 1
                counter = epoch << 32 | seq
                nonce = _NONCE.pack(sector, counter)
                o = k * SECTOR_SIZE
                src = (sector - first) * SECTOR_SIZE
                aead.encrypt_into(nonce, view[src:src + SECTOR_SIZE], prefix + nonce,
                                  cview[o:o + SECTOR_SIZE + 16])
                tag = bytes(cview[o + SECTOR_SIZE:o + SECTOR_SIZE + 16])
                _ENTRIES.pack_into(entries, base, a_counter, a_tag, c_counter, c_tag,
                                   counter, tag)
                records[k * RECORD_SIZE:k * RECORD_SIZE + ENTRY_BYTES] = \
                    entries[base:base + ENTRY_BYTES]
            if self._bad:
                for sector in range(start, start + run):
                    self._bad.pop(sector, None)
            self._dirty.update(range(start, start + run))
            # Record before data: a crash in between leaves data that verifies against
            # the previous entry (old) or the current one (new).
            self.storage.pwrite(records, record_offset(start))
            if self.sync_metadata:
                self.storage.sync()
            self.storage.pwrite(cview[:run * SECTOR_SIZE], data_offset(start))

    def _open_epoch(self):
        """The epoch of counters written now: the anchored version + 1 (see the module)."""
        self._pending = True
        return self._state['version'] + 1

    def flush(self):
        """Make writes durable and fresh: hints, fsync, then anchor a new clean root."""
        if self.readonly:
            return
        if not self._pending:
            self.storage.sync()
            return
        if self._tree is not None:
            changes = {s: self._current_leaf(s) for s in self._dirty}
            self._tree.update(changes)
            for sector, leaf in sorted(changes.items()):
                self.storage.pwrite(leaf, hint_offset(sector))
        self._dirty.clear()
        self.storage.sync()
        self._commit(self._state['version'] + 2, self._state['version'])
        self._pending = False

    close = flush

    # ------------------------------------------------------------------ maintenance
    def scrub(self, stop_at_first=False):
        """Verify every sector; return the IntegrityErrors found, lowest sector first."""
        if self._volume_bad is not None:
            return [self._volume_bad]
        found = []
        for start, run in _group_runs(0, self.header.sector_count):
            try:
                self.read_sectors(start, run)
                continue
            except errors.IntegrityError:
                pass
            for sector in range(start, start + run):
                try:
                    self.read_sectors(sector, 1)
                except errors.IntegrityError as exc:
                    found.append(exc)
                    if stop_at_first:
                        return found
        return found

    def rotate_kek(self, new_kek, key_ref=''):
        """Rewrap the data key under ``new_kek``: rewrites only the two header slots."""
        _check_kek(new_kek)
        header = dataclasses.replace(self.header, generation=self.header.generation + 1,
                                     key_ref=key_ref[:64] or self.header.key_ref)
        _wrap(header, new_kek, self._dek)
        self._write_header(header)
        # Overwrite the older slot too, so the old KEK no longer unwraps anything.
        self.storage.pwrite(header.pack(), self._slot_offset(header.generation + 1))
        self.storage.sync()

    def _slot_offset(self, generation):
        return (generation % HEADER_SLOTS) * HEADER_SLOT_SIZE

    def _write_header(self, header):
        self.storage.pwrite(header.pack(), self._slot_offset(header.generation))
        self.storage.sync()
        self.header = header

    def resize(self, size_bytes, kek):
        """Grow or shrink to ``size_bytes``; new sectors read as zeros."""
        sectors = -(-size_bytes // SECTOR_SIZE)
        if not 0 < sectors < MAX_SECTORS:
            raise errors.BlockstoreError('size %d bytes is out of range' % size_bytes)
        if self._volume_bad is not None:
            raise self._volume_bad
        self.flush()
        old = self.header.sector_count
        if sectors > old:
            self.storage.truncate(file_size(sectors))
            self._entries += bytes((sectors - old) * ENTRY_BYTES)
        else:
            del self._entries[sectors * ENTRY_BYTES:]
            for sector in [s for s in self._bad if s >= sectors]:
                del self._bad[sector]
        header = dataclasses.replace(self.header, sector_count=sectors,
                                     generation=self.header.generation + 1)
        _wrap(header, kek, self._dek)
        self._write_header(header)
        if self.header.merkle:
            self._tree = self._build_tree(self._current_leaf)
            self._write_all_hints()
        if sectors < old:
            self.storage.truncate(file_size(sectors))
        self.storage.sync()
        self._commit(self._state['version'] + 2, self._state['version'])

    def info(self):
        return {
            'uuid': self.uuid, 'format_version': self.header.format_version,
            'cipher': self.header.cipher, 'sector_size': SECTOR_SIZE,
            'sector_count': self.header.sector_count, 'size_bytes': self.size,
            'merkle_tree': self.header.merkle, 'header_generation': self.header.generation,
            'key_ref': self.header.key_ref, 'anchor_version': self._state['version'],
            'anchor_root': self._state['root'],
            'recovered_from_crash': self.recovered,
        }
