"""The message-bus contract between host agents and the attestation service.

Oslo.messaging RPC topics (``[attestation] agent_topic`` / ``registrar_topic``, and the
answer topic derived from the first), versioned like Nova's compute RPC API:

- ``tclouds-attestation-agent`` (server = the Nova compute host name): served by each host
  agent, which opens no listening port; the verifier calls :meth:`AgentAPI.get_quote`.
- ``tclouds-attestation``: served by the service workers (the registrar); agents call
  :meth:`RegistrarAPI.register` and :meth:`RegistrarAPI.activate`.
- ``tclouds-attestation-agent-answers`` (server = a worker's own queue, :func:`answer_topic`):
  agents of API 1.2 cast their answers there (:class:`AnswerWaiter`).

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

- 1.2: ``request_quote(request_id, reply_to, nonce, selection, ima_offset,
  uefi_log_digest)`` is a cast: the agent casts its answer (the answer of ``get_quote``)
  back as ``quote_answer(request_id, answer)`` to ``Target(topic=answer_topic(agent
  topic), server=reply_to)``, the worker's own queue (:class:`AnswerWaiter`), where one
  thread takes each answer as it arrives: no oslo.messaging reply waiter, whose poll backs
  off from 1 ms after every reply. Agents of 1.2 say so in every answer (``agent_api``).

The verifier sends 1.1 only when it holds a log for the host and ``[attestation]
agent_rpc_version_cap`` allows it; an agent older than 1.1 refuses such a call
(``UnsupportedVersion``) and is asked again in 1.0 (:class:`AgentAPI`). It casts (1.2)
only to an agent whose last answer said ``agent_api`` 1.2 or later, while the cap allows
it and its own queue is consumed; a cast that gets no answer in time fails the round as
a call would (no answer) and the host is called (1.1) again until it says 1.2 again. The
registrar API is 1.0.
"""
import base64
import binascii
import collections
import concurrent.futures
import hashlib
import logging
import re
import secrets
import threading
import time

import oslo_messaging as messaging

AGENT_TOPIC = 'tclouds-attestation-agent'
SERVICE_TOPIC = 'tclouds-attestation'
AGENT_VERSION = '1.2'
REGISTRAR_VERSION = '1.0'
# the first agent API version with uefi_log_digest
LOG_DIGEST_VERSION = '1.1'
# the first agent API version with request_quote (answer cast to the worker's own queue)
CAST_ANSWER_VERSION = '1.2'
# request ids: 16 random bytes in hex; reply_to: a server name of the answer topic
_REQUEST_ID = re.compile(r'[0-9a-f]{32}')
_REPLY_TO = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,127}')

LOG = logging.getLogger(__name__)


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


def answer_topic(agent_topic):
    """The topic agents cast their answers to (API 1.2); server = the worker's queue."""
    return '%s-answers' % agent_topic


def is_request_id(value):
    return isinstance(value, str) and _REQUEST_ID.fullmatch(value) is not None


def is_reply_to(value):
    return isinstance(value, str) and _REPLY_TO.fullmatch(value) is not None


def speaks(answer, version):
    """Whether an answer says its agent serves agent API ``version`` (untrusted: a hint)."""
    said = answer.get('agent_api') if isinstance(answer, dict) else None
    if not isinstance(said, str) or not re.fullmatch(r'[0-9]{1,4}\.[0-9]{1,4}', said):
        return False
    have, want = [int(p) for p in said.split('.')], [int(p) for p in version.split('.')]
    return have[0] == want[0] and have[1] >= want[1]


def _unsupported_version(error):
    # the agent's dispatcher refused the call's version: over a broker it comes back as a
    # RemoteError (the client re-raises only builtins' exceptions), in process as itself
    return (isinstance(error, messaging.UnsupportedVersion)
            or (isinstance(error, messaging.RemoteError)
                and error.exc_type == 'UnsupportedVersion'))


class AnswerWaiter(object):
    """The worker's own queue of agents' answers (agent API 1.2) and the requests awaiting them.

    Each request has a random id (:func:`secrets.token_hex`, 16 bytes) and a future; an
    answer is handed to the request of its id only while that request awaits it and only
    if it names the host the request went to. An answer whose id is unknown, already
    answered or timed out, one naming another host, or a malformed message is dropped and
    logged (``dropped`` counts them by kind); it never completes another request. What a
    matched answer holds is untrusted as a called one is: the quote is checked against the
    request's nonce and the host's AK.
    """

    def __init__(self, conf, topic, worker):
        from tclouds_openstack.common import messaging as common_messaging
        self.topic = topic
        self.reply_to = '%s.%s' % (re.sub(r'[^A-Za-z0-9_.-]', '_', worker)[:80] or 'worker',
                                   secrets.token_hex(6))
        self.queue = common_messaging.OwnQueue(conf, topic, self.reply_to, self._received,
                                               name='answers')
        self._pending = {}          # request id: (host, future)
        self._lock = threading.Lock()
        self.dropped = collections.Counter()

    def start(self):
        """Consume the queue (a thread); idempotent. ``ready`` once it is consumed."""
        self.queue.start()
        return self

    def stop(self):
        self.queue.stop()

    @property
    def ready(self):
        return self.queue.ready.is_set()

    def expect(self, host):
        """A new request id for ``host`` and the future its answer completes."""
        request_id = secrets.token_hex(16)
        future = concurrent.futures.Future()
        with self._lock:
            self._pending[request_id] = (host, future)
        return request_id, future

    def forget(self, request_id):
        with self._lock:
            self._pending.pop(request_id, None)

    def _drop(self, kind, why, *args):
        self.dropped[kind] += 1
        LOG.warning('agent answer dropped (%s): ' + why, kind, *args)

    def _received(self, message):
        args = message.get('args') if message.get('method') == 'quote_answer' else None
        if not isinstance(args, dict):
            return self._drop('malformed', 'not a quote_answer: method %.40r',
                              message.get('method'))
        request_id, answer = args.get('request_id'), args.get('answer')
        if not is_request_id(request_id) or not isinstance(answer, dict):
            return self._drop('malformed', 'request_id %.40r, answer of type %s',
                              request_id, type(answer).__name__)
        with self._lock:
            awaited = self._pending.get(request_id)
            if awaited is None:
                return self._drop('unknown', 'request %s is not awaited (unknown, answered '
                                  'or timed out); answer names host %.80r', request_id,
                                  answer.get('host'))
            host, future = awaited
            if answer.get('host') != host:
                return self._drop('host', 'request %s went to %s, the answer names host '
                                  '%.80r', request_id, host, answer.get('host'))
            del self._pending[request_id]
        if not future.done():
            future.set_result(answer)


class AgentAPI(object):
    """Verifier side of the agent topic.

    ``version_cap``: the highest agent API version sent (None: :data:`AGENT_VERSION`); an
    agent that refuses a 1.1 call is asked in 1.0 again, and in 1.0 only for
    ``OLD_AGENT_RECHECK`` seconds (it may be upgraded meanwhile). ``answers``: an
    :class:`AnswerWaiter` (started): hosts whose agents said they serve 1.2 are asked by
    cast, their answers taken from it; None: every request is a call.
    """

    OLD_AGENT_RECHECK = 3600.0
    # hosts remembered as serving 1.2 (cleared when full: they are called again once)
    CASTS_HELD = 100000

    def __init__(self, transport, timeout=10.0, topic=AGENT_TOPIC, version_cap=None,
                 answers=None):
        target = messaging.Target(topic=topic, version='1.0')
        self.timeout = timeout
        self.client = messaging.get_rpc_client(transport, target, timeout=timeout,
                                               version_cap=version_cap or AGENT_VERSION)
        self._old_agents = {}       # host: monotonic time it refused 1.1
        self._lock = threading.Lock()
        self.answers = answers
        self._casts = answers is not None and self.client.can_send_version(
            CAST_ANSWER_VERSION)
        self._cast_hosts = set()    # hosts whose last answer said they serve 1.2
        self._said = None           # the last agent_api seen that serves 1.2 (fast path)
        self._cast_contexts = {}    # host: its prepared cast context
        self._cast_client = (self.client.prepare(version=CAST_ANSWER_VERSION)
                             if self._casts else None)

    def close(self):
        if self.answers is not None:
            self.answers.stop()

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

    def _heard(self, host, answer):
        """Remember whether ``host``'s agent said it serves 1.2 (asked by cast next)."""
        if not self._casts:
            return
        said = answer.get('agent_api') if isinstance(answer, dict) else None
        if (said is not None and said == self._said) or speaks(answer, CAST_ANSWER_VERSION):
            self._said = said
            if host not in self._cast_hosts:
                self.answers.start()
                if len(self._cast_hosts) >= self.CASTS_HELD:
                    self._cast_hosts.clear()
                    self._cast_contexts.clear()
                self._cast_hosts.add(host)
        else:
            self._cast_hosts.discard(host)

    def get_quote(self, host, nonce, selection, ima_offset, timeout=None,
                  uefi_log_digest=None):
        """Ask ``host``'s agent for a quote and its logs; returns the raw answer dict.

        The quote covers ``selection`` ({bank: [pcr]}) with ``nonce``; the IMA entries
        start at ``ima_offset``. ``uefi_log_digest``: the :func:`log_digest` of the
        host's log the caller holds; an agent at 1.1 answers ``uefi_log_unchanged`` then
        if its log is that one. Not sent (1.0) when the cap or the agent does not allow it.
        Raises ``MessagingTimeout`` when no answer came in time (call or cast).
        """
        args = {'nonce': b64(nonce), 'selection': {b: list(p) for b, p in selection.items()},
                'ima_offset': int(ima_offset)}
        if host in self._cast_hosts and self.answers.ready:
            return self._cast_quote(host, timeout, uefi_log_digest, args)
        kwargs = {'server': host}
        if timeout is not None:
            kwargs['timeout'] = timeout
        answer = None
        if uefi_log_digest is not None and self._sends_digest(host):
            try:
                answer = self.client.prepare(version=LOG_DIGEST_VERSION, **kwargs).call(
                    {}, 'get_quote', uefi_log_digest=uefi_log_digest, **args)
            except (messaging.RemoteError, messaging.UnsupportedVersion) as e:
                if not _unsupported_version(e):
                    raise
                with self._lock:
                    self._old_agents[host] = time.monotonic()
        if answer is None:
            answer = self.client.prepare(**kwargs).call({}, 'get_quote', **args)
        self._heard(host, answer)
        return answer

    def _cast_quote(self, host, timeout, uefi_log_digest, args):
        request_id, future = self.answers.expect(host)
        timeout = self.timeout if timeout is None else timeout
        try:
            context = self._cast_contexts.get(host)
            if context is None:
                context = self._cast_contexts[host] = self._cast_client.prepare(server=host)
            context.cast(
                {}, 'request_quote', request_id=request_id,
                reply_to=self.answers.reply_to, uefi_log_digest=uefi_log_digest, **args)
            answer = future.result(timeout)
        except concurrent.futures.TimeoutError:
            # an agent downgraded, or an answer lost with the queue: called next round
            self._cast_hosts.discard(host)
            raise messaging.MessagingTimeout(
                'no answer from %s to quote request %s within %.1f s (agent API %s, '
                'answer cast to %s)' % (host, request_id, timeout, CAST_ANSWER_VERSION,
                                        self.answers.reply_to))
        finally:
            self.answers.forget(request_id)
        self._heard(host, answer)
        return answer


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
