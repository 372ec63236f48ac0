"""The os-brick encryptor class, built by os-brick's own factory, with real nbdkit.

Not exercised here: the kernel NBD client (no nbd.ko on this machine), so
``connect_kernel=False``; the export is driven with qemu-io over its unix socket instead.
The key manager is the real ``tclouds`` driver on a controller (its embedded key store
keeps keys and format marks); two state directories stand for two compute hosts.
"""
import hashlib
import json
import os
import threading
import uuid

from os_brick import encryptors
import pytest

from tclouds_openstack.blockstore import encryptor
from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.blockstore import storage
from tclouds_openstack.common import context as tc_context
from tclouds_openstack.keymgr import driver as km_driver
from tests.functional.blockstore.conftest import qemu_io
from tests.unit.keymgr import helpers
from tests import watchdog

PROVIDER = 'tclouds_openstack.blockstore.encryptor.TcloudsEncryptor'


def _host_conf(tmp_path, host, **overrides):
    """Configuration of one compute host: its own state directory, the shared key store."""
    directory = tmp_path / host
    directory.mkdir(exist_ok=True)
    values = {'blockstore.state_dir': str(directory / 'state'),
              'tclouds_key_manager.local_store_path': str(tmp_path / 'keys.sqlite'),
              'tclouds_key_manager.master_key_file': str(tmp_path / 'master.key')}
    values.update(overrides)
    if not (tmp_path / 'master.key').exists():
        (tmp_path / 'master.key').write_text(os.urandom(32).hex())
    return helpers.keymgr_conf(directory, **values)


@pytest.fixture
def env(tmp_path):
    confs = {'a': _host_conf(tmp_path, 'host-a')}
    keymgr = km_driver.TcloudsKeyManager(confs['a'])
    ctx = tc_context.RequestContext(user_id='u', project_id='p')
    device = tmp_path / 'device'
    with open(device, 'wb') as f:
        f.truncate(16 << 20)
    made = []

    def make(key_id, host='a', volume_id='vol-1', path=device, **overrides):
        if host not in confs or overrides:
            confs[host] = _host_conf(tmp_path, 'host-' + host, **overrides)
        info = {'data': {'device_path': str(path), 'volume_id': volume_id}}
        enc = encryptors.get_volume_encryptor(
            None, info, km_driver.TcloudsKeyManager(confs[host]), None, provider=PROVIDER,
            control_location='front-end', encryption_key_id=key_id, conf=confs[host],
            connect_kernel=False)
        made.append(enc)
        return enc

    yield make, keymgr.create_key(ctx, 'AES', 256), keymgr, ctx, device
    for enc in made:
        enc.detach_volume()


def test_attach_formats_serves_and_detach_stops(env):
    make, key_id, keymgr, ctx, device = env
    enc = make(key_id)
    assert isinstance(enc, encryptor.TcloudsEncryptor)
    enc.attach_volume(ctx)
    header, _ = fmt.Volume.read_header(storage.FileStorage(str(device), readonly=True))
    assert header.sector_count == fmt.sectors_for_capacity(16 << 20)
    out = qemu_io(enc.socket_path, 'write -P 0x3c 0 256k')
    assert 'wrote 262144/262144' in out
    pid = enc._proc.pid
    enc.detach_volume()
    assert not os.path.exists(enc.socket_path)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    enc = make(key_id)
    enc.attach_volume(ctx)                       # second attach: no reformat
    out = qemu_io(enc.socket_path, 'read -P 0x3c 0 256k')
    assert 'read 262144/262144' in out and 'failed' not in out, out
    enc.detach_volume()


def test_wrong_key_refused_and_integrity_failure_is_eio(env):
    make, key_id, keymgr, ctx, device = env
    enc = make(key_id)
    enc.attach_volume(ctx)
    qemu_io(enc.socket_path, 'write -P 0x3c 0 64k')
    enc.detach_volume()
    other = keymgr.create_key(ctx, 'AES', 256)
    with pytest.raises(encryptor.EncryptorError) as exc:
        make(other).attach_volume(ctx)
    assert 'wrong key' in str(exc.value)
    with open(device, 'r+b') as f:
        f.seek(fmt.data_offset(3) + 5)
        byte = f.read(1)[0]
        f.seek(fmt.data_offset(3) + 5)
        f.write(bytes([byte ^ 0xff]))         # always a change (0xff may be there already)
    enc = make(key_id)
    enc.attach_volume(ctx)
    assert 'Input/output error' in qemu_io(enc.socket_path, 'read %d 4k' % (3 * 4096))
    enc.detach_volume()
    (event,) = [json.loads(line) for line in open(enc.events_path)]
    assert event['sector'] == 3 and event['check'] == 'tag'
    assert event['volume_id'] == 'vol-1'            # the Cinder volume, for tenants' reports


def test_detach_after_restart_stops_only_our_export(env):
    """After a nova-compute restart the export is found by its pid file, nothing else.

    A stale pid file naming another process must not make detach signal that process.
    """
    make, key_id, keymgr, ctx, device = env
    enc = make(key_id)
    enc.attach_volume(ctx)
    pid = enc._proc.pid
    later = make(key_id)
    later.detach_volume()
    enc._proc.wait(timeout=30)
    assert not os.path.exists(later.socket_path)
    with open(later.pid_path, 'w') as f:
        f.write(str(os.getpid()))                # stale pid file naming this test process
    later.detach_volume()                        # must not signal us
    assert not os.path.exists(later.pid_path)
    assert pid != os.getpid()


def test_extend_while_detached(env):
    make, key_id, keymgr, ctx, device = env
    enc = make(key_id)
    enc.attach_volume(ctx)
    qemu_io(enc.socket_path, 'write -P 0x5e 0 64k')
    with pytest.raises(encryptor.EncryptorError) as exc:
        enc.extend_volume(ctx)
    assert 'while detached' in str(exc.value)
    enc.detach_volume()
    with open(device, 'r+b') as f:
        f.truncate(32 << 20)                       # Cinder extended the volume
    new_size = make(key_id).extend_volume(ctx)
    assert new_size == fmt.sectors_for_capacity(32 << 20) * fmt.SECTOR_SIZE
    enc = make(key_id)
    enc.attach_volume(ctx)
    out = qemu_io(enc.socket_path, 'read -P 0x5e 0 64k', 'read -P 0 %d 4k' % (new_size - 4096))
    assert out.count('read ') == 2 and 'failed' not in out, out
    enc.detach_volume()


def _digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


class _Listener:
    """A notification listener on the real RabbitMQ, on a topic of its own."""

    def __init__(self, tmp_path):
        from oslo_config import cfg
        import oslo_messaging
        topic = 'tclouds-encryptor-test-%s' % uuid.uuid4().hex[:8]
        self.conf_file = tmp_path / 'notify.conf'
        self.conf_file.write_text(
            '[DEFAULT]\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n'
            'control_exchange = %s\n[oslo_messaging_notifications]\ndriver = messagingv2\n'
            'topics = %s\n[oslo_messaging_rabbit]\namqp_auto_delete = true\n'
            % (topic, topic))
        conf = cfg.ConfigOpts()
        conf(args=[], default_config_files=[str(self.conf_file)], default_config_dirs=[])
        self.transport = oslo_messaging.get_notification_transport(conf)
        self.seen = []
        self.event = threading.Event()
        self.listener = oslo_messaging.get_notification_listener(
            self.transport, [oslo_messaging.Target(topic=topic)], [self], executor='threading')
        self.listener.start()

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self.seen.append((event_type, payload))
        self.event.set()

    def close(self):
        self.listener.stop()
        self.listener.wait()
        self.transport.cleanup()


def test_unreadable_header_on_a_host_without_anchor_is_refused_data_intact(env, tmp_path):
    """Issue 12 point 8.

    A formatted volume whose header cannot be read, attached on a host that has no anchor for
    it, is refused (clear error, integrity event and notification on the real RabbitMQ), never
    reformatted: the device is unchanged and reads back once its header is restored.
    """
    make, key_id, keymgr, ctx, device = env
    enc = make(key_id)
    enc.attach_volume(ctx)                             # new: claims the mark, formats
    assert 'wrote 262144/262144' in qemu_io(enc.socket_path, 'write -P 0x3c 0 256k')
    enc.detach_volume()
    with open(device, 'r+b') as f:
        header = f.read(2 * fmt.HEADER_SLOT_SIZE)
        for slot in (0, 1):                            # e.g. a backend serving other blocks
            f.seek(slot * fmt.HEADER_SLOT_SIZE)
            f.write(b'NOTAVOL!')
    damaged = _digest(device)
    listener = _Listener(tmp_path)
    try:
        other = make(key_id, host='b',
                     **{'blockstore.notification_config_file': str(listener.conf_file)})
        assert not os.path.exists(other.anchor_path)    # that host never saw the volume
        with pytest.raises(encryptor.EncryptorError) as exc:
            other.attach_volume(ctx)
        message = str(exc.value)
        assert 'refusing to format or serve' in message and 'formatted before' in message
        assert 'Nothing was written' in message and 'magic' in message
        assert _digest(device) == damaged
        watchdog.wait_until(listener.event.is_set, 'the integrity notification')
        event_type, payload = listener.seen[0]
        assert event_type == 'blockstore.integrity.failed'
        assert payload['volume'] == payload['volume_id'] == 'vol-1'
        assert payload['check'] == 'header'
    finally:
        listener.close()
    (event,) = [json.loads(line) for line in open(other.events_path)]
    assert event['check'] == 'header' and event['operation'] == 'attach'
    with pytest.raises(encryptor.EncryptorError):
        make(key_id).attach_volume(ctx)                # the first host refuses too
    assert _digest(device) == damaged
    with open(device, 'r+b') as f:                     # the data was never touched
        f.write(header)
    enc = make(key_id)
    enc.attach_volume(ctx)
    out = qemu_io(enc.socket_path, 'read -P 0x3c 0 256k')
    assert 'read 262144/262144' in out and 'failed' not in out, out
    enc.detach_volume()


def test_a_device_holding_another_volume_is_refused(env, tmp_path):
    """The mark names the blockstore volume each Cinder volume was formatted as.

    A device that shows another (readable) volume is refused, not served.
    """
    make, key_id, keymgr, ctx, device = env
    enc = make(key_id)
    enc.attach_volume(ctx)
    enc.detach_volume()
    second = tmp_path / 'device-2'
    with open(second, 'wb') as f:
        f.truncate(16 << 20)
    enc2 = make(key_id, volume_id='vol-2', path=second)
    enc2.attach_volume(ctx)                            # a new volume of its own
    enc2.detach_volume()
    with open(device, 'rb') as src, open(second, 'r+b') as dst:
        dst.write(src.read())                          # vol-2's device now shows vol-1
    with pytest.raises(encryptor.EncryptorError) as exc:
        make(key_id, volume_id='vol-2', path=second).attach_volume(ctx)
    assert 'holds another volume' in str(exc.value)


def test_a_key_manager_without_marks_never_formats(env, tmp_path):
    """Without format marks a new volume cannot be told from a damaged one: no format."""
    make, key_id, keymgr, ctx, device = env
    before = _digest(device)
    info = {'data': {'device_path': str(device), 'volume_id': 'vol-1'}}
    conf = keymgr.conf
    enc = encryptors.get_volume_encryptor(
        None, info, km_driver.LocalKeyManager(conf), None, provider=PROVIDER,
        control_location='front-end', encryption_key_id=key_id, conf=conf,
        connect_kernel=False)
    with pytest.raises(encryptor.EncryptorError) as exc:
        enc.attach_volume(ctx)
    assert 'keeps no format marks' in str(exc.value)
    assert _digest(device) == before


def _forget_marks(tmp_path):
    """The key service lost the marks (a volume from before marks, a restored key store)."""
    import sqlite3
    db = sqlite3.connect(str(tmp_path / 'keys.sqlite'))
    with db:
        db.execute('DELETE FROM format_marks')
    db.close()


@pytest.mark.parametrize('damage', ['checksum', 'future format version'])
def test_a_formatted_volume_without_mark_is_never_reformatted(env, tmp_path, damage):
    """A header slot with the blockstore magic was formatted, whatever the key service says.

    The key service has no mark for the volume (it was formatted before marks existed, or
    the mark was lost) and its header does not read: refused, nothing written, and the data
    reads back once the header is restored.
    """
    make, key_id, keymgr, ctx, device = env
    enc = make(key_id)
    enc.attach_volume(ctx)
    assert 'wrote 65536/65536' in qemu_io(enc.socket_path, 'write -P 0x5a 0 64k')
    enc.detach_volume()
    _forget_marks(tmp_path)
    with open(device, 'r+b') as f:
        header = f.read(2 * fmt.HEADER_SLOT_SIZE)
        for slot in (0, 1):
            if damage == 'checksum':            # a bit flipped in the wrapped key
                f.seek(slot * fmt.HEADER_SLOT_SIZE + 200)
                f.write(b'\xff')
            else:                               # a newer release's format, say 3
                f.seek(slot * fmt.HEADER_SLOT_SIZE + 8)
                f.write(b'\x00\x03')
    damaged = _digest(device)
    other = make(key_id, host='b')
    with pytest.raises(encryptor.EncryptorError) as exc:
        other.attach_volume(ctx)
    message = str(exc.value)
    assert 'carries the blockstore magic' in message and 'Nothing was written' in message
    assert _digest(device) == damaged
    with open(device, 'r+b') as f:
        f.write(header)
    enc = make(key_id)
    enc.attach_volume(ctx)
    out = qemu_io(enc.socket_path, 'read -P 0x5a 0 64k')
    assert 'read 65536/65536' in out and 'failed' not in out, out


def test_a_format1_header_on_a_format2_volume_is_refused(env, tmp_path):
    """A downgrade to the format 1 nonce scheme is refused before anything is read.

    Format 1 headers are never written, and ``tclouds-blockstore upgrade`` copies a format
    1 volume into a new format 2 volume (a new blockstore UUID): so a device of a Cinder
    volume formatted as format 2 that shows a format 1 header (an old copy put back) holds
    another blockstore volume than its mark names, and is refused as such, unchanged.
    """
    import gzip
    import shutil
    make, key_id, keymgr, ctx, device = env
    enc = make(key_id)
    enc.attach_volume(ctx)
    enc.detach_volume()
    data = os.path.join(os.path.dirname(__file__), '..', '..', 'unit', 'blockstore', 'data')
    with gzip.open(os.path.join(data, 'v1-tree.vol.gz')) as src, open(device, 'wb') as dst:
        shutil.copyfileobj(src, dst)
    with open(device, 'rb') as f:
        assert f.read(10)[8:10] == b'\x00\x01'                # format version 1 on disk
    before = _digest(device)
    with pytest.raises(encryptor.EncryptorError) as exc:
        make(key_id, host='b').attach_volume(ctx)
    assert 'holds another volume' in str(exc.value)
    assert _digest(device) == before


@pytest.mark.parametrize('mark', ['recorded at format', 'recorded at the first open'])
def test_a_format_downgrade_is_refused_with_an_integrity_event(env, tmp_path, mark):
    """Issue 12 point 6: a format 2 volume is never served as format 1.

    The key service's format mark records format 2: when the encryptor formats the volume,
    or (a mark claimed before formats were recorded) when nbdkit first opened and verified
    it. Storage that then puts back a format 1 header of the same blockstore volume, even
    wrapping the same data key, is refused before nbdkit starts: a clear reason, an
    integrity event, nothing written; the volume serves again once its header is back.
    """
    from tests.unit.blockstore.test_format_downgrade import put_back_format1_header
    make, key_id, keymgr, ctx, device = env
    keystore = keymgr.wrapped.keystore
    enc = make(key_id)
    enc.attach_volume(ctx)
    assert 'wrote 65536/65536' in qemu_io(enc.socket_path, 'write -P 0x5a 0 64k')
    enc.detach_volume()
    assert keystore.format_mark('vol-1')['format_version'] == 2
    if mark == 'recorded at the first open':
        import sqlite3
        db = sqlite3.connect(str(tmp_path / 'keys.sqlite'))
        with db:
            db.execute('UPDATE format_marks SET format_version = NULL')
        db.close()
        assert keystore.format_mark('vol-1')['format_version'] is None
        enc = make(key_id)
        enc.attach_volume(ctx)
        enc.detach_volume()
        assert keystore.format_mark('vol-1')['format_version'] == 2
    with open(device, 'rb') as f:
        header = f.read(2 * fmt.HEADER_SLOT_SIZE)
    kek = keymgr.get(ctx, key_id).get_encoded()
    uuid = put_back_format1_header(str(device), kek)
    damaged = _digest(device)
    enc = make(key_id)
    with pytest.raises(encryptor.EncryptorError) as exc:
        enc.attach_volume(ctx)
    message = str(exc.value)
    assert 'its header is format version 1, but the key service recorded the volume in ' \
           'format 2 (blockstore volume %s' % uuid in message
    assert 'format downgrade' in message and 'Nothing was written' in message
    assert not os.path.exists(enc.socket_path)                  # nbdkit never started
    assert _digest(device) == damaged
    event = [json.loads(line) for line in open(enc.events_path)][-1]
    assert event['event_type'] == 'blockstore.integrity.failed'
    assert event['check'] == 'header' and event['blockstore_uuid'] == uuid
    assert 'format downgrade' in event['reason']
    assert keystore.format_mark('vol-1')['format_version'] == 2  # never lowered
    with open(device, 'r+b') as f:
        f.write(header)
    enc = make(key_id)
    enc.attach_volume(ctx)
    out = qemu_io(enc.socket_path, 'read -P 0x5a 0 64k')
    assert 'read 65536/65536' in out and 'failed' not in out, out
