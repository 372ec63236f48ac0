"""Appraisal: evidence + policy -> verdict listing every failed check.

Pure (no I/O, no configuration, no clock): the verifier passes what it expects (the nonce it
sent, the PCRs it requires, what it remembers of the host) and what the agent answered, and
gets an :class:`Appraisal`. The order of checks, and why:

1. The quote (:func:`tclouds_openstack.tpm.quote.verify_quote`): AK signature over the exact
   attest bytes first, then the nonce (a stale or replayed quote fails here), the quoted PCR
   selection against the supplied values, the composite digest, the required PCRs. If the
   quote is not authentic nothing else it claims can be believed, so appraisal stops with
   that one failure (Keylime 7.14.3 instead treats an invalid signature as success).
2. The TPM's clock (TPM 2.0 Part 1, 36): ``clockInfo`` (clock, resetCount, restartCount,
   safe) and ``firmwareVersion`` are compared with what the last authentic quote said
   (:class:`HostState`). A higher ``resetCount`` is a reboot (recorded, not a failure; the
   IMA list must then start again at entry 0). Untrusted, each with its own reason: a lower
   ``resetCount`` (a rolled-back, cleared or different TPM); within one boot (same
   ``resetCount``) a lower ``restartCount``, a clock that went back, or another
   ``firmwareVersion``; across a reboot a clock that went back although the TPM says it is
   safe (safe = YES promises no higher value was reported before), or an older
   ``firmwareVersion`` (a TPM firmware downgrade; an upgrade across a reboot is accepted);
   ``safe`` = NO (the TPM was not shut down orderly, e.g. power loss, so its clock may
   have gone back) unless the policy allows it (``allow_unorderly_shutdown``). When a
   clock check fails the remembered clock is kept, so the next quote is compared with the
   last good one, never with the rolled-back one.
3. The PCR allowlist (Keylime ``tpm_policy``), every listed PCR.
4. The UEFI event log replayed against the quoted PCRs (every PCR the log touches, and
   every PCR the engine reads, which the log must leave at its reset value when it records
   nothing there), then the policy's measured-boot engine (:mod:`.measured_boot`) on the
   digests of the quoted bank.
5. The IMA list: template hashes, the runtime policy per entry, and the replay of PCR 10
   from where the previous appraisal stopped (incremental), accepting the longest prefix
   the quote covers (entries measured after the quote wait for the next round).

Failure identifiers follow Keylime's event ids (``quote_validation``,
``pcr_validation.invalid_pcr_N``, ``measured_boot.invalid_pcr_N``,
``ima.validation.ima-ng.not_in_allowlist``, ``ima.pcr_mismatch`` ...) so operators and the
differential test can compare them.
"""
import dataclasses
import functools
import hashlib

from tclouds_openstack.attestation.appraisal import measured_boot
from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import eventlog
from tclouds_openstack.tpm import ima
from tclouds_openstack.tpm import quote as tpm_quote

IMA_PCR = ima.IMA_PCR
# A verdict row should stay readable: after this many per-entry failures the rest is counted.
MAX_LISTED_FAILURES = 25


@dataclasses.dataclass(frozen=True)
class Failure:
    check: str
    message: str

    def __str__(self):
        return '%s: %s' % (self.check, self.message)


@dataclasses.dataclass(frozen=True)
class HostState:
    """What the verifier remembers of a host between appraisals (None fields: first time).

    The TPM's ``clockInfo`` and ``firmwareVersion`` of the last authentic quote whose clock
    checks passed; ``ima_offset`` entries of the IMA list have been appraised and extend
    PCR 10 of the quoted bank to ``ima_pcr`` (both only valid within ``reset_count``).
    """
    reset_count: int = None
    ima_offset: int = 0
    ima_pcr: bytes = None
    restart_count: int = None
    clock: int = None
    safe: bool = None
    firmware_version: int = None


@dataclasses.dataclass(frozen=True)
class Evidence:
    """An agent's answer: quote + logs. ``ima_log`` holds entries from ``ima_offset`` on."""
    ak_public: bytes
    attest: bytes
    signature: bytes
    pcr_values: dict
    uefi_log: bytes = None
    ima_log: object = None
    ima_offset: int = 0


@dataclasses.dataclass(frozen=True)
class Appraisal:
    failures: tuple
    reset_count: int = None
    restart_count: int = None
    clock: int = None
    rebooted: bool = False
    state: HostState = None

    @property
    def trusted(self):
        return not self.failures

    @property
    def reasons(self):
        return [str(f) for f in self.failures]


def required_pcrs(policy, bank, base=()):
    """{bank: [index]} a quote must cover for ``policy`` (plus the configured ``base``)."""
    pcrs = set(int(p) for p in base) | set(policy.tpm_policy.pcrs)
    if policy.runtime_policy is not None:
        pcrs.add(IMA_PCR)
    pcrs.update(measured_boot.ENGINE_PCRS.get(policy.mb_engine, ()))
    return {bank: sorted(pcrs)}


def boot_aggregate(pcr_values, algorithm):
    """IMA boot_aggregate: H(PCR 0..9) of the bank of ``algorithm``.

    As ima_crypto.c computes it (kernels >= 5.8 include PCRs 8 and 9).
    """
    bank = pcr_values.get(algorithm)
    if not bank or any(i not in bank for i in range(10)):
        return None
    return hashlib.new(algorithm, b''.join(bank[i] for i in range(10))).digest()


def appraise(evidence, policy, nonce, hash_alg='sha256', base_pcrs=(), previous=None):
    """Appraise ``evidence`` against ``policy`` (:class:`~.policy.Policy`).

    ``nonce``: the raw qualifying data the verifier sent. ``previous``: the
    :class:`HostState` of the last successful appraisal (IMA incremental state, reset count).
    Never raises on bad evidence: malformed bytes are failures like any other.
    """
    previous = previous or HostState()
    required = required_pcrs(policy, hash_alg, base_pcrs)
    try:
        verified = tpm_quote.verify_quote(evidence.ak_public, evidence.attest,
                                          evidence.signature, nonce, evidence.pcr_values,
                                          required)
    except errors.TPMError as exc:
        check = getattr(exc, 'check', None) or 'parse'
        return Appraisal(failures=(Failure('quote_validation', '%s: %s' % (check, exc)),),
                         state=previous)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        return Appraisal(failures=(Failure('quote_validation', 'malformed evidence: %s' % exc),),
                         state=previous)

    clock = verified.attest.clock_info
    firmware = verified.attest.firmware_version
    pcrs = verified.pcr_values.get(hash_alg, {})
    failures = check_clock(previous, clock, firmware, policy.allow_unorderly_shutdown)
    rebooted = previous.reset_count is not None and clock.reset_count > previous.reset_count
    if rebooted or previous.reset_count is None or failures:
        start_offset, start_pcr = 0, None
    else:
        start_offset, start_pcr = previous.ima_offset, previous.ima_pcr

    # 3. PCR allowlist
    for index, accepted in sorted(policy.tpm_policy.pcrs.items()):
        value = pcrs.get(index)
        if value is None:
            failures.append(Failure('pcr_validation.missing_pcr_%d' % index,
                                    'PCR %d is in the allowlist but was not quoted' % index))
        elif value.hex() not in accepted:
            failures.append(Failure('pcr_validation.invalid_pcr_%d' % index,
                                    'PCR %d = %s is not in the allowlist' % (index, value.hex())))

    # 4. measured boot (cached: a host sends the same log every round until it reboots)
    if policy.mb_engine is not None or evidence.uefi_log:
        failures.extend(_appraise_uefi_cached(
            bytes(evidence.uefi_log or b''), policy.mb_engine, policy.mb_refstate,
            tuple(sorted((i, v) for i, v in pcrs.items() if i != IMA_PCR)), hash_alg))

    # 5. IMA
    if any(f.check in CLOCK_CHECKS for f in failures):
        # remember the last good clock, not the rolled-back one
        state = dataclasses.replace(previous, ima_offset=start_offset, ima_pcr=start_pcr)
    else:
        state = HostState(reset_count=clock.reset_count, ima_offset=start_offset,
                          ima_pcr=start_pcr, restart_count=clock.restart_count,
                          clock=clock.clock, safe=clock.safe, firmware_version=firmware)
    if policy.runtime_policy is not None:
        ima_failures, state = _appraise_ima(evidence, policy.runtime_policy, verified.pcr_values,
                                            hash_alg, state)
        failures.extend(ima_failures)
    return Appraisal(failures=tuple(_limit(failures)), reset_count=clock.reset_count,
                     restart_count=clock.restart_count, clock=clock.clock, rebooted=rebooted,
                     state=state)


CLOCK_CHECKS = frozenset(['quote.reset_count', 'quote.restart_count', 'quote.clock',
                          'quote.firmware_version', 'quote.clock_safe'])


def check_clock(previous, clock, firmware_version, allow_unorderly_shutdown=False):
    """The TPM clock checks (module docstring, step 2) of one quote as [Failure].

    ``previous``: HostState; ``clock``: the quote's TPMS_CLOCK_INFO.
    """
    failures = []
    if previous.reset_count is not None:
        if clock.reset_count < previous.reset_count:
            failures.append(Failure('quote.reset_count', 'resetCount went back from %d to %d: '
                                    'a rolled-back, cleared or different TPM (re-enrol the '
                                    'host if its TPM was cleared or replaced)'
                                    % (previous.reset_count, clock.reset_count)))
        elif clock.reset_count == previous.reset_count:
            if previous.restart_count is not None and \
                    clock.restart_count < previous.restart_count:
                failures.append(Failure(
                    'quote.restart_count', 'restartCount went back from %d to %d within one '
                    'boot (resetCount %d): a rolled-back TPM state'
                    % (previous.restart_count, clock.restart_count, clock.reset_count)))
            if previous.clock is not None and clock.clock < previous.clock:
                failures.append(Failure(
                    'quote.clock', 'the TPM clock went back from %d to %d ms within one boot '
                    '(resetCount %d): a rolled-back or replayed TPM state'
                    % (previous.clock, clock.clock, clock.reset_count)))
            if previous.firmware_version is not None and \
                    firmware_version != previous.firmware_version:
                failures.append(Failure(
                    'quote.firmware_version', 'firmwareVersion changed from 0x%x to 0x%x '
                    'without a TPM reset (resetCount %d): not the same TPM firmware'
                    % (previous.firmware_version, firmware_version, clock.reset_count)))
        else:
            if previous.clock is not None and clock.safe and clock.clock < previous.clock:
                failures.append(Failure(
                    'quote.clock', 'the TPM clock went back from %d to %d ms across a reboot '
                    'although the TPM reports it safe (no higher value reported before): a '
                    'rolled-back or different TPM' % (previous.clock, clock.clock)))
            if previous.firmware_version is not None and \
                    firmware_version < previous.firmware_version:
                failures.append(Failure(
                    'quote.firmware_version', 'firmwareVersion went back from 0x%x to 0x%x: '
                    'a TPM firmware downgrade' % (previous.firmware_version,
                                                  firmware_version)))
    if not clock.safe and not allow_unorderly_shutdown:
        failures.append(Failure(
            'quote.clock_safe', 'clockInfo.safe is NO: the TPM was not shut down orderly '
            '(power loss or crash), so its clock may have gone back; it turns YES once the '
            'TPM has saved a clock beyond every value it reported (allow_unorderly_shutdown '
            'in the policy accepts such a TPM)'))
    return failures


def _limit(failures):
    if len(failures) <= MAX_LISTED_FAILURES:
        return failures
    rest = failures[MAX_LISTED_FAILURES:]
    return failures[:MAX_LISTED_FAILURES] + [Failure(
        'more', '%d further failures (%s)' % (len(rest), ', '.join(sorted({f.check
                                                                          for f in rest}))))]


@functools.lru_cache(maxsize=1024)
def _appraise_uefi_cached(data, engine, refstate, pcr_items, hash_alg):
    """_appraise_uefi on hashable arguments; the result depends on nothing else."""
    return tuple(_appraise_uefi(data, engine, refstate, dict(pcr_items), hash_alg))


def _appraise_uefi(data, engine, refstate, pcrs, hash_alg):
    if not data:
        return [Failure('measured_boot.missing_log', 'the policy has a measured-boot engine '
                        '(%s) but the agent sent no UEFI event log' % engine)]
    try:
        log = eventlog.parse_eventlog(data)
        replayed = eventlog.replay(log)
    except errors.EventLogError as exc:
        return [Failure('measured_boot.parse', str(exc))]
    failures = []
    bank = replayed.get(hash_alg)
    if bank is None:
        return [Failure('measured_boot.bank', 'the event log has no %s digests' % hash_alg)]
    for index in sorted(bank):
        if index in pcrs and pcrs[index] != bank[index]:
            failures.append(Failure('measured_boot.invalid_pcr_%d' % index,
                                    'PCR %d replayed from the event log is %s, the quote says %s'
                                    % (index, bank[index].hex(), pcrs[index].hex())))
    # A PCR the engine reads and the log never touches must still be at its reset value:
    # otherwise something was measured there that the log leaves out (a whole PCR 14 of
    # MOK lists dropped from the log, with a reference state that lists none, would show
    # the engine nothing to refuse). Keylime compares these PCRs with 0 as well.
    for index in measured_boot.ENGINE_PCRS.get(engine, ()):
        value = pcrs.get(index)
        if value is not None and index not in bank and value != bytes(len(value)):
            failures.append(Failure('measured_boot.invalid_pcr_%d' % index,
                                    'PCR %d is %s but the event log records no measurement '
                                    'of it: what was measured there is not in the log'
                                    % (index, value.hex())))
    # The engine only reads events of PCRs the quote vouches for (it requires them, see
    # required_pcrs); every failed check is listed, as Keylime does, also when the log does
    # not reproduce the PCRs (such a log proves nothing anyway).
    if engine is not None:
        failures.extend(Failure(check, message) for check, message in
                        measured_boot.appraise(log, refstate, engine, hash_alg))
    return failures


@functools.lru_cache(maxsize=None)
def _hash_constructor(name):
    """hashlib's own constructor for ``name`` (hashlib.new looks it up on every call)."""
    constructor = getattr(hashlib, name, None)
    if constructor is None or name not in hashlib.algorithms_guaranteed:
        return functools.partial(hashlib.new, name)
    return constructor


def _appraise_ima(evidence, runtime, pcr_values, hash_alg, state):
    """IMA list against the runtime policy and the quoted PCR 10 (incremental)."""
    failures = []
    quoted = pcr_values.get(hash_alg, {}).get(IMA_PCR)
    if evidence.ima_offset != state.ima_offset:
        # The agent answered for another offset than the one we can continue from (after a
        # reboot, or a lost round): the caller asks again from ``state.ima_offset``.
        return [Failure('ima.offset', 'entries start at %d, the verifier continues from %d'
                        % (evidence.ima_offset, state.ima_offset))], state
    try:
        entries = ima.parse_ima_log(evidence.ima_log or b'')
    except errors.ImaLogError as exc:
        return [Failure('ima.parse', 'entry %d on: %s' % (evidence.ima_offset, exc))], state
    size = len(quoted) if quoted is not None else hashlib.new(hash_alg).digest_size
    running = state.ima_pcr if state.ima_pcr is not None else bytes(size)
    matched = 0 if running == quoted else None
    aggregates = {}
    # template data once per entry: both the bank's extend value and the SHA-1 check use it
    # (ima.template_hashes / template_hash_matches would build it twice)
    hash_ok = []
    new_hash = _hash_constructor(hash_alg)
    sha1 = hashlib.sha1
    template_data = ima.template_data
    for position, entry in enumerate(entries, 1):
        if entry.is_violation:
            digest = ima.template_hashes(entry, (hash_alg,))[hash_alg]
            hash_ok.append(True)
        else:
            data = template_data(entry)
            digest = (entry.template_hash if hash_alg == 'sha1'
                      else new_hash(data).digest())
            hash_ok.append(sha1(data).digest() == entry.template_hash)
        if entry.pcr == IMA_PCR:
            running = new_hash(running + digest).digest()
            if running == quoted:
                matched = position
    if matched is None:
        failures.append(Failure('ima.pcr_mismatch', 'replaying %d IMA entries from entry %d '
                                'does not give the quoted PCR %d'
                                % (len(entries), evidence.ima_offset, IMA_PCR)))
        appraised = entries
    else:
        appraised = entries[:matched]
    for position, entry in enumerate(appraised):
        number = evidence.ima_offset + entry.line
        if not hash_ok[position]:
            failures.append(Failure('ima.validation.ima_hash', 'entry %d (%s): template hash '
                                    'does not match its data' % (number, entry.path)))
            continue
        if entry.is_violation or entry.template_name == 'ima-buf':
            continue
        if entry.path == 'boot_aggregate':
            algo = entry.digest_algorithm
            if algo not in aggregates:
                aggregates[algo] = boot_aggregate(pcr_values, algo)
            digest = entry.file_digest.hex()
            if digest not in runtime.boot_aggregates() and (
                    aggregates[algo] is None or entry.file_digest != aggregates[algo]):
                failures.append(Failure('ima.validation.boot_aggregate', 'entry %d: '
                                        'boot_aggregate %s matches neither the policy nor '
                                        'the quoted PCRs 0-9' % (number, digest)))
            continue
        if runtime.excluded(entry.path):
            continue
        accepted = runtime.digests.get(entry.path)
        if accepted is None:
            failures.append(Failure('ima.validation.%s.not_in_allowlist' % entry.template_name,
                                    'entry %d: %s is not in the runtime policy'
                                    % (number, entry.path)))
        elif entry.file_digest.hex() not in accepted:
            failures.append(Failure('ima.validation.%s.runtime_policy_hash' % entry.template_name,
                                    'entry %d: %s has digest %s:%s, not an allowed one'
                                    % (number, entry.path, entry.digest_algorithm,
                                       entry.file_digest.hex())))
    if matched is not None and not failures:
        state = dataclasses.replace(state, ima_offset=evidence.ima_offset + matched,
                                    ima_pcr=quoted)
    return failures, state
