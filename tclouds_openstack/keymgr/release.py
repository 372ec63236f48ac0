"""The key release decision: which host is asking (from its authenticated identity) and
whether its attestation verdict is fresh and trusted. Every decision is a notification.

Host credential (documented choice): each compute host has its own Keystone service user
``<[tclouds_key_manager] host_user_prefix><nova host>`` and calls the key release API with
that user's token. keystonemiddleware validates the token; the host is derived from the
validated user name only, never from the request body or a header the caller sets.
"""
import logging

from tclouds_openstack.attestation import backends
from tclouds_openstack.attestation.backends import base

LOG = logging.getLogger(__name__)

RELEASED = 'keymgr.key.released'
REFUSED = 'keymgr.key.refused'


class Refused(Exception):
    """The key is not released; ``reason`` says why in words an operator can act on."""

    def __init__(self, reason, host=None):
        self.reason = reason
        self.host = host
        super().__init__(reason)


def host_of(context, prefix):
    """The Nova host name an authenticated context stands for, or Refused."""
    name = getattr(context, 'user_name', None)
    if not name or not name.startswith(prefix) or len(name) == len(prefix):
        raise Refused('caller %r is not a compute host credential (expected a Keystone user '
                      'named %s<host>)' % (name or getattr(context, 'user_id', None), prefix))
    return name[len(prefix):]


class Gate:
    """Decides and announces key releases.

    ``backend`` is an AttestationBackend (default: ``[attestation] backend``), ``notifier``
    an oslo.messaging Notifier (default: built from ``[oslo_messaging_notifications]``).
    """

    def __init__(self, conf, backend=None, notifier=None):
        self.conf = conf
        self._backend = backend
        self._notifier = notifier

    @property
    def backend(self):
        if self._backend is None:
            self._backend = backends.get_backend(self.conf)
        return self._backend

    @property
    def notifier(self):
        if self._notifier is None:
            from tclouds_openstack.common import messaging
            self._notifier = messaging.get_notifier(self.conf, 'keymgr')
        return self._notifier

    def max_age(self):
        group = self.conf.tclouds_key_manager
        return group.max_verdict_age or self.conf.attestation.max_verdict_age

    def authorize(self, context, subject, what='key'):
        """Return the host allowed to receive ``subject``; raise Refused otherwise.

        Both outcomes are notified (``keymgr.key.released`` / ``keymgr.key.refused``).
        """
        host = None
        verdict = None
        try:
            host = host_of(context, self.conf.tclouds_key_manager.host_user_prefix)
            try:
                verdict = self.backend.get_verdicts([host]).get(host)
            except base.BackendUnavailable as exc:
                raise Refused('attestation backend unavailable: %s' % exc, host)
            trusted, reason = base.check_trusted(verdict, self.max_age())
            if not trusted:
                raise Refused(reason, host)
        except Refused as exc:
            exc.host = exc.host or host
            self._notify('warn', REFUSED, context, subject, what, exc.host, verdict,
                         exc.reason)
            raise
        self._notify('info', RELEASED, context, subject, what, host, verdict, reason)
        return host

    def _notify(self, priority, event_type, context, subject, what, host, verdict, reason):
        payload = {'subject': subject, 'subject_type': what, 'host': host, 'reason': reason,
                   'user_id': getattr(context, 'user_id', None),
                   'user_name': getattr(context, 'user_name', None),
                   'verdict_status': verdict.status if verdict else None,
                   'verified_at': (verdict.verified_at.isoformat()
                                   if verdict and verdict.verified_at else None)}
        LOG.log(logging.INFO if priority == 'info' else logging.WARNING, '%s %s %s to %s: %s',
                event_type, what, subject, host, reason)
        ctxt = context.to_dict() if hasattr(context, 'to_dict') else {}
        getattr(self.notifier, priority)(ctxt, event_type, payload)
