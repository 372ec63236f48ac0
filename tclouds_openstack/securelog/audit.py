"""The full audit: replay a log from genesis and name the first damaged index.

Pure: the caller supplies the records in log order (from a store, an export, a file), the
log sealer's K0, the sources' K0s and the signature-verified checkpoints. Every record is
checked for:

- format (``malformed``) and the log seal over it (``modified``: bytes changed, or forged
  by someone without the epoch key);
- its sealed position (``missing`` when a later record sits here, ``moved`` when an earlier
  one does: deletions, swaps, insertions);
- forward security (``forged``): genuine records are sealed in non-decreasing epoch order,
  and a record of an earlier epoch cannot be made after that epoch's key was erased; so a
  validly sealed record followed by one of an earlier epoch, or sealed in an epoch later than
  a checkpoint that covers it, was written by someone holding a later key;
- the same three rules per source over the source's own sequence numbers and seals;
- the Merkle root at every checkpoint size (``root-mismatch``) and the size against the
  largest checkpoint (``truncated``, or ``rolled-back`` when the store's own newest
  checkpoint is older than one published elsewhere).

Record format 2 (:mod:`.sealing`, doc/source/securelog.rst) is checked by the same rules
with less hashing: a bare record must continue its source's hash chain (``prev``: the leaf
hash of the source's previous entry, which the tree needs anyway), and the source's seal
is checked once per chain segment; every batch ends with a TSL2 record whose one log seal
covers the leaf hashes of the batch (``modified`` over a range when they differ); records
after the last seal are ``unsealed``; a format-1 record or entry after format 2 of the same
log or source is ``forged`` (a downgrade). Records are hashed a chunk at a time (the
leaves, then the tree above them), and a bare record that continues its chain costs a
header unpack and a few comparisons.

**Incremental audits.** An audit that found nothing ends in an :class:`AuditState`: the
log's size, the right frontier of its Merkle tree (the O(log n) perfect-subtree hashes,
RFC 9162 2.1.1), and where the log and each source stand (epoch and its key, next
sequence number). ``audit(new_records, ..., resume=state)`` continues from there: it checks
only the records after ``state.size`` with the same rules and extends the frontier with
their leaves, so arriving at the signed root of a later checkpoint proves the verified log
is a prefix of the signed one (what an RFC 9162 2.1.4 consistency proof shows), without
trusting a proof from the log operator: O(new + log n). It does not re-read the records
before ``state.size``: a full audit (or inclusion proofs) checks that the store still holds
them.
"""
import collections
import hashlib
import hmac
import itertools
import json
import operator
import struct

from tclouds_openstack.securelog import merkle
from tclouds_openstack.securelog import sealing

EPOCH_EXTENSION = 'tclouds-securelog-epoch '

# ``end`` is set when the damage is only known to lie somewhere in [index, end): a root
# mismatch, which a precise finding inside that range explains.
Damage = collections.namedtuple('Damage', 'index kind detail end', defaults=(None,))
# When several findings name one index, report the most specific explanation first: a
# forged record also breaks the sequence around it, a moved one also leaves a gap.
_KIND_ORDER = {kind: n for n, kind in enumerate(
    ('forged', 'modified', 'malformed', 'moved', 'missing', 'unsealed', 'rolled-back',
     'truncated', 'root-mismatch', 'unverifiable'))}


def checkpoint_epoch(checkpoint):
    """The log sealer's epoch recorded in a checkpoint's extension line (None if absent)."""
    for ext in checkpoint.extensions:
        if ext.startswith(EPOCH_EXTENSION):
            value = ext[len(EPOCH_EXTENSION):]
            if value.isdigit():
                return int(value)
    return None


_STATE_VERSION = 2
_STATE_MAC_DOMAIN = b'tclouds-securelog/v1 audit state\x00'


def _log_seal_fault(log, data, record):
    """(kind, reason) when the log's seal on ``data`` does not verify, else None."""
    try:
        key = log.chain.hmac_key(record.epoch)
    except sealing.SealError as exc:
        return 'forged', 'record %s' % exc.reason
    if not hmac.compare_digest(key.tag(data[:-sealing.TAG_SIZE]), record.tag):
        return ('modified', 'log seal does not verify: record bytes changed, or written by '
                'someone without the epoch %d key' % record.epoch)
    return None


class AuditState(object):
    """Where an audit that found nothing stopped; :func:`audit` resumes from it.

    ``frontier``: the compact range of the tree at ``size`` (perfect-subtree hashes, left to
    right); ``log_epoch``/``log_key``: the log sealer's epoch of the last sealed record and
    that epoch's key; ``sources``: {name: (next_seq, last_epoch, key of last_epoch,
    last_index, hash of the last entry or None, highest entry format)}; ``log_leaf``: the
    leaf hash of record ``size`` - 1 (the next TSL2 seal's span begins with it; None in a
    state of format 1, see :meth:`SecureLogStore.audit`). The keys are derived from the
    K0s: keep the state as private as the auditor bundle.
    """

    def __init__(self, size, frontier, log_epoch, log_key, sources, log_leaf=None,
                 log_version=1):
        self.size = size
        self.frontier = list(frontier)
        self.log_epoch = log_epoch
        self.log_key = log_key
        self.sources = {name: tuple(v) + (None, 1)[len(v) - 4:] for name, v in
                        dict(sources).items()}
        self.log_leaf = log_leaf
        self.log_version = log_version

    @property
    def root(self):
        compact = merkle.CompactRange()
        compact.size = self.size
        compact._nodes = list(self.frontier)
        return compact.root()

    def _body(self):
        return json.dumps({
            'version': _STATE_VERSION, 'size': self.size, 'root': self.root.hex(),
            'frontier': [h.hex() for h in self.frontier], 'log_epoch': self.log_epoch,
            'log_key': self.log_key.hex(),
            'log_leaf': None if self.log_leaf is None else self.log_leaf.hex(),
            'log_version': self.log_version,
            'sources': {name: [seq, epoch, key.hex(), last,
                               None if leaf is None else leaf.hex(), version]
                        for name, (seq, epoch, key, last, leaf, version)
                        in sorted(self.sources.items())}},
            sort_keys=True, separators=(',', ':')).encode('utf-8')

    def dumps(self, k0):
        """JSON text, authenticated with a key derived from the log's K0 (the auditor's)."""
        body = self._body()
        tag = hmac.new(_state_mac_key(k0), body, 'sha256').hexdigest()
        return json.dumps({'state': json.loads(body), 'mac': tag}, sort_keys=True,
                          indent=1)

    @classmethod
    def loads(cls, text, k0):
        """Parse and authenticate :meth:`dumps`; ValueError naming what is wrong."""
        try:
            outer = json.loads(text)
            state, tag = outer['state'], outer['mac']
            body = json.dumps(state, sort_keys=True, separators=(',', ':')).encode('utf-8')
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError('audit state is not valid JSON of this format: %s' % exc)
        if not isinstance(tag, str) or not hmac.compare_digest(
                hmac.new(_state_mac_key(k0), body, 'sha256').hexdigest(), tag):
            raise ValueError('audit state does not authenticate with this log\'s K0: '
                             'altered, or written for another log')
        try:
            if state['version'] not in (1, _STATE_VERSION):
                raise ValueError('version %r' % state['version'])
            leaf = state.get('log_leaf')
            out = cls(int(state['size']), [bytes.fromhex(h) for h in state['frontier']],
                      int(state['log_epoch']), bytes.fromhex(state['log_key']),
                      {name: (int(v[0]), int(v[1]), bytes.fromhex(v[2]),
                              None if v[3] is None else int(v[3]),
                              bytes.fromhex(v[4]) if len(v) > 4 and v[4] is not None
                              else None, int(v[5]) if len(v) > 5 else 1)
                       for name, v in state['sources'].items()},
                      None if leaf is None else bytes.fromhex(leaf),
                      int(state.get('log_version', 1)))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ValueError('audit state has a malformed field: %s' % exc)
        if out.root.hex() != state['root'] or len(out.frontier) != bin(out.size).count('1'):
            raise ValueError('audit state frontier does not match its size and root')
        return out


def _state_mac_key(k0):
    return hashlib.sha256(_STATE_MAC_DOMAIN + bytes(k0)).digest()


class _ChainFrom(sealing.KeyChain):
    """A key chain that starts at ``epoch`` with its key (an earlier epoch's is unknown)."""

    def __init__(self, epoch, key):
        super().__init__(key)
        self._base = epoch

    def key(self, epoch):
        if epoch < self._base:
            raise sealing.SealError('epoch', 0, 'epoch %d precedes epoch %d, where the '
                                    'audit this one resumes reached' % (epoch, self._base))
        return super().key(epoch - self._base)

    def hmac_key(self, epoch):
        h = self._hmacs.get(epoch)
        if h is None:
            h = self._hmacs[epoch] = sealing.HmacKey(self.key(epoch))
        return h


class AuditReport(object):
    def __init__(self):
        self.size = 0
        self.root = merkle.EMPTY_ROOT
        self.damages = []
        self.checkpoints_checked = 0
        self.sources = collections.Counter()
        self.truncated_damages = False
        self.start = 0          # the index the audit began at (> 0 when resumed)
        self.state = None       # AuditState to resume from, when the audit found nothing

    @property
    def ok(self):
        return not self.damages

    @property
    def first_damage(self):
        exact = [d for d in self.damages if d.end is None]
        ranges = [d for d in self.damages if d.end is not None
                  and not any(d.index <= e.index < d.end for e in exact)]
        candidates = exact + ranges
        return min(candidates, key=lambda d: (d.index, _KIND_ORDER.get(d.kind, 99))) \
            if candidates else None

    def summary(self):
        if self.ok:
            return ('OK: %d records from %d source(s), root %s, %d checkpoint(s) verified'
                    % (self.size, len(self.sources), self.root.hex(), self.checkpoints_checked))
        d = self.first_damage
        return 'DAMAGED: first bad index %d (%s): %s' % (d.index, d.kind, d.detail)


_RECORD_MAGIC = sealing.RECORD_MAGIC
_ENTRY_MAGIC = sealing.ENTRY_MAGIC
_FLAGS = sealing._KNOWN_FLAGS
# Offset of the source name in a record: record header, then entry header.
_SRC = sealing._RECORD_HEAD.size + sealing._ENTRY_HEAD.size
# Both headers, tenant and payload lengths, two tags.
_MIN_RECORD = _SRC + 6 + 2 * sealing.TAG_SIZE


# Format 2: a bare record of at least a header, an empty source's worth and a tag.
_E2 = sealing.ENTRY2_MAGIC
_E2HEAD = sealing._ENTRY2_HEAD.size
_MIN_E2 = _E2HEAD + sealing.TAG_SIZE
_L2 = sealing.RECORD2_MAGIC
_NO_PREV = sealing.NO_PREV
_CHUNK_BITS = 12
_CHUNK = 1 << _CHUNK_BITS
# A chunk's leaves and each level of the tree above them are hashed by map() chains (no
# interpreter frame per hash): SHA-256(0x00 || record), SHA-256(0x01 || left || right).
# Each hash object is a copy of one that has hashed the prefix: with OpenSSL 3 a copy
# costs less than a new object (no lookup of the digest), and the record is not copied
# behind the prefix.
_sha256 = merkle._sha256
_digest = type(_sha256(b'')).digest
_copy = type(_sha256(b'')).copy
_update = type(_sha256(b'')).update
_LEAF_PREFIX = _sha256(b'\x00')
_NODE_PREFIX = _sha256(b'\x01')


def _leaf_hashes(records):
    """RFC 9162 leaf hashes of ``records`` (a list of bytes), in order."""
    hashes = list(map(_copy, itertools.repeat(_LEAF_PREFIX, len(records))))
    collections.deque(map(_update, hashes, records), 0)
    return list(map(_digest, hashes))


def _node_hashes(level):
    """The level above ``level`` (an even number of hashes) of a perfect subtree."""
    hashes = list(map(_copy, itertools.repeat(_NODE_PREFIX, len(level) >> 1)))
    collections.deque(map(_update, hashes, map(operator.add, level[0::2], level[1::2])), 0)
    return list(map(_digest, hashes))


def _append_leaves(nodes, size, leaves):
    """Extend the compact range ``nodes`` of a tree of ``size`` leaves by ``leaves``.

    As appending them one by one (RFC 9162 2.1.1, :meth:`.merkle.CompactRange.append`):
    the leaves are taken in the largest perfect subtrees the tree's size at each allows
    (aligned: a subtree of 2**h leaves starts at a multiple of 2**h), each hashed a level
    at a time, its root then merged into the range like a node of that height.
    """
    at, m = 0, len(leaves)
    while at < m:
        height = (m - at).bit_length() - 1
        if size:
            height = min(height, (size & -size).bit_length() - 1)
        level = leaves[at:at + (1 << height)]
        while len(level) > 1:
            level = _node_hashes(level)
        nodes.append(level[0])
        width = size >> height
        while width & 1:
            right = nodes.pop()
            nodes[-1] = _sha256(b'\x01' + nodes[-1] + right).digest()
            width >>= 1
        size += 1 << height
        at += 1 << height


class _Stream(object):
    """Ordering state of one sealed stream (the log itself, or one source).

    Format 2 (sources): ``last_leaf`` is the hash of the stream's last entry (what its next
    entry names as ``prev``; None when unknown), ``last_data`` that entry while its seal is
    still to be checked: the last entry of a chain segment is checked when the segment ends
    (the epoch changes, the chain is broken or restarts, the audit ends), and its seal
    covers every entry chained before it. ``verified``: index of the last entry whose seal
    was checked on its own (a failed segment lies after it).
    """

    __slots__ = ('chain', 'last_epoch', 'last_index', 'next_seq', 'hmacs', 'last_leaf',
                 'last_data', 'version', 'verified', 'name')

    def __init__(self, chain, name=None):
        self.chain = chain
        self.last_epoch = 0
        self.last_index = None
        self.next_seq = 0
        self.hmacs = {}
        self.last_leaf = None
        self.last_data = None
        self.version = 1
        self.verified = None
        self.name = name


class _Gaps(dict):
    """{source: [(first missing seq, seq found, damage position, index)]} of the audit."""

    def __init__(self, damages):
        super().__init__()
        self.damages = damages


class _FastSources(dict):
    """Source streams by encoded name (the fast path's key), mirrored into ``by_name``."""

    def __init__(self, by_name):
        super().__init__()
        self.by_name = by_name
        self.gaps = None            # set by the audit: sequence gaps per source

    def stream(self, name):
        return self.by_name.get(name)

    def add(self, name, stream):
        stream.name = name
        self.by_name[name] = stream
        self[name.encode('utf-8')] = stream


def audit(records, log_key, source_keys, checkpoints=(), store_checkpoint_size=None,
          max_damages=1000, resume=None):
    """Audit ``records`` (iterable of encoded records in log order).

    ``log_key``: the log sealer's K0. ``source_keys``: {source name: K0}. ``checkpoints``:
    verified :class:`~.checkpoint.Checkpoint` objects. ``store_checkpoint_size``: the size of
    the newest checkpoint the store itself holds, to tell a rollback from a truncation.
    ``resume``: an :class:`AuditState`; ``records`` then starts at index ``resume.size``.
    Returns an :class:`AuditReport` (with ``state`` set when nothing was found).
    """
    report = AuditReport()
    damages = report.damages
    start = resume.size if resume is not None else 0
    report.start = start

    def damage(index, kind, detail, end=None):
        if len(damages) < max_damages:
            damages.append(Damage(index, kind, detail, end))
        else:
            report.truncated_damages = True

    by_size = {}
    for cp in checkpoints:
        if cp.size >= start:        # a resumed audit: the earlier ones were checked
            by_size.setdefault(cp.size, []).append(cp)
    cp_sizes = sorted(by_size)
    # The smallest checkpoint covering position i bounds the epoch record i may carry.
    bounds = [(size, checkpoint_epoch(cp)) for size in cp_sizes for cp in by_size[size]]
    bounds = [(size, epoch) for size, epoch in bounds if epoch is not None]
    bound_pos = 0
    bound = bounds[0] if bounds else None
    bound_size, bound_epoch = bound if bound else (None, None)
    next_cp = 0
    next_cp_size = cp_sizes[0] if cp_sizes else -1
    last_good_cp = start

    sources = {}
    fast_sources = _FastSources(sources)
    source_chains = {name: sealing.KeyChain(k) for name, k in source_keys.items()}
    compact = merkle.CompactRange()
    if resume is None:
        log = _Stream(sealing.KeyChain(log_key))
        log_last_epoch = 0
    else:
        log = _Stream(_ChainFrom(resume.log_epoch, resume.log_key))
        log_last_epoch = resume.log_epoch
        compact.size = start
        compact._nodes[:] = resume.frontier
        for name, (next_seq, epoch, key, last_index, leaf, version) in \
                resume.sources.items():
            stream = _Stream(_ChainFrom(epoch, key))
            stream.next_seq, stream.last_epoch, stream.last_index = next_seq, epoch, last_index
            stream.last_leaf, stream.version = leaf, version
            fast_sources.add(name, stream)
        # a checkpoint of exactly the verified size must have the verified root (a fork)
        if start in by_size:
            _check_roots(report, damage, by_size.pop(start), compact, start)
            cp_sizes = sorted(by_size)
            next_cp_size = cp_sizes[0] if cp_sizes else -1
    nodes = compact._nodes
    records = iter(records)
    slow = _SlowPath(log, fast_sources, source_chains, damage, damages)
    fast_sources.gaps = _Gaps(damages)
    # Format 2: the leaves since the last sealed record (it first), which the next TSL2
    # record's span must hash to; the last sealed record's index.
    if resume is None:
        since, slow.sealed_at = [], -1
    else:
        since = [resume.log_leaf] if start else []
        slow.sealed_at = start - 1
        slow.log_version = resume.log_version

    rhead = sealing._RECORD_HEAD.unpack_from
    e2head = sealing._ENTRY2_HEAD.unpack_from
    ehead = sealing._ENTRY_HEAD.unpack_from
    u16 = sealing._U16.unpack_from
    u32 = sealing._U32.unpack_from
    log_hmacs = {}
    max_jump = sealing.MAX_EPOCH_JUMP
    index = start
    seal_pos = 0            # where the current span's leaves begin in this chunk's leaves
    while True:
        if index == next_cp_size:
            # Checkpoints of size == index cover exactly the records seen so far.
            compact.size = index
            _check_roots(report, damage, by_size[next_cp_size], compact, last_good_cp)
            last_good_cp = index
            next_cp += 1
            next_cp_size = cp_sizes[next_cp] if next_cp < len(cp_sizes) else -1
        if bound is not None and bound_size <= index:
            while bound is not None and bound[0] <= index:
                bound_pos += 1
                bound = bounds[bound_pos] if bound_pos < len(bounds) else None
            bound_size, bound_epoch = bound if bound else (None, None)
        # Records are read in chunks that end at the next checkpoint (and at multiples of
        # _CHUNK): the leaves and the tree above them are hashed a chunk at a time.
        end = (index >> _CHUNK_BITS) + 1 << _CHUNK_BITS
        if index < next_cp_size < end:
            end = next_cp_size
        chunk = list(map(bytes, itertools.islice(records, end - index)))
        if not chunk:
            break
        leaves = _leaf_hashes(chunk)
        m = len(chunk)
        _append_leaves(nodes, index, leaves)
        for i, data, leaf in zip(range(index, index + m), chunk, leaves):
            try:
                magic, flags, eepoch, seq, _t, prev, slen, tlen, plen = e2head(data)
            except struct.error:
                magic = None
            if magic == _E2:
                # Format 2 fast path, a bare record: the source's next entry, in its epoch,
                # naming the source's previous entry (whose leaf hash it is). Its seal is
                # checked with the last entry of its chain segment, and the next TSL2
                # record seals its position. Anything else: the slow path.
                stream = fast_sources.get(data[_E2HEAD:_E2HEAD + slen])
                if (stream is not None and seq == stream.next_seq
                        and eepoch == stream.last_epoch and prev == stream.last_leaf
                        and slen + tlen + plen + _MIN_E2 == len(data)
                        and not flags & ~_FLAGS):
                    stream.next_seq = seq + 1
                    stream.last_leaf = leaf
                    stream.last_index = i
                    stream.last_data = data
                    continue
                slow.bare(i, data, leaf)
                continue
            head = data[:4]
            if head == _ENTRY_MAGIC:
                # a format-1 entry stored bare (an older source writing to a format-2 log)
                slow.bare(i, data, leaf)
                continue
            j = i - index
            if head == _L2:
                # Format 2, a sealed record (one per appended batch): its span is the
                # leaves from the previous sealed record up to it.
                log.last_epoch = log_last_epoch
                slow.sealed2(i, data, leaf, since + leaves[seal_pos:j], bound)
                log_last_epoch = log.last_epoch
                since, seal_pos = [], j
                continue
            # Format 1 fast path: a well-formed record at its sealed position, in epoch
            # order, whose two seals verify and whose source continues its sequence.
            # Anything else takes the slow path, which re-parses strictly and names the
            # damage.
            if slow.log_version == 2:
                # a format-1 record in a format-2 log (a downgrade, see check): a bare
                # record as far as the spans go, which the next TSL2 record covers
                log.last_epoch = log_last_epoch
                slow.check(i, data, bound)
                log_last_epoch = log.last_epoch
                continue
            if slow.sealed_at < i - 1:
                slow.unsealed(i)
            slow.sealed_at = i
            since, seal_pos = [], j
            n = len(data)
            if n >= _MIN_RECORD and head == _RECORD_MAGIC and slow.log_version == 1:
                _m, ridx, repoch, elen = rhead(data, 0)
                if (ridx == i and elen + 56 == n and repoch >= log_last_epoch
                        and (bound is None or repoch <= bound_epoch)):
                    lkey = log_hmacs.get(repoch)
                    if lkey is None and repoch - log_last_epoch < max_jump:
                        h = log.chain.hmac_key(repoch)
                        lkey = log_hmacs[repoch] = (h._inner, h._outer)
                    if lkey is not None:
                        inner = lkey[0].copy()
                        inner.update(data[:n - 32])
                        outer = lkey[1].copy()
                        outer.update(inner.digest())
                        if outer.digest() == data[n - 32:]:
                            em, flags, eepoch, seq, _t, slen = ehead(data, 24)
                            stream = fast_sources.get(data[_SRC:_SRC + slen])
                            if (em == _ENTRY_MAGIC and stream is not None
                                    and seq == stream.next_seq
                                    and eepoch >= stream.last_epoch
                                    and not flags & ~_FLAGS and stream.version == 1):
                                off = _SRC + slen
                                off += 2 + u16(data, off)[0]
                                end = off + 4 + u32(data, off)[0] if off + 4 <= n else -1
                                ekey = stream.hmacs.get(eepoch)
                                if ekey is None and eepoch - stream.last_epoch < max_jump:
                                    h = stream.chain.hmac_key(eepoch)
                                    ekey = stream.hmacs[eepoch] = (h._inner, h._outer)
                                if end + 64 == n and ekey is not None:
                                    inner = ekey[0].copy()
                                    inner.update(data[24:end])
                                    outer = ekey[1].copy()
                                    outer.update(inner.digest())
                                    if outer.digest() == data[end:end + 32]:
                                        log_last_epoch = repoch
                                        stream.last_epoch = eepoch
                                        stream.last_index = i
                                        stream.next_seq = seq + 1
                                        continue
            # Slow path: sync the log stream's state, check strictly, read it back.
            log.last_epoch = log_last_epoch
            log.last_index = i - 1
            log.next_seq = i if slow.last_moved != i - 1 else -1
            slow.check(i, data, bound)
            log_last_epoch = log.last_epoch
        since.extend(leaves[seal_pos:])
        seal_pos = 0
        index += m
    size = index
    for stream in sources.values():
        close_segment(stream, damage)
    compact.size = size
    report.size = size
    report.root = compact.root()
    while next_cp < len(cp_sizes) and cp_sizes[next_cp] == size:
        _check_roots(report, damage, by_size[cp_sizes[next_cp]], compact, last_good_cp)
        next_cp += 1
    if next_cp < len(cp_sizes):
        largest = cp_sizes[-1]
        if store_checkpoint_size is not None and store_checkpoint_size < largest:
            damage(size, 'rolled-back', 'the store holds %d records and its newest checkpoint '
                   'is at size %d, but a checkpoint published at size %d exists: the store was '
                   'rolled back, records %d..%d are gone'
                   % (size, store_checkpoint_size, largest, size, largest - 1))
        else:
            damage(size, 'truncated', 'the store holds %d records but a signed checkpoint '
                   'covers %d: records %d..%d are gone' % (size, largest, size, largest - 1))
    elif slow.sealed_at < size - 1:
        # (after a truncation the tail's seal is among what is gone: that explains it)
        slow.unsealed(size)
    report.sources = collections.Counter({n: s.next_seq for n, s in sources.items()})
    if report.ok:
        report.state = AuditState(
            size, list(nodes), log_last_epoch, log.chain.key(log_last_epoch),
            {n: (s.next_seq, s.last_epoch, s.chain.key(s.last_epoch), s.last_index,
                 s.last_leaf, s.version) for n, s in sources.items()},
            since[-1] if since else (resume.log_leaf if resume is not None else None),
            slow.log_version)
    return report


class _SlowPath(object):
    """Strict checks of one record, naming every damage (any record off the fast path)."""

    def __init__(self, log, sources, source_chains, damage, damages):
        self.log = log
        self.sources = sources
        self.source_chains = source_chains
        self.damage = damage
        self.damages = damages
        self.forged_flagged = set()
        self.gaps = {}
        self.last_moved = None
        self.sealed_at = -1         # index of the last sealed record (TSL1 or TSL2)
        self.log_version = 1        # 2 once a TSL2 record was seen

    def unsealed(self, end):
        """Records from after the last sealed one up to ``end`` - 1 have no log seal."""
        first = self.sealed_at + 1
        self.damage(first, 'unsealed', 'records %d..%d are covered by no log seal (no TSL2 '
                    'record seals them): appended by someone without the log key, or the '
                    'sealed record ending their batch was removed' % (first, end - 1))
        self.sealed_at = end - 1

    def bare(self, index, data, leaf):
        """A bare record (an entry) off the fast path."""
        try:
            entry = sealing.decode_entry(data)
        except sealing.SealError as exc:
            self.damage(index, 'malformed', 'record does not parse: %s' % exc)
            return
        _check_entry(index, data, self.sources, self.source_chains, self.damage, entry, leaf)

    def sealed2(self, index, data, leaf, since, bound):
        """A TSL2 record: its seal, position, epoch and span, then its entry."""
        log, damage = self.log, self.damage
        expected_start = max(self.sealed_at, 0)
        prior = self.sealed_at
        self.sealed_at = index
        self.log_version = 2
        try:
            record = sealing.decode_record(data)
        except sealing.SealError as exc:
            damage(index, 'malformed', 'record does not parse: %s' % exc)
            return
        fault = _log_seal_fault(log, data, record)
        if fault:
            damage(index, *fault)
            return
        if (record.epoch < log.last_epoch and record.index == index and prior >= 0
                and prior not in self.forged_flagged):
            self.forged_flagged.add(prior)
            damage(prior, 'forged', 'record sealed in log epoch %d is followed at index %d '
                   'by a genuine sealed record of earlier epoch %d: it was sealed with a key '
                   'that did not exist yet' % (log.last_epoch, index, record.epoch))
        if bound is not None and record.epoch > bound[1]:
            damage(index, 'forged', 'record sealed in log epoch %d, but the checkpoint at '
                   'size %d that covers it was signed in epoch %d'
                   % (record.epoch, bound[0], bound[1]))
        if record.index != index:
            damage(index, 'missing' if record.index > index else 'moved',
                   'record sealed for index %d found at index %d: records %s'
                   % (record.index, index, 'deleted or reordered' if record.index > index
                      else 'inserted, duplicated or reordered'))
        elif record.span_start != expected_start or sealing.span_hash(since) != record.span:
            damage(expected_start, 'modified', 'records %d..%d do not hash to the span the '
                   'log sealed at index %d (from index %d): a record among them changed, or '
                   'records were deleted, inserted or reordered'
                   % (expected_start, index - 1, index, record.span_start), index)
        log.last_epoch = record.epoch
        log.last_index = index
        try:
            entry = sealing.decode_entry(record.entry)
        except sealing.SealError as exc:
            damage(index, 'malformed', 'entry does not parse: %s' % exc)
            return
        _check_entry(index, record.entry, self.sources, self.source_chains, damage, entry,
                     sealing.entry_hash(record.entry))

    def check(self, index, data, bound):
        log, damage, damages = self.log, self.damage, self.damages
        try:
            record = sealing.decode_record(data)
        except sealing.SealError as exc:
            damage(index, 'malformed', 'record does not parse: %s' % exc)
            return
        if self.log_version == 2:
            damage(index, 'forged', 'a format-1 record after the log\'s format-2 records: a '
                   'downgrade (a log that sealed spans never writes format 1 again)')
            return
        fault = _log_seal_fault(log, data, record)
        if fault:
            damage(index, *fault)
            return
        # Only two neighbours both at their sealed positions must be in epoch order; a moved
        # record explains a regression by itself (it is reported as moved).
        if (record.epoch < log.last_epoch and record.index == index
                and log.next_seq == index and log.last_index not in self.forged_flagged):
            self.forged_flagged.add(log.last_index)
            damage(log.last_index, 'forged',
                   'record sealed in log epoch %d is followed at index %d by a genuine record '
                   'of earlier epoch %d: it was sealed with a key that did not exist yet'
                   % (log.last_epoch, index, record.epoch))
        if bound is not None and record.epoch > bound[1]:
            damage(index, 'forged', 'record sealed in log epoch %d, but the checkpoint at '
                   'size %d that covers it was signed in epoch %d'
                   % (record.epoch, bound[0], bound[1]))
        if record.index != index:
            self.last_moved = index
            if record.index > index:
                self.gaps[index] = len(damages)
                damage(index, 'missing', 'record sealed for index %d found at index %d: '
                       'records deleted or reordered' % (record.index, index))
            else:
                where = self.gaps.pop(record.index, None)
                if where is not None and where < len(damages):
                    # The record missing at its own index turned up later: a move, not a loss.
                    damages[where] = Damage(record.index, 'moved', 'record sealed for index %d '
                                            'found at index %d and vice versa: records swapped '
                                            'or reordered' % (index, record.index))
                damage(index, 'moved', 'record sealed for index %d found at index %d: '
                       'records inserted, duplicated or reordered' % (record.index, index))
        log.last_epoch = record.epoch
        log.last_index = index
        _check_entry(index, record.entry, self.sources, self.source_chains, damage)


def _check_roots(report, damage, checkpoints, compact, last_good):
    root = compact.root()
    for cp in checkpoints:
        report.checkpoints_checked += 1
        if cp.root != root:
            damage(last_good, 'root-mismatch', 'records 0..%d do not hash to the root %s of '
                   'the signed checkpoint at size %d (computed %s): a record at or after '
                   'index %d differs from what was signed'
                   % (cp.size - 1, cp.root.hex(), cp.size, root.hex(), last_good), cp.size)


def close_segment(stream, damage):
    """Check the seal of ``stream``'s last entry if it is still pending (format 2).

    That seal covers the chain of entries back to the last one checked on its own.
    """
    data = stream.last_data
    if data is None:
        return
    stream.last_data = None
    try:
        ok = stream.chain.check(stream.last_epoch, data)
    except sealing.SealError as exc:
        ok, why = False, exc.reason
    else:
        why = 'forged without the epoch %d key' % stream.last_epoch
    if ok:
        stream.verified = stream.last_index
        return
    after = ('' if stream.verified is None
             else ' (entries of the source after index %d)' % stream.verified)
    damage(stream.last_index, 'modified', 'seal of source %r does not verify at index %d, the '
           'end of a chain of its entries%s: this entry or one chained before it changed, or '
           'it was %s' % (stream.name, stream.last_index, after, why))
    stream.last_leaf = None


def _check_entry(index, entry_bytes, sources, source_chains, damage, entry=None,
                 ehash=None):
    if entry is None:
        try:
            entry = sealing.decode_entry(entry_bytes)
        except sealing.SealError as exc:
            damage(index, 'malformed', 'entry does not parse: %s' % exc)
            return
    name = entry.source
    stream = sources.stream(name)
    if stream is None:
        chain = source_chains.get(name)
        if chain is None:
            damage(index, 'unverifiable', 'no verification key for source %r' % name)
            return
        stream = _Stream(chain)
        sources.add(name, stream)
    # The chain segment before this entry ends here (format 2): its last seal is checked.
    close_segment(stream, damage)
    if entry.version < stream.version:
        damage(index, 'forged', 'entry of source %r in format %d after its format-%d '
               'entries: a downgrade (a source never goes back to format 1)'
               % (name, entry.version, stream.version))
        stream.last_index = index
        stream.next_seq = max(stream.next_seq, entry.seq + 1)
        return
    if entry.version == 2 and ehash is None:
        ehash = sealing.entry_hash(entry_bytes)
    try:
        ok = stream.chain.check(entry.epoch, entry_bytes)
    except sealing.SealError as exc:
        damage(index, 'forged', 'entry of source %r: %s' % (name, exc.reason))
        return
    if not ok:
        damage(index, 'modified', 'seal of source %r does not verify: entry bytes changed, '
               'or forged without the epoch %d key' % (name, entry.epoch))
        return
    if (stream.last_index is not None and entry.epoch < stream.last_epoch
            and entry.seq == stream.next_seq):
        damage(stream.last_index, 'forged',
               'entry of source %r sealed in epoch %d is followed at index %d by a genuine '
               'entry of earlier epoch %d: it was sealed with a key that did not exist yet'
               % (name, stream.last_epoch, index, entry.epoch))
    elif entry.seq > stream.next_seq:
        gaps = sources.gaps
        if gaps is not None:
            gaps.setdefault(name, []).append((stream.next_seq, entry.seq, len(gaps.damages),
                                              index))
        damage(index, 'missing', 'source %r jumps from sequence %d to %d: entries deleted '
               'or reordered' % (name, stream.next_seq - 1, entry.seq))
    elif entry.seq < stream.next_seq:
        gaps = sources.gaps
        for lo, hi, where, at in (gaps.get(name, ()) if gaps is not None else ()):
            if lo <= entry.seq < hi and where < len(gaps.damages) \
                    and gaps.damages[where].index == at:
                # what was missing there turned up here: a move, not a loss
                gaps.damages[where] = Damage(at, 'moved', 'source %r sequence %d found at '
                                             'index %d, after later ones: entries reordered'
                                             % (name, entry.seq, index))
                break
        damage(index, 'moved', 'source %r repeats or reorders sequence %d after %d'
               % (name, entry.seq, stream.next_seq - 1))
    elif (entry.version == 2 and entry.prev != _NO_PREV and stream.last_leaf is not None
          and entry.prev != stream.last_leaf):
        damage(index, 'forged', 'entry of source %r (sequence %d) names a predecessor other '
               'than the source\'s entry at index %s: two chains under one sequence, one '
               'sealed by someone else holding the epoch %d key'
               % (name, entry.seq, stream.last_index, entry.epoch))
    stream.last_epoch = entry.epoch
    stream.last_index = index
    stream.next_seq = entry.seq + 1
    stream.last_leaf = ehash if entry.version == 2 else None
    stream.version = entry.version
    stream.verified = index
