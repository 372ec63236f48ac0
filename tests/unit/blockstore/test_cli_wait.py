"""``wait_listening``: the one wait for an NBD server's unix socket."""
import socket
import subprocess
import sys

import pytest

from tclouds_openstack.cmd import blockstore as cli


def test_listening_socket(tmp_path):
    path = str(tmp_path / 's.sock')
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen()
    proc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])
    try:
        assert cli.wait_listening(path, proc, 5) is True
    finally:
        proc.kill()
        proc.wait()
        server.close()


def test_server_that_exits_first(tmp_path):
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    assert cli.wait_listening(str(tmp_path / 'none.sock'), proc, 5) is False


def test_nothing_listens_in_time(tmp_path):
    proc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])
    try:
        with pytest.raises(TimeoutError, match='nothing listens on .*none.sock after 0 s'):
            cli.wait_listening(str(tmp_path / 'none.sock'), proc, 0.3)
    finally:
        proc.kill()
        proc.wait()
