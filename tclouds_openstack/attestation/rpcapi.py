"""The message-bus contract between host agents and the attestation service.

Two oslo.messaging RPC topics (``[attestation] agent_topic`` / ``registrar_topic``),
versioned like Nova's compute RPC API:

- ``tclouds-attestation-agent`` (server = the Nova compute host name): served by each host
  agent, which opens no listening port; the verifier calls :meth:`AgentAPI.get_quote`.
- ``tclouds-attestation``: served by the service workers (the registrar); agents call
  :meth:`RegistrarAPI.register` and :meth:`RegistrarAPI.activate`.

Binary fields travel base64-encoded (messages are JSON). Nothing on the bus is trusted:
an answer is bound to its request by the nonce inside the AK-signed quote.

Versions of the agent API (a server accepts every older minor version of its major):

- 1.0: ``get_quote(nonce, selection, ima_offset)``; the answer carries the whole UEFI
  event log every time.
- 1.1: ``get_quote(..., uefi_log_digest)``: the SHA-256 of the event log the verifier
  holds for the host; an agent whose log has that digest answers ``uefi_log_unchanged``
  (the digest) instead of the log, which only changes at a reboot (some 55 KB of base64 a
  round otherwise). The quote is fresh and signed either way; the verifier replays the
  log it holds against the quoted PCRs.

The verifier sends 1.1 only when it holds a log for the host and ``[attestation]
agent_rpc_version_cap`` allows it; an agent older than 1.1 refuses such a call
(``UnsupportedVersion``) and is asked again in 1.0 (:class:`AgentAPI`). The registrar API
is 1.0.
"""
import base64
import binascii
import hashlib
import threading
import time

import oslo_messaging as messaging

AGENT_TOPIC = 'tclouds-attestation-agent'
SERVICE_TOPIC = 'tclouds-attestation'
AGENT_VERSION = '1.1'
REGISTRAR_VERSION = '1.0'
# the first agent API version with uefi_log_digest
LOG_DIGEST_VERSION = '1.1'


class BadMessage(ValueError):
    """A field of a bus message is missing or malformed (named)."""


def b64(data):
    return base64.b64encode(data).decode('ascii') if data is not None else None


def unb64(message, field, optional=False):
    value = message.get(field) if isinstance(message, dict) else None
    if value is None:
        if optional:
            return None
        raise BadMessage('%s: missing' % field)
    if not isinstance(value, str):
        raise BadMessage('%s: expected base64 text' % field)
    try:
        return base64.b64decode(value.encode('ascii'), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise BadMessage('%s: not base64: %s' % (field, e))


def log_digest(data):
    """The SHA-256 (hex) naming a UEFI event log in ``uefi_log_digest`` (API 1.1)."""
    return hashlib.sha256(data).hexdigest()


def is_log_digest(value):
    """Whether ``value`` is a :func:`log_digest` as sent on the bus (one spelling only)."""
    return (isinstance(value, str) and len(value) == 64
            and all(c in '0123456789abcdef' for c in value))


def _unsupported_version(error):
    # the agent's dispatcher refused the call's version: over a broker it comes back as a
    # RemoteError (the client re-raises only builtins' exceptions), in process as itself
    return (isinstance(error, messaging.UnsupportedVersion)
            or (isinstance(error, messaging.RemoteError)
                and error.exc_type == 'UnsupportedVersion'))


class AgentAPI(object):
    """Verifier side of the agent topic.

    ``version_cap``: the highest agent API version sent (None: :data:`AGENT_VERSION`); an
    agent that refuses a 1.1 call is asked in 1.0 again, and in 1.0 only for
    ``OLD_AGENT_RECHECK`` seconds (it may be upgraded meanwhile).
    """

    OLD_AGENT_RECHECK = 3600.0

    def __init__(self, transport, timeout=10.0, topic=AGENT_TOPIC, version_cap=None):
        target = messaging.Target(topic=topic, version='1.0')
        self.client = messaging.get_rpc_client(transport, target, timeout=timeout,
                                               version_cap=version_cap or AGENT_VERSION)
        self._old_agents = {}       # host: monotonic time it refused 1.1
        self._lock = threading.Lock()

    def _sends_digest(self, host):
        if not self.client.can_send_version(LOG_DIGEST_VERSION):
            return False
        with self._lock:
            since = self._old_agents.get(host)
            if since is None:
                return True
            if time.monotonic() - since < self.OLD_AGENT_RECHECK:
                return False
            del self._old_agents[host]
            return True

    def get_quote(self, host, nonce, selection, ima_offset, timeout=None,
                  uefi_log_digest=None):
        """Ask ``host``'s agent for a quote and its logs; returns the raw answer dict.

        The quote covers ``selection`` ({bank: [pcr]}) with ``nonce``; the IMA entries
        start at ``ima_offset``. ``uefi_log_digest``: the :func:`log_digest` of the
        host's log the caller holds; an agent at 1.1 answers ``uefi_log_unchanged`` then
        if its log is that one. Not sent (1.0) when the cap or the agent does not allow it.
        """
        kwargs = {'server': host}
        if timeout is not None:
            kwargs['timeout'] = timeout
        args = {'nonce': b64(nonce), 'selection': {b: list(p) for b, p in selection.items()},
                'ima_offset': int(ima_offset)}
        if uefi_log_digest is not None and self._sends_digest(host):
            try:
                return self.client.prepare(version=LOG_DIGEST_VERSION, **kwargs).call(
                    {}, 'get_quote', uefi_log_digest=uefi_log_digest, **args)
            except (messaging.RemoteError, messaging.UnsupportedVersion) as e:
                if not _unsupported_version(e):
                    raise
                with self._lock:
                    self._old_agents[host] = time.monotonic()
        return self.client.prepare(**kwargs).call({}, 'get_quote', **args)


class RegistrarAPI(object):
    """Agent side of the service topic."""

    def __init__(self, transport, timeout=30.0, topic=SERVICE_TOPIC):
        target = messaging.Target(topic=topic, version=REGISTRAR_VERSION)
        self.client = messaging.get_rpc_client(transport, target, timeout=timeout)

    def register(self, host, ek_public, ek_certificate, ak_public):
        reply = self.client.call({}, 'register', host=host, ek_public=b64(ek_public),
                                 ek_certificate=b64(ek_certificate), ak_public=b64(ak_public))
        return unb64(reply, 'id_object'), unb64(reply, 'encrypted_secret')

    def activate(self, host, ak_name, secret):
        return self.client.call({}, 'activate', host=host, ak_name=ak_name.hex(),
                                secret=b64(secret))
