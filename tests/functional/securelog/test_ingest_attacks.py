"""A bus participant cannot forge, displace or silently drop secure-log entries
(issue 11, review point 6), over the real RabbitMQ with the real ingestion service.

The attacker publishes on the ingestion topic like any notification driver: a forged entry
with the genuine source's next sequence number (no key: the seal is garbage), a replay of
a stored entry with altered bytes, a second entry under a stored sequence number sealed
with the source's key (taken from the source host: the source equivocates), and entries of
a source nobody enrolled. The genuine entries must be the ones in the log, every other one
kept as evidence with an ERROR line and an alarm notification, and the log's audit clean.
"""
import base64
import json
import os
import struct
import threading
import uuid

import oslo_messaging
import pytest

from tclouds_openstack.common import context as tcontext
from tclouds_openstack.securelog import api
from tclouds_openstack.securelog import driver as drivermod
from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import sealing
from tclouds_openstack.securelog import source as srcmod
from tclouds_openstack.securelog import store as storemod
from tests.functional.securelog import conftest
from tests.functional.securelog import test_ingest_rabbit as rabbit
from tests import watchdog

SOURCE = 'nova-compute@host1'
topic = rabbit.topic         # the fixture: a private ingestion topic, its queue deleted after


class Alarms(object):
    """The ingestion service's alarm notifications, as an operator's monitoring sees them."""

    def __init__(self, conf, topic):
        self.seen = []
        self.lock = threading.Lock()
        transport = oslo_messaging.get_notification_transport(conf, url=rabbit.RABBIT)
        self.listener = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic=topic)], [self], executor='threading')
        self.listener.start()
        self.transport = transport

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        with self.lock:
            self.seen.append((publisher_id, event_type, payload))

    def of(self, event_type):
        with self.lock:
            return [p for _pub, e, p in self.seen if e == event_type]

    def stop(self):
        self.listener.stop()
        self.listener.wait()
        self.transport.cleanup()


@pytest.fixture
def bus(tmp_path, topic):
    """A configured ingestion (alarms to a private topic), the genuine source enrolled."""
    alarm_topic = 'securelog_alarms_%s' % uuid.uuid4().hex[:8]
    path = rabbit._write_conf(tmp_path, topic)
    text = path.read_text().replace(
        '[oslo_messaging_notifications]\n',
        '[oslo_messaging_notifications]\ndriver = messagingv2\ntopics = %s\n' % alarm_topic)
    path.write_text(text)
    conf = rabbit._conf(path)
    alarms = Alarms(conf, alarm_topic)
    transport, notifier = rabbit._notifier(conf, SOURCE)
    conftest.enroll(tmp_path / 'logstate' / 'source-keys', tmp_path / 'source', SOURCE)
    attacker = oslo_messaging.Notifier(transport, publisher_id='compute.host1',
                                       driver='messagingv2', topics=[conf.securelog.topic])
    store = storemod.SecureLogStore.from_conf(conf)
    proc = rabbit._start_ingest(path)
    try:
        yield path, conf, store, notifier, attacker, alarms, proc
    finally:
        rabbit._stop(proc)
        alarms.stop()
        transport.cleanup()
        for priority in ('audit', 'debug', 'info', 'warn', 'error', 'critical', 'sample'):
            watchdog.run(['rabbitmqctl', '-q', 'delete_queue',
                          '%s.%s' % (alarm_topic, priority)], capture_output=True)


def publish(attacker, entry):
    """What the securelog driver sends, from anyone who can reach the broker."""
    attacker.info({}, drivermod.ENTRY_EVENT_TYPE,
                  {'entry': base64.b64encode(entry).decode('ascii')})


def genuine(notifier, n):
    notifier.info(tcontext.RequestContext(project_id='p1'), 'compute.instance.update',
                  {'n': n})


def wait_for(predicate, what):
    watchdog.wait_until(predicate, what, interval=0.2)


def payload_of(row):
    return api.record_view(row)['payload']


def test_forged_and_conflicting_entries_are_evidence_never_displacing(bus, tmp_path):
    path, conf, store, notifier, attacker, alarms, proc = bus
    for n in range(3):
        genuine(notifier, n)
    wait_for(lambda: store.size() == 3, 'the 3 genuine entries to be stored')
    stored = {r.seq: bytes(r.data) for r in store.list(limit=10)}
    entry1 = sealing.decode_entry(sealing.record_entry(stored[1]))

    # 1. the next sequence number, forged without the source's key
    forged_next = sealing.encode_entry_body(
        0, entry1.epoch, 3, entry1.time_ns + 1, SOURCE, 'p1',
        b'{"event_type":"identity.user.deleted","payload":{"user":"auditor"}}') \
        + os.urandom(sealing.TAG_SIZE)
    publish(attacker, forged_next)
    # 2. a stored entry replayed with altered bytes
    altered = bytearray(sealing.record_entry(stored[1]))
    altered[-40] ^= 0x01
    publish(attacker, bytes(altered))
    # 3. the source's key, stolen from its host, seals another entry under sequence 2
    src = srcmod.Source(SOURCE, str(tmp_path / 'source'))
    with src.open() as sealer:
        sealer.next_seq = 2             # not saved: the host's state stays as it was
        equivocation = sealer.seal_entry(b'{"event_type":"compute.instance.delete"}',
                                         entry1.time_ns + 2, tenant='p1')
    publish(attacker, equivocation)
    # the genuine sequence 3 arrives after its forgery: it is the one appended
    genuine(notifier, 3)
    wait_for(lambda: store.size() >= 4, 'a 4th entry to be stored')
    rows = store.list(limit=10)
    assert [(r.seq, payload_of(r)['payload']) for r in rows] == [
        (n, {'n': n}) for n in range(4)]
    assert [payload_of(r)['event_type'] for r in rows] == ['compute.instance.update'] * 4

    # nothing dropped: the attacks are kept as evidence
    wait_for(lambda: len(store.evidence()) == 3, 'the 3 attacks to be kept as evidence')
    evidence = {(e.kind, e.seq): e for e in store.evidence()}
    assert set(evidence) == {('bad-seal', 3), ('conflict', 1), ('conflict', 2)}
    assert bytes(evidence['bad-seal', 3].entry) == forged_next
    assert 'does not verify' in evidence['bad-seal', 3].reason
    assert evidence['conflict', 1].stored_index == 1
    assert "its seal is not the source's" in evidence['conflict', 1].reason
    assert evidence['conflict', 2].stored_index == 2
    assert 'sealed two entries under one sequence number' in evidence['conflict', 2].reason
    assert bytes(evidence['conflict', 2].entry) == equivocation

    # alarms: a notification per piece of evidence, and ERROR lines in the service's log
    wait_for(lambda: len(alarms.of('securelog.entry.conflict')) == 2
             and len(alarms.of('securelog.entry.refused')) == 1, 'the alarms')
    refused = alarms.of('securelog.entry.refused')[0]
    assert (refused['source'], refused['seq'], refused['kind']) == (SOURCE, 3, 'bad-seal')
    assert sorted(a['stored_index'] for a in alarms.of('securelog.entry.conflict')) == [1, 2]
    # the project the entries claim (a tenant's data-protection report lists them)
    assert {a['tenant'] for a in alarms.of('securelog.entry.conflict')} == {'p1'}
    assert refused['tenant'] == 'p1'
    rabbit._stop(proc)
    log = proc.stderr.read().decode('utf-8', 'replace')
    assert 'ERROR' in log and 'securelog.entry.refused' in log
    assert 'conflicting duplicate: source %r sequence 1' % SOURCE in log

    report, problems = store.audit(rabbit._bundle(tmp_path))
    assert report.ok and not problems, report.summary()
    assert report.sources == {SOURCE: 4}


def test_unknown_source_is_held_until_enrolled_and_forgeries_stay_out(bus, tmp_path):
    path, conf, store, notifier, attacker, alarms, proc = bus
    # a new service host starts sealing before an admin enrolled it; an attacker adds an
    # entry under the same, not yet enrolled, name
    new = srcmod.Source('cinder-volume@host9', str(tmp_path / 'source'))
    entries = new.seal([({'event_type': 'volume.attach', 'n': n}, 'p2') for n in range(3)])
    first = sealing.decode_entry(entries[0])
    forged = sealing.encode_entry_body(0, first.epoch, 3, first.time_ns, new.name, 'p2',
                                       b'{"event_type":"volume.delete"}') \
        + os.urandom(sealing.TAG_SIZE)
    for entry in [forged] + entries:
        publish(attacker, entry)
    wait_for(lambda: len(store.evidence(kind=storemod.UNKNOWN_SOURCE)) == 4,
             'the entries of the unknown source to be held')
    assert store.size() == 0                    # not trusted on first use
    wait_for(lambda: alarms.of('securelog.source.unknown'), 'the unknown-source alarm')
    assert alarms.of('securelog.source.unknown')[0]['source'] == new.name

    # the admin enrols the source's K0: the held genuine entries go in, in order
    res = watchdog.run([os.path.join(os.path.dirname(rabbit.sys.executable),
                                     'tclouds-securelog'),
                        '--config-file', str(path), 'enroll-source', new.k0_path()],
                       capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)['enrolled'] == [new.name]
    wait_for(lambda: store.size() == 3, 'the held genuine entries to be appended')
    assert [(r.source, r.seq) for r in store.list(limit=10)] == [
        (new.name, n) for n in range(3)]
    evidence = {(e.kind, e.seq): e for e in store.evidence()}
    assert evidence[('bad-seal', 3)].entry == forged          # the forgery stays out
    assert sorted(e.released_index for e in evidence.values()
                  if e.kind == storemod.UNKNOWN_SOURCE) == [0, 1, 2]
    bundle = rabbit._bundle(tmp_path)
    bundle.source_keys[new.name] = keyfiles.read_k0(new.k0_path())
    report, problems = store.audit(bundle)
    assert report.ok and not problems, report.summary()


def crafted(epoch, seq, time_ns, source, tenant, payload=b'{"event_type":"x"}'):
    """An entry in the wire format, packed by hand (our encoder refuses such values)."""
    src, ten = source.encode(), tenant.encode()
    return b''.join((struct.pack('>4sBQQQH', sealing.ENTRY_MAGIC, 0, epoch, seq, time_ns,
                                 len(src)), src, struct.pack('>H', len(ten)), ten,
                     struct.pack('>I', len(payload)), payload, os.urandom(sealing.TAG_SIZE)))


def test_an_entry_the_database_cannot_hold_does_not_stall_ingestion(bus, tmp_path):
    """A poison entry: well-formed bytes whose numbers or names no database column holds.

    A sequence number, epoch or time beyond 2^63-1 (the BIGINT columns), a source or tenant
    longer than 255 characters (the String(255) columns on MariaDB and PostgreSQL): from a
    source nobody enrolled, or from an enrolled one that equivocates. Refused as malformed
    and logged, never requeued for ever ahead of the genuine entries.
    """
    path, conf, store, notifier, attacker, alarms, proc = bus
    genuine(notifier, 0)
    wait_for(lambda: store.size() == 1, 'the first genuine entry to be stored')
    for seq, epoch, time_ns, source, tenant in (
            (2 ** 64 - 1, 0, 1, 'nobody@nowhere', ''),
            (2 ** 63, 0, 1, SOURCE, 'p1'),
            (5, 2 ** 63, 1, SOURCE, 'p1'),
            (6, 0, 2 ** 64 - 1, SOURCE, 'p1'),
            (7, 0, 1, 's' * 256, ''),
            (8, 0, 1, SOURCE, 't' * 256)):
        publish(attacker, crafted(epoch, seq, time_ns, source, tenant))
    for n in range(1, 4):
        genuine(notifier, n)
    wait_for(lambda: store.size() == 4, 'the genuine entries after the poison to be stored')
    assert [payload_of(r)['payload']['n'] for r in store.list(limit=10)] == [0, 1, 2, 3]
    rabbit._stop(proc)
    log = proc.stderr.read().decode('utf-8', 'replace')
    assert log.count('securelog: dropping a malformed message') == 6, log[-3000:]
    assert 'beyond 2^63-1' in log and 'longer than 255 characters' in log
    report, problems = store.audit(rabbit._bundle(tmp_path))
    assert report.ok and not problems, report.summary()
