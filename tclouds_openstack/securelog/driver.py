"""oslo.messaging notification driver ``securelog``: seal notifications at their source.

Any OpenStack service logs into the secure log by configuration alone::

    [oslo_messaging_notifications]
    driver = securelog          # alone, or next to messagingv2
    [securelog]
    source_state_dir = /var/lib/tclouds/securelog-source

keystonemiddleware's audit middleware takes the same setting in
``[audit_middleware_notifications] driver = securelog`` (CADF events).

For each notification the driver, holding the per-source sealer lock: seals it (sequence
number, epoch key), appends the sealed entry to the source's journal (one ``fdatasync``,
the only durable point; the sealer's state file is replaced only when its key evolves, so
forward security is kept: the old key is gone before an entry sealed with the new one is
durable), then publishes every journaled entry not yet published, in sequence order, to
``[securelog] topic`` on the service's notification transport. If the bus is down the
entries wait in the journal and go out, still in order, with the next notification or
from the background flusher: nothing sealed is lost, and the ingestion service's
idempotent append drops what a retry sends twice. The request context is reduced to
identifiers: tokens and service catalogs never reach the log.
"""
import base64
import logging
import os
import threading
import time
import urllib.parse
import uuid

import oslo_messaging
from oslo_messaging.notify import notifier

from tclouds_openstack.conf import securelog as securelog_conf
from tclouds_openstack.securelog import source as srcmod

LOG = logging.getLogger(__name__)
ENTRY_EVENT_TYPE = 'securelog.entry'
_CONTEXT_FIELDS = ('user_id', 'project_id', 'domain_id', 'user_domain_id',
                   'project_domain_id', 'request_id', 'global_request_id', 'roles',
                   'is_admin', 'user', 'tenant', 'user_name', 'project_name', 'system_scope')
# oslo.context's to_dict() names some identifiers without "_id"
_CONTEXT_ALIASES = (('user', 'user_id'), ('user_domain', 'user_domain_id'),
                    ('project_domain', 'project_domain_id'))


def safe_context(ctxt):
    """Identifiers only: never a token, a password or a service catalog."""
    if ctxt is None:
        return {}
    if not isinstance(ctxt, dict):
        ctxt = ctxt.to_dict() if hasattr(ctxt, 'to_dict') else {}
    out = {k: ctxt[k] for k in _CONTEXT_FIELDS if ctxt.get(k) is not None}
    for alias, name in _CONTEXT_ALIASES:
        if name not in out and ctxt.get(alias) is not None:
            out[name] = ctxt[alias]
    return out


def event_from_notification(ctxt, message, priority):
    """The event object sealed for one notification (and its tenant)."""
    ctx = safe_context(ctxt)
    event = {'event_type': message.get('event_type'), 'priority': priority,
             'publisher_id': message.get('publisher_id'),
             'message_id': message.get('message_id'), 'timestamp': message.get('timestamp'),
             'payload': message.get('payload'), 'context': ctx}
    payload = message.get('payload')
    tenant = ctx.get('project_id') or ctx.get('tenant') or ''
    if not tenant and isinstance(payload, dict):
        # CADF events carry the initiator's project; Nova versioned payloads the instance's.
        initiator = payload.get('initiator') or {}
        tenant = (initiator.get('project_id') if isinstance(initiator, dict) else '') or ''
    return event, str(tenant)


def _legacy_spool(source, directory):
    """Entries an earlier version left spooled (one file per sequence number), in order.

    They are moved into the journal, still unpublished, and the files removed.
    """
    if not os.path.isdir(directory):
        return
    names = sorted(n for n in os.listdir(directory) if n.isdigit())
    f = source.open()
    with f:
        entries = []
        for name in names:
            with open(os.path.join(directory, name), 'rb') as stream:
                entries.append(stream.read())
        if entries:
            f.journal.append(entries)
        for name in names:
            os.unlink(os.path.join(directory, name))
    LOG.warning('securelog: %d spooled entries of %s moved into its journal',
                len(names), source.name)


class SecureLogDriver(notifier.Driver):
    """The ``securelog`` notification driver (entry point oslo.messaging.notify.drivers)."""

    def __init__(self, conf, topics, transport, flush_interval=2.0, publish_retry=2,
                 encryptor=None):
        super().__init__(conf, topics, transport)
        securelog_conf.register_opts(conf)
        opts = conf.securelog
        name = opts.source_name or srcmod.default_source_name(srcmod.process_component())
        self.source = srcmod.Source(name, opts.source_state_dir, opts.epoch_seconds,
                                    opts.epoch_entries,
                                    encryptor=encryptor or _encryptor(conf))
        # one sealer file for the driver's life: its sealer and journal position stay in
        # memory between notifications (re-read only when another process changed them)
        self._file = self.source.open()
        _legacy_spool(self.source, os.path.join(
            opts.source_state_dir, 'spool-%s' % urllib.parse.quote(name, safe='@.-_:')))
        self.target = oslo_messaging.Target(topic='%s.info' % opts.topic)
        self.publish_retry = publish_retry
        self._wake = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, args=(flush_interval,),
                                         name='securelog-spool', daemon=True)
        self._flusher.start()

    def notify(self, ctxt, message, priority, retry):
        event, tenant = event_from_notification(ctxt, message, priority)
        f = self._file
        with f as sealer:
            entry = self.source.seal_one(sealer, event, tenant)
            # Durable before it may leave: a crash after this publishes it on restart, a
            # crash before it reuses the number (nothing sealed with it left).
            f.append([entry])
            if not self._publish_pending():
                self._wake.set()

    def _publish_pending(self):
        """Publish journaled entries in order; True when none is left. Lock held."""
        journal = self._file.journal
        sent = None
        try:
            for end, entry in journal.pending():
                message = {'message_id': str(uuid.uuid4()), 'publisher_id': self.source.name,
                           'event_type': ENTRY_EVENT_TYPE, 'priority': 'INFO',
                           'payload': {'entry': base64.b64encode(entry).decode('ascii')},
                           'timestamp': time.strftime('%Y-%m-%d %H:%M:%S')}
                try:
                    self.transport._send_notification(self.target, {}, message, version=2.0,
                                                      retry=self.publish_retry)
                except Exception as exc:  # any transport failure: keep it, retry later
                    LOG.warning('securelog: sealed entries wait in %s: %s', journal.path, exc)
                    return False
                sent = end
        finally:
            if sent is not None:
                journal.mark_published(sent)
        self._file.compact()
        return True

    def pending(self):
        """How many sealed entries wait to be published."""
        with self._file:
            return len(self._file.journal.pending())

    def flush(self):
        """Publish what is journaled now; True when nothing is left."""
        with self._file:
            return self._publish_pending()

    def _flush_loop(self, interval):
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the flusher must survive anything and try again
                LOG.exception('securelog: spool flush failed')


def _encryptor(conf):
    if not conf.securelog.tenant_keys:
        return None
    from tclouds_openstack.securelog import confidential
    return confidential.CastellanEncryptor(conf)
