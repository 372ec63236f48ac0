"""Storage layout 2 (a batch's records in one row of securelog_batches) on each database: what
get, list, the report rows and the audit read is one and the same log; a log whose first
records are in layout 1 (one row each) reads and verifies whole, and resumes across the
boundary; every kind of tampering with the batch rows or the index rows is found."""
import itertools
import sqlite3

import pytest

from tclouds_openstack.securelog import audit as auditmod
from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import sealing
from tclouds_openstack.securelog import source as srcmod
from tclouds_openstack.securelog import store as storemod
from tests.functional.securelog import conftest
from tests.functional.securelog.test_store_events import events
from tests.functional.securelog.test_store_events import make_store
from tests.functional.securelog.test_store_events import NOW


def _bundle(tmp_path, *sources):
    bundle = keyfiles.AuditorBundle.load(str(tmp_path / 'state' / 'auditor'))
    for name, directory in sources:
        bundle.source_keys[name] = keyfiles.read_k0(
            str(directory / 'auditor' / keyfiles.source_key_filename(name)))
    return bundle


def _fill(st, tmp_path, start, batches, size=40):
    """``batches`` appends of ``size`` events from two sources, alternating."""
    local = srcmod.Source('cli@ctl', str(tmp_path / 'src'))
    remote = srcmod.Source('nova@cmp1', str(tmp_path / 'remote'))
    if not st.source_keys.known('nova@cmp1'):
        conftest.enrolled(st, remote)
    for n in range(batches):
        if n % 2:
            st.append(remote.seal(events(start + n * size, size), now_ns=NOW), now_ns=NOW)
        else:
            st.append_events(local, events(start + n * size, size), now_ns=NOW)
    return (('cli@ctl', tmp_path / 'src'), ('nova@cmp1', tmp_path / 'remote'))


def test_layout_2_on_each_database(db_url, tmp_path):
    st = make_store(db_url, tmp_path / 'state', layout=2)
    sources = _fill(st, tmp_path, 0, 6)
    st.checkpoint()
    records = [bytes(r) for r in st.iter_records()]
    assert len(records) == st.size() == 240
    with st.engine.connect() as conn:
        stored = conn.exec_driver_sql(
            'SELECT COUNT(*), COUNT(data) FROM securelog_records').one()
        batch_rows = conn.exec_driver_sql('SELECT COUNT(*) FROM securelog_batches').scalar()
    assert tuple(stored) == (240, 0) and batch_rows == 6     # the bytes only in batch rows
    # what get and list serve is what the audit reads
    assert [bytes(st.get(i).data) for i in (0, 39, 40, 239)] == [
        records[i] for i in (0, 39, 40, 239)]
    listed = st.list(marker=30, limit=100, tenant='p1')
    assert listed and all(bytes(r.data) == records[r.log_index] for r in listed)
    assert list(st.iter_records(start=100)) == records[100:]
    reader = st.iter_records(batch=7)       # a reader that stops early
    assert next(reader) == records[0]
    reader.close()
    # redelivered entries are recognised from their batch's bytes
    remote = srcmod.Source('nova@cmp1', str(tmp_path / 'remote'))
    entries = [sealing.record_entry(r) for r in records[40:80]]
    assert st.append(entries) == [None] * 40
    report, problems = st.audit(_bundle(tmp_path, *sources))
    assert report.ok and not problems, report.summary()
    assert report.size == 240
    # resumed from the state: the batch row that holds the next record is read from it
    more = make_store(db_url, tmp_path / 'state', layout=2, migrate=False)
    _fill(more, tmp_path, 240, 3)
    more.append(remote.seal(events(1000, 1), now_ns=NOW), now_ns=NOW)
    more.checkpoint()
    again, problems = more.audit(_bundle(tmp_path, *sources), resume=report.state)
    assert again.ok and not problems and (again.start, again.size) == (240, 361), \
        again.summary()
    full, _problems = more.audit(_bundle(tmp_path, *sources))
    assert full.ok and full.root == again.root
    with pytest.raises(storemod.StoreError):
        more.get(361)
    st.close()
    more.close()


def test_a_log_in_both_layouts(tmp_path):
    """Records of layout 1 first, then layout 2: read and verified whole and resumed."""
    url = 'sqlite:///%s' % (tmp_path / 'log.sqlite')
    old = make_store(url, tmp_path / 'state', layout=1)
    sources = _fill(old, tmp_path, 0, 3)
    old.checkpoint()
    bundle = _bundle(tmp_path, *sources)
    first, _problems = old.audit(bundle)
    assert first.ok
    old.close()
    new = make_store(url, tmp_path / 'state', layout=2, migrate=False)
    _fill(new, tmp_path, 120, 4)
    new.checkpoint()
    with new.engine.connect() as conn:
        assert conn.exec_driver_sql(
            'SELECT COUNT(data) FROM securelog_records').scalar() == 120
    records = [bytes(r) for r in new.iter_records()]
    assert len(records) == 280
    assert bytes(new.get(119).data) == records[119] and \
        bytes(new.get(120).data) == records[120]
    assert [r.log_index for r in new.list(marker=110, limit=20)] == list(range(110, 130))
    report, problems = new.audit(bundle)
    assert report.ok and not problems, report.summary()
    resumed, problems = new.audit(bundle, resume=first.state)
    assert resumed.ok and not problems and resumed.start == 120, resumed.summary()
    assert resumed.root == report.root
    # the same records audited in memory: the same root
    assert auditmod.audit(records, bundle.log_key, bundle.source_keys).root == report.root
    new.close()


@pytest.fixture(scope='module')
def layout2_log(tmp_path_factory):
    """A log of 480 records: 40 in layout 1, then eleven batch rows of 40 (layout 2)."""
    base = tmp_path_factory.mktemp('layout2')
    url = 'sqlite:///%s' % (base / 'log.sqlite')
    st = make_store(url, base / 'state', layout=1)
    _fill(st, base, 0, 1)
    st.close()
    st = make_store(url, base / 'state', layout=2, migrate=False)
    sources = _fill(st, base, 40, 11)
    st.checkpoint()
    st.close()
    return base, sources


def _batches(conn):
    return [(first, storemod.unpack_batch(data)[0]) for first, data in conn.execute(
        'SELECT first_index, data FROM securelog_batches ORDER BY first_index')]


def _put(conn, first, records):
    conn.execute('UPDATE securelog_batches SET data=? WHERE first_index=?',
                 (storemod.pack_batch(records), first))


def _change_byte(conn):
    first, records = _batches(conn)[3]             # records 160..199
    data = bytearray(records[5])
    data[-60] ^= 1
    records[5] = bytes(data)
    _put(conn, first, records)


def _delete_record(conn):
    first, records = _batches(conn)[3]
    del records[5]
    _put(conn, first, records)
    conn.execute('DELETE FROM securelog_records WHERE log_index=165')


def _reorder_records(conn):
    first, records = _batches(conn)[3]
    records[5], records[6] = records[6], records[5]
    _put(conn, first, records)


def _swap_batch_rows(conn):
    (a, ra), (b, rb) = _batches(conn)[3:5]
    _put(conn, a, rb)
    _put(conn, b, ra)


def _renumber_batch_row(conn):
    # the rows' bytes stay in order, one batch row claims other indexes: get(i) would
    # serve another record for i
    conn.execute('UPDATE securelog_batches SET first_index=first_index - 10 '
                 'WHERE first_index=200')


def _garbage_batch_row(conn):
    conn.execute('UPDATE securelog_batches SET data=? WHERE first_index=200',
                 (b'TSB1\x00\x00\x00\x28' + b'\x01' * 300,))


def _change_layout_1_row(conn):
    (data,) = conn.execute('SELECT data FROM securelog_records WHERE log_index=7').fetchone()
    data = bytearray(data)
    data[-60] ^= 1
    conn.execute('UPDATE securelog_records SET data=? WHERE log_index=7', (bytes(data),))


def _index_row_deleted(conn):
    conn.execute('DELETE FROM securelog_records WHERE log_index=300')


def _copy_of_log(base, tmp_path):
    """A copy of the fixture's sqlite log to tamper with: (path, open connection)."""
    path = tmp_path / 'tampered.sqlite'
    src = sqlite3.connect(base / 'log.sqlite')
    dst = sqlite3.connect(path)
    src.backup(dst)
    src.close()
    return path, dst


@pytest.mark.parametrize('case, change, expect_index, expect_kinds', [
    ('changed-byte', _change_byte, 165, {'modified'}),
    ('deleted-record', _delete_record, 165, {'modified', 'missing'}),
    ('reordered-records', _reorder_records, 165, {'modified', 'moved', 'forged'}),
    ('swapped-batch-rows', _swap_batch_rows, 199, {'missing'}),   # (sealed index)
    ('deleted-batch-row', ['DELETE FROM securelog_batches WHERE first_index=200'], 200,
     {'missing'}),
    ('truncated', ['DELETE FROM securelog_batches WHERE first_index>=400',
                   'DELETE FROM securelog_records WHERE log_index>=400'], 400,
     {'truncated'}),
    ('renumbered-batch-row', _renumber_batch_row, 190, {'moved'}),
    ('garbage-batch-row', _garbage_batch_row, 200, {'malformed', 'modified'}),
    ('index-row-deleted', _index_row_deleted, 300, {'missing'}),
    ('first-batch-row-deleted', ['DELETE FROM securelog_batches WHERE first_index=40'], 40,
     {'malformed'}),
    ('layout-1-row-changed', _change_layout_1_row, 7, {'modified'}),
])
def test_tampering_with_layout_2_is_found(layout2_log, tmp_path, case, change, expect_index,
                                          expect_kinds):
    base, sources = layout2_log
    path, dst = _copy_of_log(base, tmp_path)
    if callable(change):
        change(dst)
    else:
        for statement in change:
            dst.execute(statement)
    dst.commit()
    dst.close()
    st = make_store('sqlite:///%s' % path, base / 'state', migrate=False)
    report, _problems = st.audit(_bundle(base, *sources))
    st.close()
    assert not report.ok and report.state is None, case
    first = report.first_damage
    assert first.index == expect_index and first.kind in expect_kinds, (case, report.damages)


def test_bytes_in_an_index_row_of_layout_2_are_not_the_log(layout2_log, tmp_path):
    """A row's own bytes where layout 2 holds the record: neither served nor audited."""
    base, sources = layout2_log
    path, dst = _copy_of_log(base, tmp_path)
    genuine = _batches(dst)[2][1][0]                # record 120
    dst.execute("UPDATE securelog_records SET data=x'00' WHERE log_index=120")
    dst.commit()
    dst.close()
    st = make_store('sqlite:///%s' % path, base / 'state', migrate=False)
    assert bytes(st.get(120).data) == genuine
    assert bytes(st.list(marker=120, limit=1)[0].data) == genuine
    report, problems = st.audit(_bundle(base, *sources))
    assert report.ok and not problems, report.summary()
    st.close()


def _tamper_batch_byte(conn):
    (data,) = conn.exec_driver_sql(
        'SELECT data FROM securelog_batches WHERE first_index = 200').one()
    records, _why = storemod.unpack_batch(data)
    record = bytearray(records[5])                  # record 205
    record[-60] ^= 1
    records[5] = bytes(record)
    conn.execute(storemod._batches.update().where(storemod._batches.c.first_index == 200)
                 .values(data=storemod.pack_batch(records)))


def _change(st, change):
    """Apply ``change`` to the store's database: a function of a connection, or SQL."""
    if change is None:
        return
    with st.engine.begin() as conn:
        if callable(change):
            change(conn)
        else:
            conn.exec_driver_sql(change)


@pytest.mark.parametrize('case, change, expect_index, expect_kinds', [
    ('untampered', None, None, None),
    ('changed-byte', _tamper_batch_byte, 205, {'modified'}),
    ('deleted-batch-row', 'DELETE FROM securelog_batches WHERE first_index = 200', 200,
     {'missing'}),
    ('index-row-deleted', 'DELETE FROM securelog_records WHERE log_index = 300', 300,
     {'missing'}),
])
def test_batch_rows_read_in_ranges_at_once(db_url, tmp_path, case, change, expect_index,
                                           expect_kinds):
    """Batch rows read a range at a time, several ranges at once, are the log.

    (MariaDB: a query with an unbuffered cursor on a connection of its own per range.) The
    same records in the same order; a reader that stops early leaves the connections
    usable; tampering with a batch row or an index row is found.
    """
    st = make_store(db_url, tmp_path / 'state', layout=2)
    st.STREAMS, st.RANGE_BYTES = 3, 1       # here a range holds a batch row
    sources = _fill(st, tmp_path, 0, 12)
    st.checkpoint()
    records = [bytes(r) for r in st.iter_records()]
    assert len(records) == 480
    assert [bytes(st.get(i).data) for i in (0, 205, 479)] == [
        records[i] for i in (0, 205, 479)]
    assert list(st.iter_records(start=205)) == records[205:]
    for stop in (1, 41, 200):               # readers that stop early, in other ranges
        reader = st.iter_records()
        assert [bytes(r) for r in itertools.islice(reader, stop)] == records[:stop]
        reader.close()
    _change(st, change)
    report, problems = st.audit(_bundle(tmp_path, *sources))
    if change is None:
        assert report.ok and not problems and report.size == 480, report.summary()
    else:
        assert not report.ok and report.state is None, case
        first = report.first_damage
        assert first.index == expect_index and first.kind in expect_kinds, (
            case, report.damages)
    # the connections the reading used serve the next audit, which finds the same
    again, _problems = st.audit(_bundle(tmp_path, *sources))
    assert again.ok == report.ok and again.damages[:1] == report.damages[:1]
    st.close()


@pytest.mark.parametrize('change, expect_index', [
    (None, None), (_tamper_batch_byte, 205),
    ('DELETE FROM securelog_records WHERE log_index = 300', 300)])
def test_ranges_read_with_the_drivers_own_unbuffered_cursor(tmp_path, monkeypatch, change,
                                                            expect_index):
    """The fallback when PyMySQL's internals are not as expected: its plain ``SSCursor``.

    The same records, and tampering found, reading several ranges at once on MariaDB.
    """
    from tests.functional.securelog import conftest as fx
    monkeypatch.setattr(storemod, '_stream_cursor', lambda dbapi: dbapi.cursors.SSCursor)
    url, drop = fx._mariadb()
    try:
        st = make_store(url, tmp_path / 'state', layout=2)
        st.STREAMS, st.RANGE_BYTES = 3, 1
        sources = _fill(st, tmp_path, 0, 12)
        st.checkpoint()
        records = [bytes(r) for r in st.iter_records()]
        assert len(records) == 480 and records[205] == bytes(st.get(205).data)
        _change(st, change)
        report, problems = st.audit(_bundle(tmp_path, *sources))
        if change is None:
            assert report.ok and not problems and report.size == 480, report.summary()
        else:
            assert not report.ok and report.first_damage.index == expect_index, (
                report.damages)
        st.close()
    finally:
        drop()


def test_batch_rows_pack_and_unpack():
    records = [b'a' * 5, b'', b'bc' * 100]
    data = storemod.pack_batch(records)
    assert storemod.unpack_batch(data) == (records, None)
    assert storemod.unpack_batch(storemod.pack_batch([])) == ([], None)
    cut, why = storemod.unpack_batch(data[:-1])
    assert cut == records[:2] + [(b'bc' * 100)[:-1]] and 'lengths add up' in why
    extra, why = storemod.unpack_batch(data + b'xy')
    assert extra == records + [b'xy'] and why
    other, why = storemod.unpack_batch(b'TSL2' + data[4:])
    assert other == [b'TSL2' + data[4:]] and 'not a batch' in why
    short, why = storemod.unpack_batch(b'TSB1\x00\x00\x00\x09')
    assert short == [b'TSB1\x00\x00\x00\x09'] and why
    # a row at the end of a driver's packet, from an offset on: the same
    packet = b'\x05\x01\x02' + data
    assert storemod.unpack_batch(packet, 3) == (records, None)
    cut, why = storemod.unpack_batch(packet[:-1], 3)
    assert cut == records[:2] + [(b'bc' * 100)[:-1]] and 'lengths add up' in why
    assert str(len(data) - 1) in why
    assert storemod.unpack_batch(b'xyz' + b'TSL2' + data[4:], 3) == (
        [b'TSL2' + data[4:]], 'not a batch of storage layout 2 (%d bytes)' % len(data))


def test_a_log_written_before_layout_2_upgrades_and_verifies(db_url, tmp_path):
    """Migration securelog_0003 on a log with records (the data column becomes nullable)."""
    import alembic.command
    import alembic.config
    config = alembic.config.Config()
    config.set_main_option('script_location', storemod.MIGRATIONS)
    config.set_main_option('sqlalchemy.url', db_url.replace('%', '%%'))
    config.set_main_option('version_table', storemod.VERSION_TABLE)
    alembic.command.upgrade(config, 'securelog_0002')
    old = make_store(db_url, tmp_path / 'state', layout=1, migrate=False)
    sources = _fill(old, tmp_path, 0, 2)
    old.checkpoint()
    old.close()
    new = make_store(db_url, tmp_path / 'state', layout=2)        # upgrades to 0003
    _fill(new, tmp_path, 80, 2)
    new.checkpoint()
    with new.engine.connect() as conn:
        assert conn.exec_driver_sql(
            'SELECT COUNT(data) FROM securelog_records').scalar() == 80
    report, problems = new.audit(_bundle(tmp_path, *sources))
    assert report.ok and not problems and report.size == 160, report.summary()
    new.close()
