"""os-brick encryptor: serve a protected volume over NBD on attach, stop it on detach.

Select it in a Cinder volume type with ``provider =
tclouds_openstack.blockstore.encryptor.TcloudsEncryptor`` and ``control_location =
front-end``; os-brick then builds it (``importutils.import_object``) on the compute host
with the key manager that Nova uses (castellan ``tclouds``, role ``compute``: the key is
released only to an attested host).

attach: fetch the key (``get_volume_key``: the key release API decides, naming the Cinder
volume), format the device only if it is new, start ``nbdkit`` with this package's plugin
on ``<state_dir>/<volume>.sock`` (the key passed over a pipe), connect the kernel NBD
client (``nbd-client``) and point ``device_path`` at ``/dev/nbdN`` so the hypervisor sees
only the decrypted, verified view.

"New" is decided by the key service, never by the device: a header that cannot be read
may be a damaged or replaced header of a volume holding data. The key service keeps one
*format mark* per Cinder volume beside its key and anchor, claimed once (create-only)
before the first format. A device without a readable header is formatted only after this
host claimed the mark; a mark that exists (the volume was formatted before, perhaps on
another host), an unreachable service or a key manager without marks refuses the attach
with the reason and a ``blockstore.integrity.failed`` event and notification, and
nothing is written. A readable header of another blockstore volume than the mark names is
refused the same way; a volume formatted before marks existed gets its mark once nbdkit
opened it (its header unwrapped under the volume's key and its anchor verified).

The mark also records the block format (2 for every volume formatted here). A header in
an older format than the mark records is refused the same way (a format downgrade: format
1 draws GCM nonces from the anchor version, so storage putting back a format 1 header
must never make the volume be served, or written, under that scheme). A mark without a
format (claimed before formats were recorded) gets the format of the header nbdkit opened
and verified, and is never lowered after that. Format 1 volumes are served read-only
(``tclouds-blockstore upgrade`` copies one into a new format 2 volume).
detach: disconnect, stop nbdkit (SIGTERM: it flushes and anchors the Merkle root), remove the
socket. The freshness anchor is a file in ``state_dir`` on the compute host.

Hosts without the kernel NBD client (``connect_kernel=False``) still get the export, usable
by QEMU's own NBD client (``nbd+unix:///?socket=...``); see doc/source/blockstore.rst for
what the tests exercise.
"""
import logging
import os
import signal
import socket
import subprocess
import time
import uuid as uuidlib

from os_brick.encryptors import base

from tclouds_openstack.blockstore import errors
from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.blockstore import header as hdr
from tclouds_openstack.blockstore import keys
from tclouds_openstack.blockstore import marks
from tclouds_openstack.blockstore import notify
from tclouds_openstack.blockstore import storage
from tclouds_openstack.cmd import blockstore as cli

LOG = logging.getLogger(__name__)


class EncryptorError(Exception):
    """Attach or detach could not complete; the message names the step and the reason."""


class TcloudsEncryptor(base.VolumeEncryptor):
    """Front-end encryptor for tclouds protected volumes (integrity + freshness)."""

    def __init__(self, root_helper, connection_info, keymgr, execute=None, *args, **kwargs):
        self.conf = kwargs.pop('conf', None)
        self.connect_kernel = kwargs.pop('connect_kernel', True)
        super().__init__(root_helper, connection_info, keymgr, execute=execute, *args,
                         **kwargs)
        data = connection_info.get('data', {})
        self.dev_path = data.get('device_path')
        if not self.dev_path:
            raise EncryptorError('connection_info has no device_path')
        # The Cinder volume: the key release API and the format mark are per volume.
        self.cinder_volume_id = data.get('volume_id') or connection_info.get('serial')
        self.volume_id = self.cinder_volume_id or self.encryption_key_id
        group = self._group()
        self.state_dir = group.state_dir
        self.start_timeout = group.start_timeout
        self.sync_metadata = group.sync_metadata
        self.notify_config = group.notification_config_file
        if self.notify_config and not os.path.exists(self.notify_config):
            self.notify_config = None
        name = str(self.volume_id)
        self.socket_path = os.path.join(self.state_dir, name + '.sock')
        self.anchor_path = os.path.join(self.state_dir, name + '.anchor')
        self.pid_path = os.path.join(self.state_dir, name + '.pid')
        self.events_path = os.path.join(self.state_dir, name + '.events')
        self.log_path = os.path.join(self.state_dir, name + '.log')

    def _group(self):
        if self.conf is None:
            from tclouds_openstack import conf
            self.conf = conf.CONF
        return self.conf.blockstore

    @property
    def export_uri(self):
        return 'nbd+unix:///?socket=%s' % self.socket_path

    # ------------------------------------------------------------------ attach
    def attach_volume(self, context, **kwargs):
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        kek = keys.parse_key(self._volume_key(context).get_encoded())
        header = self._format_if_new(context, kek)
        self._start_export(kek)
        if header is not None:
            # nbdkit opened it: the header unwrapped under this volume's key and the anchor
            # verified. Only now may a volume formatted before marks (or before formats
            # were recorded) get its mark and format recorded.
            self._record_format(context, header)
        if self.connect_kernel:
            self._connect_kernel()

    def _volume_key(self, context):
        """The key, asked for as the key of this Cinder volume when the manager can."""
        get_volume_key = getattr(self._key_manager, 'get_volume_key', None)
        if get_volume_key is None:
            return self._get_key(context)
        return get_volume_key(context, self.cinder_volume_id, self.encryption_key_id)

    # ------------------------------------------------------------------ format marks
    def _mark_call(self, name, context, *args):
        """The volume's format mark (``get``) or its claim (``claim``); marks.Unknown."""
        volume_marks = marks.FormatMarks(self._key_manager, context, self.cinder_volume_id)
        return getattr(volume_marks, name)(*args)

    def _format_if_new(self, context, kek):
        """Return the device's header, or format it (only if new) and return None."""
        st = storage.FileStorage(self.dev_path, readonly=True)
        formatted = []
        try:
            sectors = fmt.sectors_for_capacity(st.size())
            try:
                header, _ = fmt.Volume.read_header(st)
                unreadable = None
            except errors.HeaderError as exc:
                header, unreadable = None, exc
                formatted = hdr.magic_slots(st)
        except errors.BlockstoreError as exc:
            raise EncryptorError('volume %s: cannot read device %s: %s'
                                 % (self.volume_id, self.dev_path, exc))
        finally:
            st.close()
        if header is not None:
            self._check_mark(context, header)
            return header
        if formatted:
            # whatever the key service says (no mark: a volume from before marks, a lost
            # or wrongly answered mark), a header slot with the magic was formatted
            self._refuse('header slot %s carries the blockstore magic, so it was formatted '
                         'before' % ' and '.join(formatted), unreadable)
        try:
            mark = self._mark_call('get', context)
        except marks.Unknown as exc:
            self._refuse(str(exc), unreadable)
        if mark is not None:
            self._refuse('it was formatted before (its format mark names blockstore volume '
                         '%s, host %s, %s)' % (mark.get('blockstore_uuid'), mark.get('host'),
                                               mark.get('created_at')), unreadable, mark)
        if sectors == 0:
            raise EncryptorError('volume %s: device %s is too small for a protected volume'
                                 % (self.volume_id, self.dev_path))
        volume_uuid = uuidlib.uuid4()
        try:
            claimed = self._mark_call('claim', context, str(volume_uuid), fmt.FORMAT_VERSION)
        except marks.Unknown as exc:
            self._refuse(str(exc), unreadable)
        if not claimed:
            self._refuse('another host formatted it meanwhile', unreadable)
        st = storage.FileStorage(self.dev_path)
        try:
            fmt.Volume.create(st, kek, storage.FileAnchor(self.anchor_path),
                              sectors * fmt.SECTOR_SIZE, key_ref=str(self.encryption_key_id),
                              volume_uuid=volume_uuid.bytes)
        except errors.BlockstoreError as exc:
            raise EncryptorError('volume %s: cannot format: %s' % (self.volume_id, exc))
        finally:
            st.close()
        LOG.info('volume %s: formatted as blockstore volume %s (format mark claimed)',
                 self.volume_id, volume_uuid)
        return None

    def _check_mark(self, context, header):
        """A readable header must be the volume the mark names, in no older format."""
        try:
            mark = self._mark_call('get', context)
        except marks.Unknown as exc:
            LOG.warning('volume %s: %s; its readable header is checked by the key and the '
                        'anchor only', self.volume_id, exc)
            return
        if mark is None:
            return
        if mark.get('blockstore_uuid') != header.uuid_str:
            self._refuse('its header is blockstore volume %s, but the volume was formatted as '
                         '%s (host %s, %s): the device holds another volume'
                         % (header.uuid_str, mark.get('blockstore_uuid'), mark.get('host'),
                            mark.get('created_at')), None, mark)
        recorded = mark.get('format_version')
        if recorded is not None and header.format_version < recorded:
            self._refuse('its header is format version %d, but the key service recorded the '
                         'volume in format %d (blockstore volume %s, host %s, %s): a format '
                         'downgrade (an older header put back by the storage) is never served'
                         % (header.format_version, recorded, header.uuid_str,
                            mark.get('host'), mark.get('created_at')), None, mark)

    def _record_format(self, context, header):
        """Record the mark and format of a volume nbdkit opened and verified."""
        try:
            before = self._mark_call('get', context)
            if before is not None and (before.get('format_version') or 0) >= \
                    header.format_version:
                return
            self._mark_call('record_format', context, header.uuid_str, header.format_version)
            LOG.info('volume %s: format mark of blockstore volume %s now records format %d '
                     '(%s)', self.volume_id, header.uuid_str, header.format_version,
                     'formatted before marks existed' if before is None else
                     'recorded before as %s' % before.get('format_version'))
        except marks.Unknown as exc:
            LOG.warning('volume %s: %s', self.volume_id, exc)

    def _refuse(self, why, unreadable, mark=None):
        """Refuse the attach: an event line, a notification, and EncryptorError."""
        reason = ('volume %s: refusing to format or serve device %s: %s%s. Nothing was '
                  'written; restore the volume (or its header) from a backup, or delete it'
                  % (self.volume_id, self.dev_path, why,
                     '' if unreadable is None else ' (header: %s)' % unreadable))
        event = {'event_type': notify.EVENT_TYPE, 'volume': self.cinder_volume_id,
                 'volume_id': self.cinder_volume_id,
                 'blockstore_uuid': (mark or {}).get('blockstore_uuid'), 'sector': None,
                 'check': 'header', 'reason': reason, 'operation': 'attach',
                 'host': socket.gethostname(), 'time': time.time()}
        LOG.error(reason)
        try:
            notify.record(self.events_path, event)
            if self.notify_config:
                notify.notify(self.notify_config, event)
        except Exception as exc:     # the refusal stands whatever the bus does
            LOG.error('volume %s: could not send the integrity notification: %s',
                      self.volume_id, exc)
        raise EncryptorError(reason)

    def _start_export(self, kek):
        self._stop_export()
        read_fd = cli.key_pipe(kek)
        cmd = cli.nbdkit_command(self.dev_path, self.anchor_path, self.socket_path, read_fd,
                                 events=self.events_path, sync_metadata=self.sync_metadata,
                                 notify_config=self.notify_config)
        if self.cinder_volume_id:
            # its integrity events name the Cinder volume (a tenant's report joins on it)
            cmd.append('cinder_volume=%s' % self.cinder_volume_id)
        with open(self.log_path, 'ab') as log:
            proc = subprocess.Popen(cmd, env=cli.plugin_environment(), stdout=log,
                                    stderr=log, pass_fds=(read_fd,), start_new_session=True)
        os.close(read_fd)
        try:
            started = cli.wait_listening(self.socket_path, proc, self.start_timeout)
        except TimeoutError:
            proc.kill()
            proc.wait()
            raise EncryptorError('volume %s: export not listening after %.0f s'
                                 % (self.volume_id, self.start_timeout))
        if not started:
            raise EncryptorError('volume %s: export did not start: %s'
                                 % (self.volume_id, self._log_tail()))
        with open(self.pid_path, 'w') as f:
            f.write(str(proc.pid))
        self._proc = proc

    def _log_tail(self):
        try:
            with open(self.log_path, 'rb') as f:
                return f.read()[-2000:].decode('utf-8', 'replace').strip()
        except OSError:
            return 'no log'

    def _connect_kernel(self):
        """Connect /dev/nbdN to the export and point device_path at it (needs nbd.ko)."""
        device = self._free_nbd_device()
        self._execute('nbd-client', '-unix', self.socket_path, device, '-N', '',
                      run_as_root=True, root_helper=self._root_helper)
        self._execute('ln', '--symbolic', '--force', device, self.dev_path,
                      run_as_root=True, root_helper=self._root_helper)

    @staticmethod
    def _free_nbd_device():
        for n in range(128):
            if not os.path.exists('/sys/block/nbd%d' % n):
                break
            if not os.path.exists('/sys/block/nbd%d/pid' % n):
                return '/dev/nbd%d' % n
        raise EncryptorError('no free /dev/nbdN: is the nbd kernel module loaded?')

    # ------------------------------------------------------------------ detach
    def detach_volume(self, **kwargs):
        self._stop_export()

    def _stop_export(self):
        proc = getattr(self, '_proc', None)
        pid = None
        if proc is not None:
            pid = proc.pid
        elif os.path.exists(self.pid_path):
            with open(self.pid_path) as f:
                pid = int(f.read().strip() or 0) or None
            if pid is not None and not self._is_our_export(pid):
                pid = None           # stale pid file: never signal an unrelated process
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)    # nbdkit flushes and anchors on exit
            except ProcessLookupError:
                pid = None
            if proc is not None:
                try:
                    proc.wait(timeout=self.start_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    raise EncryptorError('volume %s: export did not stop; killed (the next '
                                         'attach recovers it)' % self.volume_id)
            elif pid is not None:
                self._wait_gone(pid)
        self._proc = None
        for path in (self.pid_path, self.socket_path):
            if os.path.exists(path):
                os.unlink(path)

    def _is_our_export(self, pid):
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                argv = f.read().split(b'\0')
        except OSError:
            return False
        return (any(a.endswith(b'nbdkit') for a in argv[:1])
                and self.socket_path.encode() in argv)

    def _wait_gone(self, pid):
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def extend_volume(self, context, **kwargs):
        """Grow the protected volume to the (already extended) device; return its size."""
        if os.path.exists(self.pid_path):
            raise EncryptorError('volume %s: extend it while detached (the running export '
                                 'holds the volume state)' % self.volume_id)
        kek = keys.parse_key(self._volume_key(context).get_encoded())
        st = storage.FileStorage(self.dev_path)
        try:
            vol = fmt.Volume.open(st, kek, storage.FileAnchor(self.anchor_path))
            vol.resize(fmt.sectors_for_capacity(st.size()) * fmt.SECTOR_SIZE, kek)
            return vol.size
        except errors.BlockstoreError as exc:
            raise EncryptorError('volume %s: cannot extend: %s' % (self.volume_id, exc))
        finally:
            st.close()
