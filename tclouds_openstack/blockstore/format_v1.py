"""Reader of format 1 volumes (the first release): read, check and convert, never write.

Format 1 keeps every sector record and the whole Merkle tree in memory (about 34 MiB per
GiB of volume) and draws GCM nonces from the anchor version, so a rollback of the anchor
*and* the volume together could make a writer reuse a nonce. Format 2 (``format.py``)
fixes both; format 1 volumes therefore open read-only, and ``tclouds-blockstore upgrade``
copies one into a new format 2 volume.

Layout (big-endian)::

    0      header slot A (4 KiB)
    4096   header slot B (4 KiB)
    8192   group 0: 256 sector records (128 B) | 256 hint leaves (32 B) | 256 data sectors
           group 1: ...

A record holds three (counter u64, GCM tag) entries: anchored, previous, current; counter
``epoch << 32 | sequence``, 0 = never written. Nonce = sector u32 || counter u64, associated
data = volume UUID || nonce. The tree (RFC 9162 hashing) has one leaf per sector over
(sector, counter, tag); the anchor holds its root. See doc/source/blockstore.rst.
"""
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tclouds_openstack.blockstore import errors
from tclouds_openstack.blockstore import header as hdr
from tclouds_openstack.blockstore import merkle

VERSION = 1
SECTOR_SIZE = hdr.SECTOR_SIZE
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
DATA_START = hdr.HEADER_SLOT_SIZE * hdr.HEADER_SLOTS
ZERO_TAG = bytes(16)
_NONCE = struct.Struct('>IQ')
ZERO_SECTOR = bytes(SECTOR_SIZE)


def record_offset(sector):
    group, index = divmod(sector, GROUP_SECTORS)
    return DATA_START + group * GROUP_BYTES + index * RECORD_SIZE


def hint_offset(sector):
    group, index = divmod(sector, GROUP_SECTORS)
    return DATA_START + group * GROUP_BYTES + RECORDS_BYTES + index * HINT_SIZE


def data_offset(sector):
    group, index = divmod(sector, GROUP_SECTORS)
    return DATA_START + group * GROUP_BYTES + GROUP_META + index * SECTOR_SIZE


def epoch_of(counter):
    return counter >> 32


def _group_runs(first, count):
    end = first + count
    while first < end:
        stop = min(end, (first // GROUP_SECTORS + 1) * GROUP_SECTORS)
        yield first, stop - first
        first = stop


def _leaf(sector, counter, tag):
    return merkle.hash_leaf(struct.pack('>QQ', sector, counter) + tag)


class VolumeV1:
    """A format 1 volume opened read-only (see the module docstring for why)."""

    format_version = VERSION
    readonly = True
    recovered = False

    def __init__(self, storage, anchor, header, keys):
        self.storage = storage
        self.anchor = anchor
        self.header = header
        self.keys = keys
        self._aead = AESGCM(keys.current)
        self.uuid = header.uuid_str
        self._aad_prefix = header.uuid
        self._entries = bytearray(header.sector_count * ENTRY_BYTES)
        self._bad = {}
        self._volume_bad = None
        self._state = None

    @classmethod
    def open(cls, storage, header, keys, anchor):
        vol = cls(storage, anchor, header, keys)
        state = hdr.check_anchor_state(anchor.load(vol.uuid), keys, vol.uuid, VERSION)
        if state['sector_count'] != header.sector_count:
            raise errors.AnchorError('anchor covers %d sectors, header says %d'
                                     % (state['sector_count'], header.sector_count))
        vol._state = state
        vol._load_records(state)
        return vol

    def _load_records(self, state):
        n = self.header.sector_count
        limit = state['version']
        records = []
        hints = bytearray()
        for first, count in _group_runs(0, n):
            raw = self.storage.pread(count * RECORD_SIZE, record_offset(first))
            for i in range(count):
                records.append([ENTRY.unpack_from(raw, i * RECORD_SIZE + slot * ENTRY.size)
                                for slot in range(ENTRIES)])
            hints += self.storage.pread(count * HINT_SIZE, hint_offset(first))
        for sector, entries in enumerate(records):
            epoch = max(epoch_of(c) for c, _ in entries)
            if epoch > limit + 1:
                raise errors.AnchorError(
                    'sector %d of volume %s was written in epoch %d, after anchor version '
                    '%d: the anchor was rolled back or lost commits; refusing to open'
                    % (sector, self.uuid, epoch, limit))
        anchored = []
        for entries in records:
            older = [e for e in entries if epoch_of(e[0]) < limit]
            anchored.append(max(older) if older else (0, ZERO_TAG))
        tree = None
        if self.header.merkle:
            tree = merkle.Tree(b''.join(_leaf(i, c, t) for i, (c, t) in enumerate(anchored)))
            if tree.root().hex() != state['root']:
                self._locate_rollback(tree, anchored, hints, state)
        current = list(anchored)
        # A crash after the last flush: per sector the newest entry of the next epoch whose
        # data verifies, else the anchored one (in memory only: this reader never writes).
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
        for sector, (counter, tag) in enumerate(current):
            ENTRY.pack_into(self._entries, sector * ENTRY_BYTES + 2 * ENTRY.size, counter, tag)

    def _locate_rollback(self, tree, anchored, hints, state):
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
            return True
        nonce = _NONCE.pack(sector, counter)
        try:
            self._aead.decrypt(nonce, bytes(data) + tag, self._aad_prefix + nonce)
            return True
        except InvalidTag:
            return False

    @property
    def size(self):
        return self.header.sector_count * SECTOR_SIZE

    def current_counter(self, sector):
        return ENTRY.unpack_from(self._entries, sector * ENTRY_BYTES + 2 * ENTRY.size)[0]

    def read_sectors(self, first, count):
        if self._volume_bad is not None:
            raise self._volume_bad
        out = bytearray(count * SECTOR_SIZE)
        for start, run in _group_runs(first, count):
            raw = None
            for sector in range(start, start + run):
                if sector in self._bad:
                    raise self._bad[sector]
                counter, tag = ENTRY.unpack_from(self._entries,
                                                 sector * ENTRY_BYTES + 2 * ENTRY.size)
                if counter == 0:
                    continue
                if raw is None:
                    raw = self.storage.pread(run * SECTOR_SIZE, data_offset(start))
                o = (sector - start) * SECTOR_SIZE
                nonce = _NONCE.pack(sector, counter)
                try:
                    plain = self._aead.decrypt(nonce, raw[o:o + SECTOR_SIZE] + tag,
                                               self._aad_prefix + nonce)
                except InvalidTag:
                    raise errors.IntegrityError(
                        sector, 'tag', 'authentication tag mismatch (write counter %d): the '
                        'sector was modified, swapped with another, torn or rolled back'
                        % counter)
                d = (sector - first) * SECTOR_SIZE
                out[d:d + SECTOR_SIZE] = plain
        return out

    def read(self, offset, length):
        if offset < 0 or length < 0 or offset + length > self.size:
            raise errors.BlockstoreError('request [%d, +%d) is outside the volume (%d bytes)'
                                         % (offset, length, self.size))
        if length == 0:
            return b''
        first = offset // SECTOR_SIZE
        last = (offset + length - 1) // SECTOR_SIZE
        data = self.read_sectors(first, last - first + 1)
        skip = offset - first * SECTOR_SIZE
        return bytes(data[skip:skip + length])

    def read_into(self, offset, buf):
        buf[:] = self.read(offset, len(buf))

    def write(self, offset, data):
        raise errors.BlockstoreError(
            'volume %s is format version 1, which is read-only here: convert it with '
            '"tclouds-blockstore upgrade" (format 2 makes GCM nonces unique even when the '
            'anchor and the volume are rolled back together)' % self.uuid)

    def flush(self):
        """Nothing to make durable: this reader never writes."""

    close = flush

    def scrub(self, stop_at_first=False, progress=None):
        self.scrubbed = self.header.sector_count
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

    def written_runs(self, step=256):
        """(first, count) runs of at most ``step`` sectors that hold written sectors."""
        n = self.header.sector_count
        for first in range(0, n, step):
            count = min(step, n - first)
            if any(self.current_counter(s) for s in range(first, first + count)):
                yield first, count

    def info(self):
        return {
            'uuid': self.uuid, 'format_version': VERSION, 'cipher': self.header.cipher,
            'sector_size': SECTOR_SIZE, 'sector_count': self.header.sector_count,
            'size_bytes': self.size, 'merkle_tree': self.header.merkle,
            'header_generation': self.header.generation, 'key_ref': self.header.key_ref,
            'anchor_version': self._state['version'], 'anchor_root': self._state['root'],
            'recovered_from_crash': self.recovered, 'read_only': True,
            'data_key_generation': 0, 'rotation_in_progress': False,
        }
