"""A cloud kept in a local directory: one file per object.

Option: ``path``, an absolute directory (created by :meth:`ensure_container`, mode 0700).
Meant for the all-in-one demo, tests, and a provider reached through a mounted file
system (NFS, a FUSE mount of another provider's storage); each of the *n* clouds needs
its own directory on its own storage, or the clouds are not independent.

Keys are stored flat: the file name is the key percent-encoded (``/`` becomes ``%2F``,
a leading ``.`` becomes ``%2E``), so no key can name a path outside the directory, and
names starting with ``.`` are free for temporary files, which listings skip. Keys that
are empty, absolute, contain NUL or a ``.``/``..`` path component are refused anyway.
Writes are atomic: a temporary file in the directory is written, flushed to disk and
renamed over the key (then the directory is synced), so a reader sees the previous
object or the whole new one, and a write cut short leaves nothing. A missing or
unreadable directory, or any other ``OSError``, is a
:class:`~tclouds_openstack.cloudstore.errors.BackendError` naming the cloud and the
operation.
"""
import os
import stat
import tempfile
import urllib.parse

from tclouds_openstack.cloudstore.backends import base
from tclouds_openstack.cloudstore import errors

TEMP_PREFIX = '.tmp-'
#: Longest file name most Linux file systems accept (bytes).
MAX_NAME_BYTES = 255


def _describe(exc):
    """``strerror: filename`` of an OSError, without the errno number."""
    reason = exc.strerror or type(exc).__name__
    if exc.filename:
        reason = '%s: %s' % (reason, exc.filename)
    return reason


def _encode(key):
    """The file name of ``key``: percent-encoded, never starting with a dot."""
    name = urllib.parse.quote(key, safe='', errors='strict')
    if name.startswith('.'):
        name = '%2E' + name[1:]
    return name


class DirectoryBackend(base.Backend):

    def __init__(self, name, path):
        super().__init__(name)
        self.path = os.path.abspath(path)

    @classmethod
    def from_options(cls, name, options):
        path = base.required_option(name, options, 'path')
        if not os.path.isabs(path):
            raise errors.CloudStoreError('cloud %s: path %r must be an absolute directory'
                                         % (name, path))
        return cls(name, path)

    # -- keys -----------------------------------------------------------------------------

    def _filename(self, operation, key):
        """The file of ``key`` in the directory, or BackendError if the key is refused."""
        def refuse(reason):
            raise errors.BackendError(self.name, operation, 'key %r refused: %s'
                                      % (key, reason))

        if not isinstance(key, str) or not key:
            refuse('expected a non-empty string')
        if '\x00' in key:
            refuse('contains NUL')
        if key.startswith('/'):
            refuse('absolute path')
        if any(part in ('.', '..') for part in key.split('/')):
            refuse('contains a "." or ".." path component')
        try:
            name = _encode(key)
        except UnicodeEncodeError:
            refuse('not encodable as UTF-8')
        if len(name) > MAX_NAME_BYTES:
            refuse('encoded file name is %d bytes, more than %d'
                   % (len(name), MAX_NAME_BYTES))
        return os.path.join(self.path, name)

    def path_of(self, key):
        """The file that holds (or would hold) ``key``; BackendError if the key is refused."""
        return self._filename('path_of', key)

    def _error(self, operation, key, exc):
        where = '%s: ' % key if key else ''
        return errors.BackendError(self.name, operation, where + _describe(exc))

    def _check_directory(self, operation, key):
        """BackendError unless the directory exists (a missing file is then NotFound)."""
        if not os.path.isdir(self.path):
            raise errors.BackendError(self.name, operation, '%s: directory %s is missing'
                                      % (key, self.path))

    # -- the contract ---------------------------------------------------------------------

    def put(self, key, data):
        self.put_stream(key, (data,), len(data))

    def put_stream(self, key, chunks, length=None):
        target = self._filename('put', key)
        try:
            fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=self.path)
        except OSError as exc:
            raise errors.BackendError(self.name, 'put', '%s: cannot create a file in %s: %s'
                                      % (key, self.path, exc.strerror or exc))
        try:
            with os.fdopen(fd, 'wb') as stream:
                written = 0
                for chunk in chunks:
                    stream.write(chunk)
                    written += len(chunk)
                if length is not None and written != length:
                    raise errors.BackendError(self.name, 'put', '%s: %d bytes received, %d '
                                              'announced' % (key, written, length))
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temp, target)
        except BaseException as exc:
            # Whatever stopped the write (the writer's chunks raising included), the key
            # keeps its previous object and no partial file stays behind.
            try:
                os.unlink(temp)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise self._error('put', key, exc)
            raise
        self._sync_directory('put', key)

    def _sync_directory(self, operation, key):
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._error(operation, key, exc)

    def _read(self, key, start, length):
        path = self._filename('get', key)
        try:
            # O_NONBLOCK: a FIFO planted under a key must not hang the reader.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            self._check_directory('get', key)
            raise errors.BackendNotFound(self.name, key)
        except OSError as exc:
            raise self._error('get', key, exc)
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise errors.BackendError(self.name, 'get', '%s: %s' % (
                    key, 'Is a directory' if stat.S_ISDIR(mode) else 'not a regular file'))
            stream = os.fdopen(fd, 'rb', buffering=0)
        except BaseException:
            os.close(fd)
            raise
        # A file read cannot be interrupted: the deadline is checked between chunks (a
        # mount that answers slowly is faulty past it; one that hangs a read hangs it:
        # mount network file systems "soft", with a timeout).
        deadline = self._deadline('get')
        with stream:
            try:
                stream.seek(start)
                remaining = length
                while remaining is None or remaining > 0:
                    deadline.check(key)
                    size = base.READ_CHUNK_BYTES if remaining is None else min(
                        remaining, base.READ_CHUNK_BYTES)
                    chunk = stream.read(size)
                    if not chunk:
                        return
                    if remaining is not None:
                        remaining -= len(chunk)
                    yield chunk
            except OSError as exc:
                raise self._error('get', key, exc)
            finally:
                deadline.finish()

    def delete(self, key):
        path = self._filename('delete', key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            self._check_directory('delete', key)
        except OSError as exc:
            raise self._error('delete', key, exc)

    def list(self, prefix=''):
        try:
            names = os.listdir(self.path)
        except OSError as exc:
            raise self._error('list', '', exc)
        keys = []
        for name in names:
            if name.startswith('.'):
                continue
            try:
                key = urllib.parse.unquote(name, errors='strict')
                if _encode(key) != name:
                    continue  # not a file this backend wrote
            except UnicodeError:
                continue
            if key.startswith(prefix):
                keys.append(key)
        return sorted(keys)

    def ensure_container(self):
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
        except FileExistsError:
            raise errors.BackendError(self.name, 'ensure_container', 'Not a directory: %s'
                                      % self.path)
        except OSError as exc:
            raise self._error('ensure_container', '', exc)

    def __repr__(self):
        return '<%s %s at %s>' % (type(self).__name__, self.name, self.path)
