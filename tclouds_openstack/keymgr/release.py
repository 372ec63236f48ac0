"""The key release decision: is the caller a compute host, is that host trusted now, and is
the volume attached to it. Every decision is a notification and a log line.

Host identity (documented choice, doc/source/keymgr.rst): a compute host calls with its
own Keystone credential, a user (or an application credential of it) that the operator
enrolled for that host in the attestation service; names and prefixes decide nothing.
keystonemiddleware validates the token; from its validated identity only:

1. the token carries the host role (policy ``keymgr:volume:*``, default ``tclouds_host``),
2. the user lives in ``[tclouds_key_manager] host_domain_id``,
3. the attestation backend names the enrolled host of the credential (the application
   credential ID when the token came from one, else the user ID).

Per volume: the host must be trusted and fresh, and Cinder must show the volume attached
to that host (:func:`check_volume`); for a key, the key must be that volume's
``encryption_key_id``. Anything missing, unreachable or malformed refuses, with the reason.
"""
import logging

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.common import exception
from tclouds_openstack.common import policy

LOG = logging.getLogger(__name__)

RELEASED = 'keymgr.key.released'
REFUSED = 'keymgr.key.refused'
# Attachment states in which a host holds (or is connecting) the volume.
HOLDING = ('attached', 'attaching')
# Nova migration states in which the destination connects the volumes.
MIGRATING = ('queued', 'preparing', 'running', 'accepted', 'pre-migrating', 'migrating',
             'post-migrating')


class Refused(Exception):
    """The key is not released; ``reason`` says why in words an operator can act on."""

    def __init__(self, reason, host=None):
        self.reason = reason
        self.host = host
        super().__init__(reason)


def credential_id(context, token_info=None):
    """The Keystone credential ID a validated request stands for.

    The application credential's ID when keystonemiddleware validated a token issued for
    one (``token_info``: its ``keystone.token_info``), else the user ID.
    """
    token = (token_info or {}).get('token') or {}
    app_cred = token.get('application_credential') or {}
    return app_cred.get('id') or context.user_id


def check_domain(context, host_domain_id):
    """Refused unless the caller's user lives in the host credentials' domain."""
    domain = getattr(context, 'user_domain_id', None)
    if domain != host_domain_id:
        raise Refused('caller %s is not a compute host credential: its user is in domain %s, '
                      'host credentials live in domain %s ([tclouds_key_manager] '
                      'host_domain_id)' % (context.user_id, domain, host_domain_id))


def attachment_hosts(attachment, placements):
    """Hosts an attachment names: Cinder's host, else where Nova puts its server."""
    if attachment.host:
        return {attachment.host}
    return set(placements.get(attachment.instance_id) or ())


def check_volume(volume_id, volume, host, key_id=None, placements=None):
    """Why ``host`` may hold ``volume_id`` (and ``key_id``), or Refused.

    ``volume``: Cinder's :class:`~tclouds_openstack.common.cinder.Volume` (None: Cinder has
    no such volume); ``placements``: {server id: {hosts}} from Nova for attachments whose
    host Cinder does not show.
    """
    if volume is None:
        raise Refused('Cinder has no volume %s' % volume_id, host)
    if volume.id != volume_id:
        # the client puts the ID in the URL path as given ('vol?x', 'vol/../other'): only
        # the volume Cinder names as the one asked for decides, never an alias of another
        raise Refused('Cinder answered with volume %s when asked for volume %s: a volume is '
                      'named by its exact ID' % (volume.id, volume_id), host)
    if key_id is not None:
        if not volume.encryption_key_id:
            raise Refused('volume %s is not encrypted: Cinder shows no encryption key for it'
                          % volume_id, host)
        if key_id != volume.encryption_key_id:
            raise Refused('key %s is not the encryption key of volume %s' % (key_id, volume_id),
                          host)
    placements = placements or {}
    for attachment in volume.attachments:
        if attachment.status in HOLDING and host in attachment_hosts(attachment, placements):
            how = ('Cinder shows it %s' % attachment.status if attachment.host
                   else 'Nova places its server %s there' % attachment.instance_id)
            return 'volume %s is attached to host %s (attachment %s: %s)' % (
                volume_id, host, attachment.id, how)
    holding = sorted({h for a in volume.attachments if a.status in HOLDING
                      for h in attachment_hosts(a, placements)})
    raise Refused('volume %s is not attached to host %s (Cinder: %s)'
                  % (volume_id, host, 'attached to %s' % ', '.join(holding) if holding
                     else 'no attachment'), host)


class Gate:
    """Decides and announces key and anchor releases.

    ``backend``: an AttestationBackend (default ``[attestation] backend``); ``notifier``:
    an oslo.messaging Notifier (default from ``[oslo_messaging_notifications]``);
    ``cinder``: a :class:`~tclouds_openstack.common.cinder.CinderClient` (default from
    ``[tclouds_cinder]``); ``compute``: the Nova client (default from
    ``[attestation_compute]``), asked only for attachments whose host Cinder hides.
    """

    def __init__(self, conf, backend=None, notifier=None, cinder=None, compute=None):
        self.conf = conf
        self._backend = backend
        self._notifier = notifier
        self._cinder = cinder
        self._compute = compute

    @property
    def backend(self):
        if self._backend is None:
            from tclouds_openstack.attestation import backends
            self._backend = backends.get_backend(self.conf)
        return self._backend

    @property
    def notifier(self):
        if self._notifier is None:
            from tclouds_openstack.common import messaging
            self._notifier = messaging.get_notifier(self.conf, 'keymgr')
        return self._notifier

    @property
    def cinder(self):
        if self._cinder is None:
            from tclouds_openstack.common import cinder
            self._cinder = cinder.from_conf(self.conf)
        return self._cinder

    @property
    def compute(self):
        if self._compute is None:
            from tclouds_openstack.attestation import compute
            self._compute = compute.from_conf(self.conf)
        return self._compute

    def max_age(self):
        group = self.conf.tclouds_key_manager
        return group.max_verdict_age or self.conf.attestation.max_verdict_age

    def host_of(self, context, rule, token_info=None):
        """The enrolled compute host a validated request stands for, or Refused."""
        try:
            policy.authorize(context, rule, {})
        except exception.Forbidden as exc:
            raise Refused('caller %s is not a compute host credential: %s'
                          % (context.user_id, exc.message))
        check_domain(context, self.conf.tclouds_key_manager.host_domain_id)
        credential = credential_id(context, token_info)
        if not credential:
            raise Refused('the request carries no validated credential ID')
        try:
            host = self.backend.host_for_credential(credential)
        except base.BackendUnavailable as exc:
            raise Refused('cannot tell which host credential %s stands for: attestation '
                          'backend unavailable: %s' % (credential, exc))
        if not host:
            raise Refused('credential %s stands for no enrolled compute host (an admin '
                          'enrols it: openstack attestation host enroll HOST --credential %s '
                          '...)' % (credential, credential))
        return host

    def _placements(self, volume):
        """{server: {hosts}} from Nova for the holding attachments Cinder shows no host of."""
        servers = sorted({a.instance_id for a in volume.attachments
                          if a.status in HOLDING and not a.host and a.instance_id})
        if not servers:
            return {}
        if self.compute is None:
            raise Refused('volume %s is still being attached: Cinder does not show the host '
                          'of attachment(s) of server(s) %s and the key release API has no '
                          'Nova credentials ([attestation_compute]) to ask where they run'
                          % (volume.id, ', '.join(servers)))
        from tclouds_openstack.common import client as common_client
        placements = {}
        for server in servers:
            try:
                found = self.compute.server(server)
                destinations = self.compute.migration_destinations(server, MIGRATING)
            except (common_client.ClientError, common_client.ServiceUnavailable) as exc:
                raise Refused('Nova did not say where server %s of volume %s runs: %s'
                              % (server, volume.id, exc))
            hosts = set(destinations)
            if found is not None and found[1]:
                hosts.add(found[1])
            placements[server] = hosts
        return placements

    def check_volume(self, volume_id, host, key_id=None):
        """Why ``host`` may hold ``volume_id`` (and ``key_id``) now; Refused otherwise."""
        from tclouds_openstack.common import cinder as cinder_mod
        if self.cinder is None:
            raise Refused('the key release API has no Cinder credentials ([tclouds_cinder]) '
                          'to check that volume %s is attached to host %s' % (volume_id, host),
                          host)
        try:
            volume = self.cinder.volume(volume_id)
        except cinder_mod.CinderUnavailable as exc:
            raise Refused('cannot check volume %s: %s' % (volume_id, exc), host)
        placements = self._placements(volume) if volume is not None else {}
        try:
            return check_volume(volume_id, volume, host, key_id, placements), volume
        except Refused as exc:
            exc.project_id = getattr(volume, 'project_id', None)     # for the notification
            raise

    def authorize(self, context, volume_id, what='key', key_id=None,
                  rule='keymgr:volume:key:release', token_info=None):
        """(host, Cinder volume) allowed to receive ``what`` of ``volume_id``; else Refused.

        ``what`` is 'key' (then ``key_id`` must be the volume's key) or 'anchor'. Both
        outcomes are notified (``keymgr.key.released`` / ``keymgr.key.refused``) and logged.
        """
        host = verdict = volume = None
        reasons = []
        try:
            host = self.host_of(context, rule, token_info)
            try:
                verdict = self.backend.get_verdicts([host]).get(host)
            except base.BackendUnavailable as exc:
                raise Refused('attestation backend unavailable: %s' % exc, host)
            trusted, reason = base.check_trusted(
                verdict, self.max_age(), max_skew=self.conf.attestation.max_clock_skew)
            if not trusted:
                raise Refused(reason, host)
            reasons.append(reason)
            why, volume = self.check_volume(volume_id, host, key_id if what == 'key' else None)
            reasons.append(why)
        except Refused as exc:
            exc.host = exc.host or host
            self._notify('warn', REFUSED, context, volume_id, key_id, what, exc.host, verdict,
                         exc.reason, getattr(exc, 'project_id', None))
            raise
        self._notify('info', RELEASED, context, volume_id, key_id, what, host, verdict,
                     '; '.join(reasons), volume.project_id)
        return host, volume

    def _notify(self, priority, event_type, context, volume_id, key_id, what, host, verdict,
                reason, project_id=None):
        subject = key_id if what == 'key' and key_id else volume_id
        # project_id: the volume's owner as Cinder reports it (None when refused before
        # Cinder was asked): the tenant's data-protection report joins on it
        payload = {'subject': subject, 'subject_type': what, 'volume_id': volume_id,
                   'project_id': project_id, 'key_id': key_id, 'host': host, 'reason': reason,
                   'user_id': getattr(context, 'user_id', None),
                   'user_name': getattr(context, 'user_name', None),
                   'user_domain_id': getattr(context, 'user_domain_id', None),
                   'verdict_status': verdict.status if verdict else None,
                   'verified_at': (verdict.verified_at.isoformat()
                                   if verdict and verdict.verified_at else None)}
        LOG.log(logging.INFO if priority == 'info' else logging.WARNING,
                '%s %s of volume %s to %s (user %s): %s', event_type, what, volume_id, host,
                payload['user_id'], reason)
        ctxt = context.to_dict() if hasattr(context, 'to_dict') else {}
        getattr(self.notifier, priority)(ctxt, event_type, payload)
