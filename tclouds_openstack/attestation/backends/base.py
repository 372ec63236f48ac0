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
    """
    host: str
    status: str
    reasons: tuple = ()
    verified_at: datetime.datetime = None

    def age(self, now=None):
        if self.verified_at is None:
            return None
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return (now - self.verified_at).total_seconds()


def unknown(host, reason):
    return Verdict(host=host, status=UNKNOWN, reasons=(reason,))


def check_trusted(verdict, max_age, now=None):
    """Return (trusted, reason): trusted only for a fresh ``trusted`` verdict.

    Fresh means younger than ``max_age`` seconds. ``reason`` says why not, in words an
    operator can act on.
    """
    if verdict is None:
        return False, 'no attestation verdict for this host'
    if verdict.status != TRUSTED:
        detail = '; '.join(verdict.reasons) or 'no reason given'
        return False, 'host %s is %s: %s' % (verdict.host, verdict.status, detail)
    age = verdict.age(now)
    if age is None:
        return False, 'host %s has no attestation time' % verdict.host
    if age > max_age:
        return False, ('attestation verdict of host %s is stale: %.0f s old, limit %d s'
                       % (verdict.host, age, max_age))
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
