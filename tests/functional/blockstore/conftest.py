"""Fixtures: a protected volume served by the real nbdkit plugin, driven with qemu-io."""
import os
import signal
import subprocess
import sys

import pytest

from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.cmd import blockstore as bs_cli
from tests import watchdog

CLI = [sys.executable, '-m', 'tclouds_openstack.cmd.blockstore']


def uri(sock):
    return 'nbd+unix:///?socket=%s' % sock


def qemu_io(sock, *commands):
    cmd = ['qemu-io', '-f', 'raw']
    for c in commands:
        cmd += ['-c', c]
    proc = watchdog.run(cmd + [uri(sock)], capture_output=True, text=True)
    return proc.stdout + proc.stderr


def cli(*args):
    return watchdog.run(CLI + list(args), capture_output=True, text=True)


class Served:
    """One volume on disk plus at most one running server for it."""

    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.volume = str(tmp_path / 'vol')
        self.anchor = str(tmp_path / 'anchor.json')
        self.key = str(tmp_path / 'key')
        self.events = str(tmp_path / 'events.jsonl')
        self.sock = str(tmp_path / 'nbd.sock')
        with open(self.key, 'w') as f:
            f.write(os.urandom(32).hex())
        self.proc = None

    def args(self, key=None):
        return [self.volume, '--anchor', self.anchor, '--key-file', key or self.key]

    def create(self, size='8M', *extra):
        out = cli('create', *self.args(), '--size', size, *extra)
        assert out.returncode == 0, out.stderr

    def start(self, key=None, extra=()):
        assert self.proc is None
        self.log = open(str(self.dir / 'server.log'), 'ab')
        self.proc = subprocess.Popen(CLI + ['serve'] + self.args(key) + [
            '--socket', self.sock, '--events', self.events] + list(extra), stdout=self.log,
            stderr=self.log)
        try:
            if bs_cli.wait_listening(self.sock, self.proc, 30):
                return None
        except TimeoutError:
            raise AssertionError('server did not start: %s' % self.server_log())
        rc, self.proc = self.proc.returncode, None
        self.log.close()
        return rc

    def server_log(self):
        with open(str(self.dir / 'server.log')) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()

    def check(self, *extra):
        return cli('check', *self.args(), *extra)

    def patch(self, offset, data):
        with open(self.volume, 'r+b') as f:
            f.seek(offset)
            f.write(data)

    def raw(self, offset, length):
        with open(self.volume, 'rb') as f:
            f.seek(offset)
            return f.read(length)

    def data_offset(self, sector):
        return fmt.data_offset(sector)


@pytest.fixture
def served(tmp_path):
    s = Served(tmp_path)
    try:
        yield s
    finally:
        s.stop(signal.SIGKILL)
