"""The protected block format (version 2): per-sector AES-256-GCM, an on-disk Merkle tree
for freshness with a bounded cache, a write journal for crash safety, per-session keys.

Pure: it reads and writes through a ``storage`` object (``pread``/``pwrite``/``sync``/
``truncate``/``size``) and keeps freshness state in an ``anchor`` object (``storage.py``);
no sockets, no oslo. Format 1 volumes are read by ``format_v1.py`` (read-only).

On disk (big-endian)::

    0        header slots A and B (4 KiB each, ``header.py``)
    8192     journal: 65536 entries of 56 B (sector u64 + a sector entry)
    3678208  segment 0: 128 page blocks | tree node slots | 2048 data sectors (8 MiB)
             segment 1: ...
    page block (2560 B, one per 16 sectors): leaf page copy 0 (512 B) | 16 records (96 B)
             | leaf page copy 1 (512 B)
    node slots (32 KiB): levels 1-4, two 4 KiB copies each (used where a node lives)

Sector entry (48 B): write counter u64 (0 = never written), epoch u64, session id (16 B),
GCM tag. A record holds two entries: the committed one (covered by the anchored tree) and
the slot the next flush writes. Encryption: key = HMAC-SHA256(data key of generation g,
session id), session id = g (u32) || 96 random bits drawn when a writer starts; nonce =
sector u32 || counter u64, the counter counting the session's writes in memory;
associated data = volume UUID || nonce || epoch. A (key, nonce) pair therefore never
repeats, whatever was rolled back on disk or in the anchor: two sessions would have to
draw the same 96 bits (see doc/source/blockstore.rst for the bound).

Freshness: a k-ary hash tree as dm-verity keeps it. Leaf = SHA-256(0x00 || sector u64 ||
committed entry), zero for a never-written sector; a leaf page holds 16 leaves; a node of
level 1-4 holds 128 child hashes; node hash = SHA-256(0x01 || level || index u64 ||
content), and all-zero content hashes to zero, so a sparse volume needs no tree writes.
The anchor holds the root (hash of the level 4 node). Every node and leaf page has two
copies on disk: the parent's hash says which one is committed, a flush writes the other,
syncs, then commits the new root to the anchor, so a crash at any point leaves the
committed tree intact.

A flush is therefore two durable points in order, the volume's sync and then the anchor
commit, and cannot be one: the anchor is outside the volume (no single sync covers both),
and any state the anchor accepts while the volume's sync is under way (a crash then must
open to the old state) is one that whoever keeps a copy of the volume can put back after
the flush was acknowledged. A two-state anchor (old or new root) or the two syncs run side
by side would accept the previous flush's image until the next commit. Committing the new
root only after the volume's sync returned makes an acknowledged flush final
(``tests/unit/blockstore/test_flush_crash.py`` kills a writer before every write and sync
of a flush, and cuts the power before each).

Opening reads the header, the anchor, the root node and the head of the journal: O(1) in
the volume size. Nodes, leaf pages and records are read on demand,
verified against their (verified) parent, and kept in a bounded FIFO cache; sectors and
pages written since the last flush are pinned until it.

Crash safety: a write appends its entries to the journal, then writes the data in place;
records and tree are written at flush. The journal is reset (by epoch: anchored version
+ 1) at every flush. After a crash, open replays the journal entries of the epoch after
the anchored version: per sector the newest entry whose data verifies, else the committed
one (old-or-new, never unverifiable), and anchors the result. Journal entries are not
trusted: the epoch is authenticated data of each sector, so only writes of that crashed
epoch can be chosen (writes after the last flush have no freshness, like their
durability), and a lost or altered journal entry can only make a sector fail its check.
"""
import hashlib
import hmac
import os
import struct
import uuid as uuidlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tclouds_openstack.blockstore import errors
from tclouds_openstack.blockstore import format_v1
from tclouds_openstack.blockstore import header as hdr


class _CopyingAESGCM:
    """AESGCM's ``encrypt_into``/``decrypt_into`` for cryptography releases without them.

    OpenStack's upper-constraints pins cryptography 43.0.3, which has only ``encrypt`` and
    ``decrypt``: the same results, through one copy more.
    """

    def __init__(self, key):
        self._aead = AESGCM(key)
        self.encrypt = self._aead.encrypt
        self.decrypt = self._aead.decrypt

    def encrypt_into(self, nonce, data, associated_data, buf):
        sealed = self._aead.encrypt(bytes(nonce), bytes(data), bytes(associated_data))
        buf[:len(sealed)] = sealed
        return len(sealed)

    def decrypt_into(self, nonce, data, associated_data, buf):
        plain = self._aead.decrypt(bytes(nonce), bytes(data), bytes(associated_data))
        buf[:len(plain)] = plain
        return len(plain)


_AEAD = AESGCM if hasattr(AESGCM, 'decrypt_into') else _CopyingAESGCM

FORMAT_VERSION = 2
SECTOR_SIZE = hdr.SECTOR_SIZE
HEADER_SLOT_SIZE = hdr.HEADER_SLOT_SIZE
MAX_SECTORS = hdr.MAX_SECTORS
HASH_SIZE = 32
PAGE_SECTORS = 16                       # sectors per leaf page
FANOUT = 128                            # children per tree node
DEPTH = 4                               # node levels above the leaf pages
SEG_PAGES = FANOUT                      # one level 1 node per segment
SEG_SECTORS = PAGE_SECTORS * SEG_PAGES  # 2048 sectors = 8 MiB of data
PAGE_LEAVES = PAGE_SECTORS * HASH_SIZE  # 512
NODE_BYTES = FANOUT * HASH_SIZE         # 4096
ENTRY = struct.Struct('>QQ16s16s')      # counter, epoch, session id, tag
ENTRY_SIZE = ENTRY.size                 # 48
RECORD_SIZE = 2 * ENTRY_SIZE            # two slots
PAGE_RECORDS = PAGE_SECTORS * RECORD_SIZE
PAGE_META = 2 * PAGE_LEAVES + PAGE_RECORDS
JOURNAL_ENTRY = struct.Struct('>QQQ16s16s')   # sector, then a sector entry
_JOURNAL_HEAD = struct.Struct('>QQQ16s')      # the same without the tag
JOURNAL_ENTRIES = 65536
JOURNAL_START = HEADER_SLOT_SIZE * hdr.HEADER_SLOTS
JOURNAL_BYTES = JOURNAL_ENTRIES * JOURNAL_ENTRY.size
SEG_START = JOURNAL_START + JOURNAL_BYTES
NODES_OFF = SEG_PAGES * PAGE_META
SEG_META = NODES_OFF + DEPTH * 2 * NODE_BYTES
SEG_BYTES = SEG_META + SEG_SECTORS * SECTOR_SIZE
_DATA0 = SEG_START + SEG_META             # data of sector 0 (data_offset, inlined on hot paths)
MAX_BATCH = 1024                        # sectors encrypted per journal/data write pair
READ_RUN = 256                          # sectors read per pread
_GAPPED = SECTOR_SIZE + 16
DEFAULT_CACHE_BYTES = 64 << 20
# Measured cost of one cached leaf page (object, leaves, records, dict slot) and node.
PAGE_COST = 2400
NODE_COST = 4400
ZERO_HASH = bytes(HASH_SIZE)
ZERO_ENTRY = bytes(ENTRY_SIZE)
ZERO_SECTOR = bytes(SECTOR_SIZE)
_ZERO_PAGE = bytes(PAGE_LEAVES)
_ZERO_NODE = bytes(NODE_BYTES)
_ZERO8 = bytes(8)
_AAD = struct.Struct('>16sIQQ')         # uuid, then the nonce (sector u32, counter), epoch
_SHA = hashlib.sha256

# The header, keys and anchor MAC live in header.py; re-exported for callers of one module.
Header = hdr.Header
read_header = hdr.read_header
unwrap_key = hdr.unwrap


def _seg_base(segment):
    return SEG_START + segment * SEG_BYTES


def page_offset(page):
    """Offset of leaf page ``page``'s block (copy 0 | records | copy 1)."""
    return _seg_base(page >> 7) + (page & 127) * PAGE_META


def record_offset(sector):
    return page_offset(sector >> 4) + PAGE_LEAVES + (sector & 15) * RECORD_SIZE


def data_offset(sector):
    return _DATA0 + (sector >> 11) * SEG_BYTES + ((sector & 2047) << 12)


def node_offset(level, index, copy=0):
    """Offset of copy ``copy`` of tree node (level 1-4, index).

    In the first segment it covers, so growing a volume never moves a node.
    """
    return (_seg_base(index << (7 * (level - 1))) + NODES_OFF
            + ((level - 1) * 2 + copy) * NODE_BYTES)


def file_size(sector_count):
    return data_offset(sector_count - 1) + SECTOR_SIZE


def sectors_for_capacity(nbytes):
    """How many sectors a device of ``nbytes`` holds in this format (0 if too small)."""
    avail = nbytes - SEG_START
    if avail < SEG_META + SECTOR_SIZE:
        return 0
    segments, rest = divmod(avail, SEG_BYTES)
    sectors = segments * SEG_SECTORS + max(0, (rest - SEG_META) // SECTOR_SIZE)
    return min(sectors, MAX_SECTORS - 1)


def leaf_hash(sector, entry):
    """Leaf of a sector: zero when never written, else over (sector, entry)."""
    if entry[:8] == _ZERO8:
        return ZERO_HASH
    return _SHA(b'\x00' + sector.to_bytes(8, 'big') + entry).digest()


def node_hash(level, index, content):
    """Hash of a leaf page (level 0) or node: zero for all-zero content (empty subtree)."""
    if content == (_ZERO_PAGE if level == 0 else _ZERO_NODE):
        return ZERO_HASH
    return _SHA(b'\x01' + bytes((level,)) + index.to_bytes(8, 'big') + content).digest()


def session_key(dek, session_id):
    return hmac.new(dek, b'tclouds-blockstore v2 sector key\x00' + session_id,
                    hashlib.sha256).digest()


def key_generation(session_id):
    return int.from_bytes(session_id[:4], 'big')


def _seg_runs(first, count):
    """Split sectors [first, first+count) into runs inside one segment (contiguous data)."""
    end = first + count
    while first < end:
        stop = min(end, ((first >> 11) + 1) << 11)
        yield first, stop - first
        first = stop


class _Page:
    """A cached leaf page.

    Leaves (as committed), both record slots per sector, and bitmasks over its 16 sectors:
    committed slot, current slot, written since the last flush, verified against its leaf.
    """
    __slots__ = ('leaves', 'rec', 'kslot', 'cslot', 'dirty', 'verified', 'copy', 'queued')

    def __init__(self, leaves, rec, copy, verified):
        self.leaves = leaves
        self.rec = rec
        self.copy = copy
        self.kslot = self.cslot = self.dirty = 0
        self.verified = verified
        self.queued = False


class _MergedWrites:
    """Writes in the order given, adjacent ones merged into one pwrite (up to 1 MiB).

    One buffer, kept by the volume across flushes: a flush allocates nothing (a fresh
    1 MiB buffer per flush, its pages faulted in anew, cost about 65 us of CPU per flush
    of 64 scattered pages, a tenth of the flush's own).
    """

    def __init__(self, storage):
        self.storage = storage
        self.buf = memoryview(bytearray(1 << 20))
        self.start = self.used = 0

    def add(self, offset, data):
        n = len(data)
        if self.used and (offset != self.start + self.used or self.used + n > len(self.buf)):
            self.close()
        if not self.used:
            self.start = offset
        self.buf[self.used:self.used + n] = data
        self.used += n

    def close(self):
        if self.used:
            self.storage.pwrite(self.buf[:self.used], self.start)
            self.used = 0


class _Node:
    __slots__ = ('content', 'copy')

    def __init__(self, content, copy):
        self.content = content
        self.copy = copy


def open_volume(storage, kek, anchor, readonly=False, sync_metadata=False,
                cache_bytes=DEFAULT_CACHE_BYTES):
    """Open a volume of either format (format 1: read-only, see format_v1)."""
    return Volume.open(storage, kek, anchor, readonly=readonly, sync_metadata=sync_metadata,
                       cache_bytes=cache_bytes)


class Volume:
    """An open format 2 volume. Use :meth:`create` or :meth:`open`.

    Not thread-safe by itself: the NBD adapter serializes requests (read-modify-write of
    partial sectors must not interleave).
    """

    format_version = FORMAT_VERSION

    def __init__(self, storage, anchor, header, keys, readonly=False, sync_metadata=False,
                 cache_bytes=DEFAULT_CACHE_BYTES):
        self.storage = storage
        self._merged = None        # the flush's _MergedWrites (one 1 MiB buffer, reused)
        self.anchor = anchor
        self.header = header
        self.keys = keys
        self.readonly = readonly
        self.sync_metadata = sync_metadata
        self.uuid = header.uuid_str
        self._aad_prefix = header.uuid
        # Floors: a batch (MAX_BATCH sectors = 64 pages) must fit between flushes.
        self._max_pages = max(256, cache_bytes * 3 // 4 // PAGE_COST)
        self._max_nodes = max(64, cache_bytes // 4 // NODE_COST)
        self._max_dirty = self._max_pages // 2
        self._pages = {}
        self._nodes = {}
        self._root = None
        self._queued = {}          # pages to write at the next flush: {page: _Page}
        self._bad = {}             # sector -> IntegrityError (record does not match leaf)
        self._bad_nodes = {}       # (level, index) -> reason (copy matching neither)
        self._volume_bad = None
        self._broken = None        # a flush failed half-way: no writes until reopened
        self._state = None
        self._pending = False
        self._jpos = 0
        self._aeads = {}
        # Reused I/O buffers: a fresh 1 MiB buffer per request costs page faults (glibc
        # returns freed large blocks to the kernel), measured at ~0.5 ms per MiB.
        self._rbuf = None
        self._wbuf = None
        one = memoryview(bytearray(_GAPPED))
        self._one_r = (one, [one[:SECTOR_SIZE]], one[SECTOR_SIZE:])
        sealed = memoryview(bytearray(SECTOR_SIZE + 16))
        journal = memoryview(bytearray(JOURNAL_ENTRY.size))
        self._one_w = (sealed, sealed[:SECTOR_SIZE], sealed[SECTOR_SIZE:], journal,
                       journal[40:], journal[8:])
        self._sid = None
        self._w_aead = None
        self._counter = 0
        self.recovered = False

    # ------------------------------------------------------------------ create/open
    @classmethod
    def create(cls, storage, kek, anchor, size_bytes, merkle_tree=True, key_ref='',
               cache_bytes=DEFAULT_CACHE_BYTES, volume_uuid=None):
        """Format a new volume of ``size_bytes`` (rounded up to 4 KiB sectors).

        O(1) in the size: a sparse file stays sparse, and on a block device only the
        header and the journal are zeroed (tree and records under an empty parent are
        never read).
        """
        hdr.check_kek(kek)
        if not merkle_tree:
            raise errors.BlockstoreError('format %d volumes always keep the Merkle tree '
                                         '(freshness); --no-merkle made format 1 volumes'
                                         % FORMAT_VERSION)
        sectors = -(-size_bytes // SECTOR_SIZE)
        if not 0 < sectors < MAX_SECTORS:
            raise errors.BlockstoreError('size %d bytes is out of range (1 sector to 16 TiB)'
                                         % size_bytes)
        header = hdr.Header(sector_count=sectors, uuid=volume_uuid or uuidlib.uuid4().bytes,
                            key_ref=key_ref[:64])
        keys = hdr.DataKeys(1, AESGCM.generate_key(256))
        hdr.wrap(header, kek, keys)
        storage.truncate(0)
        storage.truncate(file_size(sectors))
        if getattr(storage, 'is_block', False):
            zero = bytes(1 << 20)
            for offset in range(JOURNAL_START, SEG_START, len(zero)):
                storage.pwrite(zero[:SEG_START - offset], offset)
        raw = header.pack()
        storage.pwrite(raw, 0)
        storage.pwrite(raw, HEADER_SLOT_SIZE)
        storage.sync()
        vol = cls(storage, anchor, header, keys, cache_bytes=cache_bytes)
        vol._root = _Node(bytearray(NODE_BYTES), 0)
        vol._commit(version=1, expected=None, root=ZERO_HASH)
        return vol

    @classmethod
    def read_header(cls, storage):
        return hdr.read_header(storage)

    @classmethod
    def open(cls, storage, kek, anchor, readonly=False, sync_metadata=False,
             cache_bytes=DEFAULT_CACHE_BYTES):
        """Open a volume: check the key, the anchor and the root; recover a crash.

        Raises WrongKeyError (before any sector is read), HeaderError, AnchorError.
        Integrity failures do not raise here: they are remembered and surface as
        IntegrityError on the affected reads and in :meth:`scrub`. A format 1 volume is
        returned as a read-only ``format_v1.VolumeV1``.
        """
        header, other = hdr.read_header(storage)
        keys = hdr.unwrap(header, kek)
        if header.format_version == 1:
            if not readonly:
                raise errors.FormatVersionError(
                    'volume %s is format version 1, which opens read-only: convert it with '
                    '"tclouds-blockstore upgrade" (format 2 keeps GCM nonces unique even '
                    'when the anchor and the volume are rolled back together)'
                    % header.uuid_str)
            return format_v1.VolumeV1.open(storage, header, keys, anchor)
        state = anchor.load(header.uuid_str)
        if (isinstance(state, dict) and state.get('sector_count') != header.sector_count
                and other is not None and other.sector_count == state.get('sector_count')
                and other.format_version == FORMAT_VERSION):
            # A resize was interrupted between the header write and the anchor commit.
            header, keys = other, hdr.unwrap(other, kek)
        hdr.check_anchor_state(state, keys, header.uuid_str, FORMAT_VERSION)
        if state['sector_count'] != header.sector_count:
            raise errors.AnchorError('anchor covers %d sectors, header says %d'
                                     % (state['sector_count'], header.sector_count))
        vol = cls(storage, anchor, header, keys, readonly=readonly,
                  sync_metadata=sync_metadata, cache_bytes=cache_bytes)
        vol._state = state
        found = vol._read_journal()
        vol._load_root()
        vol._recover(found)
        return vol

    def _commit(self, version, expected, root):
        state = {'uuid': self.uuid, 'version': version, 'root': root.hex(),
                 'sector_count': self.header.sector_count, 'format': FORMAT_VERSION}
        state['mac'] = hdr.anchor_mac(self.keys.current, state)
        self.anchor.commit(self.uuid, state, expected)
        self._state = state

    @property
    def _epoch(self):
        """Epoch of the writes now: anchored version + 1 (each commit adds 2)."""
        return self._state['version'] + 1

    def _load_root(self):
        try:
            expected = bytes.fromhex(self._state['root'])
        except (TypeError, ValueError) as exc:
            raise errors.AnchorError('anchor state of volume %s: root is not hex: %s'
                                     % (self.uuid, exc))
        if expected == ZERO_HASH:
            self._root = _Node(bytearray(NODE_BYTES), 0)
            return
        raw = self.storage.pread(2 * NODE_BYTES, node_offset(DEPTH, 0))
        for copy in (0, 1):
            content = raw[copy * NODE_BYTES:(copy + 1) * NODE_BYTES]
            if node_hash(DEPTH, 0, content) == expected:
                self._root = _Node(bytearray(content), copy)
                return
        self._root = _Node(bytearray(NODE_BYTES), 0)
        self._volume_bad = errors.IntegrityError(
            None, 'tree', 'the Merkle root of the volume (both copies of the top node) does '
            'not match the root anchored at version %d: the volume or its metadata was '
            'rolled back or replaced' % self._state['version'])

    # ------------------------------------------------------------------ tree cache
    def _node(self, level, index, sector):
        """The verified tree node (level 1..DEPTH, index).

        IntegrityError if neither copy matches its parent (reported on ``sector``).
        """
        if level == DEPTH:
            return self._root
        key = (level, index)
        node = self._nodes.get(key)
        if node is not None:
            return node
        if key in self._bad_nodes:
            raise errors.IntegrityError(sector, 'tree', self._bad_nodes[key])
        parent = self._node(level + 1, index >> 7, sector)
        j = (index & 127) * HASH_SIZE
        expected = parent.content[j:j + HASH_SIZE]
        if expected == ZERO_HASH:
            node = _Node(bytearray(NODE_BYTES), 0)
        else:
            raw = self.storage.pread(2 * NODE_BYTES, node_offset(level, index))
            for copy in (0, 1):
                content = raw[copy * NODE_BYTES:(copy + 1) * NODE_BYTES]
                if node_hash(level, index, content) == expected:
                    node = _Node(bytearray(content), copy)
                    break
            else:
                first = index << (7 * level + 4)
                self._bad_nodes[key] = self._subtree_reason('tree node level %d index %d'
                                                            % (level, index), first,
                                                            first + (1 << (7 * level + 4)))
                raise errors.IntegrityError(sector, 'tree', self._bad_nodes[key])
        nodes = self._nodes
        nodes[key] = node
        if len(nodes) > self._max_nodes:
            del nodes[next(iter(nodes))]
        return node

    def _subtree_reason(self, what, first, end):
        end = min(end, self.header.sector_count)
        return ('%s (sectors %d-%d) matches neither of its two copies on disk against the '
                'hash above it, anchored at version %d: the volume\'s metadata was rolled '
                'back or replaced' % (what, first, end - 1, self._state['version']))

    def _page(self, p, sector):
        """The cached leaf page ``p`` (verified against its level 1 node)."""
        page = self._pages.get(p)
        if page is not None:
            return page
        if (0, p) in self._bad_nodes:
            raise errors.IntegrityError(sector, 'tree', self._bad_nodes[0, p])
        parent = self._node(1, p >> 7, sector)
        j = (p & 127) * HASH_SIZE
        expected = parent.content[j:j + HASH_SIZE]
        if expected == ZERO_HASH:
            # Never written as of the anchored root: nothing on disk is read or trusted.
            page = _Page(bytearray(PAGE_LEAVES), bytearray(PAGE_RECORDS), 0, 0xFFFF)
        else:
            raw = self.storage.pread(PAGE_META, page_offset(p))
            if node_hash(0, p, raw[:PAGE_LEAVES]) == expected:
                page = _Page(bytearray(raw[:PAGE_LEAVES]), bytearray(
                    raw[PAGE_LEAVES:PAGE_LEAVES + PAGE_RECORDS]), 0, 0)
            elif node_hash(0, p, raw[-PAGE_LEAVES:]) == expected:
                page = _Page(bytearray(raw[-PAGE_LEAVES:]), bytearray(
                    raw[PAGE_LEAVES:PAGE_LEAVES + PAGE_RECORDS]), 1, 0)
            else:
                first = p << 4
                self._bad_nodes[0, p] = self._subtree_reason('leaf page %d' % p, first,
                                                             first + PAGE_SECTORS)
                raise errors.IntegrityError(sector, 'tree', self._bad_nodes[0, p])
        pages = self._pages
        pages[p] = page
        if len(pages) > self._max_pages:
            self._evict_pages()
        return page

    def _evict_pages(self):
        """FIFO, skipping pages queued for the next flush (they stay until it)."""
        pages = self._pages
        for _ in range(len(pages)):
            if len(pages) <= self._max_pages:
                return
            p = next(iter(pages))
            page = pages.pop(p)
            if page.queued:
                pages[p] = page

    def _verify_sector(self, page, sector):
        """Find the record slot whose entry matches the sector's committed leaf."""
        i = sector & 15
        bit = 1 << i
        leaf = page.leaves[i * HASH_SIZE:(i + 1) * HASH_SIZE]
        rec = page.rec
        base = i * RECORD_SIZE
        if leaf == ZERO_HASH:
            # Never written (authenticated by the zero leaf): reads zeros, whatever the
            # record slots hold (a flush that crashed before its commit, stale bytes).
            if rec[base + 8:base + 16] == _ZERO8:
                slot = 0
            elif rec[base + ENTRY_SIZE + 8:base + ENTRY_SIZE + 16] == _ZERO8:
                slot = 1
            else:
                slot = 0
                rec[base:base + ENTRY_SIZE] = ZERO_ENTRY
        elif leaf_hash(sector, rec[base:base + ENTRY_SIZE]) == leaf:
            slot = 0
        elif leaf_hash(sector, rec[base + ENTRY_SIZE:base + RECORD_SIZE]) == leaf:
            slot = 1
        else:
            slot = 0
            self._bad[sector] = errors.IntegrityError(
                sector, 'rollback', 'the sector record does not match the Merkle leaf '
                'anchored at version %d: the sector was rolled back or replaced'
                % self._state['version'])
        page.kslot = (page.kslot & ~bit) | (slot << i)
        page.cslot = (page.cslot & ~bit) | (slot << i)
        page.verified |= bit

    # ------------------------------------------------------------------ crypto
    def _aead_for(self, session_id, sector):
        aead = self._aeads.get(session_id)
        if aead is None:
            gen = key_generation(session_id)
            dek = self.keys.get(gen)
            if dek is None:
                raise errors.IntegrityError(
                    sector, 'key', 'written under data key generation %d, which this '
                    'header does not hold (it holds generation %s): an older or foreign '
                    'header' % (gen, ' and '.join(str(g) for g in (
                        self.keys.current_gen, self.keys.previous_gen) if g)))
            if len(self._aeads) >= 4096:
                self._aeads.clear()
            aead = self._aeads[session_id] = _AEAD(session_key(dek, session_id))
        return aead

    def _writer(self):
        """The session key of this writer (drawn at its first write; see the module)."""
        if self._w_aead is None:
            self._sid = self.keys.current_gen.to_bytes(4, 'big') + os.urandom(12)
            self._w_aead = _AEAD(session_key(self.keys.current, self._sid))
            self._aeads[self._sid] = self._w_aead
        return self._w_aead, self._sid

    def _decrypt_entry(self, sector, entry, data):
        counter, epoch, sid, tag = ENTRY.unpack(entry)
        aad = _AAD.pack(self._aad_prefix, sector, counter, epoch)
        return self._aead_for(sid, sector).decrypt(aad[16:28], bytes(data) + tag, aad)

    # ------------------------------------------------------------------ crash recovery
    def _read_journal(self):
        """The journal entries of the epoch after the anchored version: [(sector, entry)].

        Entries of a later epoch at its head mean the anchor went back: AnchorError.
        """
        epoch = self._epoch
        found = []
        pos = 0
        while pos < JOURNAL_ENTRIES:
            count = min(4096, JOURNAL_ENTRIES - pos)
            raw = self.storage.pread(count * JOURNAL_ENTRY.size,
                                     JOURNAL_START + pos * JOURNAL_ENTRY.size)
            done = False
            for sector, counter, entry_epoch, sid, tag in JOURNAL_ENTRY.iter_unpack(raw):
                if entry_epoch != epoch or counter == 0:
                    if pos == 0 and not found and entry_epoch > epoch and counter:
                        raise errors.AnchorError(
                            'the journal of volume %s holds writes of epoch %d, after anchor '
                            'version %d: the anchor was rolled back or lost commits; '
                            'refusing to open' % (self.uuid, entry_epoch,
                                                  self._state['version']))
                    done = True
                    break
                if sector < self.header.sector_count:
                    found.append((sector, ENTRY.pack(counter, entry_epoch, sid, tag)))
            if done:
                break
            pos += count
        return found

    def _recover(self, found):
        """Replay journal entries of a crashed epoch.

        Per sector the newest whose data verifies, else the committed entry; then anchor
        the result.
        """
        if not found or self._volume_bad is not None:
            return
        self.recovered = True
        candidates = {}
        for sector, entry in found:
            candidates.setdefault(sector, []).append(entry)
        for sector in sorted(candidates):
            try:
                page = self._page(sector >> 4, sector)
            except errors.IntegrityError:
                continue          # under a subtree that fails: reads report it
            i = sector & 15
            if not page.verified >> i & 1:
                self._verify_sector(page, sector)
            base = i * RECORD_SIZE
            committed = bytes(page.rec[base + (page.kslot >> i & 1) * ENTRY_SIZE:][
                :ENTRY_SIZE])
            data = self.storage.pread(SECTOR_SIZE, data_offset(sector))
            for entry in candidates[sector][::-1] + [committed]:
                if self._verifies(sector, entry, data):
                    break
            else:
                self._bad[sector] = errors.IntegrityError(
                    sector, 'tag', 'no record entry authenticates the data after a crash')
                continue
            if entry is not committed:
                self._bad.pop(sector, None)
                self._set_current(page, sector >> 4, i, entry)
        if self._queued and not self.readonly:
            self._pending = True
            self.flush()

    def _verifies(self, sector, entry, data):
        if entry[:8] == _ZERO8:
            return True       # never written: the data area is not used, reads zeros
        try:
            self._decrypt_entry(sector, entry, data)
            return True
        except (InvalidTag, errors.IntegrityError):
            return False

    def _set_current(self, page, p, i, entry):
        slot = 1 - (page.kslot >> i & 1)
        base = i * RECORD_SIZE + slot * ENTRY_SIZE
        page.rec[base:base + ENTRY_SIZE] = entry
        page.cslot = (page.cslot & ~(1 << i)) | (slot << i)
        page.dirty |= 1 << i
        if not page.queued:
            self._queue(p, page)

    # ------------------------------------------------------------------ I/O
    @property
    def size(self):
        return self.header.sector_count * SECTOR_SIZE

    def _check_range(self, offset, length):
        if offset < 0 or length < 0 or offset + length > self.size:
            raise errors.BlockstoreError('request [%d, +%d) is outside the volume (%d bytes)'
                                         % (offset, length, self.size))

    def _tag_error(self, sector, counter):
        return errors.IntegrityError(
            sector, 'tag', 'authentication tag mismatch (write counter %d): the sector was '
            'modified, swapped with another, torn or rolled back' % counter)

    def read_sectors(self, first, count):
        """Return the plaintext of ``count`` sectors; IntegrityError names a failing one."""
        out = bytearray(count * SECTOR_SIZE)   # never-written sectors stay zero
        self._read_into(first, count, memoryview(out))
        return out

    def _read_into(self, first, count, out_view):
        """Decrypt ``count`` sectors into ``out_view`` (zeros for never-written ones).

        Return how many were written (decrypted). Per run, only the data from the first
        to the last written sector is read (a scrub of sparsely written pages reads the
        4 KiB written, not the page's 64 KiB).
        """
        if self._volume_bad is not None:
            raise self._volume_bad
        if self._rbuf is None:
            # Each sector lands with a 16-byte gap after it for its tag, so GCM decrypts
            # in place (ciphertext||tag) without copying the sector first.
            buf = memoryview(bytearray(READ_RUN * _GAPPED))
            self._rbuf = (buf, [buf[k * _GAPPED:k * _GAPPED + SECTOR_SIZE]
                                for k in range(READ_RUN)])
        rbuf, iovecs = self._rbuf
        pages = self._pages
        bad = self._bad
        prefix = self._aad_prefix
        aeads = self._aeads
        decrypted = 0
        for seg_start, seg_run in _seg_runs(first, count):
            for start in range(seg_start, seg_start + seg_run, READ_RUN):
                run = min(READ_RUN, seg_start + seg_run - start)
                end = self._last_written(start, run) + 1
                loaded = False
                p_cur = -1
                page = None
                for sector in range(start, start + run):
                    p = sector >> 4
                    if p != p_cur:
                        page = pages.get(p) or self._page(p, sector)
                        p_cur = p
                    i = sector & 15
                    if not page.verified >> i & 1:
                        self._verify_sector(page, sector)
                    if bad and sector in bad:
                        raise bad[sector]
                    counter, epoch, sid, tag = ENTRY.unpack_from(
                        page.rec, i * RECORD_SIZE + (page.cslot >> i & 1) * ENTRY_SIZE)
                    d = (sector - first) * SECTOR_SIZE
                    if counter == 0:
                        out_view[d:d + SECTOR_SIZE] = ZERO_SECTOR
                        continue
                    if not loaded:
                        k = sector - start
                        self.storage.preadv(iovecs[k:end - start], data_offset(sector),
                                            (end - sector) * SECTOR_SIZE)
                        loaded = True
                    decrypted += 1
                    o = (sector - start) * _GAPPED
                    rbuf[o + SECTOR_SIZE:o + _GAPPED] = tag
                    aad = _AAD.pack(prefix, sector, counter, epoch)
                    aead = aeads.get(sid) or self._aead_for(sid, sector)
                    try:
                        aead.decrypt_into(aad[16:28], rbuf[o:o + _GAPPED], aad,
                                          out_view[d:d + SECTOR_SIZE])
                    except InvalidTag:
                        raise self._tag_error(sector, counter)
        return decrypted

    def _last_written(self, start, run):
        """The last sector of [start, start+run) with a written current entry.

        Verified as the read would; start - 1 if none. The whole run on an integrity
        failure: the read then reports it in sector order.
        """
        pages = self._pages
        sector = start + run - 1
        try:
            while sector >= start:
                page = pages.get(sector >> 4) or self._page(sector >> 4, sector)
                i = sector & 15
                if not page.verified >> i & 1:
                    self._verify_sector(page, sector)
                base = i * RECORD_SIZE + (page.cslot >> i & 1) * ENTRY_SIZE
                if page.rec[base:base + 8] != _ZERO8:
                    return sector
                sector -= 1
        except errors.IntegrityError:
            return start + run - 1
        return sector

    def read_into(self, offset, buf):
        """Fill ``buf`` (writable) with the plaintext at ``offset`` (the NBD read path)."""
        length = len(buf)
        self._check_range(offset, length)
        if not offset % SECTOR_SIZE and not length % SECTOR_SIZE and length:
            if length == SECTOR_SIZE:
                self._read_one_into(offset // SECTOR_SIZE, buf)
            else:
                self._read_into(offset // SECTOR_SIZE, length // SECTOR_SIZE,
                                memoryview(buf))
        else:
            buf[:] = self.read(offset, length)

    def _read_one(self, sector):
        out = bytearray(SECTOR_SIZE)
        self._read_one_into(sector, out)
        return out

    def _read_one_into(self, sector, out):
        """One aligned sector into ``out``: the 4 KiB random-read hot path."""
        if self._volume_bad is not None:
            raise self._volume_bad
        page = self._pages.get(sector >> 4) or self._page(sector >> 4, sector)
        i = sector & 15
        if not page.verified >> i & 1:
            self._verify_sector(page, sector)
        if self._bad and sector in self._bad:
            raise self._bad[sector]
        counter, epoch, sid, tag = ENTRY.unpack_from(
            page.rec, i * RECORD_SIZE + (page.cslot >> i & 1) * ENTRY_SIZE)
        if counter == 0:
            out[:] = ZERO_SECTOR
            return
        one, one_data, one_tag = self._one_r
        self.storage.preadv(one_data, _DATA0 + (sector >> 11) * SEG_BYTES
                            + ((sector & 2047) << 12), SECTOR_SIZE)
        one_tag[:] = tag
        aad = _AAD.pack(self._aad_prefix, sector, counter, epoch)
        aead = self._aeads.get(sid) or self._aead_for(sid, sector)
        try:
            aead.decrypt_into(aad[16:28], one, aad, out)
        except InvalidTag:
            raise self._tag_error(sector, counter)

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

    def _check_writable(self):
        if self.readonly:
            raise errors.BlockstoreError('volume is open read-only')
        if self._volume_bad is not None:
            raise self._volume_bad
        if self._broken is not None:
            raise errors.BlockstoreError(self._broken)

    def write(self, offset, data):
        """Write ``data`` at ``offset`` (read-modify-write of partial edge sectors)."""
        length = len(data)
        if (length == SECTOR_SIZE and not offset & 4095 and 0 <= offset
                and offset >> 12 < self.header.sector_count and not self.readonly
                and self._volume_bad is None and self._broken is None):
            # The 4 KiB hot path: the checks below, inlined.
            return self._write_one(offset >> 12, data)
        self._check_writable()
        self._check_range(offset, length)
        if length == 0:
            return
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

    def write_sectors(self, first, data):
        """Write whole sectors: journal entries, then data; records and tree at flush."""
        self._check_writable()
        count = len(data) // SECTOR_SIZE
        view = memoryview(data)
        done = 0
        while done < count:
            n = min(count - done, MAX_BATCH)
            self._write_batch(first + done, view[done * SECTOR_SIZE:(done + n) * SECTOR_SIZE],
                              n)
            done += n

    def _write_batch(self, first, view, count):
        if (self._jpos + count > JOURNAL_ENTRIES
                or len(self._queued) + (count >> 4) + 2 > self._max_dirty):
            self.flush()          # make room: the journal and the pinned pages are bounded
        aead = self._w_aead or self._writer()[0]
        sid = self._sid
        epoch = self._state['version'] + 1    # after that flush: a new epoch
        prefix = self._aad_prefix
        pages = self._pages
        # Load and verify every page first: a failing one refuses the write before any
        # byte of it reaches the disk.
        first_page = first >> 4
        touched = []
        for p in range(first_page, ((first + count - 1) >> 4) + 1):
            page = pages.get(p) or self._page(p, max(first, p << 4))
            for sector in range(max(first, p << 4), min(first + count, (p + 1) << 4)):
                if not page.verified >> (sector & 15) & 1:
                    self._verify_sector(page, sector)
            touched.append(page)
        if self._wbuf is None:
            self._wbuf = memoryview(bytearray(MAX_BATCH * SECTOR_SIZE + 16))
        cview = self._wbuf
        jsize = JOURNAL_ENTRY.size
        jhead = _JOURNAL_HEAD
        for start, run in _seg_runs(first, count):
            journal = bytearray(run * jsize)
            counter = self._counter
            for k in range(run):
                sector = start + k
                counter += 1
                aad = _AAD.pack(prefix, sector, counter, epoch)
                o = k * SECTOR_SIZE
                src = (sector - first) * SECTOR_SIZE
                # encrypt_into writes ciphertext||tag; the tag spills into the next
                # sector's slot and is copied out before that sector overwrites it.
                aead.encrypt_into(aad[16:28], view[src:src + SECTOR_SIZE], aad,
                                  cview[o:o + SECTOR_SIZE + 16])
                j = k * jsize
                jhead.pack_into(journal, j, sector, counter, epoch, sid)
                journal[j + 40:j + 56] = cview[o + SECTOR_SIZE:o + SECTOR_SIZE + 16]
            self._counter = counter
            # Journal before data: after a crash the data verifies against the journal
            # entry (new) or the committed record (old).
            self.storage.pwrite(journal, JOURNAL_START + self._jpos * jsize)
            self._jpos += run
            self._pending = True
            if self.sync_metadata:
                self.storage.sync()
            self.storage.pwrite(cview[:run * SECTOR_SIZE], data_offset(start))
            # Both landed: the entries become the sectors' current ones, in the record
            # slot that is not the committed one.
            for p in range(start >> 4, ((start + run - 1) >> 4) + 1):
                page = touched[p - first_page]
                lo, hi = max(start, p << 4), min(start + run, (p + 1) << 4)
                rec = page.rec
                kslot = page.kslot
                for sector in range(lo, hi):
                    i = sector & 15
                    base = i * RECORD_SIZE + (1 - (kslot >> i & 1)) * ENTRY_SIZE
                    j = (sector - start) * jsize + 8
                    rec[base:base + ENTRY_SIZE] = journal[j:j + ENTRY_SIZE]
                mask = ((1 << (hi - lo)) - 1) << (lo & 15)
                page.cslot = (page.cslot & ~mask) | (~kslot & mask)
                page.dirty |= mask
                if not page.queued:
                    self._queue(p, page)
            if self._bad:
                for sector in range(start, start + run):
                    self._bad.pop(sector, None)

    def _write_one(self, sector, data):
        """write_sectors for one aligned sector: the 4 KiB random-write hot path."""
        if self._jpos >= JOURNAL_ENTRIES or len(self._queued) + 2 > self._max_dirty:
            self.flush()
        aead = self._w_aead or self._writer()[0]
        p = sector >> 4
        page = self._pages.get(p) or self._page(p, sector)
        i = sector & 15
        if not page.verified >> i & 1:
            self._verify_sector(page, sector)
        counter = self._counter = self._counter + 1
        epoch = self._state['version'] + 1
        aad = _AAD.pack(self._aad_prefix, sector, counter, epoch)
        # Into reused buffers (views made once): no 4 KiB allocation per request, which
        # fragments the heap, and no slicing on this path.
        sealed, sealed_data, sealed_tag, journal, journal_tag, journal_entry = self._one_w
        aead.encrypt_into(aad[16:28], data, aad, sealed)
        _JOURNAL_HEAD.pack_into(journal, 0, sector, counter, epoch, self._sid)
        journal_tag[:] = sealed_tag
        self.storage.pwrite(journal, JOURNAL_START + self._jpos * JOURNAL_ENTRY.size)
        self._jpos += 1
        self._pending = True
        if self.sync_metadata:
            self.storage.sync()
        self.storage.pwrite(sealed_data, _DATA0 + (sector >> 11) * SEG_BYTES
                            + ((sector & 2047) << 12))
        slot = 1 - (page.kslot >> i & 1)
        base = i * RECORD_SIZE + slot * ENTRY_SIZE
        page.rec[base:base + ENTRY_SIZE] = journal_entry
        bit = 1 << i
        page.cslot = (page.cslot & ~bit) | (slot << i)
        page.dirty |= bit
        if not page.queued:
            self._queue(p, page)
        if self._bad:
            self._bad.pop(sector, None)

    def _queue(self, p, page):
        """Pin ``page`` until the next flush writes it."""
        page.queued = True
        self._queued[p] = page
        if self._pages.get(p) is not page:
            self._pages[p] = page

    # ------------------------------------------------------------------ flush
    def flush(self):
        """Make writes durable and fresh.

        Start the writeback of the data and journal, records and tree to their free
        copies, fdatasync, then anchor the new root (one commit per flush).
        """
        if self.readonly:
            return
        if not self._pending:
            self.storage.sync()
            return
        if self._broken is not None:
            raise errors.BlockstoreError(self._broken)
        try:
            # The data and journal written since the last flush start going to the disk
            # now, while the tree is computed and written: the sync below then waits for
            # less. No durable point (the sync still follows every write of the flush).
            start_writeback = getattr(self.storage, 'start_writeback', None)
            if start_writeback is not None:
                start_writeback()
            flips, root = self._write_tree()
            self.storage.sync()
            self._commit(self._state['version'] + 2, self._state['version'], root)
        except BaseException as exc:
            # The in-memory tree is ahead of the anchor: only a reopen (which replays
            # the journal) knows the truth again.
            self._broken = ('volume %s: a flush could not complete (%s: %s); reopen the '
                            'volume to recover its state'
                            % (self.uuid, type(exc).__name__, exc))
            raise
        self._apply_flips(flips)
        self._jpos = 0
        self._pending = False

    close = flush

    def _apply_flips(self, flips):
        """After a commit: the copies just written are the committed ones."""
        for obj, copy, content in flips:
            obj.copy = copy
            if content is not None:       # a page: its new leaves are now the committed
                obj.leaves = content
                obj.kslot = obj.cslot
                obj.dirty = 0
                obj.queued = False
        self._queued = {}

    def _write_tree(self):
        """Write queued pages and the nodes above them to their free copies.

        Return the objects to flip after the commit and the new root hash. Nodes touched
        here are held in ``touched`` so a cache eviction cannot lose a change.
        """
        flips = []
        writes = self._merged
        if writes is None:
            writes = self._merged = _MergedWrites(self.storage)
        writes.storage = self.storage
        writes.used = 0
        touched = {}

        def parent_of(level, index):
            if level == DEPTH:
                return self._root
            key = (level, index)
            node = touched.get(key)
            if node is None:
                node = touched[key] = self._node(level, index, index << (7 * level + 4))
            return node

        queued = self._queued
        sha = _SHA
        add = writes.add
        pwrite = self.storage.pwrite
        block = memoryview(bytearray(PAGE_META))   # a lone page's block, assembled
        block_rec = block[PAGE_LEAVES:PAGE_LEAVES + PAGE_RECORDS]
        block_copy0, block_copy1 = block[:PAGE_LEAVES], block[PAGE_META - PAGE_LEAVES:]
        level1 = None
        for p in sorted(queued):
            page = queued[p]
            leaves = bytearray(page.leaves)
            rec = page.rec
            dirty = page.dirty
            cslot = page.cslot
            first = p << 4
            while dirty:
                low = dirty & -dirty
                dirty ^= low
                i = low.bit_length() - 1
                base = i * RECORD_SIZE + (cslot >> i & 1) * ENTRY_SIZE
                # leaf_hash, inlined: zero for a never-written entry.
                leaves[i * HASH_SIZE:(i + 1) * HASH_SIZE] = (
                    ZERO_HASH if rec[base:base + 8] == _ZERO8 else
                    sha(b'\x00' + (first + i).to_bytes(8, 'big')
                        + rec[base:base + ENTRY_SIZE]).digest())
            copy = 1 - page.copy
            offset = SEG_START + (p >> 7) * SEG_BYTES + (p & 127) * PAGE_META
            if p - 1 in queued or p + 1 in queued:
                # The whole block (the committed leaves rewritten unchanged), so adjacent
                # blocks merge into one write.
                add(offset, leaves if copy == 0 else page.leaves)
                add(offset + PAGE_LEAVES, rec)
                add(offset + PAGE_LEAVES + PAGE_RECORDS, leaves if copy == 1 else page.leaves)
            else:
                # A lone page: one write from the free copy to the farthest entry written
                # since the last flush (the free slot of each such sector), so the fewest
                # 4 KiB blocks are dirtied: the committed copy is on disk already (or under
                # an empty parent, never read), and the other records are unchanged (or
                # have zero leaves: never written, whatever the disk holds).
                dirty = page.dirty
                if copy == 0:
                    end = PAGE_LEAVES
                    if dirty:
                        i = dirty.bit_length() - 1
                        end += i * RECORD_SIZE + ((cslot >> i & 1) + 1) * ENTRY_SIZE
                    block_copy0[:] = leaves
                    block[PAGE_LEAVES:end] = rec[:end - PAGE_LEAVES]
                    pwrite(block[:end], offset)
                else:
                    start = PAGE_META - PAGE_LEAVES
                    if dirty:
                        i = (dirty & -dirty).bit_length() - 1
                        start = PAGE_LEAVES + i * RECORD_SIZE + (cslot >> i & 1) * ENTRY_SIZE
                    block_rec[start - PAGE_LEAVES:] = rec[start - PAGE_LEAVES:]
                    block_copy1[:] = leaves
                    pwrite(block[start:], offset + start)
            flips.append((page, copy, leaves))
            if level1 is None or level1[0] != p >> 7:
                level1 = (p >> 7, parent_of(1, p >> 7))
            j = (p & 127) * HASH_SIZE
            level1[1].content[j:j + HASH_SIZE] = (
                ZERO_HASH if leaves == _ZERO_PAGE else
                sha(b'\x01\x00' + p.to_bytes(8, 'big') + leaves).digest())
        for level in range(1, DEPTH):
            for (lvl, index) in sorted(k for k in touched if k[0] == level):
                node = touched[lvl, index]
                copy = 1 - node.copy
                writes.add(node_offset(level, index, copy), node.content)
                flips.append((node, copy, None))
                parent = parent_of(level + 1, index >> 7)
                j = (index & 127) * HASH_SIZE
                parent.content[j:j + HASH_SIZE] = node_hash(level, index, node.content)
        root = node_hash(DEPTH, 0, self._root.content)
        copy = 1 - self._root.copy
        writes.add(node_offset(DEPTH, 0, copy), self._root.content)
        flips.append((self._root, copy, None))
        writes.close()
        return flips, root

    # ------------------------------------------------------------------ walking
    def _walk_pages(self, level=DEPTH, index=0):
        """Yield, in order, the leaf pages that hold written sectors (non-zero hashes).

        A subtree that fails its check is yielded as an IntegrityError for its range.
        """
        first_sector = index << (7 * level + 4)
        try:
            node = self._node(level, index, first_sector)
        except errors.IntegrityError as exc:
            last = min((index + 1) << (7 * level + 4), self.header.sector_count) - 1
            yield errors.IntegrityError(first_sector, exc.check, exc.detail, last=last)
            return
        content = node.content
        for j in range(FANOUT):
            if content[j * HASH_SIZE:(j + 1) * HASH_SIZE] == ZERO_HASH:
                continue
            child = (index << 7) + j
            if (child << (7 * (level - 1) + 4)) >= self.header.sector_count:
                break
            if level == 1:
                yield child
            else:
                yield from self._walk_pages(level - 1, child)

    def written_runs(self, step=256):
        """Yield runs (first, count) covering every written sector.

        Runs stay inside one segment and hold at most ``step`` sectors; a subtree that
        fails its check is yielded as an IntegrityError.
        """
        run_first = run_end = None
        n = self.header.sector_count
        for item in self._walk_pages():
            if isinstance(item, errors.IntegrityError):
                if run_first is not None:
                    yield run_first, run_end - run_first
                    run_first = None
                yield item
                continue
            first, end = item << 4, min((item + 1) << 4, n)
            if (run_first is not None and first == run_end and end - run_first <= step
                    and first >> 11 == run_first >> 11):
                run_end = end
                continue
            if run_first is not None:
                yield run_first, run_end - run_first
            run_first, run_end = first, end
        if run_first is not None:
            yield run_first, run_end - run_first

    # ------------------------------------------------------------------ maintenance
    def scrub(self, stop_at_first=False, progress=None):
        """Verify every written sector (never-written ones are zero leaves of the verified tree).

        Return the IntegrityErrors found, lowest sector first. Streams through the bounded
        cache.
        """
        self.scrubbed = 0
        scratch = memoryview(bytearray(256 * SECTOR_SIZE))
        if self._volume_bad is not None:
            return [self._volume_bad]
        found = []
        for item in self.written_runs():
            if isinstance(item, errors.IntegrityError):
                found.append(item)
                if stop_at_first:
                    return found
                continue
            start, run = item
            if progress is not None:
                progress(start, self.header.sector_count)
            try:
                self.scrubbed += self._read_into(start, run, scratch)
                continue
            except errors.IntegrityError:
                pass
            for sector in range(start, start + run):
                try:
                    self.scrubbed += self._read_into(sector, 1, scratch)
                except errors.IntegrityError as exc:
                    found.append(exc)
                    if stop_at_first:
                        return found
        return found

    def _write_header(self, header, both=False):
        """Write ``header`` to the slot its generation selects.

        With ``both`` also to the other slot, so no slot keeps an older wrapping.
        """
        raw = header.pack()
        slot = header.generation % hdr.HEADER_SLOTS
        self.storage.pwrite(raw, slot * HEADER_SLOT_SIZE)
        self.storage.sync()
        if both:
            self.storage.pwrite(raw, (1 - slot) * HEADER_SLOT_SIZE)
            self.storage.sync()
        self.header = header

    def _new_header(self, kek, keys, key_ref='', **changes):
        header = hdr.Header(**dict(
            vars(self.header), generation=self.header.generation + 1,
            key_ref=(key_ref[:64] or self.header.key_ref), **changes))
        hdr.wrap(header, kek, keys)
        return header

    def rotate_kek(self, new_kek, key_ref=''):
        """Rewrap the data keys under ``new_kek`` only (no re-encryption).

        See :meth:`rotate_keys` for what that does and does not protect.
        """
        self._check_writable()
        hdr.check_kek(new_kek)
        self.flush()
        self._write_header(self._new_header(new_kek, self.keys, key_ref), both=True)

    def rotate_keys(self, new_kek, key_ref='', progress=None, flush_every=16 << 20):
        """Rotate the data key.

        A new one (next generation) wrapped under ``new_kek``, every written sector
        re-encrypted under it, then the old one dropped.

        While it runs the header (both slots, under ``new_kek``) holds both data keys, so
        a crash at any point leaves a volume that opens with ``new_kek`` and reads right;
        calling this again (with the key that now opens the volume) resumes. Returns the
        number of sectors re-encrypted by this call.
        """
        self._check_writable()
        hdr.check_kek(new_kek)
        self.flush()
        if not self.keys.rotating:
            keys = hdr.DataKeys(self.keys.current_gen + 1, AESGCM.generate_key(256),
                                self.keys.current_gen, self.keys.current)
        else:
            keys = self.keys       # an interrupted rotation: finish it
        self._write_header(self._new_header(new_kek, keys, key_ref), both=True)
        self.keys = keys
        self._w_aead = None        # a new writer session under the new data key
        self._aeads.clear()
        current = keys.current_gen.to_bytes(4, 'big')
        done = since_flush = 0
        for item in self.written_runs():
            if isinstance(item, errors.IntegrityError):
                raise item
            start, run = item
            if progress is not None:
                progress(start, self.header.sector_count, done)
            # Contiguous stretches of written sectors still under an older data key.
            stale = []
            for sector in range(start, start + run):
                entry = self._entry(sector)
                if entry[:8] != _ZERO8 and entry[16:20] != current:
                    if stale and stale[-1][1] == sector:
                        stale[-1][1] = sector + 1
                    else:
                        stale.append([sector, sector + 1])
            for lo, hi in stale:
                self.write_sectors(lo, self.read_sectors(lo, hi - lo))
                done += hi - lo
                since_flush += (hi - lo) * SECTOR_SIZE
            if since_flush >= flush_every:
                self.flush()
                since_flush = 0
        self.flush()
        if progress is not None:
            progress(self.header.sector_count, self.header.sector_count, done)
        finished = hdr.DataKeys(keys.current_gen, keys.current)
        self._write_header(self._new_header(new_kek, finished), both=True)
        self.keys = finished
        return done

    def _entry(self, sector):
        """The current entry of ``sector`` (48 bytes), verified."""
        page = self._page(sector >> 4, sector)
        i = sector & 15
        if not page.verified >> i & 1:
            self._verify_sector(page, sector)
        if sector in self._bad:
            raise self._bad[sector]
        base = i * RECORD_SIZE + (page.cslot >> i & 1) * ENTRY_SIZE
        return bytes(page.rec[base:base + ENTRY_SIZE])

    def resize(self, size_bytes, kek):
        """Grow or shrink to ``size_bytes``; new sectors read as zeros.

        Order: tree (free copies), header, anchor, then the file. A crash before the
        anchor commit opens with the other header slot and the old tree.
        """
        sectors = -(-size_bytes // SECTOR_SIZE)
        if not 0 < sectors < MAX_SECTORS:
            raise errors.BlockstoreError('size %d bytes is out of range' % size_bytes)
        self._check_writable()
        self.flush()
        old = self.header.sector_count
        try:
            if sectors > old:
                self.storage.truncate(file_size(sectors))
                flips, root = [], bytes.fromhex(self._state['root'])
            else:
                self._cut_tree(sectors)
                flips, root = self._write_tree()
                self.storage.sync()
            self._write_header(self._new_header(kek, self.keys, sector_count=sectors))
            self._commit(self._state['version'] + 2, self._state['version'], root)
        except BaseException as exc:
            self._broken = ('volume %s: a resize could not complete (%s: %s); reopen the '
                            'volume' % (self.uuid, type(exc).__name__, exc))
            raise
        self._apply_flips(flips)
        self._bad = {s: e for s, e in self._bad.items() if s < sectors}
        if sectors < old:
            # Everything past the new end is an empty subtree now: forget cached copies.
            self._pages = {p: pg for p, pg in self._pages.items() if p << 4 < sectors}
            self._nodes = {}
            self.storage.truncate(file_size(sectors))

    def _cut_tree(self, sectors):
        """Cut the tree at a new end of ``sectors``.

        Zero the entries of the sectors past it in its leaf page and the child hashes past
        it in every node above: all of that becomes empty subtrees.
        """
        last = sectors - 1
        p = last >> 4
        page = self._page(p, last)
        for i in range((last & 15) + 1, PAGE_SECTORS):
            if not page.verified >> i & 1:
                self._verify_sector(page, (p << 4) + i)
            self._set_current(page, p, i, ZERO_ENTRY)
        index = p
        for level in range(1, DEPTH + 1):
            node = self._node(level, index >> 7, last)
            j = ((index & 127) + 1) * HASH_SIZE
            node.content[j:] = bytes(NODE_BYTES - j)
            index >>= 7
        if not page.queued:
            self._queue(p, page)
        self._bad_nodes = {k: v for k, v in self._bad_nodes.items()
                           if (k[1] << (7 * k[0] + 4)) < sectors}
        self._pending = True

    def info(self):
        return {
            'uuid': self.uuid, 'format_version': FORMAT_VERSION,
            'cipher': self.header.cipher, 'sector_size': SECTOR_SIZE,
            'sector_count': self.header.sector_count, 'size_bytes': self.size,
            'merkle_tree': True, 'header_generation': self.header.generation,
            'key_ref': self.header.key_ref, 'anchor_version': self._state['version'],
            'anchor_root': self._state['root'], 'recovered_from_crash': self.recovered,
            'read_only': self.readonly, 'data_key_generation': self.keys.current_gen,
            'rotation_in_progress': self.keys.rotating,
        }
