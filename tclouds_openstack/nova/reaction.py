"""React to trust-state changes of compute hosts (``tclouds-trust-reactor``).

Consumes the attestation service's notifications (``attestation.host.trusted``,
``.untrusted``, ``.unknown`` on topic ``notifications``) as **triggers only**: anyone on the
bus can send one, so the claim it carries decides nothing. For each one the reactor
re-reads the host's verdict from the attestation service (``[attestation] backend``, with
the service credential) and acts on that verdict, per operator policy (``[trust_reactor]``):

* a fresh ``trusted`` verdict: the host's ``CUSTOM_TCLOUDS_TRUSTED`` Placement trait is
  set, and its nova-compute service re-enabled if *this reactor* disabled it (recognised by
  the ``tclouds:`` prefix of the disabled reason: an operator's maintenance stays
  untouched);
* an ``untrusted`` verdict, or an ``unknown`` one an appraisal round produced (the agent
  stopped answering): the trait goes, the nova-compute service is disabled with the
  service's reasons, and optionally the instances that required a trusted host are
  live-migrated or stopped;
* an ``unknown`` verdict of a host the backend states was never appraised
  (``Verdict.never_appraised``: not registered for attestation, e.g. a compute host outside
  the attested pool, or a registration awaiting an admin's approval, which a bus
  participant can create under any free name): that is no attestation outcome, so only the
  trait goes (it never had one) and the host is left as it is
  (``trust.host.not_attested``). A registered host cannot be made to look so: a
  re-registration of an active host keeps its verdict and time, and only an admin deletes
  a host;
* no verdict to be had (service unreachable, answer malformed, trusted but stale or from
  the future by this clock): the trait goes (a trait never claims more than a verdict
  proves now, as in the periodic pass) and nothing else happens: no enable, and no
  disable, stop or migration either, because those would then rest on the unverified
  message alone (a bus participant plus an outage would take computes out of service).
  Trust-requiring boots are refused meanwhile anyway (the filters fail closed). The host is
  re-checked after every periodic trait pass until a verdict is read, then the policy
  applies.

A notification whose claim contradicts the verdict read (a forged, replayed or outdated
one) is logged as a mismatch and emitted as ``trust.notification.mismatch``. Every action
is emitted as a notification (``trust.host.disabled``, ``trust.host.enabled``,
``trust.host.trait_removed``, ``trust.host.trait_added``, ``trust.instance.live_migrate``,
``trust.instance.stop``, ``trust.action.failed``, ``trust.host.not_attested``) so the secure
log records it.
"""
import logging
import threading

import oslo_messaging as messaging

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.attestation.service import hostnames
from tclouds_openstack.common import exception
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
    try:
        # only names the attestation service can hold (one host, one spelling): anything
        # else (a megabyte, a list separator, a look-alike) is no host it speaks about
        hostnames.check(host)
    except exception.BadRequest:
        raise InvalidNotification('payload.host: %r is not a compute host name the '
                                  'attestation service admits' % host[:100])
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


# What a verdict read from the attestation service allows.
CONFIRMED_TRUSTED = 'trusted'           # fresh trusted: add trait, re-enable
CONFIRMED_NOT_TRUSTED = 'not-trusted'   # untrusted/unknown: remove trait, disable, move
UNCONFIRMED = 'unconfirmed'             # no usable verdict: remove trait, nothing else
NOT_ATTESTED = 'not-attested'           # never appraised: remove trait, nothing else


def judge(verdict, max_age, max_skew, now=None):
    """(judgement, status, reasons) of a verdict read from the attestation service.

    ``verdict`` None means the service could not be read. Pure.
    """
    if verdict is None:
        return UNCONFIRMED, base.UNKNOWN, ()
    if verdict.status == base.UNKNOWN and verdict.never_appraised:
        # the service says no appraisal ever judged this host (not registered, awaiting
        # approval); never inferred from a missing time alone (an unexplained unknown, a
        # Keylime agent that stopped answering, is an outcome: the host is disabled)
        return NOT_ATTESTED, base.UNKNOWN, tuple(verdict.reasons)
    if verdict.status != base.TRUSTED:
        return CONFIRMED_NOT_TRUSTED, verdict.status, tuple(verdict.reasons)
    trusted, reason = base.check_trusted(verdict, max_age, now=now, max_skew=max_skew)
    if trusted:
        return CONFIRMED_TRUSTED, base.TRUSTED, ()
    return UNCONFIRMED, base.UNKNOWN, (reason,)


class TrustReactor(object):
    """The policy; ``nova`` is a novaclient Client, ``sync`` a placement.TraitSync.

    ``backend``: where verdicts are re-read (default: the trait sync's backend, i.e.
    ``[attestation] backend`` with the service credential).
    """

    def __init__(self, conf, nova, sync, notifier, projects=None, backend=None):
        self.conf = conf
        self.nova = nova
        self.sync = sync
        self.notifier = notifier
        self.projects = projects
        self.backend = backend if backend is not None else sync.backend
        self._lock = threading.Lock()
        # hosts whose verdict could not be read: re-checked by recheck_pending()
        self.pending = set()

    def _emit(self, event_type, payload):
        LOG.info('%s %s', event_type, payload)
        self.notifier.info({}, event_type, payload)

    def handle(self, event_type, payload, publisher_id=None):
        """Re-check the host a notification names; returns the emitted event types.

        The notification's status is a claim, compared with the verdict read and never
        acted upon.
        """
        try:
            host, claimed, _reasons = parse_event(event_type, payload)
        except InvalidNotification as e:
            LOG.error('ignoring malformed trust notification %s from %s: %s', event_type,
                      publisher_id, e)
            return []
        with self._lock:
            return self._react(host, claimed, publisher_id)

    def recheck_pending(self):
        """Re-read the verdicts of hosts left unconfirmed; returns the emitted event types."""
        emitted = []
        with self._lock:
            for host in sorted(self.pending):
                emitted.extend(self._react(host, None, None))
        return emitted

    def _read_verdict(self, host):
        """The host's verdict from the attestation service, or (None, why not)."""
        try:
            verdict = self.backend.get_verdicts([host]).get(host)
        except base.BackendUnavailable as e:
            return None, 'attestation service unavailable: %s' % e
        except Exception as e:  # a backend bug must not turn into a decision
            LOG.exception('reading the verdict of host %s failed', host)
            return None, 'reading the verdict failed: %s: %s' % (type(e).__name__, e)
        if verdict is None:
            return None, 'the attestation service returned no verdict for host %s' % host
        return verdict, None

    def _react(self, host, claimed, publisher_id):
        opts = self.conf.attestation
        verdict, unreadable = self._read_verdict(host)
        judgement, status, reasons = judge(verdict, opts.max_verdict_age,
                                           opts.max_clock_skew)
        if unreadable:
            reasons = (unreadable,)
        emitted = []
        # the host's country goes into every event: a tenant's data-protection report
        # (securelog/report.py) shows where its servers ran
        country = self._jurisdiction(host)
        base_payload = {'host': host, 'status': status, 'reasons': list(reasons),
                        'jurisdiction': country}

        def emit(event_type, **extra):
            self._emit(event_type, dict(base_payload, **extra))
            emitted.append(event_type)

        if claimed is not None and verdict is not None and claimed != verdict.status:
            LOG.warning('trust notification mismatch for host %s: the notification from %s '
                        'claims %s, the attestation service says %s (%s); acting on the '
                        'service\'s verdict, not on the notification (forged, replayed or '
                        'outdated)', host, publisher_id, claimed, verdict.status,
                        '; '.join(reasons) or 'no reason given')
            emit('trust.notification.mismatch', claimed_status=claimed,
                 publisher_id=publisher_id)
        if judgement == UNCONFIRMED:
            LOG.error('host %s: no usable verdict (%s); removing %s only, nothing enabled or '
                      'disabled until the attestation service confirms a state; re-checked '
                      'after the next trait pass', host, '; '.join(reasons), model.TRAIT_TRUSTED)
            emit('trust.action.failed', action='read_verdict', error='; '.join(reasons),
                 claimed_status=claimed)
            self.pending.add(host)
        else:
            self.pending.discard(host)
        if judgement == NOT_ATTESTED:
            LOG.warning('host %s was never appraised (%s): a trust notification about it (from '
                        '%s, claiming %s) changes nothing but removing %s', host,
                        '; '.join(reasons) or 'no reason given', publisher_id, claimed,
                        model.TRAIT_TRUSTED)
            emit('trust.host.not_attested', claimed_status=claimed, publisher_id=publisher_id)
        trusted = judgement == CONFIRMED_TRUSTED
        opts = self.conf.trust_reactor
        try:
            service = self._compute_service(host)
        except Exception as e:
            LOG.exception('cannot read the compute service of host %s', host)
            emit('trust.action.failed', action='read_service', error=str(e))
            service = None
        else:
            if service is None:
                # not a compute host: nothing to re-check later either (a flood of forged
                # names must not grow the pending set)
                self.pending.discard(host)
                LOG.warning('no nova-compute service on host %s: nothing to do', host)
                return emitted
        try:
            if self.sync.sync_host(host, trusted, country=country):
                emit('trust.host.trait_added' if trusted else 'trust.host.trait_removed',
                     trait=model.TRAIT_TRUSTED)
        except Exception as e:
            LOG.exception('trait sync of host %s failed', host)
            emit('trust.action.failed', action='trait_sync', error=str(e))
        if service is None:
            return emitted
        ours = (service.status == 'disabled'
                and (service.disabled_reason or '').startswith(REASON_PREFIX))
        if judgement == CONFIRMED_NOT_TRUSTED and opts.disable_untrusted_compute:
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

    def _jurisdiction(self, host):
        """The host's country from its aggregates; None when unlabelled or unreadable."""
        try:
            return self.sync.jurisdictions().get(host)
        except Exception as e:
            LOG.warning('cannot read the jurisdiction of host %s: %s', host, e)
            return None

    def _compute_service(self, host):
        # exactly this host: Nova on MySQL matches 'HOST1' or 'host1 ' to host1's service
        # (case-insensitive, trailing spaces ignored), so a notification about a variant of
        # a name must not reach the host of that name
        services = [s for s in self.nova.services.list(host=host, binary='nova-compute')
                    if getattr(s, 'host', None) == host]
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
                               error=str(e), project_id=getattr(server, 'tenant_id', None))
            else:
                payload = dict(base_payload, instance_id=server.id,
                               project_id=getattr(server, 'tenant_id', None))
            self._emit(event, payload)
            emitted.append(event)
        return emitted


class NotificationEndpoint(object):
    """oslo.messaging endpoint: only ``attestation.host.*`` reaches :meth:`info`."""

    filter_rule = messaging.NotificationFilter(event_type=r'^attestation\.host\.')

    def __init__(self, reactor):
        self.reactor = reactor

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.reactor.handle(event_type, payload, publisher_id)
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
