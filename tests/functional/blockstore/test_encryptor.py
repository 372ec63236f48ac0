"""The os-brick encryptor class, built by os-brick's own factory, with real nbdkit.

Not exercised here: the kernel NBD client (no nbd.ko on this machine), so
``connect_kernel=False``; the export is driven with qemu-io over its unix socket instead.
"""
import json
import os

from os_brick import encryptors
import pytest

from tclouds_openstack.blockstore import encryptor
from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.blockstore import storage
from tclouds_openstack.common import context as tc_context
from tclouds_openstack.keymgr import driver as km_driver
from tests.functional.blockstore.conftest import qemu_io
from tests.unit.keymgr import helpers

PROVIDER = 'tclouds_openstack.blockstore.encryptor.TcloudsEncryptor'


@pytest.fixture
def env(tmp_path):
    conf = helpers.keymgr_conf(tmp_path, **{'blockstore.state_dir': str(tmp_path / 'state')})
    keymgr = km_driver.TcloudsKeyManager(conf)
    ctx = tc_context.RequestContext(user_id='u', project_id='p')
    device = tmp_path / 'device'
    with open(device, 'wb') as f:
        f.truncate(16 << 20)
    made = []

    def make(key_id):
        info = {'data': {'device_path': str(device), 'volume_id': 'vol-1'}}
        enc = encryptors.get_volume_encryptor(
            None, info, keymgr, None, provider=PROVIDER, control_location='front-end',
            encryption_key_id=key_id, conf=conf, connect_kernel=False)
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
