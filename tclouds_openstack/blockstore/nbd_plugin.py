"""nbdkit Python plugin: serves the decrypted, verified view of a protected volume.

Loaded by nbdkit's embedded interpreter (``nbdkit python nbd_plugin.py volume=... ...``),
normally through ``tclouds-blockstore serve``, which sets PYTHONPATH so that the
embedded Debian libpython finds this package and a recent ``cryptography``.

Parameters: ``volume=PATH`` (required), ``anchor=PATH`` (file anchor, or
``key-service:<Cinder volume ID>`` with ``config=FILE[,FILE]`` naming the oslo.config
files of the key release API client),
``keyfd=N`` (read
the 32-byte key from inherited descriptor N, e.g. a pipe: the key never touches a file)
or ``keyfile=PATH`` (development), ``events=PATH`` (append one JSON line per integrity
failure), ``notify_config=PATH`` (an oslo.config file whose [DEFAULT] transport_url and
[oslo_messaging_notifications] say where the ``blockstore.integrity.failed``
notification goes), ``sync_metadata=1`` (fdatasync between journal and data writes, for
power-loss ordering), ``cache_mb=N`` (memory for cached tree nodes and sector records,
default 64), ``cinder_volume=ID`` (the Cinder volume served, named in integrity events as
``volume_id``). A format 1 volume is served read-only.

Requests are serialized (THREAD_MODEL_SERIALIZE_ALL_REQUESTS): on 2 cores the GIL makes
parallel threads ~3x slower, and read-modify-write of partial sectors must not interleave.
nbdkit then runs every request of a connection on that connection's thread; the plugin
keeps that thread's Python thread state alive between requests (see
:func:`_keep_thread_state`), which halves the per-request cost.
An integrity failure is EIO to the client plus a log line and an event.

nbdkit calls module-level functions by name; ``open`` shadows the builtin here, so
files are opened with ``io.open``.
"""
import ctypes
import errno
import io
import json
import os
import sys
import threading
import time

import nbdkit

from tclouds_openstack.blockstore import errors
from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.blockstore import keys
from tclouds_openstack.blockstore import notify
from tclouds_openstack.blockstore import storage

API_VERSION = 2

_params = {}
_volume = None


def thread_model():
    return nbdkit.THREAD_MODEL_SERIALIZE_ALL_REQUESTS


# nbdkit wraps every callback in PyGILState_Ensure/Release. On a thread Python did not
# create, Release drops the thread state when its count returns to zero, so each request
# builds and tears down a PyThreadState (with an mmap'ed 16 KiB frame stack): measured,
# that is half the cost of a 4 KiB request at queue depth 16. In the serialized thread
# model nbdkit calls open, every request and close of a connection on that connection's
# thread: open() takes one extra Ensure, keeping the count above zero, and close() gives
# it back on the same thread, so the state is freed when the connection ends. Only the
# Python-level state is kept: the GIL is still released after every callback.
_thread = threading.local()
try:
    _gil_ensure = ctypes.pythonapi.PyGILState_Ensure
    _gil_ensure.argtypes = ()
    _gil_ensure.restype = ctypes.c_int
    _gil_release = ctypes.pythonapi.PyGILState_Release
    _gil_release.argtypes = (ctypes.c_int,)
    _gil_release.restype = None
except AttributeError:  # not an embedded CPython: nothing to keep
    _gil_ensure = _gil_release = None


def _keep_thread_state():
    if _gil_ensure is not None and 'state' not in _thread.__dict__:
        _thread.state = _gil_ensure()


def _drop_thread_state():
    state = _thread.__dict__.pop('state', None)
    if state is not None:
        _gil_release(state)


def config(key, value):
    if key not in ('volume', 'anchor', 'keyfd', 'keyfile', 'events', 'sync_metadata',
                   'readonly', 'notify_config', 'config', 'cache_mb', 'cinder_volume'):
        raise RuntimeError('unknown parameter %r' % key)
    _params[key] = value


def _read_key():
    if 'keyfd' in _params:
        fd = int(_params['keyfd'])
        chunks = []
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(fd)
        raw = b''.join(chunks)
    elif 'keyfile' in _params:
        with io.open(_params['keyfile'], 'rb') as f:
            raw = f.read()
    else:
        raise RuntimeError('give the key with keyfd=N or keyfile=PATH')
    return keys.parse_key(raw)


def config_complete():
    """Open the volume before serving: a wrong key or a broken header stops nbdkit here."""
    global _volume
    for key in ('volume', 'anchor'):
        if key not in _params:
            raise RuntimeError('missing parameter %s=' % key)
    readonly = _params.get('readonly') == '1'
    kek = _read_key()
    st = None
    try:
        st = storage.FileStorage(_params['volume'], readonly=readonly)
        if fmt.Volume.read_header(st)[0].format_version == 1 and not readonly:
            _log('volume %s is format version 1: serving it read-only (convert it with '
                 '"tclouds-blockstore upgrade")' % _params['volume'])
            readonly = True
            st.close()
            st = storage.FileStorage(_params['volume'], readonly=True)
        _volume = fmt.Volume.open(st, kek, _anchor(),
                                  readonly=readonly,
                                  sync_metadata=_params.get('sync_metadata') == '1',
                                  cache_bytes=int(_params.get('cache_mb', 64)) << 20)
    except errors.BlockstoreError as exc:
        if st is not None:
            st.close()
        raise RuntimeError('cannot open volume %s: %s' % (_params['volume'], exc))
    if _volume.recovered:
        _log('recovered volume %s after an unclean shutdown' % _volume.uuid)
    import cryptography
    info = _volume.info()
    _log('serving volume %s (%d bytes, format %d, %s, data key generation %d%s, python %s, '
         'cryptography %s)' % (_volume.uuid, _volume.size, info['format_version'],
                               'read-only' if readonly else 'read-write',
                               info['data_key_generation'],
                               ', rotation unfinished' if info['rotation_in_progress']
                               else '', sys.version.split()[0], cryptography.__version__))


def _anchor():
    from tclouds_openstack.cmd import blockstore as cli
    spec = _params['anchor']
    if cli.is_key_service(spec):
        from tclouds_openstack.keymgr import client
        return client.anchor_for(spec, _params.get('config', '').split(','))
    return storage.FileAnchor(spec)


def _log(message):
    sys.stderr.write('tclouds-blockstore: %s\n' % message)
    sys.stderr.flush()


def _event(exc, operation, offset, count):
    event = {'event_type': notify.EVENT_TYPE, 'volume': _volume.uuid,
             'volume_id': _params.get('cinder_volume'),
             'sector': exc.sector, 'check': exc.check, 'reason': str(exc),
             'operation': operation, 'offset': offset, 'count': count, 'time': time.time()}
    _log('integrity failure: %s' % json.dumps(event, sort_keys=True))
    if 'events' in _params:
        notify.record(_params['events'], event)
    if 'notify_config' in _params:
        try:
            notify.notify(_params['notify_config'], event)
        except Exception as exc:  # the EIO must reach the client whatever the bus does
            _log('could not send the notification: %s' % exc)


def _fail(exc, operation, offset, count):
    if isinstance(exc, errors.IntegrityError):
        _event(exc, operation, offset, count)
    else:
        _log('%s at %d+%d failed: %s' % (operation, offset, count, exc))
    # Storage errors keep their errno (ENOSPC, ...); everything else is EIO.
    nbdkit.set_error(getattr(exc, 'errno', None) or errno.EIO)
    raise exc


def open(readonly):
    _keep_thread_state()
    return {}


def close(h):
    try:
        _volume.flush()
    finally:
        _drop_thread_state()


def unload():
    if _volume is not None:
        _volume.flush()


def get_size(h):
    return _volume.size


def can_write(h):
    return not _volume.readonly


def can_flush(h):
    return True


def can_fua(h):
    return nbdkit.FUA_NATIVE


def can_multi_conn(h):
    return False


def pread(h, buf, offset, flags):
    try:
        _volume.read_into(offset, buf)
    except (errors.BlockstoreError, OSError) as exc:
        _fail(exc, 'read', offset, len(buf))


def pwrite(h, buf, offset, flags):
    try:
        _volume.write(offset, buf)
        if flags & nbdkit.FLAG_FUA:
            _volume.flush()
    except (errors.BlockstoreError, OSError) as exc:
        _fail(exc, 'write', offset, len(buf))


def flush(h, flags):
    try:
        _volume.flush()
    except (errors.BlockstoreError, OSError) as exc:
        _fail(exc, 'flush', 0, 0)
