"""The secure log store (adapter): oslo.db persistence around the pure core.

One writer process per log (the ingestion service, the API service or the CLI) owns the
log sealer and the in-memory Merkle tree; it appends in batches, each batch one database
transaction, after the log sealer's evolved state was saved (so a crash can lose a batch
that was not acknowledged, never leave half of one, and never make the sealer go back to an
older key). Appends are idempotent by ``(source, seq)``: a redelivered entry is skipped.
Readers (proofs, audits, the REST API) may be any number of processes.

Durable points per batch: the commit, and the sealers' key files only when a key evolves
(once an epoch). Within an epoch nothing else needs saving: the log sealer's sequence is
the log index, and :meth:`SecureLogStore.append_events` (a source living with the store)
takes its source's next sequence number from the records committed so far, in the same
transaction. A source that hands its entries out (:meth:`.Source.seal`, the driver) must
save its state before they leave it: that is a second durable point, on the source's host.
"""
import bisect
import collections
import contextlib
import functools
import itertools
import json
import logging
import operator
import os
import struct
import threading
import time

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from tclouds_openstack.common import db
from tclouds_openstack.securelog import audit as auditmod
from tclouds_openstack.securelog import checkpoint as cpmod
from tclouds_openstack.securelog import exporters as expmod
from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import log as logmod
from tclouds_openstack.securelog import merkle
from tclouds_openstack.securelog import models
from tclouds_openstack.securelog import sealing

LOG = logging.getLogger(__name__)
MIGRATIONS = os.path.join(os.path.dirname(__file__), 'migrations')
VERSION_TABLE = 'securelog_alembic_version'
_records = models.Record.__table__
_first = operator.itemgetter(0)
_second = operator.itemgetter(1)
_checkpoints = models.Checkpoint.__table__
_batches = models.Batch.__table__
_evidence = models.Evidence.__table__
# Kinds of evidence (securelog_evidence.kind).
CONFLICT = 'conflict'
BAD_SEAL = 'bad-seal'
UNVERIFIABLE = 'unverifiable'
UNKNOWN_SOURCE = 'unknown-source'


# Storage layouts: 1, one row per record with its bytes; 2, the records of an appended
# batch in one row of securelog_batches (their rows keep the index columns, data NULL),
# so that reading the log costs one database row per batch, not per record.
LAYOUTS = (1, 2)
BATCH_MAGIC = b'TSB1'
_BATCH_HEAD = struct.Struct('>4sI')


def pack_batch(records):
    """One securelog_batches row's bytes: magic, count, the records' lengths, the records."""
    records = [bytes(r) for r in records]
    return b''.join([_BATCH_HEAD.pack(BATCH_MAGIC, len(records)),
                     struct.pack('>%dI' % len(records), *map(len, records))] + records)


def unpack_batch(data, offset=0):
    """The records of a batch row and None, or what parses and why the rest does not.

    The row is ``data`` from ``offset`` on (a driver's packet that ends with it: its
    records are sliced from the packet, the row is not copied out first). When the row
    does not parse, the records up to where it stops come first and the rest of the row
    follows as one record (which the audit finds malformed).
    """
    data = bytes(data)
    try:
        magic, count = _BATCH_HEAD.unpack_from(data, offset)
        lengths = struct.unpack_from('>%dI' % count, data, offset + _BATCH_HEAD.size)
    except struct.error:
        magic = None
    if magic != BATCH_MAGIC:
        return [data[offset:]], ('not a batch of storage layout 2 (%d bytes)'
                                 % (len(data) - offset))
    ends = list(itertools.accumulate(lengths, initial=offset + _BATCH_HEAD.size + 4 * count))
    if ends[-1] == len(data):
        return list(map(data.__getitem__, map(slice, ends, ends[1:]))), None
    whole = bisect.bisect_right(ends, len(data)) - 1
    out = list(map(data.__getitem__, map(slice, ends[:whole], ends[1:whole + 1])))
    if ends[whole] < len(data):
        out.append(data[ends[whole]:])
    return out, ('its %d records\' lengths add up to %d bytes, the row holds %d'
                 % (count, ends[-1] - offset, len(data) - offset))


# A row of securelog_records with the record's bytes (what get and list return).
StoredRecord = collections.namedtuple('StoredRecord', [c.name for c in _records.columns])


class _LayoutCheck(object):
    """Where the batch rows (layout 2) one audit reads disagree with each other.

    ``findings``: (index, kind, detail, end) for the report; the store adds whether the
    records' index rows match the batch rows.
    """

    def __init__(self):
        self.first = self.end = None        # the records the batch rows hold: [first, end)
        self.findings = []
        # None, or a callable: the count of index rows from ``first`` on, asked when the
        # reading began (MySQL: the server counts while the batch rows are checked)
        self.index_rows = None

    def batch(self, at, count, why):
        if why is not None:
            self.findings.append((at, 'malformed', 'batch row at index %d: %s' % (at, why),
                                  None))
        if at != self.end:
            self.findings.append((min(at, self.end), 'missing' if at > self.end else 'moved',
                                  'the batch row at index %d follows one whose records end '
                                  'at %d: batch rows deleted, moved or changed'
                                  % (at, self.end), None))
        self.end = at + count


class StoreError(Exception):
    """The store cannot do what was asked; the message says why and what to do."""


class BadEntry(StoreError):
    """An entry offered for appending is malformed; names its position in the batch."""

    def __init__(self, position, reason):
        self.position = position
        super().__init__('entry %d of the batch: %s' % (position, reason))


def _event_type(entry):
    if entry.flags & sealing.FLAG_ENCRYPTED:
        return ''
    try:
        payload = json.loads(entry.payload)
    except ValueError:
        return ''
    if isinstance(payload, dict):
        value = payload.get('event_type') or payload.get('action') or ''
        return str(value)[:255]
    return ''


def _event_type_of(event, entry):
    """:func:`_event_type` of an entry sealed from ``event`` without parsing it back."""
    if entry[4] & sealing.FLAG_ENCRYPTED:
        return ''
    if isinstance(event, dict):
        value = event.get('event_type') or event.get('action') or ''
        if isinstance(value, str):
            return value[:255]
        # Anything else: exactly what the sealed JSON says (json may change its type).
        return _event_type(sealing.decode_entry(entry))
    return ''


_ALARMS = {CONFLICT: 'securelog.entry.conflict', BAD_SEAL: 'securelog.entry.refused',
           UNVERIFIABLE: 'securelog.entry.refused', UNKNOWN_SOURCE: 'securelog.source.unknown'}


class _Plan(object):
    """What one append does with each candidate entry (de-duplication and evidence).

    Everything is decided before anything is written; :meth:`write_evidence` then writes.
    """

    def __init__(self, keys, now_ns):
        self.keys = keys
        self.now_ns = now_ns
        self.fresh = []             # rows for SecureLogStore._seal_and_insert
        self._outcome = []          # per candidate: its (source, seq) if appended, else None
        self._position = {}         # (source, seq) -> position in fresh
        self._rows = []             # evidence rows to insert
        self._updates = []          # (held evidence id, values)
        self._alarms = []           # (event type, payload)
        self._unknown = {}          # source -> entries held in this batch

    def decide(self, candidates, stored, kept):
        """Decide the fate of every candidate, in order.

        ``candidates``: [(held evidence id or None, entry bytes, Entry)]; ``stored``:
        {(source, seq): (log index, entry bytes)}; ``kept``: evidence already kept, as
        {(kind, source, seq, entry bytes)}.
        """
        accepted = {}
        for held_id, data, entry in candidates:
            key = (entry.source, entry.seq)
            prior = stored.get(key)
            prior_data = prior[1] if prior is not None else accepted.get(key)
            if prior_data is not None:
                self._outcome.append(None)
                if prior_data == data:
                    # the same entry again (a redelivery): nothing to keep
                    if held_id is not None:
                        self._updates.append((held_id, {'released_index': prior[0]}
                                              if prior is not None else
                                              {'released_index': ('fresh', key)}))
                    continue
                problem = self.keys.check(entry, data)
                where = ('at index %d' % prior[0] if prior is not None
                         else 'earlier in the same batch')
                seal = ('its seal verifies: the source, or someone holding its key, '
                        'sealed two entries under one sequence number'
                        if problem is None else 'its seal is not the source\'s (%s)'
                        % problem[1])
                self._keep(held_id, CONFLICT, entry, data, kept,
                           'conflicting duplicate: source %r sequence %d differs from the '
                           'entry the log holds %s, which stays; %s'
                           % (entry.source, entry.seq, where, seal),
                           prior[0] if prior is not None else ('fresh', key))
                continue
            problem = self.keys.check(entry, data)
            if problem is not None:
                self._outcome.append(None)
                self._keep(held_id, problem[0], entry, data, kept, problem[1])
                continue
            accepted[key] = data
            self._position[key] = len(self.fresh)
            self.fresh.append((data, entry.source, entry.seq, entry.tenant[:255],
                               _event_type(entry), entry.time_ns))
            self._outcome.append(key)
            if held_id is not None:
                self._updates.append((held_id, {'released_index': ('fresh', key)}))

    def _keep(self, held_id, kind, entry, data, kept, reason, stored_index=None):
        values = {'kind': kind, 'reason': reason, 'stored_index': stored_index}
        if held_id is not None:
            self._updates.append((held_id, values))
        else:
            mark = (kind, entry.source, entry.seq, data)
            if mark in kept:
                return          # kept already (a redelivery of the same evidence)
            kept.add(mark)
            self._rows.append(dict(values, source=entry.source, seq=entry.seq,
                                   received_ns=self.now_ns, released_index=None,
                                   entry=data))
        if kind == UNKNOWN_SOURCE:
            self._unknown.setdefault(entry.source, []).append(entry.seq)
        else:
            # tenant: the project the refused entry claims (a tenant's report lists the
            # alarms about its records; the claim of an unverified entry is only a claim)
            self._alarms.append((_ALARMS[kind], {
                'kind': kind, 'source': entry.source, 'seq': entry.seq, 'reason': reason,
                'stored_index': stored_index, 'tenant': entry.tenant}))

    def _index(self, value, first):
        if isinstance(value, tuple):
            return first + self._position[value[1]]
        return value

    def write_evidence(self, conn, first):
        rows = [dict(r, stored_index=self._index(r['stored_index'], first))
                for r in self._rows]
        if rows:
            conn.execute(_evidence.insert(), rows)
        for held_id, values in self._updates:
            values = {k: self._index(v, first) for k, v in values.items()}
            conn.execute(_evidence.update().where(_evidence.c.id == held_id).values(**values))

    def alarms(self, first):
        out = [(event_type, dict(payload, stored_index=self._index(payload['stored_index'],
                                                                   first)))
               for event_type, payload in self._alarms]
        for source, seqs in sorted(self._unknown.items()):
            out.append((_ALARMS[UNKNOWN_SOURCE], {
                'kind': UNKNOWN_SOURCE, 'source': source, 'seq': min(seqs),
                'held': len(seqs), 'stored_index': None,
                'reason': '%d entr%s of source %r held, not appended (sequence %d..%d): the '
                          'source is not enrolled for ingestion; enrol its K0 with '
                          '"tclouds-securelog enroll-source" and they are appended in order'
                          % (len(seqs), 'y' if len(seqs) == 1 else 'ies', source,
                             min(seqs), max(seqs))}))
        return out

    def result(self, first):
        return [None if key is None else first + self._position[key]
                for key in self._outcome]


class SecureLogStore(object):
    def __init__(self, connection, state_dir, auditor_dir=None, origin='tclouds-securelog',
                 epoch_seconds=60.0, epoch_entries=100000, exporters=(), cosigners=(),
                 checkpoint_interval=10.0, migrate=True, source_keys_dir=None, alarm=None,
                 enroll_from_dirs=(), layout=2):
        if layout not in LAYOUTS:
            raise StoreError('storage layout %r is not one of %s' % (layout, LAYOUTS))
        self.layout = layout      # of the batches this store appends (both always read)
        self.connection = connection
        self.state_dir = state_dir
        self.auditor_dir = auditor_dir or os.path.join(state_dir, 'auditor')
        # The sources' verification keys (enrolled by an admin), and who hears alarms.
        self.source_keys = keyfiles.SourceKeys(
            keyfiles.source_keys_dir(state_dir, source_keys_dir), enroll_from_dirs)
        self.alarm = alarm
        self.origin = origin
        self.exporters = list(exporters)
        self.cosigners = list(cosigners)
        self.checkpoint_interval = checkpoint_interval
        if migrate:
            db.migrate(connection, MIGRATIONS, VERSION_TABLE)
        self.engine = db.create_engine(connection)
        self._keepalive = None
        if self.engine.dialect.name == 'sqlite':
            sa.event.listen(self.engine, 'connect', _sqlite_wal)
            # oslo.db gives file sqlite a NullPool: every batch would open and close a
            # connection, and the last close checkpoints the WAL (more fsyncs). The writer
            # keeps one connection for its appends instead.
            self._keepalive = self.engine.connect()
        self._sealer_args = dict(epoch_seconds=epoch_seconds, epoch_entries=epoch_entries)
        self._signer = None
        self._log_file = None
        self._tree = None
        self._lock = threading.RLock()
        self._last_checkpoint = 0.0

    def close(self):
        """Release database connections (the object must not be used afterwards)."""
        if self._keepalive is not None:
            self._keepalive.close()
            self._keepalive = None
        self.engine.dispose()

    @classmethod
    def from_conf(cls, conf, **kwargs):
        opts = conf.securelog
        cosigners = [_load_witness(path) for path in opts.witness_key_files]
        args = dict(connection=opts.connection, state_dir=opts.state_dir,
                    auditor_dir=opts.auditor_dir, origin=opts.origin,
                    epoch_seconds=opts.epoch_seconds, epoch_entries=opts.epoch_entries,
                    exporters=expmod.from_conf(conf), cosigners=cosigners,
                    checkpoint_interval=opts.checkpoint_interval,
                    layout=opts.storage_layout,
                    source_keys_dir=opts.source_keys_dir,
                    enroll_from_dirs=opts.enroll_from_dirs)
        args.update(kwargs)
        return cls(**args)

    # ---- writer side ----

    def _sealer_file(self):
        # One object for the store's life: it keeps the sealer (and its count of records
        # in the epoch, which is not saved every batch) between batches.
        if self._log_file is None:
            self._log_file = keyfiles.SealerFile(
                os.path.join(self.state_dir, 'log-sealer.json'), 'log', self.auditor_dir,
                k0_filename='log.k0', **self._sealer_args)
        return self._log_file

    @property
    def signer(self):
        if self._signer is None:
            self._signer = keyfiles.load_or_create_signer(
                os.path.join(self.state_dir, 'checkpoint-signing.key'), self.origin,
                self.auditor_dir)
        return self._signer

    def tree(self):
        """The Merkle tree of the stored records (loaded once, then kept current)."""
        with self._lock:
            if self._tree is None:
                self._tree = self._load_tree()
            return self._tree

    def _load_tree(self):
        tree = merkle.MerkleTree()
        query = sa.select(_records.c.log_index, _records.c.leaf_hash).order_by(
            _records.c.log_index)
        with self.engine.connect() as conn:
            for index, leaf_hash in conn.execute(query):
                if index != tree.size:
                    raise StoreError('the store has no record at index %d (next is %d): it '
                                     'was damaged; run "tclouds-securelog verify" before '
                                     'appending' % (tree.size, index))
                tree.append_hash(bytes(leaf_hash))
        return tree

    def append(self, entries, now_ns=None):
        """Append encoded sealed entries from elsewhere; returns [log index, or None].

        Entries arrive from the bus, where anyone may publish: each entry's source seal is
        verified with the source's enrolled key (:attr:`source_keys`) before it is
        appended. None marks an entry not appended: an exact redelivery of a stored entry
        (skipped), or one kept as evidence with an alarm (:meth:`evidence`): a different
        entry under a ``(source, seq)`` the log holds (``conflict``, the stored one stays),
        a seal that does not verify (``bad-seal``) or no longer can (``unverifiable``), a
        source nobody enrolled (``unknown-source``: held, and appended in order once it is
        enrolled, see :meth:`release_held`). So a forged entry cannot take the place of a
        genuine one, and neither is dropped silently. Malformed entries raise
        :class:`BadEntry` before anything is written.
        """
        decoded = []
        for pos, data in enumerate(entries):
            try:
                decoded.append((bytes(data), sealing.decode_entry(data)))
            except sealing.SealError as exc:
                raise BadEntry(pos, str(exc))
        if not decoded:
            return []
        return self._append(decoded, now_ns)

    def enroll_source(self, name, k0, replace=False):
        """Accept entries of source ``name`` sealed from ``k0`` (see keyfiles.enroll_source)."""
        written = keyfiles.enroll_source(self.source_keys.directory, name, k0, replace)
        with self._lock:
            self.source_keys.forget(name)
        return written

    def release_held(self, now_ns=None):
        """Append the held entries of sources enrolled since; returns how many went in."""
        return sum(1 for index in self._append([], now_ns, every_source=True)
                   if index is not None)

    def _append(self, decoded, now_ns, every_source=False):
        now_ns = now_ns if now_ns is not None else time.time_ns()
        keys = self.source_keys
        alarms = []
        with self._lock:
            tree = self.tree()
            try:
                with self._write_transaction() as conn:
                    # entries held for sources enrolled since go first, in order
                    held = [h for h in self._held(conn, None if every_source else
                                                  {e.source for _d, e in decoded})
                            if keys.known(h[2].source)]
                    plan = _Plan(keys, now_ns)
                    plan.decide(held + [(None, data, entry) for data, entry in decoded],
                                self._stored_entries(conn, held + [
                                    (None, d, e) for d, e in decoded]),
                                self._evidence_held(conn, decoded))
                    first = None
                    if plan.fresh:
                        first, leaf_hashes = self._seal_and_insert(conn, tree, plan.fresh,
                                                                   now_ns)
                    plan.write_evidence(conn, first)
                    alarms = plan.alarms(first)
            except BaseException:
                keys.rollback()
                raise
            keys.commit()
            if plan.fresh:
                self._grown(tree, leaf_hashes)
            out = plan.result(first)[len(held):]
        for event_type, payload in alarms:
            self._alarm(event_type, payload)
        if plan.fresh:
            self._maybe_checkpoint()
        return out

    def _alarm(self, event_type, payload):
        LOG.error('securelog: %s: %s', event_type, payload['reason'])
        if self.alarm is not None:
            try:
                self.alarm(event_type, payload)
            except Exception:  # the evidence is stored; a lost notification must not undo it
                LOG.exception('securelog: could not send the %s alarm', event_type)

    @staticmethod
    def _held(conn, sources):
        """[(evidence id, entry bytes, Entry)] held for ``sources`` (None: every source)."""
        q = sa.select(_evidence.c.id, _evidence.c.entry).where(
            _evidence.c.kind == UNKNOWN_SOURCE, _evidence.c.released_index.is_(None))
        if sources is not None:
            if not sources:
                return []
            q = q.where(_evidence.c.source.in_(sorted(sources)))
        rows = [(i, bytes(e), sealing.decode_entry(e)) for i, e in conn.execute(
            q.order_by(_evidence.c.source, _evidence.c.seq, _evidence.c.id))]
        return rows

    def _stored_entries(self, conn, candidates):
        """{(source, seq): (log index, entry bytes)} of the candidates' keys the log holds."""
        by_source = {}
        for _h, _d, e in candidates:
            by_source.setdefault(e.source, set()).add(e.seq)
        found = {}
        for source, seqs in by_source.items():
            q = sa.select(_records).where(
                _records.c.source == source,
                _records.c.seq.between(min(seqs), max(seqs)))
            rows = [row for row in conn.execute(q) if row.seq in seqs]
            for row in self._with_bytes(conn, rows):
                found[(source, row.seq)] = (row.log_index, sealing.record_entry(row.data))
        return found

    @staticmethod
    def _evidence_held(conn, decoded):
        """{(kind, source, seq, entry bytes)} already kept for the batch's keys."""
        by_source = {}
        for _d, e in decoded:
            by_source.setdefault(e.source, set()).add(e.seq)
        found = set()
        for source, seqs in by_source.items():
            q = sa.select(_evidence.c.kind, _evidence.c.seq, _evidence.c.entry).where(
                _evidence.c.source == source,
                _evidence.c.seq.between(min(seqs), max(seqs)))
            found.update((kind, source, seq, bytes(entry))
                         for kind, seq, entry in conn.execute(q) if seq in seqs)
        return found

    def evidence(self, kind=None, source=None, marker=0, limit=100):
        """Rows of ``securelog_evidence``, oldest first, ids from ``marker`` on.

        Columns: id, kind, source, seq, received_ns, reason, stored_index, released_index,
        entry.
        """
        q = sa.select(_evidence).where(_evidence.c.id >= marker)
        if kind:
            q = q.where(_evidence.c.kind == kind)
        if source:
            q = q.where(_evidence.c.source == source)
        with self.engine.connect() as conn:
            return conn.execute(q.order_by(_evidence.c.id).limit(limit)).all()

    def append_events(self, source, events, now_ns=None):
        """Seal [(event object, tenant)] as ``source`` and append them: one transaction.

        For a source that lives with the store (the CLI, a co-located service). Its
        sequence numbers are the ones committed in the store: the next batch continues from
        the largest stored one, read in the same transaction, so a batch is durable at one
        point, its commit, and a crash before it loses the batch and its numbers together
        (nothing sealed left the process). Its key file (``source.state_dir``) is replaced
        before the commit whenever the key evolved, exactly as for the log sealer: the old
        key is gone before anything sealed with the new one exists. Such a source's file
        is marked and refuses :meth:`.Source.seal` afterwards. Returns the log indexes.
        """
        if not events:
            return []
        now_ns = now_ns if now_ns is not None else time.time_ns()
        sfile = source.store_file()
        with self._lock:
            tree = self.tree()
            with sfile as sealer:
                try:
                    with self._write_transaction() as conn:
                        sealer.next_seq = first_seq = max(
                            sealer.next_seq, self._next_seq(conn, source.name))
                        sfile.resume(first_seq)
                        epoch = sealer.epoch
                        name = source.name
                        fresh = []
                        for event, tenant in events:
                            tenant = tenant or ''
                            data = source.seal_one(sealer, event, tenant, now_ns)
                            fresh.append((data, name, sealer.next_seq - 1, tenant[:255],
                                          _event_type_of(event, data), now_ns))
                        if sealer.epoch != epoch:
                            sfile.save(next_seq=first_seq, epoch_start=(
                                sealer.next_seq - sealer.entries_in_epoch))
                        first, leaf_hashes = self._seal_and_insert(conn, tree, fresh, now_ns)
                except BaseException:
                    sfile.invalidate()
                    raise
            self._grown(tree, leaf_hashes)
        self._maybe_checkpoint()
        return list(range(first, first + len(fresh)))

    def _seal_and_insert(self, conn, tree, fresh, now_ns):
        """Log-seal and insert rows in ``conn``'s transaction; the tree is untouched.

        ``fresh``: [(entry, source, seq, tenant, event type, time)]. Returns (first index,
        leaf hashes).
        """
        sealer_file = self._sealer_file()
        try:
            with sealer_file as sealer:
                sealer_file.resume(tree.size)
                epoch_before = sealer.epoch
                writer = logmod.LogWriter(self.origin, sealer, self.signer, tree)
                records = writer.seal([row[0] for row in fresh], now_ns)
                # An evolved key must be on disk (and the old one gone) before records
                # sealed with it exist. Within an epoch nothing else needs saving: the
                # log's index comes from the database, and so does the count of records
                # in the epoch after a restart (from epoch_start): no fsyncs then.
                if sealer.epoch != epoch_before:
                    sealer_file.save(epoch_start=(
                        tree.size + len(records) - sealer.entries_in_epoch))
        except BaseException:
            sealer_file.invalidate()
            raise
        hash_leaf = merkle.hash_leaf
        leaf_hashes = [hash_leaf(rec) for _i, rec in records]
        batch = self.layout == 2
        rows = [(index, row[1], row[2], row[3], row[4], row[5], leaf, None if batch else rec)
                for (index, rec), row, leaf in zip(records, fresh, leaf_hashes)]
        try:
            conn.exec_driver_sql(self._insert_sql, rows)
            if batch:
                conn.execute(_batches.insert(), {
                    'first_index': records[0][0],
                    'data': pack_batch(rec for _i, rec in records)})
        except sa_exc.IntegrityError as exc:
            # Another writer appended meanwhile: reload and let the caller retry.
            self._tree = None
            raise StoreError('concurrent append detected (%s); only one writer per '
                             'log is supported, retry' % exc.orig)
        return records[0][0], leaf_hashes

    @staticmethod
    def _grown(tree, leaf_hashes):
        for leaf in leaf_hashes:
            tree.append_hash(leaf)

    def _maybe_checkpoint(self):
        if self.checkpoint_interval == 0 or (
                time.monotonic() - self._last_checkpoint >= self.checkpoint_interval):
            self.checkpoint()

    @staticmethod
    def _next_seq(conn, source):
        """One past the largest sequence number of ``source`` in the store (0 if none)."""
        last = conn.execute(sa.select(sa.func.max(_records.c.seq)).where(
            _records.c.source == source)).scalar()
        return 0 if last is None else last + 1

    @contextlib.contextmanager
    def _write_transaction(self):
        if self._keepalive is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._keepalive.begin():
            yield self._keepalive

    @property
    def _insert_sql(self):
        mark = '?' if self.engine.dialect.paramstyle == 'qmark' else '%s'
        return ('INSERT INTO securelog_records (log_index, source, seq, tenant, event_type, '
                'time_ns, leaf_hash, data) VALUES (%s)' % ', '.join([mark] * 8))

    def checkpoint(self, timestamp=None):
        """Sign, store and export a checkpoint of the current tree; returns the note."""
        with self._lock:
            tree = self.tree()
            with self._sealer_file() as sealer:
                writer = logmod.LogWriter(self.origin, sealer, self.signer, tree,
                                          self.cosigners)
                note = writer.checkpoint(timestamp or int(time.time()))
            with self.engine.begin() as conn:
                exists = conn.execute(sa.select(_checkpoints.c.tree_size).where(
                    _checkpoints.c.tree_size == tree.size)).first()
                if exists is None:
                    conn.execute(_checkpoints.insert(), {
                        'tree_size': tree.size, 'created_ns': time.time_ns(),
                        'note': note.decode('utf-8')})
                else:
                    note = self.checkpoint_note(tree.size)
            self._last_checkpoint = time.monotonic()
            for exporter in self.exporters:
                try:
                    exporter.publish(tree.size, note)
                except expmod.ExportError as exc:
                    LOG.warning('checkpoint %d not exported: %s', tree.size, exc)
            return note

    # ---- reader side ----

    def size(self):
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(_records)).scalar()

    def iter_records(self, batch=20000, start=0):
        """Record bytes in log order from index ``start``, in constant memory on any database."""
        with self._record_stream(batch, start) as stream:
            yield from stream

    @staticmethod
    def _layout2_start(conn):
        """The first index of the records stored in batches (layout 2), or None.

        Records before it are read from their own rows, from it on from the batches only
        (a row's own bytes there are not the log's): the audit, :meth:`get` and :meth:`list`
        read one and the same log.
        """
        return conn.execute(sa.select(sa.func.min(_batches.c.first_index))).scalar()

    @contextlib.contextmanager
    def _record_stream(self, batch=20000, start=0, layout=None, count=False):
        """An iterator over the record bytes from ``start`` (valid inside the context).

        The rows come straight from the driver's cursor and are taken apart in C (map,
        chain): no SQLAlchemy row objects and no Python frame per record. ``layout``: a
        :class:`_LayoutCheck` to note where the batch rows themselves are inconsistent.
        ``count``: where the batch rows are read by :meth:`_batch_rows_streamed`, the
        server is also asked for the count of index rows from the first batch row read on
        as the reading begins (``layout.index_rows``), and counts meanwhile.
        """
        layout = layout if layout is not None else _LayoutCheck()
        with self.engine.connect() as conn, contextlib.ExitStack() as stack:
            boundary = self._layout2_start(conn)
            first = None
            if boundary is not None:
                first = conn.execute(sa.select(sa.func.max(_batches.c.first_index)).where(
                    _batches.c.first_index <= max(start, boundary))).scalar()
            dbapi = conn.connection.dbapi_connection
            if self.engine.dialect.name == 'sqlite':
                # read the pages where they are mapped, not one read() each (this
                # connection only reads; a file sqlite connection is not pooled)
                dbapi.execute('PRAGMA mmap_size=%d' % (1 << 30))
            parts = []
            rows_too = boundary is None or start < boundary
            if rows_too:
                cursor = dbapi.cursor()
                stack.callback(cursor.close)
                parts.append(self._rows_from(cursor, batch, start, boundary))
            if first is not None:
                if self._streams_ranges():
                    last = conn.execute(sa.select(sa.func.max(_batches.c.first_index))).scalar()
                    if count:
                        # on this connection unless it reads the rows of layout 1
                        layout.index_rows = self._count_sent(stack, first, None if rows_too
                                                             else dbapi)
                    rows = self._batch_rows_streamed(stack, first, last)
                else:
                    cursor = dbapi.cursor()
                    stack.callback(cursor.close)
                    rows = self._batch_rows(cursor, first)
                parts.append(itertools.chain.from_iterable(self._batches_from(
                    rows, first, max(start, boundary), layout)))
            yield itertools.chain.from_iterable(parts)

    @staticmethod
    def _index_rows_finding(conn, layout, rows):
        """Where the index rows from ``layout.first`` on are not one per batch-row record.

        The first index without its row, or where rows without records begin.
        """
        query = sa.select(_records.c.log_index).where(
            _records.c.log_index >= layout.first).order_by(_records.c.log_index)
        expected = layout.first
        for (index,) in conn.execution_options(yield_per=10000).execute(query):
            if index != expected:
                break
            expected += 1
        if expected < layout.end:
            return (expected, 'missing', 'record %d has no index row (source, sequence, '
                    'tenant, leaf hash) though its batch row holds it: the row was deleted'
                    % expected, None)
        return (layout.end, 'missing', 'the store has index rows from index %d on (%d in '
                'all from %d) but its batch rows end at %d: their records were deleted'
                % (layout.end, rows, layout.first, layout.end), None)

    def _mark(self):
        return '?' if self.engine.dialect.paramstyle == 'qmark' else '%s'

    def _rows_from(self, cursor, batch, start, end):
        """Layout 1: the bytes of the records' own rows from ``start`` up to ``end``."""
        end = (1 << 63) - 1 if end is None else end
        mark = self._mark()
        if self.engine.dialect.name == 'sqlite':
            # sqlite streams a plain cursor.
            # (a row without bytes before the batch rows reads as an empty record, which
            # the audit finds malformed at its index)
            cursor.execute('SELECT COALESCE(data, ?) FROM securelog_records WHERE '
                           'log_index >= ? AND log_index < ? ORDER BY log_index',
                           (b'', start, end))
            return map(_first, cursor)
        # Elsewhere keyset pagination (client-side cursors would buffer the whole log).
        query = ('SELECT log_index, COALESCE(data, %s) FROM securelog_records WHERE '
                 'log_index >= %s AND log_index < %s ORDER BY log_index LIMIT %d'
                 % (mark, mark, mark, batch))

        def pages(start):
            while True:
                cursor.execute(query, (b'', start, end))
                rows = cursor.fetchall()
                yield map(_second, rows)
                if len(rows) < batch:
                    return
                start = rows[-1][0] + 1
        return itertools.chain.from_iterable(pages(start))

    def _batch_rows(self, cursor, first, page_bytes=8 << 20):
        """Layout 2: (first index, bytes, 0) of the batch rows from the one at ``first`` on.

        Elsewhere than sqlite (PostgreSQL) the rows come in pages of about ``page_bytes``
        (batches of one record are as common as of 10,000).
        """
        query = ('SELECT first_index, data, 0 FROM securelog_batches WHERE first_index >= %s '
                 'ORDER BY first_index' % self._mark())
        if self.engine.dialect.name == 'sqlite':
            cursor.execute(query, (first,))
            return cursor

        def pages(first, page=16):
            while True:
                cursor.execute(query + ' LIMIT %d' % page, (first,))
                part = cursor.fetchall()
                yield part
                if len(part) < page:
                    return
                first = part[-1][0] + 1
                size = sum(len(data) for _at, data, _offset in part) // len(part) + 1
                page = max(1, min(10000, page_bytes // size))
        return itertools.chain.from_iterable(pages(first))

    # MySQL and MariaDB: how many ranges of batch rows are read at once, and their size.
    STREAMS = 3
    RANGE_BYTES = 4 << 20

    def _streams_ranges(self):
        """Whether the batch rows are read by :meth:`_batch_rows_streamed` (MySQL, MariaDB)."""
        return (self.engine.dialect.name == 'mysql'
                and _stream_cursor(self.engine.dialect.dbapi) is not None)

    def _batch_rows_streamed(self, stack, first, last):
        """Layout 2 from MySQL or MariaDB: (first index, bytes, offset) of the batch rows.

        From the one at ``first`` on; a row's bytes are ``bytes[offset:]``.

        The rows are read in consecutive ranges of log indexes, :attr:`STREAMS` ranges at a
        time, each range one query on a connection of its own with an unbuffered cursor
        (the driver's ``SSCursor``: rows are read from the socket as they are used, never
        the whole result; with PyMySQL, ``execute`` only sends the query, see
        :func:`_stream_cursor`). While the auditor checks one range, the server is already
        reading the next ranges' rows (InnoDB reads a BLOB's pages one synchronous 16 KiB
        read at a time where they are not cached, with no read-ahead) and sending them into
        their sockets, which hold them until they are used: the server's reads overlap
        with each other and with the auditor's hashing, with no thread in the auditor and
        at most :attr:`STREAMS` ranges in the sockets. A range spans about
        :attr:`RANGE_BYTES` of records and at least the records of one batch row (from what
        was read so far), so that a range is mostly one row the server reads ahead. The
        rows are those up to the one at ``last`` (the last when the reading began: later
        appends are left for the next audit); ``stack`` closes the cursors, reading what
        is left of their ranges (an iterator stopped early).
        """
        cursor_class = _stream_cursor(self.engine.dialect.dbapi)
        packets = hasattr(cursor_class, 'rows_in_packets')
        query = ('SELECT first_index, data%s FROM securelog_batches WHERE first_index >= %%s '
                 'AND first_index < %%s ORDER BY first_index' % ('' if packets else ', 0'))
        pending = collections.deque()
        span = [max(1, self.RANGE_BYTES // 512), first]   # records per range, next range

        def issue(cursor):
            if span[1] <= last:
                cursor.execute(query, (span[1], span[1] + span[0]))
                pending.append(cursor)
                span[1] += span[0]
        # a connection per range read at once, opened when there is a range for it (each
        # new connection costs PyMySQL about 30 ms of CPU, its TLS context)
        while len(pending) < self.STREAMS and span[1] <= last:
            raw = stack.enter_context(self.engine.connect()).connection.dbapi_connection
            with raw.cursor() as cursor:
                # a socket may wait while the ranges before it are checked (a slow reader
                # of iter_records): the server must not give up on it after its 60 s
                cursor.execute('SET SESSION net_write_timeout = 3600')
            cursor = raw.cursor(cursor_class)
            stack.callback(_end_stream, raw, cursor)
            issue(cursor)
        rows = size = length = 0        # rows read, their bytes, the last row's
        end = first                     # the last row's first index
        while pending:
            cursor = pending.popleft()
            for end, data, offset in cursor.rows_in_packets() if packets else cursor:
                rows += 1
                length = len(data) - offset
                size += length
                yield end, data, offset
            if rows > 1 and end > first:
                # the next ranges: at least a batch row's records, about RANGE_BYTES (the
                # rows before the last hold the records from ``first`` to ``end``)
                span[0] = max(1, -(-(end - first) // (rows - 1)),
                              self.RANGE_BYTES * (end - first) // max(1, size - length))
            issue(cursor)

    def _count_sent(self, stack, first, raw=None):
        """A callable: the count of index rows from ``first`` on, asked now.

        On DB-API connection ``raw`` (or one of its own, from ``stack``); the answer is read
        when called.
        """
        if raw is None:
            raw = stack.enter_context(self.engine.connect()).connection.dbapi_connection
        cursor = raw.cursor(_stream_cursor(self.engine.dialect.dbapi))
        stack.callback(_end_stream, raw, cursor, False)
        cursor.execute('SELECT COUNT(*) FROM securelog_records WHERE log_index >= %s',
                       (first,))
        return lambda: cursor.fetchone()[0]

    def _batches_from(self, rows, first, start, layout):
        """Layout 2: a list of records per batch row of ``rows`` (:meth:`_batch_rows`).

        Records before ``start`` are left out.
        """
        layout.first = layout.end = first
        for at, data, offset in rows:
            records, why = unpack_batch(data, offset)
            layout.batch(at, len(records), why)
            yield records[start - at:] if at < start else records

    def _bytes_of(self, conn, indexes):
        """{log index: record bytes} of records in layout 2, from their batch rows."""
        indexes = sorted(set(indexes))
        if not indexes:
            return {}
        low = conn.execute(sa.select(sa.func.max(_batches.c.first_index)).where(
            _batches.c.first_index <= indexes[0])).scalar()
        if low is None:
            return {}
        firsts = [f for (f,) in conn.execute(sa.select(_batches.c.first_index).where(
            _batches.c.first_index.between(low, indexes[-1])).order_by(
                _batches.c.first_index))]
        wanted = {}
        for index in indexes:
            wanted.setdefault(firsts[bisect.bisect_right(firsts, index) - 1], []).append(index)
        found = {}
        keys = sorted(wanted)
        for pos in range(0, len(keys), 100):
            for first, data in conn.execute(sa.select(_batches.c.first_index, _batches.c.data)
                                            .where(_batches.c.first_index.in_(
                                                keys[pos:pos + 100]))):
                records, _why = unpack_batch(data)
                for index in wanted[first]:
                    if index - first < len(records):
                        found[index] = records[index - first]
        return found

    def _with_bytes(self, conn, rows):
        """``rows`` of securelog_records as :class:`StoredRecord` with the record's bytes.

        The bytes come from where the log holds them: the row, or its batch (layout 2).
        """
        rows = [StoredRecord(*row) for row in rows]
        if not rows:
            return rows
        boundary = self._layout2_start(conn)
        found = self.batch_bytes(conn, [r.log_index for r in rows], boundary)
        return [row._replace(data=self._bytes(row.log_index, row.data, boundary, found))
                for row in rows]

    def batch_bytes(self, conn, indexes, boundary):
        """:meth:`_bytes_of` those of ``indexes`` that layout 2 holds.

        ``boundary``: :meth:`_layout2_start` (None: no batch rows).
        """
        if boundary is None:
            return {}
        return self._bytes_of(conn, [i for i in indexes if i >= boundary])

    @staticmethod
    def _bytes(index, own, boundary, found):
        """The bytes of record ``index``, or StoreError when there are none.

        Before ``boundary`` its row's own (``own``), from it on from its batch (``found``).
        """
        data = own if boundary is None or index < boundary else found.get(index)
        if data is None:
            raise StoreError('record %d has no bytes in its %s: the store was damaged; run '
                             '"tclouds-securelog verify"'
                             % (index, 'row' if boundary is None or index < boundary
                                else 'batch row'))
        return data

    def get(self, index):
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_records).where(
                _records.c.log_index == index)).first()
            if row is None:
                raise StoreError('no record at index %d' % index)
            (row,) = self._with_bytes(conn, [row])
        if row.data is None:
            raise StoreError('no record at index %d' % index)
        return row

    def list(self, marker=0, limit=100, source=None, tenant=None, event_type=None):
        q = sa.select(_records).where(_records.c.log_index >= marker)
        if source:
            q = q.where(_records.c.source == source)
        if tenant is not None:
            q = q.where(_records.c.tenant == tenant)
        if event_type:
            q = q.where(_records.c.event_type == event_type)
        q = q.order_by(_records.c.log_index).limit(limit)
        with self.engine.connect() as conn:
            return self._with_bytes(conn, conn.execute(q).all())

    def checkpoint_note(self, size=None):
        q = sa.select(_checkpoints.c.note)
        if size is None:
            q = q.order_by(_checkpoints.c.tree_size.desc()).limit(1)
        else:
            q = q.where(_checkpoints.c.tree_size == size)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise StoreError('no checkpoint%s in the store'
                             % ('' if size is None else ' at size %d' % size))
        return row[0].encode('utf-8')

    def checkpoint_notes(self, min_size=0):
        with self.engine.connect() as conn:
            return [n.encode('utf-8') for (n,) in conn.execute(
                sa.select(_checkpoints.c.note).where(_checkpoints.c.tree_size >= min_size)
                .order_by(_checkpoints.c.tree_size))]

    def end(self):
        """One past the largest stored log index (0 for an empty log): an indexed read."""
        with self.engine.connect() as conn:
            last = conn.execute(sa.select(sa.func.max(_records.c.log_index))).scalar()
        return 0 if last is None else last + 1

    def inclusion_proof(self, index, size=None):
        tree = self.tree()
        size = tree.size if size is None else size
        try:
            return tree.leaf_hash(index), tree.inclusion_proof(index, size), tree.root(size)
        except (ValueError, IndexError) as exc:
            raise StoreError(str(exc))

    def consistency_proof(self, size1, size2=None):
        tree = self.tree()
        size2 = tree.size if size2 is None else size2
        try:
            return tree.consistency_proof(size1, size2), tree.root(size1), tree.root(size2)
        except ValueError as exc:
            raise StoreError(str(exc))

    # ---- audit ----

    def audit(self, bundle, extra_notes=(), use_exporters=True, resume=None):
        """Full audit from genesis; returns (AuditReport, [checkpoint problems]).

        Checkpoints come from the store, the exporters and ``extra_notes``; one whose
        signature does not verify is itself reported as damage (fail closed).
        ``resume``: an :class:`.audit.AuditState` of an earlier audit that found nothing:
        only the records after it are read and checked (incremental audit), against the
        checkpoints of at least its size.
        """
        start = resume.size if resume is not None else 0
        notes = [(n, 'store') for n in self.checkpoint_notes(min_size=start)]
        store_sizes = []
        problems = []
        if use_exporters:
            for exporter in self.exporters:
                try:
                    notes.extend((n, exporter.name) for n in exporter.notes())
                except expmod.ExportError as exc:
                    problems.append('cannot read checkpoints from %s' % exc)
        notes.extend((n, 'given') for n in extra_notes)
        verified = []
        for note, where in notes:
            try:
                cp, _cosigned = cpmod.open_checkpoint(note, bundle.log_verifier,
                                                      origin=self.origin,
                                                      witnesses=bundle.witnesses)
            except cpmod.CheckpointError as exc:
                problems.append('checkpoint from %s rejected: %s' % (where, exc))
                continue
            verified.append(cp)
            if where == 'store':
                store_sizes.append(cp.size)
        end = self.end() if resume is not None else None
        if resume is not None and resume.log_leaf is None and start:
            # a state written before format 2 does not hold the last record's leaf hash,
            # with which the next TSL2 record's span begins (a changed record shows there)
            resume.log_leaf = merkle.hash_leaf(bytes(self.get(start - 1).data))
        layout = _LayoutCheck()
        with self._record_stream(start=start, layout=layout, count=True) as records:
            report = auditmod.audit(records, bundle.log_key, bundle.source_keys, verified,
                                    store_checkpoint_size=max(store_sizes, default=0),
                                    resume=resume)
            rows = layout.index_rows() if layout.index_rows is not None else None
        if layout.first is not None:
            # every record in the batch rows has its index row, and no index row is
            # without its bytes (what get and list serve is what was audited)
            with self.engine.connect() as conn:
                if rows is None:
                    rows = conn.execute(sa.select(sa.func.count()).select_from(
                        _records).where(_records.c.log_index >= layout.first)).scalar()
                if rows != layout.end - layout.first:
                    layout.findings.append(self._index_rows_finding(conn, layout, rows))
        if layout.findings:
            report.state = None
            report.damages.extend(auditmod.Damage(*f) for f in layout.findings)
        if end is not None and end < start:
            report.state = None
            report.damages.insert(0, auditmod.Damage(
                end, 'truncated', 'the store ends at index %d but the audit this one '
                'resumes verified %d records: records %d..%d are gone'
                % (end, start, end, start - 1)))
        return report, problems


@functools.lru_cache(maxsize=None)
def _stream_cursor(dbapi):
    """The MySQL driver's unbuffered cursor class for :meth:`SecureLogStore._batch_rows_streamed`.

    None when ``dbapi`` has none. PyMySQL's ``SSCursor.execute`` waits for the result's
    first packet, which MariaDB sends with the first row, that is after reading it: the
    queries of the ranges read ahead would wait one after the other for their first rows.
    With PyMySQL the class returned sends the query in ``execute`` and reads the answer at
    the first fetch (or close); other drivers' ``SSCursor`` as it is.
    """
    base = getattr(getattr(dbapi, 'cursors', None), 'SSCursor', None)
    if base is None:
        return None
    connection = getattr(getattr(dbapi, 'connections', None), 'Connection', None)
    command = getattr(getattr(getattr(dbapi, 'constants', None), 'COMMAND', None),
                      'COM_QUERY', None)
    packet = getattr(getattr(dbapi, 'protocol', None), 'MysqlPacket', None)
    if command is None or not all(
            hasattr(connection, name) for name in ('_execute_command',
                                                   '_read_query_result')) or not all(
            hasattr(base, name) for name in ('_query', '_clear_result', '_do_get_result',
                                             'read_next', '_get_db', '_check_executed')
    ) or not all(hasattr(packet, name) for name in (
            'read_length_coded_string', 'read_length_encoded_integer', 'get_all_data')):
        return base

    class SendingCursor(base):
        _sent = False

        def _query(self, query):
            conn = self._get_db()
            self._clear_result()
            conn._execute_command(command, query)
            self._sent = True
            return 0

        def _answer(self):
            self._sent = False
            conn = self._get_db()
            conn._affected_rows = conn._read_query_result(unbuffered=True)
            self._do_get_result()

        def read_next(self):
            if self._sent:
                self._answer()
            return super().read_next()

        def close(self):
            if self._sent and self.connection is not None:
                self._answer()
            super().close()

        __del__ = close

        def rows_in_packets(self):
            """The rows of a query of an integer and a BLOB as (integer, packet, offset).

            The BLOB is the packet's bytes from ``offset`` on: not copied out of it (the
            copy would cost as much CPU as reading the packet).
            """
            self._check_executed()
            if self._sent:
                self._answer()
            self._result._read_row_from_packet = _in_packet
            return iter(self.read_next, None)
    return SendingCursor


def _in_packet(packet):
    """(integer, packet bytes, offset of the BLOB) of a row packet of an integer and a BLOB."""
    number = int(packet.read_length_coded_string())
    length = packet.read_length_encoded_integer()
    data = packet.get_all_data()
    return number, data, len(data) - (length or 0)


def _end_stream(raw, cursor, timeout=True):
    """Close an unbuffered cursor of :meth:`SecureLogStore._batch_rows_streamed`.

    What is left of its range is read (the connection goes back to the pool), and the
    connection's write timeout is the server's again (``timeout``).
    """
    try:
        cursor.close()
        if timeout:
            with raw.cursor() as cursor:
                cursor.execute('SET SESSION net_write_timeout = DEFAULT')
    except Exception:       # a broken connection: the pool discards it
        LOG.debug('securelog: closing a batch-row stream', exc_info=True)


def _sqlite_wal(dbapi_connection, _record):
    # One fsync per commit (WAL, synchronous=FULL) instead of a rollback journal's three;
    # still durable: a committed batch survives a crash and a power cut.
    cursor = dbapi_connection.cursor()
    cursor.execute('PRAGMA journal_mode=WAL')
    cursor.execute('PRAGMA synchronous=FULL')
    cursor.close()


def _load_witness(path):
    try:
        with open(path) as f:
            name, seed = f.read().split()
        return cpmod.NoteSigner.from_seed(name, bytes.fromhex(seed), cpmod.ALG_COSIGNATURE_V1)
    except (OSError, ValueError) as exc:
        raise StoreError('witness key file %s must hold "<name> <hex seed>": %s' % (path, exc))
