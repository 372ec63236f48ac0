"""Record format 2 (doc/source/securelog.rst): entries chained per source, spans sealed by
the log. Logs of both formats verify, a log upgraded from format 1 verifies, and every kind
of tampering is found: changed, deleted, reordered, inserted and truncated records, seals
of one format passed off as the other's, and a downgrade of a format-2 source or log."""
import pytest

from tclouds_openstack.securelog import audit
from tclouds_openstack.securelog import checkpoint as cpmod
from tclouds_openstack.securelog import log as logmod
from tclouds_openstack.securelog import sealing

from tests.unit.securelog.test_incremental_audit import Log


class V2Log(Log):
    """Two sources interleaved, format 2, appended in batches (one TSL2 record each)."""

    def __init__(self, epoch_entries=7, version=2):
        super().__init__(epoch_entries, version)

    def batches(self, *sizes):
        for n in sizes:
            self.grow(n)
        return self


def _damages(records, log, **kw):
    report = audit.audit(records, log.k_log, log.keys, kw.pop('checkpoints', ()), **kw)
    assert not report.ok, 'tampering not found'
    assert report.state is None
    return report


def _bare(records):
    return [i for i, r in enumerate(records) if r[:4] == sealing.ENTRY2_MAGIC]


def _sealed(records):
    return [i for i, r in enumerate(records) if r[:4] == sealing.RECORD2_MAGIC]


def test_format_2_layout():
    log = V2Log().batches(10, 5)
    recs = log.records
    assert _sealed(recs) == [9, 14] and len(_bare(recs)) == 13
    rec = sealing.decode_record(recs[14])
    assert (rec.version, rec.index, rec.span_start) == (2, 14, 9)
    assert rec.span == sealing.span_hash([log.writer.tree.leaf_hash(i) for i in range(9, 14)])
    bare = sealing.decode_record(recs[3])
    assert (bare.version, bare.index, bare.entry) == (0, None, recs[3])
    entry = sealing.decode_entry(recs[2])
    assert entry.version == 2
    # an entry names its source's previous one (the nova source seals 1, 2, 4, 5, ...)
    assert entry.prev == sealing.entry_hash(recs[1])
    assert sealing.decode_entry(recs[0]).prev == sealing.NO_PREV      # b's first entry
    assert sealing.decode_entry(recs[1]).prev == sealing.NO_PREV      # a's first entry


@pytest.mark.parametrize('version', [1, 2])
def test_both_formats_verify(version):
    log = V2Log(version=version).batches(50, 1, 1, 37, 200)
    report = log.audit()
    assert report.ok, report.summary()
    assert report.size == 289 and report.root == log.writer.tree.root()
    assert report.checkpoints_checked == 5
    assert report.sources == {'nova@c1': 192, 'cinder@c2': 97}


def test_a_log_upgraded_from_format_1_verifies_and_resumes():
    log = V2Log(version=1).batches(40, 3)
    old_state = log.audit().state
    # the software is upgraded: new sealers (same keys and positions) write format 2
    for name in ('a', 'b', 'logs'):
        old = getattr(log, name)
        setattr(log, name, sealing.Sealer.from_state(old.to_state(), epoch_entries=7))
    log.writer.sealer = log.logs
    log.batches(30, 1, 64)
    assert _sealed(log.records)[:1] == [72]
    full = log.audit()
    assert full.ok, full.summary()
    assert full.size == 138
    resumed = log.audit(resume=old_state)
    assert resumed.ok, resumed.summary()
    assert resumed.root == full.root
    # a state written before format 2 (no leaf of its last record) resumes too, once the
    # caller supplies that leaf (SecureLogStore.audit reads it from the store)
    old_state.log_leaf = None
    text = old_state.dumps(log.k_log)
    back = audit.AuditState.loads(text, log.k_log)
    assert back.log_leaf is None
    back.log_leaf = log.writer.tree.leaf_hash(back.size - 1)
    assert log.audit(resume=back).ok


def test_incremental_audit_of_format_2():
    log = V2Log().batches(100)
    first = log.audit()
    assert first.ok and first.state.log_leaf == log.writer.tree.leaf_hash(99)
    log.batches(57, 3, 300)
    again = log.audit(resume=audit.AuditState.loads(first.state.dumps(log.k_log),
                                                    log.k_log))
    full = log.audit()
    assert again.ok, again.summary()
    assert (again.start, again.size, again.root) == (100, 460, full.root)
    assert again.state.sources == full.state.sources
    assert log.audit(resume=again.state).ok


def _flip(data, offset=-40):
    data = bytearray(data)
    data[offset] ^= 1
    return bytes(data)


@pytest.mark.parametrize('where', ['first', 'middle', 'last-of-source', 'sealed'])
def test_changed_record_is_found(where):
    log = V2Log().batches(60, 40)
    recs = list(log.records)
    nova = [i for i in _bare(recs) if sealing.decode_entry(recs[i]).source == 'nova@c1']
    index = {'first': 0, 'middle': 30, 'last-of-source': nova[-1], 'sealed': 59}[where]
    recs[index] = _flip(recs[index])
    report = _damages(recs, log)
    first = report.first_damage
    assert (first.index, first.kind) == (index, 'modified'), report.damages
    # the log's span seal over the batch says so too (a range)
    if where != 'sealed':
        assert any(d.end is not None and d.index <= index < d.end for d in report.damages)


def test_payload_changed_with_the_chain_rewritten_is_found():
    """Someone without the keys rewrites an entry and every ``prev`` after it."""
    log = V2Log(epoch_entries=1000).batches(30)
    recs = list(log.records)
    nova = [i for i in _bare(recs) if sealing.decode_entry(recs[i]).source == 'nova@c1']
    head = sealing._ENTRY2_HEAD.size
    recs[nova[2]] = recs[nova[2]][:head + 7] + b'X' + recs[nova[2]][head + 8:]
    for before, after in zip(nova[2:], nova[3:]):
        prev = sealing.entry_hash(recs[before])
        recs[after] = recs[after][:29] + prev + recs[after][61:]
    report = _damages(recs, log)
    assert report.first_damage.kind in ('modified', 'forged')
    assert report.first_damage.index <= nova[-1]


@pytest.mark.parametrize('tamper, kinds', [
    ('delete-bare', {'missing', 'modified'}),
    ('delete-sealed', {'missing'}),
    ('swap-same-source', {'moved', 'missing', 'modified'}),
    ('swap-two-sources', {'modified'}),
    ('duplicate', {'moved', 'modified'}),
])
def test_deleted_reordered_inserted_records_are_found(tamper, kinds):
    log = V2Log().batches(25, 25, 25)
    recs = list(log.records)
    a = [i for i in _bare(recs) if sealing.decode_entry(recs[i]).source == 'nova@c1']
    b = [i for i in _bare(recs) if sealing.decode_entry(recs[i]).source == 'cinder@c2']
    if tamper == 'delete-bare':
        del recs[30]
    elif tamper == 'delete-sealed':
        del recs[49]
    elif tamper == 'swap-same-source':
        recs[a[12]], recs[a[13]] = recs[a[13]], recs[a[12]]
    elif tamper == 'swap-two-sources':
        i, j = a[12], b[6]
        recs[i], recs[j] = recs[j], recs[i]
    else:
        recs.insert(40, recs[38])
    report = _damages(recs, log)
    assert report.first_damage.kind in kinds, report.damages


def test_forged_bare_entry_of_an_unknown_or_known_source_is_found():
    log = V2Log().batches(20, 20)
    stranger, _k = sealing.Sealer.create('mallory@x', 0)
    recs = list(log.records)
    report = _damages(recs[:25] + [stranger.seal_entry(b'{}', 1)] + recs[25:], log)
    assert {d.kind for d in report.damages} >= {'unverifiable'}
    # an entry of a known source sealed with a made-up key
    fake, _k = sealing.Sealer.create('nova@c1', 0)
    fake.next_seq = 14
    report = _damages(recs[:25] + [fake.seal_entry(b'{}', 1)] + recs[25:], log)
    assert any(d.kind in ('modified', 'moved') and d.index == 25 for d in report.damages)


def test_truncation_and_an_unsealed_tail_are_found():
    log = V2Log().batches(30, 30)
    # the last batch gone: the checkpoint that covered it says so
    report = _damages(log.records[:30], log, checkpoints=log.checkpoints)
    assert report.first_damage.kind == 'truncated'
    # only the batch's sealed record gone: its records are covered by no seal
    report = _damages(log.records[:59], log)
    assert (report.first_damage.index, report.first_damage.kind) == (30, 'unsealed')
    # records appended after the last seal by someone without the log key
    extra = [log.a.seal_entry(b'{"late": 1}', 9000)]
    report = _damages(log.records + extra, log)
    assert (report.first_damage.index, report.first_damage.kind) == (60, 'unsealed')


def test_forward_security_a_later_key_cannot_reseal_an_earlier_span():
    """The host taken in a later epoch: rewriting an old batch needs the erased keys."""
    log = V2Log(epoch_entries=5).batches(10, 10, 10, 10)
    recs = list(log.records)
    assert log.logs.epoch > sealing.decode_record(recs[9]).epoch
    # rewrite record 3 with the current source key and reseal its batch's span with the
    # current log key (all the attacker holds)
    victim = sealing.decode_entry(recs[3])
    src = log.a if victim.source == 'nova@c1' else log.b
    forged = sealing.encode_entry_body(0, src.epoch, victim.seq, victim.time_ns,
                                       victim.source, '', b'{"forged": 1}', 2, victim.prev)
    recs[3] = forged + sealing.HmacKey(bytes(src._key)).tag(forged)
    leaves = [sealing.entry_hash(r) for r in recs[:9]]
    recs[9] = log.logs.seal_span(9, 0, leaves, sealing.decode_record(recs[9]).entry, 1)
    report = _damages(recs, log, checkpoints=log.checkpoints)
    kinds = {(d.index, d.kind) for d in report.damages}
    # the resealed record carries a later epoch than the records after it: forged; the
    # entry's epoch runs ahead of its source's next entries: forged
    assert (9, 'forged') in kinds or (3, 'forged') in kinds, report.damages


def test_format_1_record_after_format_2_is_a_downgrade():
    log = V2Log().batches(20, 5)
    entry = log.a.seal_entry(b'{"v1": 1}', 9000)
    # a key holder writes the next record in format 1 (genuine log key of the epoch)
    log.logs.version = 1
    v1 = log.logs.seal_record(25, entry, 9000)
    report = _damages(log.records + [v1], log)
    assert (report.first_damage.index, report.first_damage.kind) == (25, 'forged')
    assert 'downgrade' in report.first_damage.detail


def test_format_1_entry_of_a_format_2_source_is_a_downgrade():
    log = V2Log().batches(20)
    log.a.version = 1
    log.batches(1)
    report = _damages(log.records, log)
    assert (report.first_damage.index, report.first_damage.kind) == (20, 'forged')
    assert 'downgrade' in report.first_damage.detail


def test_seals_of_one_format_do_not_verify_as_the_other():
    # a format-2 entry re-encoded as format 1 with its tag kept, and the other way round
    src, k0 = sealing.Sealer.create('s', 0)
    v2 = sealing.decode_entry(src.seal_entry(b'{"n": 1}', 5))
    as_v1 = sealing.encode_entry_body(v2.flags, v2.epoch, v2.seq, v2.time_ns, v2.source,
                                      v2.tenant, v2.payload) + v2.tag
    chain = sealing.KeyChain(k0)
    assert not chain.check(0, as_v1)
    src1, k1 = sealing.Sealer.create('s', 0, version=1)
    v1 = sealing.decode_entry(src1.seal_entry(b'{"n": 1}', 5))
    as_v2 = sealing.encode_entry_body(v1.flags, v1.epoch, v1.seq, v1.time_ns, v1.source,
                                      v1.tenant, v1.payload, 2) + v1.tag
    assert not sealing.KeyChain(k1).check(0, as_v2)
    # in a log: a format-2 record whose entry is swapped for the format-1 re-encoding
    log = V2Log().batches(10, 10)
    recs = list(log.records)
    e = sealing.decode_entry(recs[4])
    recs[4] = sealing.encode_entry_body(e.flags, e.epoch, e.seq, e.time_ns, e.source,
                                        e.tenant, e.payload) + e.tag
    report = _damages(recs, log)
    assert report.first_damage.index == 4, report.damages
    # a TSL2 record passed off as TSL1 with its tag kept
    r = sealing.decode_record(recs[9])
    recs = list(log.records)
    recs[9] = sealing.encode_record_body(9, r.epoch, r.entry) + r.tag
    report = _damages(recs, log)
    assert report.first_damage.index <= 9


def test_a_restarted_source_begins_a_new_chain_segment():
    log = V2Log(epoch_entries=1000).batches(20)
    # the source restarts from its saved state: it no longer knows its last entry
    log.a = sealing.Sealer.from_state(log.a.to_state(), epoch_entries=1000)
    log.batches(20)
    restarted = [sealing.decode_entry(sealing.record_entry(r)) for r in log.records[20:]]
    assert any(e.prev == sealing.NO_PREV and e.source == 'nova@c1' for e in restarted)
    assert log.audit().ok
    # a segment end whose seal fails names its index
    recs = list(log.records)
    nova = [i for i in _bare(recs[:20]) if sealing.decode_entry(recs[i]).source == 'nova@c1']
    recs[nova[-1]] = _flip(recs[nova[-1]])
    report = _damages(recs, log)
    assert (report.first_damage.index, report.first_damage.kind) == (nova[-1], 'modified')


def test_decode_names_the_field_of_format_2():
    src, _k = sealing.Sealer.create('s', 0)
    good = src.seal_entry(b'{"n": 1}', 5)
    for data, field in [(good[:40], 'entry.header'), (good + b'\x00', 'entry.tag'),
                        (good[:-33], 'entry.payload')]:
        with pytest.raises(sealing.SealError) as info:
            sealing.decode_entry(data)
        assert info.value.field == field
    with pytest.raises(sealing.SealError) as info:
        sealing.decode_record(b'TSL2' + b'\x00' * 20)
    assert info.value.field == 'record.header'
    body = sealing.encode_record2_body(3, 0, 5, b'\x00' * 32, good)
    with pytest.raises(sealing.SealError) as info:
        sealing.decode_record(body + b'\x00' * 32)
    assert info.value.field == 'record.span_start'


def test_log_writer_batches_end_with_one_sealed_record():
    logs, _k = sealing.Sealer.create('log', 0, epoch_entries=10)
    writer = logmod.LogWriter('t', logs, cpmod.NoteSigner.generate('t'))
    src, _k2 = sealing.Sealer.create('s', 0)
    for n in (1, 4, 12):
        sealed = writer.seal([src.seal_entry(b'{}', 1) for _ in range(n)], 1)
        writer.commit(sealed)
        assert [r[:4] for _i, r in sealed] == [b'TSE2'] * (n - 1) + [b'TSL2']
    # the log sealer counts every record towards its epochs, not only the sealed ones: the
    # batch's seal is in the epoch format 1 would have sealed its last record in
    assert logs.epoch == 1 and logs.entries_in_epoch == 7
