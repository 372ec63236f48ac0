"""Files holding secrets or verdicts are created 0600, the directories we make 0700.

The tests run with umask 000, so every mode seen comes from our code, not the umask.
Public files are named in PUBLIC: verification keys and checkpoints are meant to be read.
"""
import logging
import os
import stat

import pytest

from tclouds_openstack.attestation.service import store as attestation_store
from tclouds_openstack.keymgr import store as key_store
from tclouds_openstack.requirements import store as requirements_store
from tclouds_openstack.securelog import source as log_source
from tclouds_openstack.securelog import store as log_store

PUBLIC = ('.vkey', 'checkpoint')


@pytest.fixture(autouse=True)
def no_umask():
    old = os.umask(0)
    yield
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _assert_private_tree(top, created_from):
    """Files under ``top`` are 0600 (PUBLIC excepted), directories from ``created_from`` 0700.

    ``created_from``: the first level our code made.
    """
    assert _mode(created_from) == 0o700, created_from
    seen = 0
    for root, dirs, files in os.walk(top):
        if root.startswith(created_from):
            assert _mode(root) == 0o700, root
        for name in files:
            path = os.path.join(root, name)
            if not name.endswith(PUBLIC) and not name.endswith('.lock'):
                assert _mode(path) == 0o600, (path, oct(_mode(path)))
                seen += 1
    assert seen


def test_attestation_database(tmp_path):
    path = tmp_path / 'new' / 'state' / 'attestation.sqlite'
    store = attestation_store.Store('sqlite:///%s' % path)
    store.migrate()
    store.create_policy('p', '{}', None, None)
    _assert_private_tree(str(tmp_path / 'new'), str(tmp_path / 'new'))


def test_requirements_database(tmp_path):
    path = tmp_path / 'req' / 'requirements.sqlite'
    store = requirements_store.Store('sqlite:///%s' % path)
    store.migrate()
    store.put('p1', True, ['DE'], 'u')
    _assert_private_tree(str(tmp_path / 'req'), str(tmp_path / 'req'))


def test_key_store_and_master_key_warning(tmp_path, caplog):
    path = tmp_path / 'keys' / 'keys.sqlite'
    keys = key_store.LocalKeyStore(str(path), os.urandom(32))
    keys.put('k1', 'symmetric', b'secret', project_id='p1')
    _assert_private_tree(str(tmp_path / 'keys'), str(tmp_path / 'keys'))
    master = tmp_path / 'master.key'
    master.write_text(os.urandom(32).hex())
    os.chmod(master, 0o644)
    with caplog.at_level(logging.WARNING, logger='tclouds_openstack.common.fileutils'):
        key_store.load_master_key(str(master))
    assert 'master key file %s is accessible to other users (mode 0644)' % master in caplog.text


def test_secure_log_database_and_key_files(tmp_path):
    state = tmp_path / 'log' / 'state'
    store = log_store.SecureLogStore('sqlite:///%s' % (tmp_path / 'log' / 'db' / 'log.sqlite'),
                                     str(state), origin='modes', checkpoint_interval=3600)
    source = log_source.Source('nova@ctl', str(tmp_path / 'src' / 'state'))
    store.append(source.seal([({'event_type': 'x'}, 'p1')]))
    store.checkpoint()
    _assert_private_tree(str(tmp_path / 'log'), str(tmp_path / 'log'))
    _assert_private_tree(str(tmp_path / 'src'), str(tmp_path / 'src'))


def test_existing_files_are_kept_and_reported(tmp_path, caplog):
    from tclouds_openstack.common import fileutils
    path = tmp_path / 'old.sqlite'
    path.write_bytes(b'')
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger='tclouds_openstack.common.fileutils'):
        assert fileutils.private_file(str(path), 'database') is False
    assert _mode(path) == 0o644
    assert 'chmod 600 %s' % path in caplog.text
