"""Forward-secure sealing and the audit rules on an in-memory log (the store-level tamper
matrix on 10,000 entries is in tests/functional/securelog/test_store_cli.py)."""
import pytest

from tclouds_openstack.securelog import audit
from tclouds_openstack.securelog import checkpoint as cpmod
from tclouds_openstack.securelog import log as logmod
from tclouds_openstack.securelog import sealing


def _build(n, epoch_entries=10, version=1):
    """A log of format ``version``.

    Format 1 here (every record sealed on its own); format 2 is in test_format_v2.py.
    """
    src, k_src = sealing.Sealer.create('nova-compute@host1', 0, epoch_entries=epoch_entries,
                                       version=version)
    logs, k_log = sealing.Sealer.create('log', 0, epoch_entries=epoch_entries,
                                        version=version)
    writer = logmod.LogWriter('test/log', logs, cpmod.NoteSigner.generate('test/log'))
    entries = [src.seal_entry(b'{"n": %d}' % i, 1000 + i) for i in range(n)]
    records = writer.seal(entries, 5000)
    writer.commit(records)
    return [r for _i, r in records], k_log, {'nova-compute@host1': k_src}, src, logs, writer


def test_key_evolution_is_one_way_and_erases_the_old_key():
    sealer, k0 = sealing.Sealer.create('s', 0, epoch_entries=2)
    chain = sealing.KeyChain(k0)
    for i in range(7):
        sealer.seal_entry(b'x', i)
    state = sealer.to_state()
    assert state['epoch'] == 3
    assert bytes.fromhex(state['key']) == chain.key(3)
    assert all(bytes.fromhex(state['key']) != chain.key(e) for e in range(3))
    assert sealing.evolve(chain.key(2)) == chain.key(3)
    restored = sealing.Sealer.from_state(state, epoch_entries=2)
    assert restored.seal_entry(b'y', 9)[:-32] != b''


def test_time_based_epochs():
    sealer, _k0 = sealing.Sealer.create('s', 0, epoch_seconds=1.0, epoch_entries=10 ** 9)
    sealer.seal_entry(b'a', int(0.5e9))
    assert sealer.epoch == 0
    sealer.seal_entry(b'b', int(1.5e9))
    assert sealer.epoch == 1


def test_clean_log_audits_ok():
    records, k_log, keys, *_ = _build(100)
    report = audit.audit(records, k_log, keys)
    assert report.ok, report.summary()
    assert report.size == 100 and report.sources['nova-compute@host1'] == 100


def _first(records, k_log, keys, **kw):
    report = audit.audit(records, k_log, keys, **kw)
    assert not report.ok
    return report.first_damage


def test_forged_entry_with_a_later_key_is_named():
    records, k_log, keys, src, logs, writer = _build(100)
    # The attacker owns the host now (epoch 9 keys) and rewrites record 30 of epoch 3.
    forged_entry = src.seal_entry(b'{"forged": true}', 2000)
    assert src.epoch > 3
    forged = logs.seal_record(30, forged_entry, 6000)
    damage = _first(records[:30] + [forged] + records[31:], k_log, keys)
    assert (damage.index, damage.kind) == (30, 'forged')
    # Claiming the old epoch instead needs the erased key: the seal does not verify.
    body = sealing.encode_record_body(30, 0, forged_entry)
    fake = body + sealing.mac(b'\x00' * 32, body)
    damage = _first(records[:30] + [fake] + records[31:], k_log, keys)
    assert (damage.index, damage.kind) == (30, 'modified')


def test_unknown_source_and_malformed_record_fail_closed():
    records, k_log, _keys, *_ = _build(5)
    assert _first(records, k_log, {}).kind == 'unverifiable'
    damage = _first(records[:2] + [b'garbage'] + records[3:], k_log, _keys)
    assert (damage.index, damage.kind) == (2, 'malformed')
    assert 'record.header' in damage.detail


@pytest.mark.parametrize('data, field', [
    (b'TSE9' + b'\x00' * 60, 'entry.magic'),
    (sealing.encode_entry_body(0, 0, 0, 0, 's', '', b'p'), 'entry.tag'),
    (sealing.encode_entry_body(0, 0, 0, 0, 's', '', b'p') + b'\x00' * 33, 'entry.tag'),
    (sealing.encode_entry_body(0x80, 0, 0, 0, 's', '', b'p') + b'\x00' * 32, 'entry.flags'),
])
def test_entry_decode_names_the_field(data, field):
    with pytest.raises(sealing.SealError) as info:
        sealing.decode_entry(data)
    assert info.value.field == field
