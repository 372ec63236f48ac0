"""Sources that live with the store (``SecureLogStore.append_events``): one transaction per
batch for both seals, sequence numbers kept by the store, key files replaced only when a key
evolves; and the log sealer's epochs bounded by entries across batches."""
import json
import os

import pytest

from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import sealing
from tclouds_openstack.securelog import source as srcmod
from tclouds_openstack.securelog import store as storemod
from tests.functional.securelog import conftest

EPOCH = 50
NOW = 10 ** 18


def make_store(url, state, **kw):
    return storemod.SecureLogStore(url, str(state), origin='test.example/securelog',
                                   epoch_entries=EPOCH, checkpoint_interval=3600, **kw)


def events(start, n):
    return [({'event_type': 'identity.authenticate', 'n': i}, 'p%d' % (i % 3))
            for i in range(start, start + n)]


def audit(st, state, *sources):
    st.checkpoint()
    bundle = keyfiles.AuditorBundle.load(str(state / 'auditor'))
    for name, src_state in sources:
        bundle.source_keys[name] = bytes.fromhex(
            (src_state / 'auditor' / keyfiles.source_key_filename(name)).read_text())
    report, problems = st.audit(bundle)
    assert report.ok and not problems, report.summary()
    return report


def decoded(st):
    out = []
    for data in st.iter_records():
        record = sealing.decode_record(data)
        out.append((record, sealing.decode_entry(record.entry)))
    return out


def test_append_events_on_each_database(db_url, tmp_path):
    st = make_store(db_url, tmp_path / 'state')
    src = srcmod.Source('keystone@ctl', str(tmp_path / 'src'), epoch_entries=EPOCH)
    other = conftest.enrolled(st, srcmod.Source('nova@cmp1', str(tmp_path / 'other'),
                                                epoch_entries=EPOCH))
    assert st.append_events(src, events(0, 120), now_ns=NOW) == list(range(120))
    # Entries sealed elsewhere and ingested interleave with the co-located source.
    assert st.append(other.seal(events(0, 30), now_ns=NOW), now_ns=NOW) == list(range(120, 150))
    assert st.append_events(src, events(120, 7), now_ns=NOW + 1) == list(range(150, 157))
    assert st.append_events(src, []) == []
    # A new process (new objects) continues the source's sequence from the store.
    again = make_store(db_url, tmp_path / 'state', migrate=False)
    src2 = srcmod.Source('keystone@ctl', str(tmp_path / 'src'), epoch_entries=EPOCH)
    assert again.append_events(src2, events(127, 100), now_ns=NOW + 2) == list(range(157, 257))
    rows = decoded(again)
    mine = [(r, e) for r, e in rows if e.source == 'keystone@ctl']
    assert [e.seq for _r, e in mine] == list(range(227))
    # Epochs advance by count across batches and across restarts, for the source and for
    # the log.
    assert [e.epoch for _r, e in mine] == [s // EPOCH for s in range(227)]
    # (format 2: each batch's last record is sealed by the log, the others are bare)
    assert [(i, r.epoch) for i, (r, _e) in enumerate(rows) if r.epoch is not None] == [
        (i, i // EPOCH) for i in (119, 149, 156, 256)]
    listed = again.list(marker=0, limit=3)
    assert [(r.source, r.seq, r.tenant, r.event_type) for r in listed] == [
        ('keystone@ctl', i, 'p%d' % i, 'identity.authenticate') for i in range(3)]
    report = audit(again, tmp_path / 'state', ('keystone@ctl', tmp_path / 'src'),
                   ('nova@cmp1', tmp_path / 'other'))
    assert report.sources == {'keystone@ctl': 227, 'nova@cmp1': 30}
    # The source's numbers are the store's now: sealing them elsewhere is refused.
    with pytest.raises(keyfiles.KeyFileError, match='kept in the secure log store'):
        src2.seal(events(0, 1))
    again.close()
    st.close()


def test_existing_source_state_is_taken_over(tmp_path):
    """A source that sealed with its own state file continues through append_events.

    Its sequence and epochs continue where the file left them; the file is marked.
    """
    st = make_store('sqlite:///%s' % (tmp_path / 'log.sqlite'), tmp_path / 'state')
    src = conftest.enrolled(st, srcmod.Source('cli@ctl', str(tmp_path / 'src'),
                                              epoch_entries=EPOCH))
    st.append(src.seal(events(0, 70), now_ns=NOW), now_ns=NOW)
    path = tmp_path / 'src' / 'sealer-cli@ctl.json'
    assert 'sequence' not in json.loads(path.read_text())
    src = srcmod.Source('cli@ctl', str(tmp_path / 'src'), epoch_entries=EPOCH)
    assert st.append_events(src, events(70, 40), now_ns=NOW) == list(range(70, 110))
    state = json.loads(path.read_text())
    assert state['sequence'] == 'store' and state['epoch'] == 2
    rows = decoded(st)
    assert [e.seq for _r, e in rows] == list(range(110))
    assert [e.epoch for _r, e in rows] == [s // EPOCH for s in range(110)]
    audit(st, tmp_path / 'state', ('cli@ctl', tmp_path / 'src'))
    st.close()


def test_key_file_changes_only_with_the_key_and_old_keys_are_nowhere(tmp_path):
    st = make_store('sqlite:///%s' % (tmp_path / 'log.sqlite'), tmp_path / 'state')
    src = srcmod.Source('cli@ctl', str(tmp_path / 'src'), epoch_entries=EPOCH)
    path = tmp_path / 'src' / 'sealer-cli@ctl.json'
    st.append_events(src, events(0, 10), now_ns=NOW)
    created = os.stat(path).st_ino
    for start in range(10, 40, 10):     # same epoch: the file is not rewritten
        st.append_events(src, events(start, 10), now_ns=NOW)
    assert os.stat(path).st_ino == created
    state = json.loads(path.read_text())
    assert state['sequence'] == 'store' and state['epoch'] == 0
    for start in range(40, 260, 20):    # crosses epochs 1..5
        st.append_events(src, events(start, 20), now_ns=NOW)
    state = json.loads(path.read_text())
    assert state['epoch'] == 5
    # The file holds the first number of the batch that evolved the key.
    assert state['next_seq'] == 240
    # Forward security: no earlier key of either sealer survives on the host, neither in
    # the key files nor anywhere in the database (main file, WAL, shared memory).
    k0s = {'src': bytes.fromhex((tmp_path / 'src' / 'auditor' /
                                 keyfiles.source_key_filename('cli@ctl')).read_text()),
           'log': bytes.fromhex((tmp_path / 'state' / 'auditor' / 'log.k0').read_text())}
    log_epoch = json.loads((tmp_path / 'state' / 'log-sealer.json').read_text())['epoch']
    assert log_epoch == 5
    old_keys = []
    for k0, current in ((k0s['src'], 5), (k0s['log'], log_epoch)):
        chain = sealing.KeyChain(k0)
        old_keys += [chain.key(e) for e in range(current)]
        assert chain.key(current).hex() in (
            path.read_text() + (tmp_path / 'state' / 'log-sealer.json').read_text())
    host_files = [tmp_path / 'src' / n for n in os.listdir(tmp_path / 'src')
                  if n != 'auditor'] + [tmp_path / 'state' / n for n in
                                        os.listdir(tmp_path / 'state') if n != 'auditor']
    host_files += [tmp_path / n for n in os.listdir(tmp_path) if n.startswith('log.sqlite')]
    assert any(str(f).endswith('-wal') for f in host_files)
    for f in host_files:
        if f.is_file():
            blob = f.read_bytes()
            for key in old_keys:
                assert key not in blob and key.hex().encode() not in blob, (f, key.hex())
    st.close()


def test_failed_commit_after_the_key_evolved_leaves_no_gap(tmp_path, monkeypatch):
    st = make_store('sqlite:///%s' % (tmp_path / 'log.sqlite'), tmp_path / 'state')
    src = srcmod.Source('cli@ctl', str(tmp_path / 'src'), epoch_entries=EPOCH)
    st.append_events(src, events(0, 40), now_ns=NOW)
    real = st._seal_and_insert

    def fail_after_sealing(*args):
        real(*args)
        raise RuntimeError('disk gone')
    monkeypatch.setattr(st, '_seal_and_insert', fail_after_sealing)
    with pytest.raises(RuntimeError):
        st.append_events(src, events(40, 30), now_ns=NOW)   # evolves to epoch 1, rolls back
    monkeypatch.undo()
    assert st.size() == 40
    assert json.loads((tmp_path / 'src' / 'sealer-cli@ctl.json').read_text())['epoch'] == 1
    st._tree = None
    assert st.append_events(src, events(40, 30), now_ns=NOW) == list(range(40, 70))
    rows = decoded(st)
    assert [e.seq for _r, e in rows] == list(range(70))
    # The key never goes back: the re-sealed batch is in epoch 1 from its first entry.
    assert [e.epoch for _r, e in rows][40:] == [1] * 30
    audit(st, tmp_path / 'state', ('cli@ctl', tmp_path / 'src'))
    st.close()


def test_tampering_is_found_in_a_log_of_co_located_sources(tmp_path):
    import sqlite3
    db = tmp_path / 'log.sqlite'
    st = make_store('sqlite:///%s' % db, tmp_path / 'state', layout=1)     # rows to delete
    src = srcmod.Source('cli@ctl', str(tmp_path / 'src'), epoch_entries=EPOCH)
    for start in range(0, 300, 60):
        st.append_events(src, events(start, 60), now_ns=NOW)
    audit(st, tmp_path / 'state', ('cli@ctl', tmp_path / 'src'))
    st.close()
    conn = sqlite3.connect(db)
    conn.execute('DELETE FROM securelog_records WHERE log_index=123')
    conn.commit()
    conn.close()
    st = make_store('sqlite:///%s' % db, tmp_path / 'state')
    bundle = keyfiles.AuditorBundle.load(str(tmp_path / 'state' / 'auditor'))
    bundle.source_keys['cli@ctl'] = bytes.fromhex(
        (tmp_path / 'src' / 'auditor' / 'source-cli@ctl.k0').read_text())
    report, _problems = st.audit(bundle)
    assert (report.first_damage.index, report.first_damage.kind) == (123, 'missing')
    st.close()


def test_killed_co_located_writer_resumes_its_sequence(tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'crash.sqlite')
    state = tmp_path / 'state'
    conftest.kill_writer_mid_way(url, state, 'writer@host', 12, 'co-located')
    st = storemod.SecureLogStore(url, str(state), origin='test.example/securelog',
                                 epoch_entries=300, checkpoint_interval=3600)
    size = st.size()
    assert size >= 12 * 200 and size % 200 == 0     # whole batches only
    src = srcmod.Source('writer@host', str(state), epoch_entries=300)
    assert st.append_events(src, [({'event_type': 'after.crash'}, '')]) == [size]
    report = audit(st, state, ('writer@host', state))
    assert report.sources == {'writer@host': size + 1}
    st.close()
