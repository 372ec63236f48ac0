"""The stored log and the auditor CLI: databases, idempotency, proofs, bad input, and the
tamper matrix on a 10,000-entry log (each damage found by ``verify`` at the right index)."""
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

from tclouds_openstack.cmd import securelog as cli
from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import merkle
from tclouds_openstack.securelog import sealing
from tclouds_openstack.securelog import source as srcmod
from tclouds_openstack.securelog import store as storemod
from tests.functional.securelog import conftest

N = 10000
EPOCH = 500


def run_cli(argv, stdin=''):
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), out, err
    try:
        code = cli.main(argv)
    finally:
        sys.stdin, sys.stdout, sys.stderr = old
    return code, (json.loads(out.getvalue()) if out.getvalue() else None), err.getvalue()


def make_store(url, state, cpdir=None, **kw):
    from tclouds_openstack.securelog import exporters
    # these tests change records in their rows: storage layout 1 (for layout 2,
    # test_layout_batches)
    kw.setdefault('layout', 1)
    return storemod.SecureLogStore(url, str(state), origin='test.example/securelog',
                                   epoch_entries=EPOCH, checkpoint_interval=3600,
                                   exporters=[exporters.DirectoryExporter(str(cpdir))]
                                   if cpdir else [], **kw)


def events(start, n):
    return [({'event_type': 'compute.instance.update', 'n': i, 'project_id': 'p%d' % (i % 7)},
             'p%d' % (i % 7)) for i in range(start, start + n)]


def test_store_on_each_database(db_url, tmp_path):
    st = make_store(db_url, tmp_path / 'state')
    src = conftest.enrolled(st, srcmod.Source('nova-api@ctl', str(tmp_path / 'src'),
                                              epoch_entries=50))
    entries = src.seal(events(0, 300))
    assert st.append(entries[:200]) == list(range(200))
    # Redelivery of a whole batch and of a batch overlapping new entries: no duplicate.
    assert st.append(entries[100:200]) == [None] * 100
    assert st.append(entries[150:300]) == [None] * 50 + list(range(200, 300))
    assert st.append(entries[250:260] + entries[250:260]) == [None] * 20
    st.checkpoint()
    assert st.size() == 300
    # A second process (fresh store object) rebuilds the same tree and proves from it.
    again = make_store(db_url, tmp_path / 'state', migrate=True)
    leaf, proof, root = again.inclusion_proof(123)
    merkle.verify_inclusion(leaf, 123, 300, proof, st.tree().root())
    proof, r1, r2 = again.consistency_proof(77)
    merkle.verify_consistency(77, 300, proof, r1, r2)
    bundle = keyfiles.AuditorBundle.load(str(tmp_path / 'state' / 'auditor'))
    # The source's K0 was written to its own host's auditor dir; the auditor collects it.
    bundle.source_keys['nova-api@ctl'] = bytes.fromhex(
        (tmp_path / 'src' / 'auditor' / 'source-nova-api@ctl.k0').read_text())
    report, problems = again.audit(bundle)
    assert report.ok and not problems, report.summary()
    assert report.sources == {'nova-api@ctl': 300}
    assert [r.tenant for r in again.list(marker=10, limit=3)] == ['p3', 'p4', 'p5']
    with pytest.raises(storemod.BadEntry, match='entry 1 of the batch: entry.magic'):
        again.append([entries[0], b'XXXX' + entries[1][4:]])
    again.close()
    st.close()


@pytest.fixture(scope='module')
def big_log(tmp_path_factory):
    """A 10,000-entry sqlite log, its state, checkpoint dir and auditor bundle.

    Also a copy of the database taken at 8,000 entries (for the rollback case).
    """
    base = tmp_path_factory.mktemp('biglog')
    url = 'sqlite:///%s' % (base / 'log.sqlite')
    st = make_store(url, base / 'state', base / 'checkpoints')
    src = conftest.enrolled(st, srcmod.Source('cinder-volume@host7', str(base / 'state'),
                                              epoch_entries=EPOCH))
    for start in range(0, 8000, 1000):
        st.append(src.seal(events(start, 1000), now_ns=10 ** 18 + start))
    st.checkpoint()
    st.close()
    shutil.copy(base / 'log.sqlite', base / 'at-8000.sqlite')
    st = make_store(url, base / 'state', base / 'checkpoints')
    for start in range(8000, N, 1000):
        st.append(src.seal(events(start, 1000), now_ns=10 ** 18 + start))
    st.checkpoint()
    st.close()
    return base


def verify(base, dbfile):
    return run_cli(['--db-url', 'sqlite:///%s' % dbfile, '--state-dir', str(base / 'state'),
                    '--config-file', str(base / 'tclouds.conf'), 'verify'])


def tampered(base, tmp_path, sql=(), fn=None, dbfile='log.sqlite'):
    path = tmp_path / 'tampered.sqlite'
    shutil.copy(base / dbfile, path)
    (base / 'tclouds.conf').write_text('[securelog]\norigin = test.example/securelog\n'
                                       'checkpoint_dirs = %s\nepoch_entries = %d\n'
                                       % (base / 'checkpoints', EPOCH))
    conn = sqlite3.connect(path)
    for statement in sql:
        conn.execute(statement)
    if fn:
        fn(conn)
    conn.commit()
    conn.close()
    return path


def _flip_byte(conn):
    (data,) = conn.execute('SELECT data FROM securelog_records WHERE log_index=4321').fetchone()
    data = bytearray(data)
    data[-60] ^= 0x01   # inside the event payload
    conn.execute('UPDATE securelog_records SET data=? WHERE log_index=4321', (bytes(data),))


def _swap(conn):
    a = conn.execute('SELECT data FROM securelog_records WHERE log_index=6000').fetchone()[0]
    b = conn.execute('SELECT data FROM securelog_records WHERE log_index=7000').fetchone()[0]
    conn.execute('UPDATE securelog_records SET data=? WHERE log_index=6000', (b,))
    conn.execute('UPDATE securelog_records SET data=? WHERE log_index=7000', (a,))


def _forge(base):
    def fn(conn):
        # The attacker took the host after entry 10,000: it holds the CURRENT keys of the
        # source and of the log (the state files), not those of epoch 6 that sealed 3,000.
        src = srcmod.Source('cinder-volume@host7', str(base / 'state'), epoch_entries=EPOCH)
        with src._file() as src_sealer:
            forged_entry = src_sealer.seal_entry(b'{"event_type":"identity.user.deleted"}',
                                                 10 ** 18 + 3000)
        state = json.loads((base / 'state' / 'log-sealer.json').read_text())
        log_sealer = sealing.Sealer.from_state(state, epoch_entries=EPOCH)
        record = log_sealer.seal_record(3000, forged_entry, 10 ** 18)
        conn.execute('UPDATE securelog_records SET log_index=-(log_index+1) '
                     'WHERE log_index>=3000')
        conn.execute('UPDATE securelog_records SET log_index=-log_index WHERE log_index<0')
        conn.execute('INSERT INTO securelog_records VALUES (3000, ?, ?, ?, ?, ?, ?, ?)',
                     ('cinder-volume@host7', 999999, '', '', 0, merkle.hash_leaf(record),
                      record))
    return fn


def test_untampered_log_verifies(big_log, tmp_path):
    code, out, err = verify(big_log, tampered(big_log, tmp_path))
    assert code == 0, (out, err)
    assert out['ok'] and out['size'] == N and out['checkpoints_verified'] >= 4


@pytest.mark.parametrize('case, expect_index, expect_kind', [
    ('changed-bytes', 4321, 'modified'),
    ('deleted', 5000, 'missing'),
    ('swapped', 6000, 'moved'),
    ('truncated-tail', 9500, 'truncated'),
    ('forged-after-key-erased', 3000, 'forged'),
    ('rolled-back', 8000, 'rolled-back'),
])
def test_tamper_matrix(big_log, tmp_path, case, expect_index, expect_kind):
    if case == 'changed-bytes':
        db = tampered(big_log, tmp_path, fn=_flip_byte)
    elif case == 'deleted':
        db = tampered(big_log, tmp_path, ['DELETE FROM securelog_records WHERE log_index=5000'])
    elif case == 'swapped':
        db = tampered(big_log, tmp_path, fn=_swap)
    elif case == 'truncated-tail':
        db = tampered(big_log, tmp_path, ['DELETE FROM securelog_records WHERE log_index>=9500'])
    elif case == 'forged-after-key-erased':
        db = tampered(big_log, tmp_path, fn=_forge(big_log))
    else:
        # The whole database (records AND its own checkpoints) restored from a backup; the
        # checkpoint at 10,000 survives in the independent checkpoint directory.
        db = tampered(big_log, tmp_path, dbfile='at-8000.sqlite')
    code, out, err = verify(big_log, db)
    assert code == 1, (out, err)
    assert (out['first_bad_index'], out['damage']) == (expect_index, expect_kind), out
    assert 'first bad index %d (%s)' % (expect_index, expect_kind) in err


def test_forged_checkpoint_is_rejected(big_log, tmp_path):
    from tclouds_openstack.securelog import checkpoint as cpmod
    other = cpmod.NoteSigner.generate('test.example/securelog')
    fake = cpmod.sign_checkpoint(cpmod.Checkpoint('test.example/securelog', 20000,
                                                  b'\x00' * 32, ()), other)
    path = tmp_path / 'fake-checkpoint'
    path.write_bytes(fake)
    db = tampered(big_log, tmp_path)
    code, out, _err = run_cli(['--db-url', 'sqlite:///%s' % db, '--state-dir',
                               str(big_log / 'state'), '--config-file',
                               str(big_log / 'tclouds.conf'), 'verify', '--checkpoint',
                               str(path)])
    assert code == 1 and not out['ok']
    assert 'rejected' in out['checkpoint_problems'][0]


@pytest.mark.parametrize('argv, stdin, message', [
    (['append'], '{"a": 1}\nnot json\n', 'stdin line 2 is not JSON'),
    (['append'], '[1, 2]\n', 'stdin line 1 must be a JSON object'),
    (['append'], '{"project_id": 5}\n', 'project_id must be a string'),
    (['prove-inclusion', '99'], '', 'leaf index 99 outside tree of size 0'),
    (['prove-consistency', '3', '2'], '', 'size2 2 outside tree'),
    (['show', '5'], '', 'no record at index 5'),
    (['verify', '--auditor-dir', '/nonexistent'], '', 'auditor bundle /nonexistent'),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, argv, stdin, message):
    base = ['--db-url', 'sqlite:///%s' % (tmp_path / 'x.sqlite'), '--state-dir',
            str(tmp_path / 'state')]
    code, out, err = run_cli(base + argv, stdin)
    assert code == 2 and out is None
    assert message in err and 'Traceback' not in err and err.count('\n') == 1


def test_cli_bad_append_writes_nothing(tmp_path):
    base = ['--db-url', 'sqlite:///%s' % (tmp_path / 'x.sqlite'), '--state-dir',
            str(tmp_path / 'state')]
    assert run_cli(base + ['append'], '{"a": 1}\n{"b": 2}\n')[0] == 0
    assert run_cli(base + ['append'], '{"a": 3}\n{oops\n')[0] == 2
    code, out, _ = run_cli(base + ['verify'])
    assert code == 0 and out['size'] == 2


def test_console_script_round_trip(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), 'tclouds-securelog')
    base = [exe, '--db-url', 'sqlite:///%s' % (tmp_path / 'c.sqlite'), '--state-dir',
            str(tmp_path / 'state')]
    lines = ''.join(json.dumps({'event_type': 'identity.authenticate', 'n': i}) + '\n'
                    for i in range(50))
    res = subprocess.run(base + ['append', '--source', 'keystone@ctl'], input=lines,
                         capture_output=True, text=True, check=True)
    assert json.loads(res.stdout)['appended'] == 50
    res = subprocess.run(base + ['verify'], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_killed_writer_leaves_no_half_written_batch(tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'crash.sqlite')
    state = str(tmp_path / 'state')
    conftest.kill_writer_mid_way(url, state, 'writer-1@host', 15, 'sealed')
    st = storemod.SecureLogStore(url, state, origin='test.example/securelog',
                                 epoch_entries=300)
    size = st.size()
    assert size >= 15 * 200 and size % 200 == 0     # whole batches only
    # The store is usable as it is: a new writer appends and the audit passes.
    src = conftest.enrolled(st, srcmod.Source('writer-2@host', state, epoch_entries=300))
    st.append(src.seal([({'event_type': 'after.crash'}, '')]))
    st.checkpoint()
    (tmp_path / 'c.conf').write_text('[securelog]\norigin = test.example/securelog\n')
    code, out, err = run_cli(['--db-url', url, '--state-dir', state, '--config-file',
                              str(tmp_path / 'c.conf'), 'verify'])
    assert code == 0, (out, err)
    assert out['size'] == size + 1
    st.close()
