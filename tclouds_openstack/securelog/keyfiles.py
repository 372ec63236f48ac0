"""Local key state of sealers and the log signer, and the auditor bundle (adapter: files).

Sealer state lives in a small JSON file per sealer, replaced atomically (write, fsync,
rename, fsync directory), and guarded by an exclusive ``flock`` so the worker processes of
one service on one host share one sequence. A source that hands its entries out (the
notification driver, :meth:`.Source.seal`) appends each batch to its **journal** (one
``fdatasync``: the batch's only durable point) before the entries leave; its state file
changes only with the key (and when a fully published journal is compacted), so the
sequence is the state file's or the journal's last entry's, whichever is later. A source
whose entries go straight into the store (:meth:`.SecureLogStore.append_events`) keeps its
sequence in the store's database instead (``"sequence": "store"`` in the file, which only
changes when the epoch key does), and the log sealer's sequence is the log index itself.
The key never leaves this file: see :meth:`SealerFile.save` for why it is not kept in the
database.

When a sealer is created, its K0 goes to the **auditor bundle** directory and nowhere else:
the operator moves that directory to the auditors (off the host), exactly like journald's
verification key.

Auditor bundle layout: ``log.k0`` (hex K0 of the log sealer), ``log.vkey`` (C2SP verifier
key of the checkpoint signer), ``source-<name>.k0`` (hex K0 of each source, name
percent-quoted), ``witness-*.vkey`` (trusted witnesses, optional).
"""
import errno
import fcntl
import hmac
import json
import logging
import os
import struct
import threading
import time
import urllib.parse

from tclouds_openstack.common import fileutils
from tclouds_openstack.securelog import checkpoint as cpmod
from tclouds_openstack.securelog import sealing

LOG = logging.getLogger(__name__)

# flock() excludes other processes, but blocks a whole process; threads (and eventlet
# green threads, as in Nova) of one process first queue on this in-process lock per path.
_PROCESS_LOCKS = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


def _process_lock(path):
    with _PROCESS_LOCKS_GUARD:
        return _PROCESS_LOCKS.setdefault(os.path.abspath(path), threading.RLock())


class KeyFileError(Exception):
    """Unreadable or malformed key state; names the file and what is wrong."""


def _atomic_write(path, data, mode=0o600):
    directory = os.path.dirname(os.path.abspath(path))
    tmp = '%s.tmp.%d' % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _write_new(path, data):
    """Create ``path`` exclusively (never overwrite a K0 or a signing key)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path, what):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as exc:
        raise KeyFileError('cannot read %s %s: %s' % (what, path, exc.strerror))


def source_key_filename(name):
    return 'source-%s.k0' % urllib.parse.quote(name, safe='@.-_:')


class SealerFile(object):
    """A sealer persisted in ``path``; use as a context manager around each batch::

        with SealerFile(path, 'nova@host1', auditor_dir) as sealer:
            entry = sealer.seal_entry(payload, now_ns)
            ...   # then call .save() before the sealed data leaves the process

    ``sequence_in_store``: the sealer's sequence numbers are kept by the secure log store
    (in the same transaction as the entries they number), so the file is only rewritten
    when the epoch key changes; a file marked so refuses to be used without the store
    (that would hand out numbers the store already holds). A :class:`SealerFile` object
    used again keeps its sealer in memory between batches while the file on disk is the
    one it loaded or saved last (checked under the lock), so the within-epoch counters
    that are not saved every batch keep counting.
    """

    def __init__(self, path, name, auditor_dir, k0_filename=None, epoch_seconds=60.0,
                 epoch_entries=100000, now_ns=None, sequence_in_store=False,
                 journaled=False):
        self.journal = Journal(path + '.journal') if journaled else None
        self.path = path
        self.name = name
        self.auditor_dir = auditor_dir
        self.k0_filename = k0_filename or source_key_filename(name)
        self.kwargs = {'epoch_seconds': epoch_seconds, 'epoch_entries': epoch_entries}
        self.now_ns = now_ns
        self.sequence_in_store = sequence_in_store
        self.sealer = None
        self._lock = None
        self._identity = None
        self._loaded = False
        self._epoch_start = None

    def __enter__(self):
        fileutils.private_dir(os.path.dirname(os.path.abspath(self.path)))
        self._plock = _process_lock(self.path)
        self._plock.acquire()
        try:
            self._lock = open(self.path + '.lock', 'a')
            fcntl.flock(self._lock, fcntl.LOCK_EX)
        except BaseException:
            self._plock.release()
            raise
        try:
            if self.sealer is None or self._identity != _identity(self.path):
                self.sealer = None
                self.sealer = self._load()
                self._loaded = True
                if self.journal is not None:
                    self.journal.forget()
            if self.journal is not None:
                self._catch_up()
            self._epoch_at_enter = self.sealer.epoch
            self._seq_at_enter = self.sealer.next_seq
        except BaseException:
            self._unlock()
            raise
        return self.sealer

    def _catch_up(self):
        """Continue the sequence after what the journal holds (other processes, a crash)."""
        last = self.journal.catch_up()
        if last is not None and last + 1 > self.sealer.next_seq:
            self.sealer.next_seq = last + 1
            # the next format-2 entry names the journal's last one (another process's)
            self.sealer.set_prev(last, self.journal.last_entry)
            if self._epoch_start is not None:
                self.sealer.entries_in_epoch = max(0, last + 1 - self._epoch_start)

    def append(self, entries):
        """Make sealed ``entries`` durable before they leave (journaled files; lock held).

        One ``fdatasync`` of the journal. When the key evolved while they were sealed, the
        state file is replaced first (the old key gone before anything sealed with the new
        one is durable), saved with the batch's first sequence number: a crash before the
        journal write resumes from there, and those numbers never left.
        """
        if self.sealer.epoch != self._epoch_at_enter:
            self._save(self.sealer, next_seq=self._seq_at_enter,
                       epoch_start=self.sealer.next_seq - self.sealer.entries_in_epoch)
            self._epoch_at_enter = self.sealer.epoch
        self.journal.append(entries)
        self._seq_at_enter = self.sealer.next_seq

    def compact(self):
        """Once everything journaled was published: start an empty journal (lock held)."""
        if self.journal.compactable():
            self._save(self.sealer, epoch_start=(
                self.sealer.next_seq - self.sealer.entries_in_epoch))
            self.journal.truncate()

    def invalidate(self):
        """Forget the sealer held in memory: the next batch reloads the file."""
        self.sealer = None
        self._identity = None

    def resume(self, position):
        """Right after a load, count the epoch's entries up to ``position``.

        ``position``: the next sequence number (or log index) the store holds. Files saved
        with ``epoch_start`` (where the current epoch began) make ``epoch_entries`` exact
        across restarts; otherwise the count resumes from the one saved with the key.
        """
        if self._loaded and self._epoch_start is not None:
            self.sealer.entries_in_epoch = max(0, position - self._epoch_start)
        self._loaded = False

    def _load(self):
        if os.path.exists(self.path):
            raw = _read(self.path, 'sealer state')
            try:
                state = json.loads(raw)
                sealer = sealing.Sealer.from_state(state, **self.kwargs)
            except ValueError as exc:
                raise KeyFileError('sealer state %s is malformed: %s' % (self.path, exc))
            if sealer.name != self.name:
                raise KeyFileError('sealer state %s belongs to %r, not %r'
                                   % (self.path, sealer.name, self.name))
            in_store = state.get('sequence') == 'store'
            if in_store and not self.sequence_in_store:
                raise KeyFileError(
                    'the sequence numbers of source %r are kept in the secure log store '
                    '(%s is marked "sequence": "store"): seal its events with the store '
                    '(SecureLogStore.append_events), or use another source name'
                    % (self.name, self.path))
            self._identity = _identity(self.path)
            start = state.get('epoch_start')
            self._epoch_start = start if isinstance(start, int) else None
            if self.sequence_in_store and not in_store:
                # Taken over from a source that saved every batch: mark the file first, so
                # that it can no longer hand out numbers behind the store's back.
                self._save(sealer)
            return sealer
        now = self.now_ns if self.now_ns is not None else time.time_ns()
        sealer, k0 = sealing.Sealer.create(self.name, now, **self.kwargs)
        fileutils.private_dir(self.auditor_dir)
        try:
            _write_new(os.path.join(self.auditor_dir, self.k0_filename), k0.hex().encode())
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                raise KeyFileError(
                    'sealer state %s is missing but %s already holds a K0 for %r: refusing '
                    'to start a second chain under the same name (restore the state file, '
                    'or retire the old key deliberately)'
                    % (self.path, os.path.join(self.auditor_dir, self.k0_filename), self.name))
            raise
        self._save(sealer, epoch_start=sealer.next_seq)    # epoch 0 begins here
        return sealer

    def _save(self, sealer, next_seq=None, epoch_start=None):
        state = sealer.to_state()
        if next_seq is not None:
            state['next_seq'] = next_seq
        if epoch_start is not None:
            state['epoch_start'] = epoch_start
        self._epoch_start = epoch_start
        if self.sequence_in_store:
            state['sequence'] = 'store'
        _atomic_write(self.path, json.dumps(state).encode())
        self._identity = _identity(self.path)

    def save(self, next_seq=None, epoch_start=None):
        """Replace the file with the sealer's state (the old key is gone once this returns).

        ``next_seq`` overrides the sequence number saved: a store-backed source saves the
        first number of the batch, which is what it resumes from if the batch never commits.
        ``epoch_start``: the sequence number or log index of the epoch's first entry (see
        :meth:`resume`).

        Why the key is not kept in the store's database, next to the sequence numbers and
        updated in the batch's transaction (one durable point instead of two at an epoch
        change): forward security needs the old key unrecoverable once the new one is
        durable. Databases keep old row images: sqlite's rollback journal copies the old
        page out before changing it and WAL mode leaves every older frame of the page in
        the -wal file until a checkpoint has copied and a TRUNCATE/RESTART checkpoint has
        reset it (which concurrent readers hold off); ``secure_delete`` only zeroes freed
        cells and pages of the database file, not the journal or the WAL. PostgreSQL keeps
        dead tuples until VACUUM plus WAL segments, MariaDB its undo and redo logs and
        binlog. A file replaced by rename leaves nothing readable through the filesystem
        (the freed blocks are as recoverable as any unlinked file's, the same limit as
        journald's sealing). Key changes happen once per epoch, so they cost nothing
        measurable; the sequence numbers, which change every batch, are what the store
        keeps.
        """
        self._save(self.sealer, next_seq, epoch_start)

    def _unlock(self):
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None
            self._plock.release()

    def __exit__(self, *exc):
        self._unlock()
        return False


class Journal(object):
    """The sealed entries of a source that hands them out, in sequence order (a file).

    Frames: ``u32 length || entry``, appended and made durable with one ``fdatasync``;
    ``<journal>.published`` holds the offset up to which they were published (rewritten in
    place without a sync: a lost update only republishes, and the ingestion skips what it
    holds). A torn last frame (a crash during the write) never left the process and is cut
    off. Used under the sealer file's lock.
    """

    COMPACT_BYTES = 1 << 20

    def __init__(self, path):
        self.path = path
        self.marker = path + '.published'
        self._offset = 0            # how far this process has read the journal
        self._last_seq = None
        self.last_entry = None

    def forget(self):
        self._offset, self._last_seq, self.last_entry = 0, None, None

    def _frames(self, data, offset):
        """Yield (end offset, entry bytes) of the complete frames in ``data``."""
        pos = 0
        while pos + 4 <= len(data):
            (length,) = struct.unpack_from('>I', data, pos)
            end = pos + 4 + length
            if end > len(data):
                return
            entry = data[pos + 4:end]
            try:
                sealing.decode_entry(entry)
            except sealing.SealError:
                return
            yield offset + end, entry
            pos = end

    def catch_up(self):
        """The last sequence number journaled (None: empty); cuts a torn tail off."""
        try:
            size = os.path.getsize(self.path)
        except FileNotFoundError:
            self.forget()
            return None
        if size < self._offset:         # compacted by another process
            self.forget()
        if size > self._offset:
            with open(self.path, 'rb') as f:
                f.seek(self._offset)
                data = f.read()
            good = self._offset
            for good, entry in self._frames(data, self._offset):
                self._last_seq = sealing.decode_entry(entry).seq
                self.last_entry = entry
            if good < size:
                os.truncate(self.path, good)
            self._offset = good
        return self._last_seq

    def append(self, entries):
        frames = b''.join(struct.pack('>I', len(e)) + e for e in entries)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, frames)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        self._offset += len(frames)
        if entries:
            self._last_seq = sealing.decode_entry(entries[-1]).seq
            self.last_entry = bytes(entries[-1])

    def end(self):
        """The journal's size as this process knows it (all of it, under the lock)."""
        return self._offset

    def published(self):
        try:
            with open(self.marker, 'rb') as f:
                raw = f.read(8)
        except FileNotFoundError:
            return 0
        value = struct.unpack('>Q', raw)[0] if len(raw) == 8 else 0
        return value if value <= self._offset else 0

    def mark_published(self, offset):
        fd = os.open(self.marker, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, struct.pack('>Q', offset), 0)
        finally:
            os.close(fd)

    def pending(self):
        """[(end offset, entry)] journaled but not published yet, in order."""
        start = self.published()
        if start >= self._offset:
            return []
        with open(self.path, 'rb') as f:
            f.seek(start)
            data = f.read(self._offset - start)
        return list(self._frames(data, start))

    def compactable(self):
        return self._offset >= self.COMPACT_BYTES and self.published() == self._offset

    def truncate(self):
        os.truncate(self.path, 0)
        self.mark_published(0)
        self.forget()


def _identity(path):
    """What tells the state file we saved or loaded from a newer one (replaced by rename)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def load_or_create_signer(path, name, auditor_dir):
    """The log's Ed25519 checkpoint signer (seed file); its vkey goes to the bundle."""
    if os.path.exists(path):
        raw = _read(path, 'signing key').decode('ascii', 'replace').strip()
        try:
            seed = bytes.fromhex(raw)
        except ValueError:
            raise KeyFileError('signing key %s is not hex' % path)
        signer = cpmod.NoteSigner.from_seed(name, seed)
    else:
        fileutils.private_dir(os.path.dirname(os.path.abspath(path)))
        signer = cpmod.NoteSigner.generate(name)
        _write_new(path, signer.seed().hex().encode())
    fileutils.private_dir(auditor_dir)
    vkey_path = os.path.join(auditor_dir, 'log.vkey')
    if not os.path.exists(vkey_path):
        _atomic_write(vkey_path, (signer.vkey() + '\n').encode(), mode=0o644)
    return signer


class AuditorBundle(object):
    """What an auditor needs: K0s and verifier keys (see the module docstring)."""

    def __init__(self, log_key, source_keys, log_verifier, witnesses):
        self.log_key = log_key
        self.source_keys = source_keys
        self.log_verifier = log_verifier
        self.witnesses = witnesses

    @classmethod
    def load(cls, directory):
        if not os.path.isdir(directory):
            raise KeyFileError('auditor bundle %s is not a directory' % directory)

        def vkey(path):
            raw = _read(path, 'verifier key').decode('utf-8', 'replace').strip()
            try:
                return cpmod.NoteVerifier.from_vkey(raw)
            except cpmod.CheckpointError as exc:
                raise KeyFileError('%s: %s' % (path, exc))

        log_key = read_k0(os.path.join(directory, 'log.k0'))
        log_verifier = vkey(os.path.join(directory, 'log.vkey'))
        sources, witnesses = {}, []
        for fname in sorted(os.listdir(directory)):
            path = os.path.join(directory, fname)
            name = source_name_of_k0_file(fname)
            if name is not None:
                sources[name] = read_k0(path)
            elif fname.startswith('witness-') and fname.endswith('.vkey'):
                witnesses.append(vkey(path))
        return cls(log_key, sources, log_verifier, witnesses)

    def add_source_keys(self, directory):
        """Also use the source K0s found in ``directory`` (those not in the bundle yet)."""
        if not os.path.isdir(directory):
            return
        for fname in sorted(os.listdir(directory)):
            name = source_name_of_k0_file(fname)
            if name is not None and name not in self.source_keys:
                self.source_keys[name] = read_k0(os.path.join(directory, fname))


def source_keys_dir(state_dir, configured=None):
    """The ingester's source key directory: ``[securelog] source_keys_dir`` or its default."""
    return configured or os.path.join(state_dir, 'source-keys')


def source_name_of_k0_file(path):
    """The source name in a ``source-<name>.k0`` file name, or None."""
    fname = os.path.basename(path)
    if fname.startswith('source-') and fname.endswith('.k0'):
        return urllib.parse.unquote(fname[len('source-'):-len('.k0')]) or None
    return None


def read_k0(path):
    """A hex K0 file (``source-<name>.k0``, ``log.k0``) as bytes; KeyFileError if not one."""
    raw = _read(path, 'key').decode('ascii', 'replace').strip()
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        raise KeyFileError('%s is not a hex key' % path)
    if len(key) != sealing.KEY_SIZE:
        raise KeyFileError('%s holds %d bytes, want %d' % (path, len(key), sealing.KEY_SIZE))
    return key


def source_verifier_filename(name):
    return 'source-%s.key' % urllib.parse.quote(name, safe='@.-_:')


def enroll_source(directory, name, k0, replace=False):
    """Enrol source ``name`` with its K0 for ingestion (``tclouds-securelog enroll-source``).

    Writes ``source-<name>.key`` in ``directory`` (the ingester's ``[securelog]
    source_keys_dir``) at epoch 0. Enrolling the same K0 again changes nothing; another
    K0 for an enrolled name is refused unless ``replace`` (a source that lost its state
    and started a new chain: a deliberate act, the old chain's later entries are then
    refused). Returns True when the file was written.
    """
    if len(k0) != sealing.KEY_SIZE:
        raise KeyFileError('the K0 of source %r must be %d bytes, got %d'
                           % (name, sealing.KEY_SIZE, len(k0)))
    fileutils.private_dir(directory)
    path = os.path.join(directory, source_verifier_filename(name))
    if os.path.exists(path):
        state = SourceKeys(directory)._load_state(name, path)
        if _derive(k0, 0, state['epoch']) == state['key']:
            return False
        if not replace:
            raise KeyFileError('source %r is already enrolled (%s) with another key: '
                               'refusing to replace it without --replace' % (name, path))
    _atomic_write(path, json.dumps({'name': name, 'epoch': 0, 'key': k0.hex()}).encode())
    return True


def _derive(key, from_epoch, to_epoch):
    for _ in range(to_epoch - from_epoch):
        key = sealing.evolve(key)
    return key


class SourceKeys(object):
    """The ingester's verification keys of the sources it accepts entries from.

    One file per enrolled source in ``directory`` (:func:`enroll_source`), holding the key
    of the latest epoch the ingester has verified an entry of, never an older one: like
    the sealer, the ingester evolves its copy and overwrites the old key, so whoever
    takes the ingester later cannot forge a source's entries of past epochs. (An HMAC key
    that verifies also seals: the ingester can seal entries of the current and later
    epochs of every enrolled source; the auditor, holding K0, checks every entry again.)

    ``check`` verifies one entry (in memory); ``commit`` makes the epochs reached durable
    after the batch was stored, ``rollback`` forgets them when it was not.

    Verifying an entry of a later epoch means evolving the key up to it (up to
    MAX_EPOCH_JUMP steps). Anyone on the bus can claim any epoch, so the keys met on the
    way are kept every DERIVED_EVERY epochs (in memory, never below the durable epoch):
    a forged entry costs at most DERIVED_EVERY evolutions, not a million each.
    """

    DERIVED_EVERY = 4096

    def __init__(self, directory, enroll_from=()):
        self.directory = directory
        # local directories whose source-<name>.k0 files the operator declared enrolled
        # ([securelog] enroll_from_dirs: a source on this very host)
        self.enroll_from = list(enroll_from)
        self._states = {}       # name -> {'epoch', 'key'} as on disk
        self._ahead = {}        # name -> (epoch, key) verified in the open batch
        self._hmacs = {}        # (name, epoch) -> HmacKey, epochs >= the durable one
        self._derived = {}      # name -> {epoch: key} every DERIVED_EVERY, >= durable one

    def _load_state(self, name, path):
        raw = _read(path, 'source verification key')
        try:
            state = json.loads(raw)
            epoch = int(state['epoch'])
            key = bytes.fromhex(state['key'])
            stored_name = str(state['name'])
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyFileError('source verification key %s is malformed: %s' % (path, exc))
        if stored_name != name or len(key) != sealing.KEY_SIZE or epoch < 0:
            raise KeyFileError('source verification key %s is not a %d-byte key of %r'
                               % (path, sealing.KEY_SIZE, name))
        return {'epoch': epoch, 'key': key}

    def _state(self, name):
        state = self._states.get(name)
        if state is None:
            path = os.path.join(self.directory, source_verifier_filename(name))
            if not os.path.exists(path) and not self._enroll_local(name):
                return None
            state = self._states[name] = self._load_state(name, path)
        return state

    def _enroll_local(self, name):
        for directory in self.enroll_from:
            k0_path = os.path.join(directory, source_key_filename(name))
            if os.path.exists(k0_path):
                enroll_source(self.directory, name, read_k0(k0_path))
                LOG.warning('securelog: source %r enrolled from %s ([securelog] '
                            'enroll_from_dirs)', name, k0_path)
                return True
        return False

    def known(self, name):
        try:
            return self._state(name) is not None
        except KeyFileError:
            return False

    def check(self, entry, data):
        """None when ``data`` (the encoded ``entry``) carries its source's valid seal.

        Otherwise (kind, reason): ``unknown-source`` (not enrolled), ``unverifiable``
        (sealed in an epoch older than the key the ingester holds) or ``bad-seal``.
        """
        name = entry.source
        try:
            state = self._state(name)
        except KeyFileError as exc:
            # held like an unknown source: appended once an admin repaired the key file
            return ('unknown-source', 'source %r cannot be verified: %s' % (name, exc))
        if state is None:
            return ('unknown-source', 'source %r is not enrolled for ingestion: an admin '
                    'enrols its K0 with "tclouds-securelog enroll-source" (its entries are '
                    'held until then)' % name)
        if entry.epoch < state['epoch']:
            return ('unverifiable', 'entry of source %r sealed in epoch %d, but the ingester '
                    'holds only the key of epoch %d and later (older keys are erased); an '
                    'auditor with the source\'s K0 can check it'
                    % (name, entry.epoch, state['epoch']))
        if entry.epoch - state['epoch'] >= sealing.MAX_EPOCH_JUMP:
            return ('bad-seal', 'entry of source %r claims epoch %d, implausibly far beyond '
                    'epoch %d' % (name, entry.epoch, state['epoch']))
        tagger = self._hmacs.get((name, entry.epoch))
        if tagger is None:
            key = self._key_at(name, state, entry.epoch)
            tagger = sealing.HmacKey(key)
        else:
            key = None
        if not hmac.compare_digest(tagger.tag(data[:-sealing.TAG_SIZE]), entry.tag):
            return ('bad-seal', 'the seal of source %r does not verify (epoch %d, sequence '
                    '%d): forged by someone without the source\'s key, or altered in transit'
                    % (name, entry.epoch, entry.seq))
        if key is not None:
            self._hmacs[(name, entry.epoch)] = tagger
            if entry.epoch > (self._ahead.get(name) or (state['epoch'],))[0]:
                self._ahead[name] = (entry.epoch, key)
        return None

    def _key_at(self, name, state, epoch):
        """The key of ``epoch`` (>= the durable one), from the nearest key known below it."""
        base_epoch, base_key = state['epoch'], state['key']
        ahead = self._ahead.get(name)
        if ahead is not None and base_epoch < ahead[0] <= epoch:
            base_epoch, base_key = ahead
        derived = self._derived.setdefault(name, {})
        for known, key in derived.items():
            if base_epoch < known <= epoch:
                base_epoch, base_key = known, key
        key = base_key
        for reached in range(base_epoch + 1, epoch + 1):
            key = sealing.evolve(key)
            if reached % self.DERIVED_EVERY == 0:
                derived[reached] = key
        return key

    def commit(self):
        """The batch is stored: keep only the newest epoch's key of each source."""
        ahead, self._ahead = self._ahead, {}
        for name, (epoch, key) in ahead.items():
            state = self._states[name]
            if epoch <= state['epoch']:
                continue
            _atomic_write(os.path.join(self.directory, source_verifier_filename(name)),
                          json.dumps({'name': name, 'epoch': epoch, 'key': key.hex()}).encode())
            self._states[name] = {'epoch': epoch, 'key': key}
            for cached in [k for k in self._hmacs if k[0] == name and k[1] < epoch]:
                del self._hmacs[cached]
            # keys of erased epochs are erased from memory too (forward security)
            self._derived[name] = {e: k for e, k in self._derived.get(name, {}).items()
                                   if e >= epoch}

    def rollback(self):
        """The batch was not stored: the durable epochs stay (nothing was erased)."""
        self._ahead = {}
        self._hmacs = {k: v for k, v in self._hmacs.items()
                       if k[1] == self._states.get(k[0], {}).get('epoch')}

    def forget(self, name=None):
        """Re-read ``name`` (or every source) from disk next time (after an enrolment)."""
        if name is None:
            self._states.clear()
            self._hmacs.clear()
            self._derived.clear()
        else:
            self._states.pop(name, None)
            self._hmacs = {k: v for k, v in self._hmacs.items() if k[0] != name}
            self._derived.pop(name, None)
