"""The ingestion endpoint never requeues for ever what one entry makes the store refuse."""
import base64

from oslo_db import exception as db_exc
import oslo_messaging
import pytest

from tclouds_openstack.securelog import driver as drivermod
from tclouds_openstack.securelog import ingest
from tclouds_openstack.securelog import sealing


def entry(seq, source='s@h'):
    return sealing.encode_entry_body(0, 0, seq, 1, source, '', b'{}') + b'\0' * 32


def message(raw):
    return {'event_type': drivermod.ENTRY_EVENT_TYPE, 'publisher_id': 'x',
            'payload': {'entry': base64.b64encode(raw).decode()}}


class Store(object):
    """Appends everything but entries of sequence ``bad``, failing as ``error`` says."""

    def __init__(self, bad, error):
        self.bad, self.error, self.stored = bad, error, []

    def append(self, raws):
        if any(sealing.decode_entry(r).seq in self.bad for r in raws):
            raise self.error
        self.stored.extend(sealing.decode_entry(r).seq for r in raws)
        return list(range(len(raws)))


@pytest.mark.parametrize('error', [
    db_exc.DBError(OverflowError('Python int too large to convert to SQLite INTEGER')),
    db_exc.DBDataError(ValueError('value too long for type character varying(255)')),
    ValueError('no column holds this'),
])
def test_a_poison_entry_is_dropped_and_the_rest_appended(error, caplog):
    store = Store({2}, error)
    endpoint = ingest.IngestEndpoint(store)
    result = endpoint.info([message(entry(n)) for n in (1, 2, 3)])
    assert result == oslo_messaging.NotificationResult.HANDLED
    assert store.stored == [1, 3]
    assert "dropping entry 's@h' sequence 2 that the store cannot hold" in caplog.text


def test_an_unavailable_database_requeues_the_batch():
    store = Store({2}, db_exc.DBConnectionError('gone'))
    result = ingest.IngestEndpoint(store).info([message(entry(n)) for n in (1, 2, 3)])
    assert result == oslo_messaging.NotificationResult.REQUEUE
    assert store.stored == []


def test_values_beyond_the_store_are_malformed_on_both_sides():
    with pytest.raises(ValueError):
        sealing.encode_entry_body(0, 0, 1 << 63, 1, 's', '', b'')
    with pytest.raises(ValueError):
        sealing.encode_entry_body(0, 0, 1, 1, 's', 't' * 256, b'')
    raw = bytearray(entry(1))
    raw[13:21] = ((1 << 64) - 1).to_bytes(8, 'big')
    with pytest.raises(sealing.SealError) as exc:
        sealing.decode_entry(bytes(raw))
    assert 'entry.seq at offset 13' in str(exc.value)


def test_forged_far_future_epochs_cost_bounded_work(tmp_path, monkeypatch):
    """Forged far-future epochs cost the ingester bounded work.

    Anyone may claim epoch 999,999 of a source: each forgery must not cost a million key
    evolutions of the one ingestion worker (a few thousand messages stalled it for hours);
    the keys met on the way are kept (at or above the durable epoch only).
    """
    from tclouds_openstack.securelog import keyfiles

    k0 = bytes(range(32))
    keyfiles.enroll_source(str(tmp_path), 's@h', k0)
    keys = keyfiles.SourceKeys(str(tmp_path))
    calls = []
    real = sealing.evolve
    monkeypatch.setattr(sealing, 'evolve', lambda key: calls.append(1) or real(key))
    forged = 200
    for n in range(forged):
        epoch = sealing.MAX_EPOCH_JUMP - 1 - 997 * n
        data = sealing.encode_entry_body(0, epoch, n, 1, 's@h', '', b'{}') + bytes(32)
        kind, _reason = keys.check(sealing.decode_entry(data), data)
        assert kind == 'bad-seal'
    # one walk up to the highest epoch, then at most DERIVED_EVERY steps per forgery
    assert len(calls) <= sealing.MAX_EPOCH_JUMP + forged * keys.DERIVED_EVERY
    assert len(calls) < 3 * sealing.MAX_EPOCH_JUMP
    # a genuine entry of a later epoch still verifies, and its epoch becomes durable
    key = k0
    for _ in range(5000):
        key = real(key)
    body = sealing.encode_entry_body(0, 5000, 1, 1, 's@h', '', b'{}')
    data = body + sealing.HmacKey(key).tag(body)
    assert keys.check(sealing.decode_entry(data), data) is None
    keys.commit()
    # forward security: nothing below the durable epoch stays in memory
    assert all(epoch >= 5000 for epoch in keys._derived['s@h'])
    assert all(epoch >= 5000 for _name, epoch in keys._hmacs)


def test_a_long_tenant_is_refused_at_ingestion_yet_stored_entries_still_decode(caplog):
    # sqlite never enforced String(255): a genuine entry stored there before the limit must
    # still decode (an audit reports it as what it is, not as damage) ...
    body = bytearray(sealing.encode_entry_body(0, 0, 1, 1, 's@h', 't' * 255, b'{}'))
    # widen the tenant by hand: encode refuses it now
    at = body.index(b't' * 255) - 2
    body[at:at + 2 + 255] = (300).to_bytes(2, 'big') + b't' * 300
    raw = bytes(body) + b'\0' * 32
    assert sealing.decode_entry(raw).tenant == 't' * 300
    # ... while the ingestion drops it from the bus with the reason, and appends the rest
    store = Store(set(), None)
    result = ingest.IngestEndpoint(store).info([message(raw), message(entry(2))])
    assert result == oslo_messaging.NotificationResult.HANDLED
    assert store.stored == [2]
    assert 'entry.tenant: 300 characters, longer than 255' in caplog.text
