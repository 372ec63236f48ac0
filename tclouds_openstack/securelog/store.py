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
import contextlib
import json
import logging
import operator
import os
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
_checkpoints = models.Checkpoint.__table__


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


class SecureLogStore(object):
    def __init__(self, connection, state_dir, auditor_dir=None, origin='tclouds-securelog',
                 epoch_seconds=60.0, epoch_entries=100000, exporters=(), cosigners=(),
                 checkpoint_interval=10.0, migrate=True):
        self.connection = connection
        self.state_dir = state_dir
        self.auditor_dir = auditor_dir or os.path.join(state_dir, 'auditor')
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
                    checkpoint_interval=opts.checkpoint_interval)
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
        """Append encoded sealed entries; returns [log index, or None for a duplicate].

        Malformed entries raise :class:`BadEntry` before anything is written.
        """
        decoded = []
        for pos, data in enumerate(entries):
            try:
                decoded.append((bytes(data), sealing.decode_entry(data)))
            except sealing.SealError as exc:
                raise BadEntry(pos, str(exc))
        if not decoded:
            return []
        now_ns = now_ns if now_ns is not None else time.time_ns()
        with self._lock:
            tree = self.tree()
            with self._write_transaction() as conn:
                known = self._existing_keys(conn, decoded)
                fresh, result, position = [], [], {}
                for data, entry in decoded:
                    key = (entry.source, entry.seq)
                    if key in known or key in position:
                        result.append(None)
                        continue
                    position[key] = len(fresh)
                    result.append(key)
                    fresh.append((data, entry.source, entry.seq, entry.tenant[:255],
                                  _event_type(entry), entry.time_ns))
                if not fresh:
                    return [None] * len(result)
                first, leaf_hashes = self._seal_and_insert(conn, tree, fresh, now_ns)
            self._grown(tree, leaf_hashes)
            out = [None if key is None else first + position[key] for key in result]
        self._maybe_checkpoint()
        return out

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
        rows = [(index, row[1], row[2], row[3], row[4], row[5], leaf, rec)
                for (index, rec), row, leaf in zip(records, fresh, leaf_hashes)]
        try:
            conn.exec_driver_sql(self._insert_sql, rows)
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

    @staticmethod
    def _existing_keys(conn, decoded):
        """(source, seq) pairs of the batch already stored: one range query per source."""
        by_source = {}
        for _d, e in decoded:
            by_source.setdefault(e.source, []).append(e.seq)
        found = set()
        for source, seqs in by_source.items():
            q = sa.select(_records.c.seq).where(
                _records.c.source == source,
                _records.c.seq.between(min(seqs), max(seqs)))
            wanted = set(seqs)
            found.update((source, s) for (s,) in conn.execute(q) if s in wanted)
        return found

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

    def iter_records(self, batch=20000):
        """Record bytes in log order, in constant memory on any database."""
        if self.engine.dialect.name == 'sqlite':
            # sqlite streams a plain cursor; skipping SQLAlchemy rows triples audit speed,
            # and iterating it in C (map over the cursor, no Python loop per row) saves
            # another 0.15 us per record.
            with self.engine.connect() as conn:
                cursor = conn.connection.dbapi_connection.cursor()
                try:
                    cursor.execute('SELECT data FROM securelog_records ORDER BY log_index')
                    yield from map(_first, cursor)
                    return
                finally:
                    cursor.close()
        # Elsewhere keyset pagination: client-side cursors would buffer the whole log.
        start = 0
        with self.engine.connect() as conn:
            while True:
                rows = conn.execute(
                    sa.select(_records.c.log_index, _records.c.data)
                    .where(_records.c.log_index >= start)
                    .order_by(_records.c.log_index).limit(batch)).all()
                for _index, data in rows:
                    yield data
                if len(rows) < batch:
                    return
                start = rows[-1][0] + 1

    def get(self, index):
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_records).where(
                _records.c.log_index == index)).first()
        if row is None:
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
            return conn.execute(q).all()

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

    def checkpoint_notes(self):
        with self.engine.connect() as conn:
            return [n.encode('utf-8') for (n,) in conn.execute(
                sa.select(_checkpoints.c.note).order_by(_checkpoints.c.tree_size))]

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

    def audit(self, bundle, extra_notes=(), use_exporters=True):
        """Full audit from genesis; returns (AuditReport, [checkpoint problems]).

        Checkpoints come from the store, the exporters and ``extra_notes``; one whose
        signature does not verify is itself reported as damage (fail closed).
        """
        notes = [(n, 'store') for n in self.checkpoint_notes()]
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
        report = auditmod.audit(self.iter_records(), bundle.log_key, bundle.source_keys,
                                verified, store_checkpoint_size=max(store_sizes, default=0))
        return report, problems


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
