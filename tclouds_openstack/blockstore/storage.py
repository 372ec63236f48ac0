"""Adapters the pure format runs on: a file as block storage, and freshness anchors.

An anchor stores one small JSON state per volume (version, Merkle root, size; MAC'd
by the volume itself) and enforces that versions only grow (compare-and-set). The file
anchor is for a trusted local directory (the compute host, a test); the key service anchor
(``tclouds_openstack.keymgr``) keeps the state beside the volume key, outside the storage
the volume lives on.
"""
import abc
import json
import os
import stat

from tclouds_openstack.blockstore import errors


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
        # zero-filled: the format zeroes its metadata explicitly.
        self.is_block = stat.S_ISBLK(os.fstat(self.fd).st_mode)

    def pread(self, length, offset):
        data = os.pread(self.fd, length, offset)
        if len(data) < length:
            raise errors.BlockstoreError('volume file %s is truncated: %d bytes missing at '
                                         'offset %d' % (self.path, length - len(data), offset))
        return data

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


class FileAnchor(Anchor):
    """Anchor state in a JSON file, replaced atomically (write, fsync, rename, fsync dir)."""

    def __init__(self, path):
        self.path = path

    def _read(self):
        try:
            with open(self.path, 'rb') as f:
                raw = f.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise errors.AnchorError('cannot read anchor file %s: %s' % (self.path, exc))
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise errors.AnchorError('anchor file %s is not JSON: %s' % (self.path, exc))
        if not isinstance(doc, dict):
            raise errors.AnchorError('anchor file %s: top level must be an object' % self.path)
        return doc

    def load(self, volume_uuid):
        return self._read().get(volume_uuid)

    def commit(self, volume_uuid, state, expected):
        doc = self._read()
        check_transition(volume_uuid, doc.get(volume_uuid), state, expected)
        doc[volume_uuid] = state
        tmp = '%s.tmp.%d' % (self.path, os.getpid())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(doc, sort_keys=True).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
