"""``tclouds-attestation-manage db sync`` on a fresh MariaDB, and services that refuse an
outdated schema instead of racing to create it."""
import os
import subprocess
import sys

import pymysql
import pytest

from tclouds_openstack.attestation.service import store as store_mod
from tests.functional.attestation import conftest as fx
from tests import hermetic
from tests import watchdog


@pytest.fixture
def fresh(tmp_path):
    name, url = fx.mariadb_url()
    path = tmp_path / 'tclouds.conf'
    path.write_text('[attestation]\nconnection = %s\n' % url)
    try:
        yield name, url, str(path)
    finally:
        fx.drop_mariadb(name)


def _command(module, path, *args):
    return ([sys.executable, '-m', 'tclouds_openstack.cmd.%s' % module]
            + hermetic.service_args(path, os.path.dirname(path)) + list(args))


def run(module, path, *args):
    return watchdog.run(_command(module, path, *args), capture_output=True, text=True)


def test_services_refuse_an_unsynced_database_until_db_sync(fresh):
    name, url, path = fresh
    for service in ('attestation_api', 'attestation_worker'):
        result = run(service, path)
        assert result.returncode == 1, (service, result.stderr)
        assert 'has no attestation schema' in result.stderr
        assert 'tclouds-attestation-manage --config-file <tclouds.conf> db sync' in result.stderr
        assert 'Traceback' not in result.stderr
    store = store_mod.Store(url)
    assert store.schema_revisions()[0] is None     # nobody created tables behind our back
    version = run('attestation_manage', path, 'db', 'version')
    assert version.returncode == 1 and 'current (none)' in version.stdout
    sync = run('attestation_manage', path, 'db', 'sync')
    assert sync.returncode == 0, sync.stderr
    current, head = store.schema_revisions()
    assert current == head and head in sync.stdout
    assert store.check_schema() == head
    # running it again (every upgrade does) is a no-op
    assert run('attestation_manage', path, 'db', 'sync').returncode == 0
    assert run('attestation_manage', path, 'db', 'version').returncode == 0


def _waiting_on_lock(db_name):
    conn = pymysql.connect(host='127.0.0.1', user='root', password='')
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.processlist "
                        "WHERE db = %s AND state = 'User lock'", (db_name,))
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_concurrent_db_syncs_are_serialised_by_a_database_lock(fresh):
    name, url, path = fresh
    holder = pymysql.connect(host='127.0.0.1', user='root', password='', database=name)
    procs = []
    try:
        with holder.cursor() as cur:
            cur.execute('SELECT GET_LOCK(%s, 0)', (store_mod.migration_lock_name(name),))
            assert cur.fetchone()[0] == 1
        cmd = _command('attestation_manage', path, 'db', 'sync')
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]

        def both_wait():
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            return _waiting_on_lock(name) >= 2

        watchdog.wait_until(both_wait, 'both db syncs to wait for the lock')
        # both wait: neither has touched the schema while the lock is held
        assert store_mod.Store(url).schema_revisions()[0] is None
        with holder.cursor() as cur:
            cur.execute('SELECT RELEASE_LOCK(%s)', (store_mod.migration_lock_name(name),))
        for p in procs:
            watchdog.wait(p, 'db sync to finish once the lock is free')
        results = [p.communicate() + (p.returncode,) for p in procs]
        assert all(rc == 0 for _, _, rc in results), results
        current, head = store_mod.Store(url).schema_revisions()
        assert current == head
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        holder.close()


def test_db_sync_is_not_held_up_by_another_databases_migration_lock(fresh):
    # GET_LOCK names are server-wide: another database's db sync (another deployment on
    # the same server, a parallel test run) holding its lock must not block this one
    name, url, path = fresh
    holder = pymysql.connect(host='127.0.0.1', user='root', password='', database=name)
    try:
        with holder.cursor() as cur:
            # the other database's lock, and the server-wide name every db sync took before
            for lock in (store_mod.migration_lock_name(name + '_other'),
                         store_mod.MIGRATION_LOCK):
                cur.execute('SELECT GET_LOCK(%s, 0)', (lock,))
                assert cur.fetchone()[0] == 1
        assert run('attestation_manage', path, 'db', 'sync').returncode == 0
        current, head = store_mod.Store(url).schema_revisions()
        assert current == head
    finally:
        holder.close()


def test_migration_lock_names_fit_mysql_and_differ_per_database():
    short = store_mod.migration_lock_name('tclouds_attestation')
    assert short == store_mod.MIGRATION_LOCK + '.tclouds_attestation'
    long_a = store_mod.migration_lock_name('a' * 64)
    long_b = store_mod.migration_lock_name('a' * 63 + 'b')
    assert len(long_a) <= 64 and len(long_b) <= 64 and long_a != long_b


def test_db_sync_against_an_unreachable_database_says_so(tmp_path):
    path = tmp_path / 'tclouds.conf'
    # port 1 on localhost: nothing listens there
    path.write_text('[attestation]\nconnection = mysql+pymysql://root:@127.0.0.1:1/none\n')
    result = run('attestation_manage', str(path), 'db', 'sync')
    assert result.returncode == 2
    assert 'attestation database unavailable' in result.stderr
    assert 'Traceback' not in result.stderr


def test_registrations_awaiting_approval_are_stored_on_mariadb(fresh):
    """An unenrolled registration and an upgraded active one await approval on MariaDB.

    MariaDB refuses values longer than their column (sqlite does not): both store
    ``awaiting_approval`` there.
    """
    import alembic.command
    import alembic.config
    import sqlalchemy as sa

    name, url, path = fresh
    config = alembic.config.Config()
    config.set_main_option('script_location', store_mod.MIGRATIONS)
    config.set_main_option('sqlalchemy.url', url)
    config.set_main_option('version_table', store_mod.VERSION_TABLE)
    alembic.command.upgrade(config, '0001')
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO attestation_hosts (name, registration, ek_public, ak_public, "
            "ak_name, registered_at, status, reasons, ima_offset, next_attest_at) VALUES "
            "('old', 'active', 'x', 'ak', 'aa', '2026-01-01', 'trusted', '[]', 0, "
            "'2026-01-01')"))
    engine.dispose()
    assert run('attestation_manage', path, 'db', 'sync').returncode == 0
    store = store_mod.Store(url)
    assert store.get_host('old').registration == 'awaiting_approval'
    store.register('new', b'ek-new', 'ab' * 32, None, b'ak', 'bb', 'cc' * 32)
    assert store.activate('new', 'bb', 'cc' * 32) == 'awaiting_approval'
    assert store.get_host('new').registration == 'awaiting_approval'
