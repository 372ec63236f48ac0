"""Incremental audits (issue 14, point 5): resuming from an AuditState checks the new
records with every rule of the full audit, extends the verified frontier to the signed
root, and carries the sources' and the log's positions across the boundary."""
import pytest

from tclouds_openstack.securelog import audit
from tclouds_openstack.securelog import checkpoint as cpmod
from tclouds_openstack.securelog import log as logmod
from tclouds_openstack.securelog import merkle
from tclouds_openstack.securelog import sealing


class Log(object):
    """Two sources interleaved into one log, checkpoints signed along the way."""

    def __init__(self, epoch_entries=7, version=1):
        """``version``: the record format (1 here; test_format_v2.py runs format 2)."""
        kw = dict(epoch_entries=epoch_entries, version=version)
        self.a, ka = sealing.Sealer.create('nova@c1', 0, **kw)
        self.b, kb = sealing.Sealer.create('cinder@c2', 0, **kw)
        self.logs, self.k_log = sealing.Sealer.create('log', 0, **kw)
        self.keys = {'nova@c1': ka, 'cinder@c2': kb}
        self.signer = cpmod.NoteSigner.generate('test/log')
        self.writer = logmod.LogWriter('test/log', self.logs, self.signer)
        self.records = []
        self.checkpoints = []

    def grow(self, n):
        entries = [(self.a if i % 3 else self.b).seal_entry(b'{"n": %d}' % i, 1000 + i)
                   for i in range(len(self.records), len(self.records) + n)]
        sealed = self.writer.seal(entries, 5000)
        self.writer.commit(sealed)
        self.records.extend(r for _i, r in sealed)
        note = self.writer.checkpoint(1)
        self.checkpoints.append(cpmod.open_checkpoint(
            note, cpmod.NoteVerifier.from_vkey(self.signer.vkey()))[0])
        return self

    def audit(self, records=None, resume=None, checkpoints=None):
        start = resume.size if resume else 0
        records = self.records[start:] if records is None else records
        return audit.audit(records, self.k_log, self.keys,
                           self.checkpoints if checkpoints is None else checkpoints,
                           resume=resume)


def test_resumed_audit_equals_the_full_one():
    log = Log().grow(100)
    first = log.audit()
    assert first.ok and first.state.size == 100
    log.grow(57).grow(300)
    again = log.audit(resume=first.state)
    full = log.audit()
    assert again.ok, again.summary()
    assert (again.start, again.size, again.root) == (100, 457, full.root)
    # the checkpoint of the verified size (against the state's root) and the two after
    assert again.checkpoints_checked == 3
    assert again.state.root == full.state.root == log.writer.tree.root()
    assert again.state.sources == full.state.sources
    assert (again.state.log_epoch, again.state.log_key) == (full.state.log_epoch,
                                                            full.state.log_key)
    # resuming again with nothing new is OK too
    assert log.audit(resume=again.state).ok


def test_state_round_trip_and_authentication():
    log = Log().grow(50)
    state = log.audit().state
    text = state.dumps(log.k_log)
    back = audit.AuditState.loads(text, log.k_log)
    assert (back.size, back.root, back.sources) == (state.size, state.root, state.sources)
    with pytest.raises(ValueError, match='does not authenticate'):
        audit.AuditState.loads(text, b'\x01' * 32)                  # another log's K0
    with pytest.raises(ValueError, match='does not authenticate'):
        audit.AuditState.loads(text.replace('"size": 50', '"size": 51'), log.k_log)
    with pytest.raises(ValueError, match='not valid JSON'):
        audit.AuditState.loads('{', log.k_log)


@pytest.mark.parametrize('tamper, kind', [
    ('modify', 'modified'), ('delete', 'missing'), ('swap', 'moved'),
])
def test_damage_after_the_resumed_size_is_found(tamper, kind):
    log = Log().grow(40)
    state = log.audit().state
    log.grow(40)
    new = list(log.records[40:])
    if tamper == 'modify':
        new[5] = new[5][:-40] + bytes([new[5][-40] ^ 1]) + new[5][-39:]
    elif tamper == 'delete':
        del new[5]
    else:
        new[5], new[6] = new[6], new[5]
    report = log.audit(records=new, resume=state)
    assert not report.ok and report.state is None
    assert report.first_damage.kind == kind
    assert report.first_damage.index == 45


def test_a_fork_at_the_verified_size_is_found():
    """The operator signs another history of the same size: the auditor's root differs."""
    log = Log().grow(30)
    state = log.audit().state
    other = Log().grow(30)                  # same size, other records
    forged_cp = cpmod.Checkpoint('test/log', 30, other.writer.tree.root(), ())
    report = log.audit(records=[], resume=state, checkpoints=[forged_cp])
    assert report.first_damage.kind == 'root-mismatch'


def test_a_source_gap_across_the_boundary_is_found():
    log = Log().grow(30)
    state = log.audit().state
    # the next entry of nova@c1 is dropped before the log seals it
    log.a.seal_entry(b'{"lost": true}', 9)
    log.grow(10)
    report = log.audit(resume=state)
    assert report.first_damage.kind == 'missing'
    assert "source 'nova@c1' jumps" in report.first_damage.detail


def test_an_entry_of_an_epoch_before_the_resumed_one_is_refused():
    log = Log(epoch_entries=5).grow(40)
    state = log.audit().state
    # a record sealed with the log key of epoch 0 cannot be checked any more: the state
    # starts at a later epoch; it must not pass
    body = sealing.encode_record_body(40, 0, log.a.seal_entry(b'{}', 1))
    fake = body + sealing.mac(audit.sealing.KeyChain(log.k_log).key(0), body)
    report = log.audit(records=[fake], resume=state, checkpoints=[])
    assert report.first_damage.kind == 'forged'


def test_frontier_is_the_compact_range():
    log = Log().grow(77)
    state = log.audit().state
    assert len(state.frontier) == bin(77).count('1')
    assert state.root == merkle.root_from_leaf_hashes(
        merkle.hash_leaf(r) for r in log.records)
