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
