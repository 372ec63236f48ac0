"""The verifier worker: attests its share of the fleet on a schedule, stores verdicts, notifies.

Each round of a host: a fresh 20-byte nonce, a quote request over the bus to the host's
agent, appraisal (:mod:`tclouds_openstack.attestation.appraisal`) against the host's policy
with the AK recorded at registration (never one from the answer: another host's quote or
a forged one fails the signature check), then the verdict, its history row and, when the
status changed, an ``attestation.host.<status>`` notification.

Scheduling: a host is due at ``next_attest_at``. Each tick the worker claims a batch of
due hosts, oldest first, up to its free slots (``Store.claim_due``: one transaction, rows
locked with SKIP LOCKED, so workers sharing the fleet never claim the same host and never
wait for each other), setting each one's next time ``interval * (1 + random(0, jitter))``
later, so rounds are spread and no host is attested twice per round. The claim returns the
columns the round needs (no per-host read). Finished rounds' verdicts are written once per
tick in one transaction (``Store.save_claimed_verdicts``), each only while the host still
carries the round's claim, AK and previous verdict. When nothing is due the worker sleeps
until the earliest next time (re-checking at least every second). With ``[attestation]
coordination_url`` set, workers partition hosts with a tooz hash ring (Redis, etcd,
ZooKeeper): each worker claims the hosts the ring gives it, and also any host overdue by a
whole interval (its owner is not keeping up, or died and its heartbeat has not expired
yet), so a slow or dead worker's hosts do not age; tooz membership is re-read every
min(5 s, interval / 2). At most ``concurrency`` quote requests are outstanding per worker;
unset, the worker sizes it from its share of the fleet (:meth:`Verifier.concurrency`). The
claim also reads the version of each claimed host's policy, so a round makes no query of
its own (:class:`PolicyCache`).

Freshness: a host whose agent has not answered for ``max_verdict_age`` turns ``unknown``;
consumers also refuse any verdict older than that (``backends.base.check_trusted``).

Event logs: a host's UEFI event log only changes at a reboot, so the worker keeps the log
of each host's last trusted round (:class:`EventLogCache`) and sends its digest with the
quote request (agent API 1.1); an agent whose log is that one answers "unchanged" instead
of sending it again. The quote is fresh and signed as always and the held log is replayed
against the quoted PCRs as a sent one would be: a host whose PCRs no longer match it is
untrusted, and its next round asks for the whole log.
"""
import collections
import concurrent.futures
import datetime
import json
import logging
import math
import os
import random
import re
import threading
import time

import oslo_messaging as messaging

from tclouds_openstack.attestation import appraisal
from tclouds_openstack.attestation.appraisal import core
from tclouds_openstack.attestation.appraisal import policy as policy_mod
from tclouds_openstack.attestation.backends import base
from tclouds_openstack.attestation import rpcapi
from tclouds_openstack.attestation.service import store as store_mod
from tclouds_openstack.common import exception
from tclouds_openstack.common import messaging as common_messaging

LOG = logging.getLogger(__name__)
NONCE_SIZE = 20
GROUP = b'tclouds-attestation-workers'


def event_type(status):
    return 'attestation.host.%s' % status


def _iso(value):
    return store_mod.aware(value).isoformat() if value is not None else None


_UNREAD = object()


class PolicyCache(object):
    """Parsed policies by name, re-read only when the stored version changes.

    One small query per round instead of reading the whole documents.
    """

    # a changed policy is noticed within this many seconds (creating one also makes its
    # hosts due at once)
    TTL = 1.0

    def __init__(self, store):
        self.store = store
        self._cache = {}
        self._checked = {}

    def get(self, name, version=_UNREAD):
        """The parsed policy ``name``, or None when there is none.

        ``version``: its :meth:`Store.policy_version` as just read (the worker loop reads
        it with the claim of the round's host, ``Store.claim_due``), so no query of its
        own; unset: read when the one held was checked more than ``TTL`` seconds ago.
        """
        now = time.monotonic()
        cached = self._cache.get(name)
        if version is _UNREAD:
            if cached is not None and now - self._checked.get(name, 0) < self.TTL:
                return cached[1]
            version = self.store.policy_version(name)
        self._checked[name] = now
        if version is None:
            self._cache.pop(name, None)
            return None
        if cached is None or cached[0] != version:
            row = self.store.find_policy(name)
            if row is None:
                return None
            parsed = policy_mod.parse_policy(
                name, tpm_policy=row.tpm_policy,
                runtime_policy=row.runtime_policy, mb_refstate=row.mb_refstate,
                mb_engine=row.mb_engine,
                allow_unorderly_shutdown=bool(row.allow_unorderly_shutdown))
            cached = (version, parsed)
            self._cache[name] = cached
        return cached[1]


class EventLogCache(object):
    """The UEFI event log of each host's last trusted round, by (host name, AK name).

    What the worker sends the digest of (agent API 1.1), so that an agent whose log did
    not change need not send it again. Bounded: at most ``max_bytes`` of distinct logs
    (hosts booted alike share one copy) and ``max_hosts`` hosts, least recently used
    dropped first; a host that is not held (worker restart, a host another worker
    attested, dropped) is simply asked for its whole log. Thread-safe.
    """

    def __init__(self, max_bytes, max_hosts):
        self.max_bytes = max_bytes
        self.max_hosts = max_hosts
        self._hosts = collections.OrderedDict()     # key: digest, least recent first
        self._logs = {}                             # digest: [log, number of hosts]
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self):
        return len(self._hosts)

    def get(self, key):
        """(digest, log) held for ``key``, or None."""
        with self._lock:
            digest = self._hosts.get(key)
            if digest is None:
                return None
            self._hosts.move_to_end(key)
            return digest, self._logs[digest][0]

    def put(self, key, log, digest=None):
        """Hold ``log`` as ``key``'s (``digest``: its :func:`rpcapi.log_digest`)."""
        if not log or len(log) > self.max_bytes:
            self.drop(key)
            return
        digest = digest or rpcapi.log_digest(log)
        with self._lock:
            if self._hosts.get(key) == digest:
                self._hosts.move_to_end(key)
                return
            self._release(key)
            held = self._logs.get(digest)
            if held is None:
                self._logs[digest] = [log, 1]
                self._bytes += len(log)
            else:
                held[1] += 1
            self._hosts[key] = digest
            while self._bytes > self.max_bytes or len(self._hosts) > self.max_hosts:
                self._release(next(iter(self._hosts)))

    def drop(self, key):
        with self._lock:
            self._release(key)

    def _release(self, key):
        digest = self._hosts.pop(key, None)
        if digest is None:
            return
        held = self._logs[digest]
        held[1] -= 1
        if not held[1]:
            del self._logs[digest]
            self._bytes -= len(held[0])


_PCR_KEY = re.compile(r'[0-9]|1[0-9]|2[0-3]')


def decode_answer(answer, ak_public, held_log=None):
    """The agent's answer as appraisal Evidence; BadMessage naming the bad field.

    ``held_log``: (digest, log) whose digest the request carried; an answer saying
    ``uefi_log_unchanged`` with that digest stands for that log. Any other
    ``uefi_log_unchanged`` (a digest not sent, or with a log beside it) is malformed.
    """
    if not isinstance(answer, dict):
        raise rpcapi.BadMessage('answer: expected an object')
    if answer.get('error'):
        raise rpcapi.BadMessage('agent error: %s' % str(answer['error'])[:300])
    raw_pcrs = answer.get('pcr_values')
    if not isinstance(raw_pcrs, dict):
        raise rpcapi.BadMessage('pcr_values: expected {bank: {pcr: hex}}')
    pcrs = {}
    try:
        for bank, values in raw_pcrs.items():
            pcrs[bank] = {}
            for index, value in values.items():
                # one spelling per PCR (ASCII digits, no leading zero): int() also reads
                # '١', ' 1', '+1', '01', '1_0', so two keys could name one PCR and the last
                # would win unnoticed
                if not isinstance(index, str) or not _PCR_KEY.fullmatch(index):
                    raise ValueError('PCR index %r is not 0-23 in ASCII digits' % (index,))
                pcrs[bank][int(index)] = bytes.fromhex(value)
    except (AttributeError, ValueError, TypeError) as e:
        raise rpcapi.BadMessage('pcr_values: %s' % e)
    offset = answer.get('ima_offset', 0)
    if type(offset) is not int or offset < 0:
        raise rpcapi.BadMessage('ima_offset: expected a non-negative integer')
    unchanged = answer.get('uefi_log_unchanged')
    if unchanged is None:
        uefi_log = rpcapi.unb64(answer, 'uefi_log', optional=True)
    elif held_log is None:
        raise rpcapi.BadMessage('uefi_log_unchanged: the request named no event log')
    elif unchanged != held_log[0]:
        raise rpcapi.BadMessage('uefi_log_unchanged: names %.80r, the request named %s'
                                % (unchanged, held_log[0]))
    elif answer.get('uefi_log') is not None:
        raise rpcapi.BadMessage('uefi_log_unchanged: sent with a uefi_log')
    else:
        uefi_log = held_log[1]
    return appraisal.Evidence(
        ak_public=ak_public,
        attest=rpcapi.unb64(answer, 'attest'),
        signature=rpcapi.unb64(answer, 'signature'),
        pcr_values=pcrs,
        uefi_log=uefi_log,
        ima_log=rpcapi.unb64(answer, 'ima_log', optional=True),
        ima_offset=offset)


class Verifier(object):
    def __init__(self, conf, store, transport, notifier=None, worker=None, agent_api=None):
        self.conf = conf
        self.store = store
        self.worker = worker or conf.host
        self.notifier = notifier
        opts = conf.attestation
        self.agents = agent_api or rpcapi.AgentAPI(
            transport, opts.rpc_timeout, topic=opts.agent_topic,
            version_cap=opts.agent_rpc_version_cap,
            answers=self._answer_waiter(conf, opts.agent_topic, self.worker))
        self.event_logs = EventLogCache(opts.event_log_cache_mib * 1024 * 1024,
                                        opts.event_log_cache_hosts)
        self.policies = PolicyCache(store)
        self._selections = {}       # id(policy): (policy, (bank, base), selection)
        self.partitioner = None
        self.coordinator = None
        self._stop = threading.Event()
        self._thread = None
        # [attestation] concurrency set: that many rounds at once; unset: sized from the
        # worker's share of the fleet (see concurrency()), at most max_concurrency
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=opts.concurrency or opts.max_concurrency,
            thread_name_prefix='attest')
        self._inflight = {}         # name: claimed host of the rounds not yet written
        self._inflight_lock = threading.Lock()
        self._pending = []          # (claimed host, verdict) of rounds not yet written
        self._next_due = None
        self._tick = min(1.0, self.conf.attestation.interval / 10.0)
        self._recheck_at = 0.0
        self._watch_at = 0.0
        # tooz membership is re-read this often: a worker that joins or leaves changes the
        # ring's shares this much later (claims stay exclusive meanwhile, and a dead
        # worker's hosts are taken over once overdue by an interval)
        self._watch_period = max(self.IDLE_RECHECK,
                                 min(self.WATCH_PERIOD, self.conf.attestation.interval / 2))
        self._round_seconds = collections.deque(maxlen=256)   # claim to slot freed
        self._round_time = self.ROUND_TIME
        self._fleet = None          # active hosts, re-counted every interval
        self._fleet_at = 0.0
        self._concurrency = opts.concurrency or self.MIN_CONCURRENCY
        self._owned_members = None  # the ring's members when _owned was filled
        self._owned = {}            # name: whether the ring gives it to this worker
        # hosts claimed although the ring gives them to another worker (overdue)
        self.taken_over = collections.Counter()

    @staticmethod
    def _answer_waiter(conf, agent_topic, worker):
        """The worker's own answer queue (agent API 1.2), or None: every request a call."""
        try:
            return rpcapi.AnswerWaiter(conf, rpcapi.answer_topic(agent_topic), worker)
        except common_messaging.UnsupportedTransport as e:
            LOG.info('agents are called (no answer queue on %s)', e)
            return None

    # ------------------------------------------------------------------ partitioning
    def join(self):
        url = self.conf.attestation.coordination_url
        if not url:
            return
        from tooz import coordination
        self.coordinator = coordination.get_coordinator(url, self.worker.encode())
        self.coordinator.start(start_heart=True)
        try:
            self.coordinator.create_group(GROUP).get()
        except coordination.GroupAlreadyExist:
            pass
        self.partitioner = self.coordinator.join_partitioned_group(GROUP)

    def leave(self):
        if self.coordinator is not None:
            try:
                self.coordinator.leave_group(GROUP).get()
            except Exception as e:  # leaving is best effort: the heartbeat expires anyway
                LOG.warning('leaving the worker group failed: %s', e)
            self.coordinator.stop()
            self.coordinator = None
            self.partitioner = None

    def owns(self, host):
        if self.partitioner is None:
            return True
        return self.partitioner.belongs_to_self(host)

    # ------------------------------------------------------------------ one host
    def _next_time(self, now):
        opts = self.conf.attestation
        return now + datetime.timedelta(
            seconds=opts.interval * (1 + random.uniform(0, opts.jitter)))

    def attest(self, name):
        """One attestation round of ``name`` outside the loop; returns the stored status."""
        try:
            host = self.store.get_host(name)
        except exception.NotFound:
            return None
        verdict = self.appraise_host(host)
        if verdict is None:
            return host.status
        return self._record(host, *verdict)

    def appraise_host(self, host):
        """One round against ``host`` (a row or a claim); its verdict, not stored.

        (status, reasons, state, rebooted, answered, verified_at), or None when the agent
        did not answer and the stored verdict stands (silent for less than
        ``max_verdict_age``).
        """
        opts = self.conf.attestation
        policy_name = host.policy or opts.default_policy
        try:
            # a claim of the loop carries its policy's version, read with the claim
            policy = self.policies.get(policy_name,
                                       getattr(host, 'policy_version', _UNREAD))
        except policy_mod.PolicyError as e:
            return self._verdict(base.UNTRUSTED, ['policy %s is invalid: %s'
                                                  % (policy_name, e)])
        if policy is None:
            return self._verdict(base.UNTRUSTED, ['no appraisal policy named %s'
                                                  % policy_name])
        # the whole TPM clock of the last good quote (clockInfo, firmwareVersion): rolled
        # back within a boot, restartCount back or another firmware is untrusted
        try:
            previous = self.store.host_state(host)
        except store_mod.StoredStateError as e:
            return self._verdict(base.UNTRUSTED, [str(e)])
        bank = self.conf.tpm.hash_algorithm
        selection = self._selection(policy, bank)
        offset = previous.ima_offset
        log_key = (host.name, host.ak_name)
        held = self.event_logs.get(log_key)
        for attempt in (1, 2):
            nonce = os.urandom(NONCE_SIZE)
            try:
                answer = self.agents.get_quote(host.name, nonce, selection, offset,
                                               uefi_log_digest=held and held[0])
            except Exception as e:  # any messaging failure: the agent did not answer
                return self._no_answer(host, e)
            try:
                evidence = decode_answer(answer, host.ak_public, held)
            except rpcapi.BadMessage as e:
                self.event_logs.drop(log_key)
                return self._verdict(base.UNTRUSTED, ['agent answer rejected: %s' % e])
            result = appraisal.appraise(evidence, policy, nonce, hash_alg=bank,
                                        base_pcrs=self.conf.tpm.quote_pcrs, previous=previous)
            checks = {f.check for f in result.failures}
            if checks == {'ima.offset'} and attempt == 1:
                # the host rebooted (or our state is behind): ask for the whole list
                offset = result.state.ima_offset
                continue
            break
        from_cache = held is not None and evidence.uefi_log is held[1]
        if result.trusted:
            if not from_cache:
                self.event_logs.put(log_key, evidence.uefi_log)
            return self._verdict(base.TRUSTED, [], state=result.state,
                                 rebooted=result.rebooted)
        # only a trusted round's log is held: the next round sends no digest
        self.event_logs.drop(log_key)
        reasons = result.reasons
        if from_cache and any(c.startswith('measured_boot.') for c in checks):
            reasons = reasons + [str(core.Failure(
                'measured_boot.unchanged_log', 'the agent answered that its UEFI event log '
                'is unchanged (sha256 %s), so the log of the last trusted round was '
                'replayed against this quote; the next round asks for the whole log'
                % held[0]))]
        # An untrusted round's quote is still the TPM's word on its clock when it is
        # authentic and its clock checks passed (appraisal then returns the new clock,
        # else the last good one): kept, so a TPM state saved before the host went wrong
        # and put back later is a clock going back, not a return to an older good clock.
        return self._verdict(base.UNTRUSTED, reasons, state=result.state,
                             rebooted=result.rebooted)

    def _selection(self, policy, bank):
        """The PCRs a quote must cover for ``policy``, kept per parsed policy object.

        A new version of a policy is a new object, so a new entry.
        """
        base = tuple(self.conf.tpm.quote_pcrs)
        held = self._selections.get(id(policy))
        if held is None or held[0] is not policy or held[1] != (bank, base):
            if len(self._selections) >= 1024:
                self._selections.clear()
            held = self._selections[id(policy)] = (
                policy, (bank, base), core.required_pcrs(policy, bank, base))
        return held[2]

    @staticmethod
    def _verdict(status, reasons, state=None, rebooted=False, answered=True):
        return (status, list(reasons), state, rebooted, answered, store_mod.utcnow())

    def _no_answer(self, host, error):
        now = store_mod.utcnow()
        limit = self.conf.attestation.max_verdict_age
        last = host.last_answer_at or host.activated_at or host.registered_at
        age = (now - last).total_seconds()
        LOG.info('agent %s did not answer: %s', host.name, error)
        if age >= limit or host.status == base.UNKNOWN:
            return self._verdict(base.UNKNOWN, [
                'agent has not answered for %.0f s (limit %d s): %s'
                % (age, limit, str(error).splitlines()[0][:200] if str(error) else
                   type(error).__name__)], answered=False)
        return None

    def _record(self, host, status, reasons, state=None, rebooted=False, answered=True,
                now=None):
        now = now or store_mod.utcnow()
        # a round that began before a new AK was activated judged the old quote chain
        previous = self.store.save_verdict(
            host.name, status, reasons, now, self.worker, state=state, answered=answered,
            history_limit=self.conf.attestation.history_limit, ak_name=host.ak_name)
        self._stored(host, status, reasons, state, rebooted, previous, now)
        return status

    def _stored(self, host, status, reasons, state, rebooted, previous, now):
        if previous is not None and previous != status:
            self._notify(host, status, previous, reasons, now, state)
        if rebooted:
            LOG.info('host %s rebooted (resetCount %s)', host.name,
                     state.reset_count if state else None)

    def _notify(self, host, status, previous, reasons, now, state):
        LOG.info('host %s: %s -> %s %s', host.name, previous, status, reasons)
        if self.notifier is None:
            return
        payload = {'host': host.name, 'status': status, 'previous_status': previous,
                   'reasons': list(reasons), 'verified_at': _iso(now),
                   'reset_count': state.reset_count if state else host.reset_count,
                   'ak_name': host.ak_name}
        try:
            self.notifier.info({}, event_type(status), payload)
        except Exception as e:  # notification loss must not stop attestation
            LOG.error('cannot send %s for %s: %s', event_type(status), host.name, e)

    # ------------------------------------------------------------------ the loop
    # a worker re-reads the schedule at least this often when it knows of nothing due (a
    # host made due meanwhile: an activation, a policy change, an "attest" request), and
    # runs the coordinator's watchers (tooz membership) at most this often
    IDLE_RECHECK = 1.0
    # tooz watchers (membership) run at most this often, and at least twice an interval
    WATCH_PERIOD = 5.0
    # concurrency unset: rounds at once sized to what the worker's share needs, at least
    # this many; a round is assumed to hold its slot this long until one was measured
    MIN_CONCURRENCY = 32
    ROUND_TIME = 1.0
    # host names whose owner in the ring is held (cleared when full)
    OWNED_CACHE = 100000

    def concurrency(self):
        """Rounds this worker runs at once: ``[attestation] concurrency``, or sized.

        Unset, the worker keeps twice the rounds its share needs in flight: its share of
        the active hosts (the fleet over the workers in the tooz group) per interval,
        times the seconds a round holds its slot (claim to verdict written, mean of the
        recent rounds, timeouts included), at least ``MIN_CONCURRENCY`` and at most
        ``[attestation] max_concurrency``.
        """
        opts = self.conf.attestation
        if opts.concurrency:
            return opts.concurrency
        now = time.monotonic()
        if self._fleet is None or now >= self._fleet_at:
            self._fleet_at = now + opts.interval
            self._fleet = self.store.count_active()
        with self._inflight_lock:
            if self._round_seconds:
                self._round_time = (sum(self._round_seconds) / len(self._round_seconds))
        workers = 1
        if self.partitioner is not None:
            workers = max(1, len(self.partitioner.ring.nodes))
        needed = 2.0 * self._fleet / workers / opts.interval * self._round_time
        self._concurrency = max(self.MIN_CONCURRENCY,
                                min(opts.max_concurrency, int(math.ceil(needed))))
        return self._concurrency

    def run_once(self):
        """Write finished rounds' verdicts, claim and start due hosts; names started."""
        self.flush()
        now = store_mod.utcnow()
        self._renew(now)
        if self.coordinator is not None and time.monotonic() >= self._watch_at:
            self._watch_at = time.monotonic() + self._watch_period
            self.coordinator.run_watchers()
        concurrency = self.concurrency()
        with self._inflight_lock:
            slots = concurrency - len(self._inflight)
        if slots <= 0:
            return []
        if self._next_due is not None and now < self._next_due and \
                time.monotonic() < self._recheck_at:
            return []       # nothing is due yet
        choose = self._choose if self.partitioner is not None else None
        with self._inflight_lock:
            busy = set(self._inflight)
        claimed, next_due = self.store.claim_due(
            now, slots, self.worker, lambda: self._next_time(now), choose=choose,
            scan=4 * concurrency, exclude=busy,
            default_policy=self.conf.attestation.default_policy)
        self._next_due = next_due
        self._recheck_at = time.monotonic() + self.IDLE_RECHECK
        started = []
        for host in claimed:
            host.claimed_at = time.monotonic()
            with self._inflight_lock:
                self._inflight[host.name] = host
            self.executor.submit(self._attest_guarded, host)
            started.append(host.name)
        return started

    def _renew(self, now):
        """Keep the claims of rounds still running past their next time (slow agents)."""
        soon = now + datetime.timedelta(seconds=2 * self._tick)
        with self._inflight_lock:
            running = [h for h in self._inflight.values() if h.next_attest_at <= soon]
        if running:
            self.store.renew_claims([(h, self._next_time(now)) for h in running],
                                    self.worker)

    def _choose(self, due):
        """The hosts to claim among the due [(name, next_attest_at)], oldest first.

        The ring's share of this worker, and hosts overdue by a whole interval whoever
        owns them.
        """
        late = store_mod.utcnow() - datetime.timedelta(seconds=self.conf.attestation.interval)
        with self._inflight_lock:
            busy = set(self._inflight)
        # who owns a host only changes with the ring's members: kept per membership
        members = tuple(sorted(self.partitioner.ring.nodes.items()))
        if members != self._owned_members:
            self._owned_members, self._owned = members, {}
        owned = self._owned
        chosen = []
        for name, next_at in due:
            if name in busy:
                continue
            mine = owned.get(name)
            if mine is None:
                if len(owned) >= self.OWNED_CACHE:
                    owned.clear()
                mine = owned[name] = self.owns(name)
            if mine:
                chosen.append(name)
            elif next_at <= late:
                self.taken_over[name] += 1
                chosen.append(name)
        return chosen

    def attest_claimed(self, host):
        """One round of a host this worker claimed; its verdict, written by the loop.

        None: the agent did not answer and the stored verdict stands for now.
        """
        return self.appraise_host(host)

    def _attest_guarded(self, host):
        verdict = None
        try:
            verdict = self.attest_claimed(host)
        except store_mod.DatabaseUnavailable as e:
            LOG.warning('attestation of %s not done: %s', host.name, e)
        except Exception:
            LOG.exception('attestation of %s failed', host.name)
        finally:
            with self._inflight_lock:
                if verdict is None:
                    self._inflight.pop(host.name, None)
                    self._freed(host)
                else:       # in flight until its verdict is written
                    self._pending.append((host, verdict))

    def _freed(self, host):
        """A round's slot is free again (under the in-flight lock): how long it held it."""
        claimed_at = getattr(host, 'claimed_at', None)
        if claimed_at is not None:
            self._round_seconds.append(time.monotonic() - claimed_at)

    def flush(self):
        """Write the verdicts of rounds finished since the last flush; the number written.

        One transaction, then the notifications of status changes.
        """
        with self._inflight_lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0
        written = 0
        try:
            previous = self.store.save_claimed_verdicts(
                [(host, status, reasons, now, state, answered)
                 for host, (status, reasons, state, _, answered, now) in batch],
                self.worker, history_limit=self.conf.attestation.history_limit)
        except store_mod.DatabaseUnavailable as e:
            # not written: the hosts keep their claims and are attested next interval;
            # consumers refuse the stored verdicts once they are older than max_verdict_age
            LOG.warning('%d verdicts not recorded: %s', len(batch), e)
            previous = None
        finally:
            with self._inflight_lock:
                for host, _ in batch:
                    self._inflight.pop(host.name, None)
                    self._freed(host)
        for (host, verdict), before in zip(batch, previous or ()):
            status, reasons, state, rebooted, _, now = verdict
            if before is None:
                LOG.info('verdict on %s not recorded: the host is no longer claimed by '
                         'this round (made due again, deleted, new AK or verdict)',
                         host.name)
                continue
            written += 1
            self._stored(host, status, reasons, state, rebooted, before, now)
        return written

    def run(self, tick=None):
        """Loop until :meth:`stop`; database outages are logged and retried."""
        tick = self._tick = tick or min(1.0, self.conf.attestation.interval / 10.0)
        while not self._stop.is_set():
            try:
                self.run_once()
            except store_mod.DatabaseUnavailable as e:
                LOG.warning('%s; retrying', e)
            except Exception:
                LOG.exception('attestation round failed')
            self._stop.wait(tick)

    def start(self, tick=None):
        self.join()
        self._thread = threading.Thread(target=self.run, args=(tick,), daemon=True,
                                        name='verifier-%s' % self.worker)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.executor.shutdown(wait=True)
        try:
            self.flush()            # the rounds that finished meanwhile
        except Exception:
            LOG.exception('verdicts of the last rounds not recorded')
        close = getattr(self.agents, 'close', None)
        if close is not None:
            close()
        self.leave()


class RegistrarEndpoint(object):
    """The registrar's RPC methods (topic ``tclouds-attestation``)."""

    def __init__(self, registrar):
        self.target = messaging.Target(version=rpcapi.REGISTRAR_VERSION)
        self.registrar = registrar

    # refusals are answers, not server faults: no traceback in the worker log
    @messaging.expected_exceptions(exception.TCloudsException)
    def register(self, ctxt, host, ek_public, ek_certificate, ak_public):
        message = {'ek_public': ek_public, 'ek_certificate': ek_certificate,
                   'ak_public': ak_public}
        try:
            id_object, secret = self.registrar.register(
                host, rpcapi.unb64(message, 'ek_public'),
                rpcapi.unb64(message, 'ek_certificate', optional=True),
                rpcapi.unb64(message, 'ak_public'))
        except rpcapi.BadMessage as e:
            raise exception.BadRequest(str(e))
        return {'id_object': rpcapi.b64(id_object), 'encrypted_secret': rpcapi.b64(secret)}

    @messaging.expected_exceptions(exception.TCloudsException, rpcapi.BadMessage)
    def activate(self, ctxt, host, ak_name, secret):
        secret = rpcapi.unb64({'secret': secret}, 'secret')
        state = self.registrar.activate(host, ak_name, secret)
        return {'host': host, 'status': state}


def wait_for(predicate, timeout, step=0.05):
    """Poll ``predicate`` until true or ``timeout`` seconds (tests and tools)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def reasons_of(host):
    return json.loads(host.reasons or '[]')
