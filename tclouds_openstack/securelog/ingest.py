"""The ingestion service (adapter): sealed entries from the bus into the store.

A batch notification listener on ``[securelog] topic`` (``<topic>.info``) takes up to
``batch_size`` messages, appends them in one transaction and only then lets oslo.messaging
acknowledge them. Killed before the commit: nothing was written and RabbitMQ redelivers the
batch. Killed after the commit but before the acknowledgement: the batch is redelivered and
the append skips every (source, seq) it already holds. Either way no entry is lost and none
is stored twice. Queues must be durable (``[oslo_messaging_rabbit] amqp_durable_queues =
true``) to survive a broker restart.

Anyone on the bus can publish on the topic, so nothing is taken on the message's word: the
store appends an entry only if its source seal verifies with the source's enrolled key
(``[securelog] source_keys_dir``, ``tclouds-securelog enroll-source``). A forged entry, a
conflicting duplicate of a stored ``(source, seq)`` and the entries of a source nobody
enrolled are kept as evidence (``securelog_evidence``), logged at ERROR and announced as
notifications (``securelog.entry.conflict``, ``securelog.entry.refused``,
``securelog.source.unknown``) from publisher ``securelog-ingest.<host>``; held entries of a
source are appended, in order, once it is enrolled (checked every checkpoint interval).
"""
import base64
import binascii
import logging
import socket
import threading

from oslo_db import exception as db_exc
import oslo_messaging

from tclouds_openstack.common import messaging
from tclouds_openstack.securelog import driver as drivermod
from tclouds_openstack.securelog import sealing
from tclouds_openstack.securelog import store as storemod

LOG = logging.getLogger(__name__)


# What an entry itself causes (a value no column holds), as opposed to the database being
# unavailable or busy, which a requeue outlives.
_POISON = (storemod.BadEntry, sealing.SealError, ValueError, OverflowError, TypeError,
           db_exc.DBDataError)


def _poison(exc):
    return isinstance(exc, _POISON) or isinstance(getattr(exc, 'inner_exception', None),
                                                  _POISON)


class IngestEndpoint(object):
    def __init__(self, store, after_commit=None):
        self.store = store
        self.after_commit = after_commit
        self.appended = 0

    def info(self, messages):
        entries = []
        for m in messages:
            try:
                if m.get('event_type') != drivermod.ENTRY_EVENT_TYPE:
                    raise ValueError('event type %r is not %s'
                                     % (m.get('event_type'), drivermod.ENTRY_EVENT_TYPE))
                raw = base64.b64decode(m['payload']['entry'], validate=True)
                entry = sealing.decode_entry(raw)
                problem = sealing.storable_problem(entry)
                if problem:
                    raise ValueError('no store holds it: %s' % problem)
            except (KeyError, TypeError, ValueError, binascii.Error,
                    sealing.SealError) as exc:
                # Not something a sealer produced: it can never be appended, so requeueing
                # would loop forever. Say loudly what was dropped and from whom.
                LOG.error('securelog: dropping a malformed message from %s: %s',
                          m.get('publisher_id'), exc)
                continue
            entries.append((entry.source, entry.seq, raw))
        # Workers of one service share a sequence; restore its order inside the batch.
        entries.sort(key=lambda e: (e[0], e[1]))
        try:
            result = self.store.append([raw for _s, _q, raw in entries])
        except Exception as exc:
            if not _poison(exc):
                LOG.exception('securelog: append of %d entries failed; requeued', len(entries))
                return oslo_messaging.NotificationResult.REQUEUE
            # An entry no store can take would be requeued ahead of every genuine one for
            # ever: append one at a time and drop only what fails on its own, loudly.
            result = []
            for source, seq, raw in entries:
                try:
                    result.extend(self.store.append([raw]))
                except Exception as one:
                    if not _poison(one):
                        LOG.exception('securelog: append failed; the batch is requeued')
                        return oslo_messaging.NotificationResult.REQUEUE
                    LOG.error('securelog: dropping entry %r sequence %d that the store cannot '
                              'hold: %s: %s', source, seq, type(one).__name__, one)
        self.appended += sum(1 for r in result if r is not None)
        if self.after_commit is not None:
            self.after_commit()
        return oslo_messaging.NotificationResult.HANDLED


class IngestService(object):
    """Listener + periodic checkpoints; ``start()``, ``stop()``."""

    def __init__(self, conf, store, transport=None, after_commit=None):
        self.conf = conf
        self.store = store
        self.transport = transport or messaging.get_notification_transport(conf)
        if store.alarm is None:
            notifier = messaging.get_notifier(
                conf, 'securelog-ingest.%s' % socket.gethostname(), transport=self.transport)
            store.alarm = lambda event_type, payload: notifier.error({}, event_type, payload)
        self.endpoint = IngestEndpoint(store, after_commit)
        self.listener = oslo_messaging.get_batch_notification_listener(
            self.transport, [oslo_messaging.Target(topic=conf.securelog.topic)],
            [self.endpoint], executor='threading', allow_requeue=True,
            batch_size=conf.securelog.batch_size, batch_timeout=conf.securelog.batch_timeout)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._checkpoints, daemon=True,
                                        name='securelog-checkpoints')

    def _checkpoints(self):
        interval = max(self.conf.securelog.checkpoint_interval, 0.5)
        signed = -1
        while not self._stop.wait(interval):
            try:
                # entries held for sources an admin has enrolled since
                self.store.release_held()
            except Exception:
                LOG.exception('securelog: appending held entries failed; retrying later')
            try:
                size = self.store.tree().size
                if size != signed:
                    self.store.checkpoint()
                    signed = size
            except Exception:  # keep signing later; the next append retries too
                LOG.exception('securelog: periodic checkpoint failed')

    def start(self):
        # One worker: batches must be appended in the order they arrive, or a source's
        # entries would land out of sequence (oslo.messaging's pool runs them in parallel).
        self.listener.start(override_pool_size=1)
        self._ticker.start()

    def stop(self):
        self._stop.set()
        self.listener.stop()
        self.listener.wait()
        self.store.checkpoint()
