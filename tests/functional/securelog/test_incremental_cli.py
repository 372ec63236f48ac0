"""``tclouds-securelog verify --state``: an auditor verifies only what came after its last
audit, on each database (issue 14, point 5); damage after the resumed point, a store cut
below it and an altered state file are all refused."""
import json

from tests.functional.securelog import conftest
from tests.functional.securelog import test_store_cli as cli_tests


def events(start, n):
    return [({'event_type': 'identity.authenticate', 'n': i}, 'p%d' % (i % 3))
            for i in range(start, start + n)]


def test_incremental_verify_on_each_database(db_url, tmp_path):
    state_dir = tmp_path / 'state'
    st = cli_tests.make_store(db_url, state_dir)
    src = conftest.enrolled(st, cli_tests.srcmod.Source('keystone@ctl', str(state_dir),
                                                        epoch_entries=cli_tests.EPOCH))
    st.append(src.seal(events(0, 1200)))
    st.checkpoint()
    (tmp_path / 'c.conf').write_text('[securelog]\norigin = test.example/securelog\n')
    audit_state = tmp_path / 'auditor-state.json'
    base = ['--db-url', db_url, '--state-dir', str(state_dir), '--config-file',
            str(tmp_path / 'c.conf'), 'verify', '--state', str(audit_state)]

    code, out, err = cli_tests.run_cli(base)
    assert code == 0, (out, err)
    assert (out['verified_from'], out['size']) == (0, 1200)
    assert json.loads(audit_state.read_text())['state']['size'] == 1200

    st.append(src.seal(events(1200, 300)))
    st.checkpoint()
    code, out, err = cli_tests.run_cli(base)
    assert code == 0, (out, err)
    assert (out['verified_from'], out['size']) == (1200, 1500)   # only the 300 new ones
    assert out['checkpoints_verified'] >= 1

    # damage after the verified point is found by the incremental audit
    st.append(src.seal(events(1500, 100)))
    st.checkpoint()
    with st.engine.begin() as conn:
        data = conn.exec_driver_sql('SELECT data FROM securelog_records WHERE log_index = '
                                    '1550').scalar()
        data = bytearray(bytes(data))
        data[-60] ^= 1
        conn.exec_driver_sql('UPDATE securelog_records SET data = %s WHERE log_index = 1550'
                             % ('?' if db_url.startswith('sqlite') else '%s'), (bytes(data),))
    saved = audit_state.read_text()
    code, out, err = cli_tests.run_cli(base)
    assert code == 1 and out['first_bad_index'] == 1550 and out['damage'] == 'modified', out
    assert audit_state.read_text() == saved             # a damaged log moves no state

    # a store cut below what the auditor verified
    with st.engine.begin() as conn:
        conn.exec_driver_sql('DELETE FROM securelog_records WHERE log_index >= 1000')
    code, out, err = cli_tests.run_cli(base)
    assert code == 1 and out['damage'] == 'truncated', out

    # an altered state is refused (exit 2), --full audits from genesis
    audit_state.write_text(saved.replace('"size": 1500', '"size": 1499'))
    code, out, err = cli_tests.run_cli(base)
    assert code == 2 and 'does not authenticate' in err, err
    code, out, err = cli_tests.run_cli(base + ['--full'])
    assert code == 1 and out['verified_from'] == 0
    st.close()
