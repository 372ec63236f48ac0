"""A source that hands its entries out makes each batch durable once (issue 14, point 5):
the journal append is the only fsync within an epoch, the state file (the key) changes only
with the key, and no sequence number is ever handed out twice, across crashes and
processes."""
import os

import pytest

from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import sealing
from tclouds_openstack.securelog import source as srcmod


def events(start, n):
    return [({'event_type': 'x', 'n': i}, '') for i in range(start, start + n)]


@pytest.fixture
def syncs(monkeypatch):
    """Counts fsync and fdatasync calls."""
    counted = []
    for name in ('fsync', 'fdatasync'):
        real = getattr(os, name)

        def counting(fd, _real=real, _name=name):
            counted.append(_name)
            return _real(fd)
        monkeypatch.setattr(os, name, counting)
    return counted


def test_one_durable_point_per_batch_within_an_epoch(tmp_path, syncs):
    src = srcmod.Source('nova@h1', str(tmp_path), epoch_entries=1000)
    src.seal(events(0, 1))                      # creates the sealer (K0, state file)
    del syncs[:]
    for start in range(1, 400, 100):
        src.seal(events(start, 100))
        assert syncs == ['fdatasync'], syncs
        del syncs[:]


def test_the_key_changes_the_state_file_first_and_no_old_key_remains(tmp_path, syncs):
    src = srcmod.Source('nova@h1', str(tmp_path), epoch_entries=50)
    entries = src.seal(events(0, 30))
    k0 = keyfiles.read_k0(src.k0_path())
    del syncs[:]
    entries += src.seal(events(30, 40))         # crosses into epoch 1
    assert syncs.count('fdatasync') == 1 and syncs.count('fsync') >= 1
    chain = sealing.KeyChain(k0)
    state = (tmp_path / 'sealer-nova@h1.json').read_text()
    assert chain.key(1).hex() in state and chain.key(0).hex() not in state
    journal = (tmp_path / 'sealer-nova@h1.json.journal').read_bytes()
    assert chain.key(0) not in journal and chain.key(1) not in journal
    assert [sealing.decode_entry(e).seq for e in entries] == list(range(70))


def test_a_crash_never_reuses_a_number_that_left(tmp_path):
    src = srcmod.Source('nova@h1', str(tmp_path), epoch_entries=1000)
    handed_out = src.seal(events(0, 10))
    # a new process: the state file still says sequence 1 (saved when it was created),
    # the journal says 9 was handed out
    again = srcmod.Source('nova@h1', str(tmp_path), epoch_entries=1000)
    more = again.seal(events(10, 5))
    assert [sealing.decode_entry(e).seq for e in handed_out + more] == list(range(15))


def test_a_torn_last_frame_is_cut_and_its_number_reused(tmp_path):
    src = srcmod.Source('nova@h1', str(tmp_path), epoch_entries=1000)
    src.seal(events(0, 3))
    path = tmp_path / 'sealer-nova@h1.json.journal'
    whole = path.read_bytes()
    # the process died while writing the next frame: half of it reached the disk
    next_entry = srcmod.Source('nova@h1', str(tmp_path), epoch_entries=1000)
    with next_entry.open() as sealer:
        frame_entry = next_entry.seal_one(sealer, {'event_type': 'lost'}, '')
    path.write_bytes(whole + (len(frame_entry)).to_bytes(4, 'big') + frame_entry[:20])
    again = srcmod.Source('nova@h1', str(tmp_path), epoch_entries=1000)
    entry = sealing.decode_entry(again.seal(events(3, 1))[0])
    assert entry.seq == 3 and path.read_bytes().startswith(whole)


def test_processes_sharing_a_source_continue_one_sequence(tmp_path):
    a = srcmod.Source('cinder@h2', str(tmp_path), epoch_entries=1000)
    b = srcmod.Source('cinder@h2', str(tmp_path), epoch_entries=1000)
    fa, fb = a.open(), b.open()             # each keeps its file object, as a driver does
    seqs = []
    for turn in range(6):
        f, src = (fa, a) if turn % 2 else (fb, b)
        with f as sealer:
            entry = src.seal_one(sealer, {'turn': turn}, '')
            f.append([entry])
        seqs.append(sealing.decode_entry(entry).seq)
    assert seqs == list(range(6))


def test_a_fully_published_journal_is_compacted(tmp_path, monkeypatch):
    monkeypatch.setattr(keyfiles.Journal, 'COMPACT_BYTES', 2000)
    src = srcmod.Source('nova@h1', str(tmp_path), epoch_entries=10 ** 6)
    entries = []
    for start in range(0, 100, 10):
        entries += src.seal(events(start, 10))
    path = tmp_path / 'sealer-nova@h1.json.journal'
    assert path.stat().st_size < 2000 + 10 * max(map(len, entries))
    again = srcmod.Source('nova@h1', str(tmp_path), epoch_entries=10 ** 6)
    assert sealing.decode_entry(again.seal(events(100, 1))[0]).seq == 100
