"""Forward-secure sealing: per-epoch MAC keys that evolve one way, and the record formats.

The idea is that of Bellare-Yee / Schneier-Kelsey forward-secure MACs as used by
systemd-journald's Forward Secure Sealing and the TClouds secure logging service: a sealer
starts from a secret key K0 that it hands to the auditor and then forgets; entries of epoch
e carry HMAC-SHA256(K_e, entry) and K_{e+1} = SHA-256(domain || K_e). Moving to the next
epoch overwrites K_e, so an attacker who takes the host in epoch E holds only K_E: entries of
earlier epochs can neither be altered nor forged without detection. The auditor, holding K0,
derives every K_e.

Two sealers stack (both use this module):

- the **source** (an OpenStack service's notification driver or log handler) seals each
  event as an :class:`Entry` carrying its own per-source sequence number, so deleted,
  reordered, duplicated or forged events of that source are found by the auditor;
- the **log** (the ingestion service) seals each appended record as a :class:`Record`
  binding the entry to its log index, so entries moved between positions are found too.
  The Merkle leaf is the encoded record.

Binary formats (big-endian; every length is checked on decode, errors name field and offset).
Format 1 (every record sealed by the log on its own):

Entry  = "TSE1" | flags u8 | epoch u64 | seq u64 | time_ns u64 | source_len u16 | source
         | tenant_len u16 | tenant | payload_len u32 | payload | tag[32]
Record = "TSL1" | index u64 | epoch u64 | entry_len u32 | entry | tag[32]

Format 2 (doc/source/securelog.rst: what changed and why it keeps the properties): an entry
names its source's previous entry, and the log seals spans of records, not each one:

Entry  = "TSE2" | flags u8 | epoch u64 | seq u64 | time_ns u64 | prev[32] | source_len u16
         | tenant_len u16 | payload_len u32 | source | tenant | payload | tag[32]
Record = the entry itself (a "bare" record), or at the end of every appended batch
         "TSL2" | index u64 | epoch u64 | span_start u64 | span[32] | entry_len u32 | entry
         | tag[32]

``prev`` is SHA-256(0x00 || the source's previous entry), which is that entry's Merkle leaf
hash when it is a bare record, or 32 zero bytes where the source begins a chain segment (its
first entry, after a restart). ``span`` is SHA-256("TSS2" || leaf hashes of the records
``span_start`` .. ``index`` - 1): the previous sealed record and the bare ones after it.

``tag`` is HMAC-SHA256(K_epoch, everything before the tag). Pure: no I/O, no clock (callers
pass ``now``), randomness only through :func:`new_key`.
"""
import collections
import hashlib
import hmac
import os
import struct

KEY_SIZE = 32
TAG_SIZE = 32
ENTRY_MAGIC = b'TSE1'
RECORD_MAGIC = b'TSL1'
ENTRY2_MAGIC = b'TSE2'
RECORD2_MAGIC = b'TSL2'
SPAN_DOMAIN = b'TSS2'
# The format new sealers write (a Sealer's ``version``); format 1 still reads and verifies.
FORMAT_VERSION = 2
NO_PREV = b'\x00' * 32
FLAG_ENCRYPTED = 0x01
_KNOWN_FLAGS = FLAG_ENCRYPTED
_EVOLVE_DOMAIN = b'tclouds-securelog/v1 key evolution\x00'
# The auditor derives keys one epoch at a time; a claimed epoch this far beyond the last one
# seen is treated as damage instead of spending minutes deriving keys for it.
MAX_EPOCH_JUMP = 10 ** 6

_ENTRY_HEAD = struct.Struct('>4sBQQQH')
_U16 = struct.Struct('>H')
_U32 = struct.Struct('>I')
_RECORD_HEAD = struct.Struct('>4sQQI')
_ENTRY2_HEAD = struct.Struct('>4sBQQQ32sHHI')
_RECORD2_HEAD = struct.Struct('>4sQQQ32sI')
_digest = hmac.digest
_sha256 = hashlib.sha256


class SealError(Exception):
    """Malformed entry or record, or a seal that does not verify.

    ``field`` and ``offset`` locate the problem inside the encoded bytes.
    """

    def __init__(self, field, offset, reason):
        self.field = field
        self.offset = offset
        self.reason = reason
        super().__init__('%s at offset %d: %s' % (field, offset, reason))


def new_key():
    """A fresh random K0 (32 bytes from the OS CSPRNG)."""
    return os.urandom(KEY_SIZE)


def evolve(key):
    """K_{e+1} = SHA-256(domain || K_e): one way, so K_e cannot be recovered from K_{e+1}."""
    return _sha256(_EVOLVE_DOMAIN + key).digest()


def mac(key, data):
    return _digest(key, data, 'sha256')


class HmacKey(object):
    """HMAC-SHA256 (RFC 2104) with the padded-key states hashed once per key.

    Equal to ``hmac.digest(key, data, 'sha256')`` but about twice as fast for short
    messages: the auditor checks two tags per record.
    """

    __slots__ = ('_inner', '_outer')

    def __init__(self, key):
        padded = bytes(key).ljust(64, b'\x00')
        self._inner = _sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = _sha256(bytes(b ^ 0x5C for b in padded))

    def tag(self, data):
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


Entry = collections.namedtuple(
    'Entry', 'flags epoch seq time_ns source tenant payload tag version prev',
    defaults=(1, None))


def entry_hash(entry):
    """SHA-256(0x00 || entry): what the source's next format-2 entry names as ``prev``.

    It is also the entry's Merkle leaf hash when the entry is stored as a bare record.
    """
    return _sha256(b'\x00' + entry).digest()


# What the store's columns hold (BIGINT, String(255) on every database): an entry beyond
# them is malformed, so it can never reach a database that would refuse it (an entry the
# ingestion cannot store would be requeued ahead of every genuine one for ever).
MAX_INT = (1 << 63) - 1
MAX_NAME_CHARS = 255


def _bounds_problem(epoch, seq, time_ns, source, tenant):
    """(field, offset, why) of the first value beyond the store's columns, or None."""
    for field, offset, value in (('entry.epoch', 5, epoch), ('entry.seq', 13, seq),
                                 ('entry.time_ns', 21, time_ns)):
        if value > MAX_INT:
            return field, offset, '%d is beyond 2^63-1' % value
    for field, value in (('entry.source', source), ('entry.tenant', tenant)):
        if len(value) > MAX_NAME_CHARS:
            return field, None, '%d characters, longer than %d characters' % (
                len(value), MAX_NAME_CHARS)
    return None


def storable_problem(entry):
    """Why a decoded entry cannot be stored (``'field: why'``), or None."""
    problem = _bounds_problem(entry.epoch, entry.seq, entry.time_ns, entry.source,
                              entry.tenant)
    return None if problem is None else '%s: %s' % (problem[0], problem[2])


def encode_entry_body(flags, epoch, seq, time_ns, source, tenant, payload, version=1,
                      prev=NO_PREV):
    """The bytes an entry's tag covers (everything except the tag)."""
    src = source.encode('utf-8')
    ten = tenant.encode('utf-8')
    if not src:
        raise ValueError('source must not be empty')
    problem = _bounds_problem(epoch, seq, time_ns, source, tenant)
    if problem:
        raise ValueError('%s: %s' % (problem[0], problem[2]))
    if len(src) > 0xFFFF or len(ten) > 0xFFFF or len(payload) > 0xFFFFFFFF:
        raise ValueError('source, tenant or payload too long')
    if version == 2:
        if len(prev) != 32:
            raise ValueError('prev must be 32 bytes')
        return b''.join((_ENTRY2_HEAD.pack(ENTRY2_MAGIC, flags, epoch, seq, time_ns, prev,
                                           len(src), len(ten), len(payload)),
                         src, ten, payload))
    if version != 1:
        raise ValueError('unknown entry format %r' % (version,))
    return b''.join((_ENTRY_HEAD.pack(ENTRY_MAGIC, flags, epoch, seq, time_ns, len(src)), src,
                     _U16.pack(len(ten)), ten, _U32.pack(len(payload)), payload))


def _take(data, offset, size, field):
    end = offset + size
    if end > len(data):
        raise SealError(field, offset, 'truncated: need %d bytes, %d left'
                        % (size, len(data) - offset))
    return end


def decode_entry(data):
    """Parse an encoded entry; raises :class:`SealError` naming field and offset."""
    data = bytes(data)
    if data[:4] == ENTRY2_MAGIC:
        return _decode_entry2(data)
    _take(data, 0, _ENTRY_HEAD.size, 'entry.header')
    magic, flags, epoch, seq, time_ns, src_len = _ENTRY_HEAD.unpack_from(data, 0)
    if magic != ENTRY_MAGIC:
        raise SealError('entry.magic', 0, 'expected %r or %r, got %r'
                        % (ENTRY_MAGIC, ENTRY2_MAGIC, magic))
    if flags & ~_KNOWN_FLAGS:
        raise SealError('entry.flags', 4, 'unknown flag bits 0x%02x' % (flags & ~_KNOWN_FLAGS))
    off = _ENTRY_HEAD.size
    end = _take(data, off, src_len, 'entry.source')
    try:
        source = data[off:end].decode('utf-8')
    except UnicodeDecodeError as exc:
        raise SealError('entry.source', off, 'not UTF-8: %s' % exc.reason)
    if not source:
        raise SealError('entry.source', off, 'empty source name')
    off = _take(data, end, 2, 'entry.tenant_len')
    (ten_len,) = _U16.unpack_from(data, end)
    end = _take(data, off, ten_len, 'entry.tenant')
    try:
        tenant = data[off:end].decode('utf-8')
    except UnicodeDecodeError as exc:
        raise SealError('entry.tenant', off, 'not UTF-8: %s' % exc.reason)
    # Integers beyond 2^63-1 fit no database column, so no stored entry holds one. Names
    # longer than the columns are refused where entries come in (encode_entry_body,
    # storable_problem) but still decode: sqlite never enforced String(255), and a
    # genuine entry stored there must still audit as what it is.
    problem = _bounds_problem(epoch, seq, time_ns, '', '')
    if problem:
        field, at, why = problem
        raise SealError(field, at, why)
    off = _take(data, end, 4, 'entry.payload_len')
    (pay_len,) = _U32.unpack_from(data, end)
    end = _take(data, off, pay_len, 'entry.payload')
    payload = data[off:end]
    tag_end = _take(data, end, TAG_SIZE, 'entry.tag')
    if tag_end != len(data):
        raise SealError('entry.tag', tag_end, '%d trailing bytes after the tag'
                        % (len(data) - tag_end))
    return Entry(flags, epoch, seq, time_ns, source, tenant, payload, data[end:])


def _text(data, off, end, field):
    try:
        return data[off:end].decode('utf-8')
    except UnicodeDecodeError as exc:
        raise SealError(field, off, 'not UTF-8: %s' % exc.reason)


def _decode_entry2(data):
    _take(data, 0, _ENTRY2_HEAD.size, 'entry.header')
    (_m, flags, epoch, seq, time_ns, prev, src_len, ten_len,
     pay_len) = _ENTRY2_HEAD.unpack_from(data, 0)
    if flags & ~_KNOWN_FLAGS:
        raise SealError('entry.flags', 4, 'unknown flag bits 0x%02x' % (flags & ~_KNOWN_FLAGS))
    problem = _bounds_problem(epoch, seq, time_ns, '', '')
    if problem:
        field, at, why = problem
        raise SealError(field, at, why)
    off = _ENTRY2_HEAD.size
    end = _take(data, off, src_len, 'entry.source')
    source = _text(data, off, end, 'entry.source')
    if not source:
        raise SealError('entry.source', off, 'empty source name')
    off, end = end, _take(data, end, ten_len, 'entry.tenant')
    tenant = _text(data, off, end, 'entry.tenant')
    off, end = end, _take(data, end, pay_len, 'entry.payload')
    tag_end = _take(data, end, TAG_SIZE, 'entry.tag')
    if tag_end != len(data):
        raise SealError('entry.tag', tag_end, '%d trailing bytes after the tag'
                        % (len(data) - tag_end))
    return Entry(flags, epoch, seq, time_ns, source, tenant, data[off:end], data[end:], 2,
                 prev)


# ``version``: 1 (TSL1), 2 (TSL2, a sealed span) or 0 (a bare format-2 record: the entry
# itself, sealed by the next TSL2 record); ``span_start``/``span`` only for version 2.
Record = collections.namedtuple('Record', 'index epoch entry tag version span_start span',
                                defaults=(1, None, None))


def encode_record_body(index, epoch, entry):
    return _RECORD_HEAD.pack(RECORD_MAGIC, index, epoch, len(entry)) + entry


def decode_record(data):
    """Parse an encoded log record (a Merkle leaf); raises :class:`SealError`.

    A bare record (an entry) decodes with index and epoch None (its position and log epoch
    are those of the sealed record that covers it) and an empty tag.
    """
    data = bytes(data)
    head = data[:4]
    if head in (ENTRY_MAGIC, ENTRY2_MAGIC):
        decode_entry(data)
        return Record(None, None, data, b'', 0)
    if head == RECORD2_MAGIC:
        return _decode_record2(data)
    _take(data, 0, _RECORD_HEAD.size, 'record.header')
    magic, index, epoch, entry_len = _RECORD_HEAD.unpack_from(data, 0)
    if magic != RECORD_MAGIC:
        raise SealError('record.magic', 0, 'expected %r, got %r' % (RECORD_MAGIC, magic))
    off = _RECORD_HEAD.size
    end = _take(data, off, entry_len, 'record.entry')
    tag_end = _take(data, end, TAG_SIZE, 'record.tag')
    if tag_end != len(data):
        raise SealError('record.tag', tag_end, '%d trailing bytes after the tag'
                        % (len(data) - tag_end))
    return Record(index, epoch, data[off:end], data[end:])


def _decode_record2(data):
    _take(data, 0, _RECORD2_HEAD.size, 'record.header')
    _m, index, epoch, span_start, span, entry_len = _RECORD2_HEAD.unpack_from(data, 0)
    for field, offset, value in (('record.index', 4, index), ('record.epoch', 12, epoch),
                                 ('record.span_start', 20, span_start)):
        if value > MAX_INT:
            raise SealError(field, offset, '%d is beyond 2^63-1' % value)
    if span_start > index:
        raise SealError('record.span_start', 20, 'span starts at %d, after the record '
                        'itself (%d)' % (span_start, index))
    off = _RECORD2_HEAD.size
    end = _take(data, off, entry_len, 'record.entry')
    tag_end = _take(data, end, TAG_SIZE, 'record.tag')
    if tag_end != len(data):
        raise SealError('record.tag', tag_end, '%d trailing bytes after the tag'
                        % (len(data) - tag_end))
    return Record(index, epoch, data[off:end], data[end:], 2, span_start, span)


def record_entry(data):
    """The entry bytes a record holds (any format); raises :class:`SealError`."""
    return decode_record(data).entry


def span_hash(leaf_hashes):
    """SHA-256("TSS2" || leaf hashes): what a TSL2 record seals of the records before it."""
    return _sha256(SPAN_DOMAIN + b''.join(leaf_hashes)).digest()


def encode_record2_body(index, epoch, span_start, span, entry):
    return _RECORD2_HEAD.pack(RECORD2_MAGIC, index, epoch, span_start, span,
                              len(entry)) + entry


class Sealer(object):
    """A forward-secure sealer: holds only the current epoch's key.

    ``epoch_seconds`` / ``epoch_entries`` bound how long a key lives (time since the
    epoch began, entries sealed in it); whichever comes first advances the epoch. The
    state (:meth:`to_state`) never contains a past key; persist it after every seal.
    """

    def __init__(self, name, key, epoch=0, next_seq=0, epoch_started_ns=0,
                 entries_in_epoch=0, epoch_seconds=60.0, epoch_entries=100000,
                 version=FORMAT_VERSION):
        if len(key) != KEY_SIZE:
            raise ValueError('sealing key must be %d bytes' % KEY_SIZE)
        self.name = name
        self._key = bytearray(key)
        self._hmac = HmacKey(self._key)
        self.epoch = epoch
        self.next_seq = next_seq
        self.epoch_started_ns = epoch_started_ns
        self.entries_in_epoch = entries_in_epoch
        self.epoch_seconds = epoch_seconds
        self.epoch_entries = epoch_entries
        if version not in (1, 2):
            raise ValueError('unknown format version %r' % (version,))
        self.version = version
        # (seq, entry_hash) of the last entry sealed: the next format-2 entry names it as
        # ``prev`` when it is sequence seq + 1; otherwise it begins a new chain segment.
        self._prev = None

    def set_prev(self, seq, entry):
        """The entry ``seq`` was sealed last (by another process sharing the sequence).

        Only a format-2 entry is named by the next one; after any other the next entry
        begins a new chain segment.
        """
        self._prev = ((seq, entry_hash(entry))
                      if bytes(entry[:4]) == ENTRY2_MAGIC and self.version == 2 else None)

    @classmethod
    def create(cls, name, now_ns, **kwargs):
        """A new sealer and the K0 the auditor must keep (and this host must not)."""
        k0 = new_key()
        return cls(name, k0, epoch_started_ns=now_ns, **kwargs), k0

    def advance_epoch(self, now_ns):
        """Evolve to the next epoch and overwrite the old key."""
        new = evolve(bytes(self._key))
        # Best effort in Python: overwrite the buffer that held the old key.
        for i in range(len(self._key)):
            self._key[i] = 0
        self._key[:] = new
        self._hmac = HmacKey(new)
        self.epoch += 1
        self.epoch_started_ns = now_ns
        self.entries_in_epoch = 0

    def _maybe_advance(self, now_ns):
        if (self.entries_in_epoch >= self.epoch_entries
                or now_ns - self.epoch_started_ns >= self.epoch_seconds * 1e9):
            self.advance_epoch(now_ns)

    def _sealed(self, body):
        self.entries_in_epoch += 1
        return body + self._hmac.tag(body)

    def seal_entry(self, payload, now_ns, tenant='', flags=0):
        """Seal one source event; returns the encoded :class:`Entry`."""
        self._maybe_advance(now_ns)
        seq = self.next_seq
        if self.version == 1:
            body = encode_entry_body(flags, self.epoch, seq, now_ns, self.name, tenant,
                                     payload)
        else:
            prev = self._prev
            body = encode_entry_body(flags, self.epoch, seq, now_ns, self.name, tenant,
                                     payload, 2, prev[1] if prev is not None
                                     and prev[0] == seq - 1 else NO_PREV)
        self.next_seq = seq + 1
        entry = self._sealed(body)
        if self.version == 2:
            self._prev = (seq, entry_hash(entry))
        return entry

    def seal_record(self, index, entry, now_ns):
        """Seal one log record binding ``entry`` to log position ``index``."""
        self._maybe_advance(now_ns)
        return self._sealed(encode_record_body(index, self.epoch, entry))

    def seal_span(self, index, span_start, leaf_hashes, entry, now_ns, count=1):
        """Seal a TSL2 record at ``index``: ``entry`` and the span before it.

        ``leaf_hashes``: the leaves ``span_start`` .. ``index`` - 1; ``count``: how many
        records this seal completes (they count towards the epochs' entries).
        """
        # The batch's other records count as if each were sealed (format 1): the key of
        # every epoch they fill is evolved away, and this seal is made in the epoch of
        # the batch's last record.
        for _ in range(count - 1):
            self._maybe_advance(now_ns)
            self.entries_in_epoch += 1
        self._maybe_advance(now_ns)
        return self._sealed(encode_record2_body(index, self.epoch, span_start,
                                                span_hash(leaf_hashes), entry))

    def to_state(self):
        return {'name': self.name, 'key': bytes(self._key).hex(), 'epoch': self.epoch,
                'next_seq': self.next_seq, 'epoch_started_ns': self.epoch_started_ns,
                'entries_in_epoch': self.entries_in_epoch}

    @classmethod
    def from_state(cls, state, **kwargs):
        """Rebuild from :meth:`to_state`; raises ValueError naming the bad field."""
        try:
            key = bytes.fromhex(state['key'])
            fields = {f: int(state[f]) for f in
                      ('epoch', 'next_seq', 'epoch_started_ns', 'entries_in_epoch')}
            name = str(state['name'])
        except KeyError as exc:
            raise ValueError('sealer state lacks field %s' % exc)
        except (TypeError, ValueError) as exc:
            raise ValueError('sealer state has a malformed field: %s' % exc)
        return cls(name, key, **fields, **kwargs)


class KeyChain(object):
    """The auditor's side: derives K_e from K0 on demand (cached) and checks tags."""

    def __init__(self, k0):
        if len(k0) != KEY_SIZE:
            raise ValueError('verification key must be %d bytes' % KEY_SIZE)
        self._keys = [bytes(k0)]
        self._hmacs = {}

    def key(self, epoch):
        keys = self._keys
        if epoch - len(keys) >= MAX_EPOCH_JUMP:
            raise SealError('epoch', 0, 'epoch %d is implausibly far beyond epoch %d'
                            % (epoch, len(keys) - 1))
        while len(keys) <= epoch:
            keys.append(evolve(keys[-1]))
        return keys[epoch]

    def hmac_key(self, epoch):
        """The :class:`HmacKey` of an epoch (raises SealError for implausible epochs)."""
        h = self._hmacs.get(epoch)
        if h is None:
            h = self._hmacs[epoch] = HmacKey(self.key(epoch))
        return h

    def check(self, epoch, data):
        """True when the last TAG_SIZE bytes of ``data`` are the epoch's tag over the rest."""
        return hmac.compare_digest(self.hmac_key(epoch).tag(data[:-TAG_SIZE]),
                                   data[-TAG_SIZE:])
