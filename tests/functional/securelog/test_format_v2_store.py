"""Record format 2 through the store (sqlite): batches end with one sealed record, a
source that hands its entries out keeps its chain across processes through its journal,
and an auditor state written before format 2 resumes, the store reading back the leaf of
the last verified record (a record changed since shows at the next sealed span)."""
import sqlite3

from tclouds_openstack.securelog import audit as auditmod
from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import sealing
from tclouds_openstack.securelog import source as srcmod
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


def test_batches_chains_and_an_old_auditor_state(tmp_path):
    db = tmp_path / 'log.sqlite'
    st = make_store('sqlite:///%s' % db, tmp_path / 'state', layout=1)   # a row changes below
    local = srcmod.Source('cli@ctl', str(tmp_path / 'src'))
    remote = conftest.enrolled(st, srcmod.Source('nova@cmp1', str(tmp_path / 'remote')))
    st.append_events(local, events(0, 40), now_ns=NOW)
    st.append(remote.seal(events(0, 25), now_ns=NOW), now_ns=NOW)
    # another process of the same remote source (its own objects) continues the chain
    # from the journal: its first entry names the last one the first process sealed
    other = srcmod.Source('nova@cmp1', str(tmp_path / 'remote'))
    st.append(other.seal(events(25, 10), now_ns=NOW), now_ns=NOW)
    rows = [bytes(r) for r in st.iter_records()]
    assert [i for i, r in enumerate(rows) if r[:4] == sealing.RECORD2_MAGIC] == [39, 64, 74]
    first_of_other = sealing.decode_entry(sealing.record_entry(rows[65]))
    assert first_of_other.seq == 25
    assert first_of_other.prev == sealing.entry_hash(sealing.record_entry(rows[64]))
    st.checkpoint()
    bundle = _bundle(tmp_path, ('cli@ctl', tmp_path / 'src'),
                     ('nova@cmp1', tmp_path / 'remote'))
    report, problems = st.audit(bundle)
    assert report.ok and not problems, report.summary()
    # the state as the previous release wrote it: no leaf hash of the last record
    old = report.state
    old.log_leaf = None
    text = old.dumps(bundle.log_key)
    st.append_events(local, events(40, 30), now_ns=NOW)
    st.checkpoint()
    resumed, problems = st.audit(
        bundle, resume=auditmod.AuditState.loads(text, bundle.log_key))
    assert resumed.ok and not problems, resumed.summary()
    assert (resumed.start, resumed.size) == (75, 105)
    # the last verified record changed after that audit: the next span says so
    st.close()
    conn = sqlite3.connect(db)
    (data,) = conn.execute('SELECT data FROM securelog_records WHERE log_index=74').fetchone()
    data = bytearray(data)
    data[-40] ^= 1
    conn.execute('UPDATE securelog_records SET data=? WHERE log_index=74', (bytes(data),))
    conn.commit()
    conn.close()
    st = make_store('sqlite:///%s' % db, tmp_path / 'state', migrate=False, layout=1)
    again, _problems = st.audit(
        bundle, resume=auditmod.AuditState.loads(text, bundle.log_key))
    assert not again.ok
    assert any(d.kind == 'modified' and d.index == 74 and d.end is not None
               for d in again.damages), again.damages
    st.close()
