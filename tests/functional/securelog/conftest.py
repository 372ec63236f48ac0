"""Fixtures of the secure log functional tests: databases, a populated store, a writer."""
import subprocess
import sys
import uuid

import psycopg2
import pymysql
import pytest


def _mariadb():
    name = 'tclouds_slog_%s' % uuid.uuid4().hex[:8]
    conn = pymysql.connect(host='127.0.0.1', user='tclouds', password='tclouds')
    with conn.cursor() as cur:
        cur.execute('CREATE DATABASE %s CHARACTER SET utf8mb4' % name)
    conn.close()

    def drop():
        conn = pymysql.connect(host='127.0.0.1', user='tclouds', password='tclouds')
        with conn.cursor() as cur:
            cur.execute('DROP DATABASE IF EXISTS %s' % name)
        conn.close()
    return 'mysql+pymysql://tclouds:tclouds@127.0.0.1/%s?charset=utf8mb4' % name, drop


def _postgres():
    name = 'tclouds_slog_%s' % uuid.uuid4().hex[:8]

    def admin(sql):
        conn = psycopg2.connect(host='127.0.0.1', user='tclouds', password='tclouds',
                                dbname='postgres')
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.close()
    admin('CREATE DATABASE %s' % name)
    return ('postgresql+psycopg2://tclouds:tclouds@127.0.0.1/%s' % name,
            lambda: admin('DROP DATABASE IF EXISTS %s WITH (FORCE)' % name))


@pytest.fixture(params=['sqlite', 'mariadb', 'postgresql'])
def db_url(request, tmp_path):
    if request.param == 'sqlite':
        yield 'sqlite:///%s' % (tmp_path / 'securelog.sqlite')
        return
    url, drop = _mariadb() if request.param == 'mariadb' else _postgres()
    try:
        yield url
    finally:
        drop()


_WRITER = '''
import sys
from tclouds_openstack.securelog import keyfiles, source, store
st = store.SecureLogStore(sys.argv[1], sys.argv[2], origin='test.example/securelog',
                          epoch_entries=300, checkpoint_interval=0.2)
src = source.Source(sys.argv[3], sys.argv[2], epoch_entries=300)
if sys.argv[4] != 'co-located':
    with src.open():
        pass
    st.enroll_source(src.name, keyfiles.read_k0(src.k0_path()))
i = 0
while True:
    events = [({'event_type': 'crash.test', 'n': i + k}, '') for k in range(200)]
    if sys.argv[4] == 'co-located':
        st.append_events(src, events)
    else:
        st.append(src.seal(events))
    i += 200
    print(i, flush=True)
'''


def enrolled(st, src):
    """``src`` (a Source) with its sealer created and its K0 enrolled in store ``st``."""
    from tclouds_openstack.securelog import keyfiles
    with src.open():
        pass
    st.enroll_source(src.name, keyfiles.read_k0(src.k0_path()))
    return src


def enroll(keys_dir, source_dir, name):
    """Create source ``name`` in ``source_dir`` and enrol its K0 in ``keys_dir``.

    As its notification driver does at its first event, then an admin for the ingester.
    """
    from tclouds_openstack.securelog import keyfiles
    from tclouds_openstack.securelog import source
    src = source.Source(name, str(source_dir))
    with src.open():
        pass
    keyfiles.enroll_source(str(keys_dir), name, keyfiles.read_k0(src.k0_path()))


def kill_writer_mid_way(url, state, source_name, batches, mode):
    """Run a writer appending batches of 200 in a child, SIGKILL it after ``batches``.

    ``mode`` is ``co-located`` (``append_events``) or ``sealed`` (``Source.seal`` then
    ``append``, as entries from the bus arrive).
    """
    proc = subprocess.Popen([sys.executable, '-c', _WRITER, url, str(state), source_name,
                             mode], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(batches):       # let it commit a few batches, then kill it mid-way
            proc.stdout.readline()
    finally:
        proc.kill()
        proc.wait()
