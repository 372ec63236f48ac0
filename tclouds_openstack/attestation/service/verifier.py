"""The verifier worker: attests its share of the fleet on a schedule, stores verdicts, notifies.

Each round of a host: a fresh 20-byte nonce, a quote request over the bus to the host's
agent, appraisal (:mod:`tclouds_openstack.attestation.appraisal`) against the host's policy
with the AK recorded at registration (never one from the answer: another host's quote or
a forged one fails the signature check), then the verdict, its history row and, when the
status changed, an ``attestation.host.<status>`` notification.

Scheduling: a host is due at ``next_attest_at``; the worker claims it with a conditional
update and sets the next time to ``interval * (1 + random(0, jitter))`` later, so rounds
are spread and no host is attested twice per round. With ``[attestation]
coordination_url`` set, workers partition hosts with a tooz hash ring (Redis, etcd,
ZooKeeper): each worker only claims hosts the ring gives it, and when a worker leaves the
group (or its heartbeat expires) the others take its hosts. At most ``concurrency`` quote
requests are outstanding per worker.

Freshness: a host whose agent has not answered for ``max_verdict_age`` turns ``unknown``;
consumers also refuse any verdict older than that (``backends.base.check_trusted``).
"""
import concurrent.futures
import datetime
import json
import logging
import os
import random
import re
import threading
import time

import oslo_messaging as messaging

from tclouds_openstack.attestation import appraisal
from tclouds_openstack.attestation.appraisal import policy as policy_mod
from tclouds_openstack.attestation.backends import base
from tclouds_openstack.attestation import rpcapi
from tclouds_openstack.attestation.service import store as store_mod
from tclouds_openstack.common import exception

LOG = logging.getLogger(__name__)
NONCE_SIZE = 20
GROUP = b'tclouds-attestation-workers'


def event_type(status):
    return 'attestation.host.%s' % status


def _iso(value):
    return store_mod.aware(value).isoformat() if value is not None else None


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

    def get(self, name):
        now = time.monotonic()
        cached = self._cache.get(name)
        if cached is not None and now - self._checked.get(name, 0) < self.TTL:
            return cached[1]
        self._checked[name] = now
        version = self.store.policy_version(name)
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


_PCR_KEY = re.compile(r'[0-9]|1[0-9]|2[0-3]')


def decode_answer(answer, ak_public):
    """The agent's answer as appraisal Evidence; BadMessage naming the bad field."""
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
    return appraisal.Evidence(
        ak_public=ak_public,
        attest=rpcapi.unb64(answer, 'attest'),
        signature=rpcapi.unb64(answer, 'signature'),
        pcr_values=pcrs,
        uefi_log=rpcapi.unb64(answer, 'uefi_log', optional=True),
        ima_log=rpcapi.unb64(answer, 'ima_log', optional=True),
        ima_offset=offset)


class Verifier(object):
    def __init__(self, conf, store, transport, notifier=None, worker=None, agent_api=None):
        self.conf = conf
        self.store = store
        self.worker = worker or conf.host
        self.notifier = notifier
        self.agents = agent_api or rpcapi.AgentAPI(transport, conf.attestation.rpc_timeout,
                                                   topic=conf.attestation.agent_topic)
        self.policies = PolicyCache(store)
        self.partitioner = None
        self.coordinator = None
        self._stop = threading.Event()
        self._thread = None
        opts = conf.attestation
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=opts.concurrency, thread_name_prefix='attest')
        self._inflight = set()
        self._inflight_lock = threading.Lock()

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
        """One attestation round of ``name``; returns the stored status."""
        try:
            host = self.store.get_host(name)
        except exception.NotFound:
            return None
        opts = self.conf.attestation
        policy_name = host.policy or opts.default_policy
        try:
            policy = self.policies.get(policy_name)
        except policy_mod.PolicyError as e:
            return self._record(host, base.UNTRUSTED, ['policy %s is invalid: %s'
                                                       % (policy_name, e)])
        if policy is None:
            return self._record(host, base.UNTRUSTED, ['no appraisal policy named %s'
                                                       % policy_name])
        # the whole TPM clock of the last good quote (clockInfo, firmwareVersion): rolled
        # back within a boot, restartCount back or another firmware is untrusted
        try:
            previous = self.store.host_state(host)
        except store_mod.StoredStateError as e:
            return self._record(host, base.UNTRUSTED, [str(e)])
        bank = self.conf.tpm.hash_algorithm
        from tclouds_openstack.attestation.appraisal import core
        selection = core.required_pcrs(policy, bank, self.conf.tpm.quote_pcrs)
        offset = previous.ima_offset
        for attempt in (1, 2):
            nonce = os.urandom(NONCE_SIZE)
            try:
                answer = self.agents.get_quote(name, nonce, selection, offset)
            except Exception as e:  # any messaging failure: the agent did not answer
                return self._no_answer(host, e)
            try:
                evidence = decode_answer(answer, host.ak_public)
            except rpcapi.BadMessage as e:
                return self._record(host, base.UNTRUSTED, ['agent answer rejected: %s' % e])
            result = appraisal.appraise(evidence, policy, nonce, hash_alg=bank,
                                        base_pcrs=self.conf.tpm.quote_pcrs, previous=previous)
            checks = {f.check for f in result.failures}
            if checks == {'ima.offset'} and attempt == 1:
                # the host rebooted (or our state is behind): ask for the whole list
                offset = result.state.ima_offset
                continue
            break
        if result.trusted:
            return self._record(host, base.TRUSTED, [], state=result.state,
                                rebooted=result.rebooted)
        # An untrusted round's quote is still the TPM's word on its clock when it is
        # authentic and its clock checks passed (appraisal then returns the new clock,
        # else the last good one): kept, so a TPM state saved before the host went wrong
        # and put back later is a clock going back, not a return to an older good clock.
        return self._record(host, base.UNTRUSTED, result.reasons, state=result.state,
                            rebooted=result.rebooted)

    def _no_answer(self, host, error):
        now = store_mod.utcnow()
        limit = self.conf.attestation.max_verdict_age
        last = host.last_answer_at or host.activated_at or host.registered_at
        age = (now - last).total_seconds()
        LOG.info('agent %s did not answer: %s', host.name, error)
        if age >= limit or host.status == base.UNKNOWN:
            return self._record(host, base.UNKNOWN, [
                'agent has not answered for %.0f s (limit %d s): %s'
                % (age, limit, str(error).splitlines()[0][:200] if str(error) else
                   type(error).__name__)], answered=False)
        return host.status

    def _record(self, host, status, reasons, state=None, rebooted=False, answered=True):
        now = store_mod.utcnow()
        # a round that began before a new AK was activated judged the old quote chain
        previous = self.store.save_verdict(
            host.name, status, reasons, now, self.worker, state=state, answered=answered,
            history_limit=self.conf.attestation.history_limit, ak_name=host.ak_name)
        if previous is not None and previous != status:
            self._notify(host, status, previous, reasons, now, state)
        if rebooted:
            LOG.info('host %s rebooted (resetCount %s)', host.name,
                     state.reset_count if state else None)
        return status

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
    def run_once(self):
        """Claim and start every due host this worker owns; returns the names started."""
        now = store_mod.utcnow()
        limit = self.conf.attestation.concurrency * 4
        started = []
        if self.coordinator is not None:
            self.coordinator.run_watchers()
        for name, seen in self.store.due_hosts(now, limit):
            with self._inflight_lock:
                if name in self._inflight or len(self._inflight) >= \
                        self.conf.attestation.concurrency:
                    continue
            if not self.owns(name):
                continue
            if not self.store.claim(name, seen, self._next_time(now), self.worker):
                continue
            with self._inflight_lock:
                self._inflight.add(name)
            self.executor.submit(self._attest_guarded, name)
            started.append(name)
        return started

    def _attest_guarded(self, name):
        try:
            self.attest(name)
        except store_mod.DatabaseUnavailable as e:
            LOG.warning('attestation of %s not recorded: %s', name, e)
        except Exception:
            LOG.exception('attestation of %s failed', name)
        finally:
            with self._inflight_lock:
                self._inflight.discard(name)

    def run(self, tick=None):
        """Loop until :meth:`stop`; database outages are logged and retried."""
        tick = tick or min(1.0, self.conf.attestation.interval / 10.0)
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
        self.leave()


class RegistrarEndpoint(object):
    """The registrar's RPC methods (topic ``tclouds-attestation``)."""

    def __init__(self, registrar):
        self.target = messaging.Target(version=rpcapi.VERSION)
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
