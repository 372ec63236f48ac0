"""Adapters the pure format runs on: a file as block storage, and freshness anchors.

An anchor stores one small JSON state per volume (version, Merkle root, size; MAC'd
by the volume itself) and enforces that versions only grow (compare-and-set). The file
anchor (two checksummed slots updated in place: one write and one fdatasync per
commit) is for a trusted local directory (the compute host, a test); the key service anchor
(``tclouds_openstack.keymgr``) keeps the state beside the volume key, outside the storage
the volume lives on.
"""
import abc
import ctypes
import fcntl
import hashlib
import json
import os
import stat
import struct

from tclouds_openstack.blockstore import errors


_SYNC_FILE_RANGE_WRITE = 2


def _libc_sync_file_range():
    """Linux's sync_file_range from the C library the process runs on, or None."""
    try:
        func = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):      # not Linux
        return None
    func.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    func.restype = ctypes.c_int
    return func


_sync_file_range = _libc_sync_file_range()


class FileStorage:
    """A regular file accessed with pread/pwrite (sparse: never-written sectors cost nothing)."""

    def __init__(self, path, readonly=False):
        self.path = path
        flags = os.O_RDONLY if readonly else os.O_RDWR | os.O_CREAT
        try:
            self.fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise errors.BlockstoreError('cannot open volume file %s: %s' % (path, exc))
        # A block device (an attached Cinder volume) cannot be truncated and is not
        # zero-filled: the format zeroes what it must explicitly.
        self.is_block = stat.S_ISBLK(os.fstat(self.fd).st_mode)
        if not readonly:
            # One writer at a time: a resize, key rotation or second server beside a
            # running one would corrupt the tree. (Readers take no lock; a check beside a
            # running writer may report sectors being written as failures.)
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(self.fd)
                self.fd = None
                raise errors.BlockstoreError('volume file %s is in use by another writer '
                                             '(a running server?): %s' % (path, exc.strerror))

    def pread(self, length, offset):
        data = os.pread(self.fd, length, offset)
        if len(data) < length:
            raise errors.BlockstoreError('volume file %s is truncated: %d bytes missing at '
                                         'offset %d' % (self.path, length - len(data), offset))
        return data

    def preadv(self, views, offset, length):
        """Fill the writable ``views`` (``length`` bytes in all) in turn from ``offset``.

        One system call normally, no allocation: a fresh large buffer per request costs
        page faults.
        """
        done = os.preadv(self.fd, views, offset)
        if done == length:
            return
        pos = 0                         # where ``views`` stand in the file, from offset
        for view in views:
            n = len(view)
            filled = min(n, max(0, done - pos))
            while filled < n:           # a short read (rare): finish this view
                got = os.preadv(self.fd, [view[filled:]], offset + pos + filled)
                if not got:
                    raise errors.BlockstoreError(
                        'volume file %s is truncated: %d bytes missing at offset %d'
                        % (self.path, n - filled, offset + pos + filled))
                filled += got
            pos += n
            done = max(done, pos)

    def pwrite(self, data, offset):
        done = os.pwrite(self.fd, data, offset)
        if done == len(data):
            return
        view = memoryview(data)[done:]
        offset += done
        while view:
            done = os.pwrite(self.fd, view, offset)
            view = view[done:]
            offset += done

    def start_writeback(self):
        """Start writing the file's dirty pages back, without waiting (no durable point).

        ``sync_file_range(SYNC_FILE_RANGE_WRITE)``: the device works on them while the
        caller computes; the next :meth:`sync` then waits for them (and still flushes the
        device's cache). Nothing where the call is missing; an error is left to that sync,
        which reports the writeback's errors.
        """
        if _sync_file_range is not None:
            _sync_file_range(self.fd, 0, 0, _SYNC_FILE_RANGE_WRITE)

    def sync(self):
        os.fdatasync(self.fd)

    def truncate(self, length):
        if self.is_block:
            if length > self.size():
                raise errors.BlockstoreError('block device %s holds %d bytes, %d needed'
                                             % (self.path, self.size(), length))
            return
        os.ftruncate(self.fd, length)

    def size(self):
        if self.is_block:
            return os.lseek(self.fd, 0, os.SEEK_END)
        return os.fstat(self.fd).st_size

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Anchor(metaclass=abc.ABCMeta):
    """Where a volume's freshness state lives, outside the volume.

    Contract: :meth:`load` returns the last committed state dict or None; :meth:`commit`
    stores ``state`` only if the stored version equals ``expected`` (None: nothing stored
    yet) and ``state['version']`` is greater, else raises AnchorError. A commit is atomic
    and durable when it returns.
    """

    @abc.abstractmethod
    def load(self, volume_uuid):
        """Return the state dict of ``volume_uuid`` or None."""

    @abc.abstractmethod
    def commit(self, volume_uuid, state, expected):
        """Compare-and-set the state (see the class contract)."""


def check_transition(volume_uuid, current, state, expected):
    """The monotonic compare-and-set rule every anchor applies."""
    have = None if current is None else current.get('version')
    if have != expected:
        raise errors.AnchorError('anchor of volume %s is at version %s, writer expected %s: '
                                 'another writer or a rollback of the anchor'
                                 % (volume_uuid, have, expected))
    if have is not None and state['version'] <= have:
        raise errors.AnchorError('anchor of volume %s refuses version %d after %d: versions '
                                 'only grow' % (volume_uuid, state['version'], have))


ANCHOR_MAGIC = b'TCBSANC\x02'
ANCHOR_SLOT = 4096
# magic, sequence, payload length, SHA-256 over (magic, sequence, length, payload)
_ANCHOR_SLOT_HEAD = struct.Struct('>8sQI32s')


def _anchor_slot(seq, payload, size):
    digest = hashlib.sha256(_ANCHOR_SLOT_HEAD.pack(ANCHOR_MAGIC, seq, len(payload), b'')[:20]
                            + payload).digest()
    raw = _ANCHOR_SLOT_HEAD.pack(ANCHOR_MAGIC, seq, len(payload), digest) + payload
    return raw + bytes(size - len(raw))


def _parse_anchor_slot(raw):
    """Return (sequence, payload) of one slot, or None when it is empty or torn."""
    if len(raw) < _ANCHOR_SLOT_HEAD.size:
        return None
    magic, seq, length, digest = _ANCHOR_SLOT_HEAD.unpack_from(raw)
    payload = bytes(raw[_ANCHOR_SLOT_HEAD.size:_ANCHOR_SLOT_HEAD.size + length])
    if magic != ANCHOR_MAGIC or len(payload) != length or digest != hashlib.sha256(
            _ANCHOR_SLOT_HEAD.pack(magic, seq, length, b'')[:20] + payload).digest():
        return None
    return seq, payload


class FileAnchor(Anchor):
    """Anchor states in a file of two checksummed slots, updated in place.

    Each slot holds ``magic | sequence u64 | length u32 | SHA-256 | JSON {uuid: state}``;
    the valid slot with the higher sequence is the current one. A commit writes the other
    slot and ``fdatasync`` s: one write and one flush (a rename-based replacement needs two
    fsyncs and a new inode each time; this is on the path of every NBD flush). A write torn by
    a crash fails its checksum, so the file reads as the state before that commit: atomic.
    Slots are 4 KiB and grow (one atomic rename) when the states outgrow them. A file in the
    earlier format (one JSON object, replaced by rename) is read as is and converted by its
    first commit. Commits hold an exclusive ``flock``. The directory must be trusted (as
    before): whoever can write the file can also put an older copy back.
    """

    def __init__(self, path):
        self.path = path

    def _parse(self, raw):
        """Return (doc, sequence, slot index of the current state or None, slot size)."""
        if not raw:      # created by a commit that did not finish: no state yet
            return {}, 0, None, ANCHOR_SLOT
        if raw.lstrip()[:1] == b'{':          # the earlier format: a plain JSON object
            return self._json(raw), 0, None, ANCHOR_SLOT
        size = len(raw) // 2
        if len(raw) < 2 * ANCHOR_SLOT or len(raw) % (2 * ANCHOR_SLOT):
            raise errors.AnchorError('anchor file %s is neither an anchor slot file nor JSON '
                                     '(%d bytes)' % (self.path, len(raw)))
        slots = [_parse_anchor_slot(raw[i * size:(i + 1) * size]) for i in range(2)]
        valid = [(slot[0], i, slot[1]) for i, slot in enumerate(slots) if slot is not None]
        if not valid:
            raise errors.AnchorError('anchor file %s: both slots fail their checksum'
                                     % self.path)
        seq, index, payload = max(valid)
        return self._json(payload), seq, index, size

    def _json(self, raw):
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise errors.AnchorError('anchor file %s is not JSON: %s' % (self.path, exc))
        if not isinstance(doc, dict):
            raise errors.AnchorError('anchor file %s: top level must be an object' % self.path)
        return doc

    def _read(self):
        try:
            with open(self.path, 'rb') as f:
                raw = f.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise errors.AnchorError('cannot read anchor file %s: %s' % (self.path, exc))
        return self._parse(raw)[0]

    def load(self, volume_uuid):
        return self._read().get(volume_uuid)

    def states(self):
        """Every volume's state in this file: {uuid: state}."""
        return self._read()

    def commit(self, volume_uuid, state, expected):
        try:
            fd = self._open_locked()
        except OSError as exc:
            raise errors.AnchorError('cannot open anchor file %s: %s' % (self.path, exc))
        try:
            doc, seq, index, slot_size = self._parse(os.pread(fd, os.fstat(fd).st_size, 0))
            check_transition(volume_uuid, doc.get(volume_uuid), state, expected)
            doc[volume_uuid] = state
            payload = json.dumps(doc, sort_keys=True).encode()
            need = _ANCHOR_SLOT_HEAD.size + len(payload)
            if index is not None and need <= slot_size:
                if os.pwrite(fd, _anchor_slot(seq + 1, payload, slot_size),
                             (1 - index) * slot_size) != slot_size:
                    raise errors.AnchorError('short write to anchor file %s' % self.path)
                os.fdatasync(fd)
                return
            # New file, the earlier format or larger states: write both slots elsewhere
            # and rename the file into place (the only rename in the anchor's life).
            slot_size = -(-need // ANCHOR_SLOT) * ANCHOR_SLOT
            self._replace(_anchor_slot(seq + 1, payload, slot_size) + bytes(slot_size))
        finally:
            os.close(fd)

    def _open_locked(self):
        """Open and lock the anchor file; retry if a conversion replaced it meanwhile."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def _replace(self, raw):
        tmp = '%s.tmp.%d' % (self.path, os.getpid())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
