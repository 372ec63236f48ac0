"""Acceptance of issue 6 through qemu-io over nbd+unix:// against the real nbdkit plugin."""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import cryptography

from tclouds_openstack.blockstore import format as fmt
from tests.functional.blockstore.conftest import CLI
from tests.functional.blockstore.conftest import qemu_io
from tests.functional.blockstore.conftest import uri
from tests import watchdog

S = fmt.SECTOR_SIZE
EIO = 'Input/output error'


def test_patterns_survive_restarts_and_check(served):
    served.create('8M')
    assert served.start() is None
    assert 'cryptography %s' % cryptography.__version__ in served.server_log()
    out = qemu_io(served.sock, 'write -P 0x5a 0 1M', 'write -P 0xa5 3M 64k',
                  'write -P 0x11 2102152 3000')
    assert 'wrote' in out and 'error' not in out.lower()
    served.stop()
    assert served.start() is None
    out = qemu_io(served.sock, 'read -P 0x5a 0 1M', 'read -P 0xa5 3M 64k',
                  'read -P 0x11 2102152 3000', 'read -P 0 7M 4k')
    assert 'Pattern verification failed' not in out and EIO not in out, out
    served.stop()
    res = served.check()
    assert res.returncode == 0, res.stderr
    assert 'all 2048 sectors verified' in res.stdout


def _write_then_stop(served, *commands):
    served.create('4M')
    assert served.start() is None
    out = qemu_io(served.sock, *commands)
    assert 'error' not in out.lower(), out
    served.stop()


def test_flipped_bit_is_eio_and_named_by_check(served):
    _write_then_stop(served, 'write -P 0x33 0 64k')
    byte = served.raw(served.data_offset(9) + 77, 1)[0]
    served.patch(served.data_offset(9) + 77, bytes([byte ^ 0x01]))
    res = served.check()
    assert res.returncode == 1
    assert 'sector 9: tag check failed' in res.stderr
    assert served.start() is None
    assert 'read 4096/4096' in qemu_io(served.sock, 'read -P 0x33 %d 4k' % (8 * S))
    assert EIO in qemu_io(served.sock, 'read %d 4k' % (9 * S))
    served.stop()
    events = [json.loads(line) for line in open(served.events)]
    assert events and events[0]['sector'] == 9 and events[0]['check'] == 'tag'
    assert 'integrity failure' in served.server_log()


def test_swapped_sectors_are_eio(served):
    _write_then_stop(served, 'write -P 0x01 %d 4k' % (2 * S), 'write -P 0x02 %d 4k' % (3 * S))
    a, b = served.raw(served.data_offset(2), S), served.raw(served.data_offset(3), S)
    served.patch(served.data_offset(2), b)
    served.patch(served.data_offset(3), a)
    res = served.check('--all')
    assert res.returncode == 1
    assert 'sector 2: tag' in res.stderr and 'sector 3: tag' in res.stderr
    assert served.start() is None
    assert EIO in qemu_io(served.sock, 'read %d 4k' % (2 * S))
    assert EIO in qemu_io(served.sock, 'read %d 4k' % (3 * S))


def test_sector_rollback_is_eio(served):
    _write_then_stop(served, 'write -P 0x44 %d 8k' % (12 * S))
    old = (served.raw(fmt.record_offset(12), fmt.RECORD_SIZE), served.raw(
        served.data_offset(12), S))
    assert served.start() is None
    qemu_io(served.sock, 'write -P 0x55 %d 8k' % (12 * S))
    served.stop()
    served.patch(fmt.record_offset(12), old[0])
    served.patch(served.data_offset(12), old[1])
    res = served.check()
    assert res.returncode == 1 and 'sector 12: rollback check failed' in res.stderr
    assert served.start() is None
    assert EIO in qemu_io(served.sock, 'read %d 4k' % (12 * S))
    out = qemu_io(served.sock, 'read -P 0x55 %d 4k' % (13 * S))
    assert 'read 4096/4096' in out and 'failed' not in out


def test_whole_file_rollback_is_eio(served, tmp_path):
    _write_then_stop(served, 'write -P 0x66 0 16k')
    shutil.copy(served.volume, str(tmp_path / 'snapshot'))
    assert served.start() is None
    qemu_io(served.sock, 'write -P 0x77 0 16k')
    served.stop()
    shutil.copy(str(tmp_path / 'snapshot'), served.volume)
    res = served.check()
    assert res.returncode == 1 and 'volume: tree check failed' in res.stderr
    assert 'rolled back' in res.stderr
    assert served.start() is None
    assert EIO in qemu_io(served.sock, 'read 0 4k')


def test_wrong_key_refused_at_open(served, tmp_path):
    served.create('4M')
    wrong = tmp_path / 'wrong'
    wrong.write_text('00' * 32)
    assert served.start(key=str(wrong)) == 2
    assert 'wrong key' in served.server_log()
    res = subprocess.run(['qemu-io', '-f', 'raw', '-c', 'read 0 4k', uri(served.sock)],
                         capture_output=True, text=True)
    assert 'read 4096' not in res.stdout
    res = served.check()
    assert res.returncode == 0                # the right key still opens it


def test_kill9_during_write_stream_leaves_a_checkable_volume(served):
    served.create('32M')
    assert served.start() is None
    blocks = os.stat(served.volume).st_blocks
    writer = subprocess.Popen(['qemu-img', 'bench', '-w', '-f', 'raw', '-t', 'none', '-c',
                               '200000', '-s', '4k', '-S', '12288', '-d', '16', '--pattern',
                               '0x99', uri(served.sock)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        watchdog.wait_until(lambda: os.stat(served.volume).st_blocks >= blocks + 1024,
                            'writes to land', proc=writer, interval=0.02)
        time.sleep(0.3)
        served.stop(signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()
    res = served.check()
    assert res.returncode == 0, res.stderr
    assert served.start() is None
    assert 'recovered volume' in served.server_log()
    out = qemu_io(served.sock, 'read -P 0x99 0 4k', 'read 0 32M')
    assert 'read 33554432/33554432' in out and 'failed' not in out, out


def test_key_from_the_key_manager(served, tmp_path):
    """--key-id: the key comes from castellan ([key_manager] backend = tclouds)."""
    from oslo_config import cfg

    from tclouds_openstack.common import context as tc_context
    from tclouds_openstack.keymgr import driver as km_driver
    from tests.functional.blockstore.conftest import cli

    master = tmp_path / 'master'
    master.write_text(os.urandom(32).hex())
    conf_file = tmp_path / 'tclouds.conf'
    conf_file.write_text('[key_manager]\nbackend = tclouds\n[tclouds_key_manager]\n'
                         'local_store_path = %s\nmaster_key_file = %s\n'
                         % (tmp_path / 'keys.sqlite', master))
    conf = cfg.ConfigOpts()
    km_driver.register_opts(conf)
    conf(args=[], default_config_files=[str(conf_file)])
    key_id = km_driver.TcloudsKeyManager(conf).create_key(
        tc_context.RequestContext(user_id='op'), 'AES', 256)
    args = [served.volume, '--anchor', served.anchor, '--key-id', key_id, '--config-file',
            str(conf_file)]
    res = cli('create', *args, '--size', '1M')
    assert res.returncode == 0, res.stderr
    assert '"key_ref": "%s"' % key_id in res.stdout
    assert cli('check', *args).returncode == 0
    res = cli('check', *args[:3], '--key-id', 'no-such-key', '--config-file', str(conf_file))
    assert res.returncode == 2 and 'no-such-key' in res.stderr


def test_key_service_anchor_fails_closed_when_unreachable(served, tmp_path):
    """--anchor key-service: no answer from the key release API means no volume."""
    from tests.functional.blockstore.conftest import cli

    conf_file = tmp_path / 'tclouds.conf'
    conf_file.write_text('[tclouds_key_manager]\nrelease_endpoint_override = '
                         'http://127.0.0.1:9\nrelease_timeout = 2\n')
    res = cli('create', served.volume, '--anchor', 'key-service:vol-1', '--key-file',
              served.key, '--config-file', str(conf_file), '--size', '1M')
    assert res.returncode == 2
    assert 'key-release service unreachable' in res.stderr, res.stderr
    res = cli('create', served.volume, '--anchor', 'key-service', '--key-file', served.key,
              '--config-file', str(conf_file), '--size', '1M')
    assert res.returncode == 2 and 'key-service:<volume ID>' in res.stderr, res.stderr


def test_thread_state_kept_per_connection_and_released(served):
    """The plugin keeps a connection thread's Python state and frees it at close.

    QD16 writes with flushes, many connections, then a clean exit.
    """
    served.create('8M')
    assert served.start() is None
    watchdog.run(['qemu-img', 'bench', '-w', '-f', 'raw', '-t', 'none', '-c', '4000',
                  '-s', '4k', '-S', str(257 * S), '-o', str(64 * S), '-d', '16',
                  '--pattern', '0x77', '--flush-interval=100', uri(served.sock)],
                 check=True, stdout=subprocess.DEVNULL)
    for i in range(8):
        out = qemu_io(served.sock, 'write -P 0x%02x %d 4k' % (0x40 + i, i * S),
                      'read -P 0x%02x %d 4k' % (0x40 + i, i * S))
        assert 'error' not in out.lower() and 'failed' not in out, out
    out = qemu_io(served.sock, 'read -P 0x40 0 4k', 'read -P 0x47 %d 4k' % (7 * S),
                  'read -P 0x77 %d 4k' % (64 * S), 'read -P 0x77 %d 4k' % ((64 + 257) * S))
    assert 'failed' not in out and EIO not in out, out
    proc = served.proc
    served.stop()
    assert proc.returncode == 0, served.server_log()
    res = served.check()
    assert res.returncode == 0, res.stderr


def test_kill9_during_key_rotation_leaves_a_volume_that_reads_right(served, tmp_path):
    """Issue 12 point 7: kill -9 in the middle of rotate-key.

    rotate-key re-encrypts every written sector under a new data key; killed in the middle
    it leaves a volume that opens with the new key, reads right, and finishes with a second
    rotate-key.
    """
    from tests.functional.blockstore.conftest import cli
    served.create('512M')
    assert served.start() is None
    writes = ['write -P 0x%02x %dM 32M' % (0x30 + i, i * 40) for i in range(12)]
    out = qemu_io(served.sock, *writes)
    assert out.count('wrote 33554432/33554432') == 12, out
    served.stop()
    new_key = tmp_path / 'new.key'
    new_key.write_text(os.urandom(32).hex())
    rotation = subprocess.Popen(CLI + ['rotate-key', *served.args(), '--new-key-file',
                                       str(new_key)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        for line in rotation.stderr:
            match = re.search(r'(\d+) MiB re-encrypted', line)
            if match and int(match.group(1)) >= 8:
                rotation.kill()
                break
    finally:
        rotation.kill()
        rotation.wait()
    assert rotation.returncode == -signal.SIGKILL, 'rotation ended before it was killed'
    new_args = [served.volume, '--anchor', served.anchor, '--key-file', str(new_key)]
    info = cli('info', *new_args)
    assert info.returncode == 0 and '"rotation_in_progress": true' in info.stdout, info
    assert served.check().returncode == 2          # the old key opens nothing any more
    res = cli('check', *new_args)
    assert res.returncode == 0, res.stderr
    assert served.start(key=str(new_key)) is None
    reads = ['read -P 0x%02x %dM 32M' % (0x30 + i, i * 40) for i in range(12)]
    out = qemu_io(served.sock, *reads)
    assert out.count('read 33554432/33554432') == 12 and 'failed' not in out, out
    served.stop()
    res = cli('rotate-key', *new_args)             # resume (no new key: same KEK)
    assert res.returncode == 0 and 'rotated to generation 2' in res.stdout, res.stderr
    info = cli('info', *new_args)
    assert '"rotation_in_progress": false' in info.stdout
    assert '"data_key_generation": 2' in info.stdout
    assert cli('check', *new_args).returncode == 0


def test_format1_volume_is_served_read_only(served):
    """A volume written by the first release is exported read-only, its data intact."""
    import gzip
    data = os.path.join(os.path.dirname(__file__), '..', '..', 'unit', 'blockstore', 'data')
    with gzip.open(os.path.join(data, 'v1-tree.vol.gz')) as src, \
            open(served.volume, 'wb') as dst:
        shutil.copyfileobj(src, dst)
    shutil.copy(os.path.join(data, 'v1-tree.anchor'), served.anchor)
    with open(served.key, 'w') as f:
        f.write('5a' * 32)
    assert served.start() is None
    assert 'format version 1: served read-only' in served.server_log()
    res = watchdog.run(['qemu-io', '-r', '-f', 'raw', '-c', 'read -P 0 %d 4k' % (100 * S),
                        '-c', 'read -P 0x78 %d 50' % (3 * S + 100), uri(served.sock)],
                       capture_output=True, text=True)
    assert res.stdout.count('read ') == 2 and 'failed' not in res.stdout, res
    assert 'Permission denied' in qemu_io(served.sock, 'write -P 0x11 0 4k')   # read-only
    served.stop()
    res = served.check()
    assert res.returncode == 0 and 'all 300 sectors verified' in res.stdout, res.stderr
