"""The contract every attestation backend honours, and the verdict it returns.

A verdict is the last appraisal of one compute host (named as Nova names it: the
``host`` of its nova-compute service). Consumers must treat anything but a *fresh*
``trusted`` verdict as "not trusted" and show the reason: see :func:`check_trusted`.
"""
import abc
import dataclasses
import datetime

TRUSTED = 'trusted'
UNTRUSTED = 'untrusted'
UNKNOWN = 'unknown'
STATUSES = (TRUSTED, UNTRUSTED, UNKNOWN)


class BackendUnavailable(Exception):
    """The backend could not answer (unreachable, timed out, bad reply). Fail closed."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The attestation state of one host.

    ``verified_at`` is when the evidence behind ``status`` was appraised (timezone-aware
    UTC), ``None`` when never. ``reasons`` lists every failed check (empty when trusted).

    ``never_appraised`` is the backend's positive statement that the host is outside the
    attested pool: no appraisal ever judged it and none will until an operator acts (not
    registered or not mapped to an agent, a registration awaiting an admin's approval).
    Only an ``unknown`` verdict can carry it. It is never inferred from a missing time: an
    ``unknown`` the backend could not explain (a malformed answer, an agent that stopped
    answering) is an attestation outcome of a host in the pool, not this.
    """
    host: str
    status: str
    reasons: tuple = ()
    verified_at: datetime.datetime = None
    never_appraised: bool = False

    def age(self, now=None):
        if self.verified_at is None:
            return None
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return (now - self.verified_at).total_seconds()


def unknown(host, reason, never_appraised=False):
    return Verdict(host=host, status=UNKNOWN, reasons=(reason,),
                   never_appraised=never_appraised)


# Clocks of the attestation service and of its consumers agree to within milliseconds under
# NTP; a verdict stamped further ahead than this was not made by a clock we agree with (a
# forged, replayed-with-a-new-date or mis-set timestamp), so it proves nothing about now.
DEFAULT_MAX_CLOCK_SKEW = 5


def freshness_problem(what, verified_at, max_age, max_skew=DEFAULT_MAX_CLOCK_SKEW, now=None):
    """None when ``verified_at`` (aware UTC) is fresh now, else why not, for an operator.

    Fresh: at most ``max_age`` seconds old and at most ``max_skew`` seconds in the future.
    ``what`` names the timestamp in the reason ("attestation verdict of host h1"). The one
    freshness rule of every verdict consumer (filters, key release, trait sync, reactor)
    and of the attestation API's own view.
    """
    if verified_at is None:
        return '%s has no attestation time' % what
    if verified_at.tzinfo is None:
        verified_at = verified_at.replace(tzinfo=datetime.timezone.utc)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    age = (now - verified_at).total_seconds()
    if age < -max_skew:
        return ('%s is from the future: stamped %s, %.0f s ahead of this clock (limit %d s '
                'of clock skew): a forged or mis-set timestamp, check NTP on both sides'
                % (what, verified_at.isoformat(), -age, max_skew))
    if age > max_age:
        return '%s is stale: %.0f s old, limit %d s' % (what, age, max_age)
    return None


def check_trusted(verdict, max_age, now=None, max_skew=DEFAULT_MAX_CLOCK_SKEW):
    """Return (trusted, reason): trusted only for a fresh ``trusted`` verdict.

    Fresh means at most ``max_age`` seconds old and not more than ``max_skew`` seconds in
    the future (:func:`freshness_problem`). ``reason`` says why not, in words an operator
    can act on.
    """
    if verdict is None:
        return False, 'no attestation verdict for this host'
    if verdict.status != TRUSTED:
        detail = '; '.join(verdict.reasons) or 'no reason given'
        return False, 'host %s is %s: %s' % (verdict.host, verdict.status, detail)
    if verdict.verified_at is None:
        return False, 'host %s has no attestation time' % verdict.host
    problem = freshness_problem('attestation verdict of host %s' % verdict.host,
                                verdict.verified_at, max_age, max_skew, now)
    if problem:
        return False, problem
    age = max(verdict.age(now), 0.0)
    return True, 'host %s trusted, attested %.0f s ago' % (verdict.host, age)


class AttestationBackend(metaclass=abc.ABCMeta):
    """A source of attestation verdicts.

    Implementations are constructed with the oslo.config ``conf`` object and must be
    cheap to construct. Failure contract: a backend never invents trust. Hosts it does
    not know come back as ``unknown`` with a reason; when it cannot answer at all it
    raises :class:`BackendUnavailable` (never returns a partial dict silently).
    """

    def __init__(self, conf):
        self.conf = conf

    @abc.abstractmethod
    def get_verdicts(self, hosts):
        """Return {host: Verdict} for every name in ``hosts``, in one batched call.

        Raise BackendUnavailable when the backend cannot be reached or answers badly.
        """

    def host_for_credential(self, credential_id):
        """The compute host a validated Keystone credential ID stands for, or None.

        ``credential_id`` is a user ID or application credential ID taken from a token
        keystonemiddleware validated. The answer comes from the operator's enrolment (the
        record joining host name, EK and credentials), never from names. None: the
        credential stands for no host. Raise BackendUnavailable when the backend cannot
        answer, or cannot map credentials at all (this default): fail closed.
        """
        raise BackendUnavailable('the %s attestation backend does not map Keystone '
                                 'credentials to compute hosts' % type(self).__name__)
