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
import json

from tclouds_openstack.securelog import merkle
from tclouds_openstack.securelog import sealing

EPOCH_EXTENSION = 'tclouds-securelog-epoch '

# ``end`` is set when the damage is only known to lie somewhere in [index, end): a root
# mismatch, which a precise finding inside that range explains.
Damage = collections.namedtuple('Damage', 'index kind detail end', defaults=(None,))
# When several findings name one index, report the most specific explanation first: a
# forged record also breaks the sequence around it, a moved one also leaves a gap.
_KIND_ORDER = {kind: n for n, kind in enumerate(
    ('forged', 'modified', 'malformed', 'moved', 'missing', 'rolled-back', 'truncated',
     'root-mismatch', 'unverifiable'))}


def checkpoint_epoch(checkpoint):
    """The log sealer's epoch recorded in a checkpoint's extension line (None if absent)."""
    for ext in checkpoint.extensions:
        if ext.startswith(EPOCH_EXTENSION):
            value = ext[len(EPOCH_EXTENSION):]
            if value.isdigit():
                return int(value)
    return None


_STATE_VERSION = 1
_STATE_MAC_DOMAIN = b'tclouds-securelog/v1 audit state\x00'


class AuditState(object):
    """Where an audit that found nothing stopped; :func:`audit` resumes from it.

    ``frontier``: the compact range of the tree at ``size`` (perfect-subtree hashes, left to
    right); ``log_epoch``/``log_key``: the log sealer's epoch of the last record and that
    epoch's key; ``sources``: {name: (next_seq, last_epoch, key of last_epoch, last_index)}.
    The keys are derived from the K0s: keep the state as private as the auditor bundle.
    """

    def __init__(self, size, frontier, log_epoch, log_key, sources):
        self.size = size
        self.frontier = list(frontier)
        self.log_epoch = log_epoch
        self.log_key = log_key
        self.sources = dict(sources)

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
            'sources': {name: [seq, epoch, key.hex(), last]
                        for name, (seq, epoch, key, last) in sorted(self.sources.items())}},
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
            if state['version'] != _STATE_VERSION:
                raise ValueError('version %r' % state['version'])
            out = cls(int(state['size']), [bytes.fromhex(h) for h in state['frontier']],
                      int(state['log_epoch']), bytes.fromhex(state['log_key']),
                      {name: (int(v[0]), int(v[1]), bytes.fromhex(v[2]),
                              None if v[3] is None else int(v[3]))
                       for name, v in state['sources'].items()})
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


class _Stream(object):
    """Ordering state of one sealed stream (the log itself, or one source)."""

    __slots__ = ('chain', 'last_epoch', 'last_index', 'next_seq', 'hmacs')

    def __init__(self, chain):
        self.chain = chain
        self.last_epoch = 0
        self.last_index = None
        self.next_seq = 0
        self.hmacs = {}


class _FastSources(dict):
    """Source streams by encoded name (the fast path's key), mirrored into ``by_name``."""

    def __init__(self, by_name):
        super().__init__()
        self.by_name = by_name

    def stream(self, name):
        return self.by_name.get(name)

    def add(self, name, stream):
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
        for name, (next_seq, epoch, key, last_index) in resume.sources.items():
            stream = _Stream(_ChainFrom(epoch, key))
            stream.next_seq, stream.last_epoch, stream.last_index = next_seq, epoch, last_index
            fast_sources.add(name, stream)
        # a checkpoint of exactly the verified size must have the verified root (a fork)
        if start in by_size:
            _check_roots(report, damage, by_size.pop(start), compact, start)
            cp_sizes = sorted(by_size)
            next_cp_size = cp_sizes[0] if cp_sizes else -1
    nodes = compact._nodes
    slow = _SlowPath(log, fast_sources, source_chains, damage, damages)

    sha256 = merkle._sha256
    rhead = sealing._RECORD_HEAD.unpack_from
    ehead = sealing._ENTRY_HEAD.unpack_from
    u16 = sealing._U16.unpack_from
    u32 = sealing._U32.unpack_from
    log_hmacs = {}
    max_jump = sealing.MAX_EPOCH_JUMP
    index = start - 1
    for index, data in enumerate(records, start):
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

        if type(data) is not bytes:
            data = bytes(data)
        # Merkle leaf into the compact range (inlined CompactRange.append: hot loop).
        nodes.append(sha256(b'\x00' + data).digest())
        width = index
        while width & 1:
            right = nodes.pop()
            nodes[-1] = sha256(b'\x01' + nodes[-1] + right).digest()
            width >>= 1
        # Fast path: a well-formed record at its sealed position, in epoch order, whose two
        # seals verify and whose source continues its sequence. Anything else takes the
        # slow path, which re-parses strictly and names the damage.
        n = len(data)
        if n >= _MIN_RECORD and data[:4] == _RECORD_MAGIC:
            _m, ridx, repoch, elen = rhead(data, 0)
            if (ridx == index and elen + 56 == n and repoch >= log_last_epoch
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
                                and seq == stream.next_seq and eepoch >= stream.last_epoch
                                and not flags & ~_FLAGS):
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
                                    stream.last_index = index
                                    stream.next_seq = seq + 1
                                    continue
        # Slow path: sync the log stream's state, check strictly, read it back.
        log.last_epoch = log_last_epoch
        log.last_index = index - 1
        log.next_seq = index if slow.last_moved != index - 1 else -1
        slow.check(index, data, bound)
        log_last_epoch = log.last_epoch
    size = index + 1
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
    report.sources = collections.Counter({n: s.next_seq for n, s in sources.items()})
    if report.ok:
        report.state = AuditState(
            size, list(nodes), log_last_epoch, log.chain.key(log_last_epoch),
            {n: (s.next_seq, s.last_epoch, s.chain.key(s.last_epoch), s.last_index)
             for n, s in sources.items()})
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

    def check(self, index, data, bound):
        log, damage, damages = self.log, self.damage, self.damages
        try:
            record = sealing.decode_record(data)
        except sealing.SealError as exc:
            damage(index, 'malformed', 'record does not parse: %s' % exc)
            return
        try:
            key = log.chain.hmac_key(record.epoch)
        except sealing.SealError as exc:
            damage(index, 'forged', 'record %s' % exc.reason)
            return
        if not hmac.compare_digest(key.tag(data[:-sealing.TAG_SIZE]), record.tag):
            damage(index, 'modified', 'log seal does not verify: record bytes changed, or '
                   'written by someone without the epoch %d key' % record.epoch)
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


def _check_entry(index, entry_bytes, sources, source_chains, damage):
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
        damage(index, 'missing', 'source %r jumps from sequence %d to %d: entries deleted '
               'or reordered' % (name, stream.next_seq - 1, entry.seq))
    elif entry.seq < stream.next_seq:
        damage(index, 'moved', 'source %r repeats or reorders sequence %d after %d'
               % (name, entry.seq, stream.next_seq - 1))
    stream.last_epoch = entry.epoch
    stream.last_index = index
    stream.next_seq = entry.seq + 1
