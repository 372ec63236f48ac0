"""React to trust-state changes of compute hosts (``tclouds-trust-reactor``).

Consumes the attestation service's notifications (``attestation.host.trusted``,
``.untrusted``, ``.unknown`` on topic ``notifications``) and, per operator policy
(``[trust_reactor]``):

* keeps the host's ``CUSTOM_TCLOUDS_TRUSTED`` Placement trait in sync at once;
* disables the host's nova-compute service with the reasons as disabled reason, and
  re-enables it when the host is trusted again (only services *it* disabled, recognised by
  the ``tclouds:`` prefix of the reason: an operator's own maintenance stays untouched);
* optionally live-migrates or stops the instances on it that required a trusted host.

Every action is emitted as a notification (``trust.host.disabled``, ``trust.host.enabled``,
``trust.host.trait_removed``, ``trust.host.trait_added``, ``trust.instance.live_migrate``,
``trust.instance.stop``, ``trust.action.failed``) so the secure log records it.
"""
import logging
import threading

import oslo_messaging as messaging

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.requirements import model

LOG = logging.getLogger(__name__)

EVENT_PREFIX = 'attestation.host.'
REASON_PREFIX = 'tclouds: '
# nova services.disabled_reason is a String(255) column.
_REASON_MAX = 255
_STATUS_BY_EVENT = {EVENT_PREFIX + s: s for s in base.STATUSES}


class InvalidNotification(ValueError):
    """A trust-state notification is malformed; the message names the field."""


def parse_event(event_type, payload):
    """(host, status, reasons) from a notification, or InvalidNotification."""
    if event_type not in _STATUS_BY_EVENT:
        raise InvalidNotification('event_type: %r is not one of %s'
                                  % (event_type, ', '.join(sorted(_STATUS_BY_EVENT))))
    if not isinstance(payload, dict):
        raise InvalidNotification('payload: expected an object, got %s'
                                  % type(payload).__name__)
    host = payload.get('host')
    if not isinstance(host, str) or not host:
        raise InvalidNotification('payload.host: missing or not a non-empty string')
    status = _STATUS_BY_EVENT[event_type]
    if payload.get('status', status) != status:
        raise InvalidNotification('payload.status: %r contradicts event type %s'
                                  % (payload.get('status'), event_type))
    reasons = payload.get('reasons') or []
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise InvalidNotification('payload.reasons: expected a list of strings')
    return host, status, tuple(reasons)


def disabled_reason(status, reasons):
    text = '%shost attestation %s: %s' % (REASON_PREFIX, status,
                                          '; '.join(reasons) or 'no reason given')
    return text if len(text) <= _REASON_MAX else text[:_REASON_MAX - 3] + '...'


class TrustReactor(object):
    """The policy; ``nova`` is a novaclient Client, ``sync`` a placement.TraitSync."""

    def __init__(self, conf, nova, sync, notifier, projects=None):
        self.conf = conf
        self.nova = nova
        self.sync = sync
        self.notifier = notifier
        self.projects = projects
        self._lock = threading.Lock()

    def _emit(self, event_type, payload):
        LOG.info('%s %s', event_type, payload)
        self.notifier.info({}, event_type, payload)

    def handle(self, event_type, payload):
        """Apply the policy to one notification; returns the emitted event types."""
        try:
            host, status, reasons = parse_event(event_type, payload)
        except InvalidNotification as e:
            LOG.error('ignoring malformed trust notification %s: %s', event_type, e)
            return []
        with self._lock:
            return self._react(host, status, reasons)

    def _react(self, host, status, reasons):
        trusted = status == base.TRUSTED
        emitted = []
        base_payload = {'host': host, 'status': status, 'reasons': list(reasons)}

        def emit(event_type, **extra):
            self._emit(event_type, dict(base_payload, **extra))
            emitted.append(event_type)

        try:
            if self.sync.sync_host(host, trusted):
                emit('trust.host.trait_added' if trusted else 'trust.host.trait_removed',
                     trait=model.TRAIT_TRUSTED)
        except Exception as e:
            LOG.exception('trait sync of host %s failed', host)
            emit('trust.action.failed', action='trait_sync', error=str(e))
        opts = self.conf.trust_reactor
        try:
            service = self._compute_service(host)
        except Exception as e:
            LOG.exception('cannot read the compute service of host %s', host)
            emit('trust.action.failed', action='read_service', error=str(e))
            return emitted
        if service is None:
            LOG.warning('no nova-compute service on host %s', host)
            return emitted
        ours = (service.status == 'disabled'
                and (service.disabled_reason or '').startswith(REASON_PREFIX))
        if not trusted and opts.disable_untrusted_compute:
            reason = disabled_reason(status, reasons)
            if service.status != 'disabled' or (ours and service.disabled_reason != reason):
                try:
                    self.nova.services.disable_log_reason(service.id, reason)
                    emit('trust.host.disabled', service_id=service.id,
                         disabled_reason=reason)
                except Exception as e:
                    LOG.exception('disabling nova-compute on %s failed', host)
                    emit('trust.action.failed', action='disable', error=str(e))
            if opts.instance_action != 'none':
                emitted.extend(self._move_instances(host, opts.instance_action, base_payload))
        elif trusted and opts.enable_trusted_compute and ours:
            try:
                self.nova.services.enable(service.id)
                emit('trust.host.enabled', service_id=service.id)
            except Exception as e:
                LOG.exception('enabling nova-compute on %s failed', host)
                emit('trust.action.failed', action='enable', error=str(e))
        return emitted

    def _compute_service(self, host):
        services = self.nova.services.list(host=host, binary='nova-compute')
        return services[0] if services else None

    def _requires_trust(self, server):
        flavor = getattr(server, 'flavor', None) or {}
        parts = [model.from_specs(flavor.get('extra_specs') or {}, 'flavor')]
        if self.projects is not None:
            parts.append(self.projects.get(server.tenant_id))
        return model.merge(parts).requires_trust

    def _move_instances(self, host, action, base_payload):
        emitted = []
        servers = self.nova.servers.list(search_opts={'host': host, 'all_tenants': True})
        for server in servers:
            try:
                if not self._requires_trust(server):
                    continue
                if action == 'live-migrate':
                    self.nova.servers.live_migrate(server, host=None, block_migration='auto')
                    event = 'trust.instance.live_migrate'
                else:
                    self.nova.servers.stop(server)
                    event = 'trust.instance.stop'
            except Exception as e:
                LOG.exception('%s of instance %s failed', action, server.id)
                event = 'trust.action.failed'
                payload = dict(base_payload, instance_id=server.id, action=action,
                               error=str(e))
            else:
                payload = dict(base_payload, instance_id=server.id)
            self._emit(event, payload)
            emitted.append(event)
        return emitted


class NotificationEndpoint(object):
    """oslo.messaging endpoint: only ``attestation.host.*`` reaches :meth:`info`."""

    filter_rule = messaging.NotificationFilter(event_type=r'^attestation\.host\.')

    def __init__(self, reactor):
        self.reactor = reactor

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.reactor.handle(event_type, payload)
        return messaging.NotificationResult.HANDLED


def get_listener(transport, reactor, topics=('notifications',), pool='tclouds-trust-reactor'):
    """A notification listener on ``topics`` with the threading executor.

    ``topics`` are the attestation service's ``[oslo_messaging_notifications] topics``.
    Pool ``tclouds-trust-reactor``: several reactors share the work, and other consumers
    of the topic (the secure log) still get their own copy.
    """
    targets = [messaging.Target(topic=topic) for topic in topics]
    return messaging.get_notification_listener(
        transport, targets, [NotificationEndpoint(reactor)], executor='threading',
        pool=pool)
