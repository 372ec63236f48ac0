"""Full appraisal (quote + UEFI log + IMA log vs policy) per second vs Keylime's check_quote.

Identical inputs for both: an swtpm with an ECC P-256 attestation key replays a real UEFI
event log (Keylime's SecureBoot test log from ../shared/data/eventlogs, 98 events) and an
IMA list (boot_aggregate + N files), then quotes PCRs 0-15 with an ASCII nonce. Policies:
Keylime's measured-boot reference state for that log (``example`` engine) and a runtime
policy covering the IMA list. This project: :func:`appraisal.appraise` with the policy
parsed once (as the worker caches it). Baseline: Keylime 7.14.3
``Tpm().check_quote`` (which re-reads the policy and runs ``tpm2_eventlog`` per call).
Both must reach the same verdict (trusted) before timing. Ours is timed cold (the
measured-boot result cache cleared every call: a log never seen before), with the policy
parsed every time, and in steady state (the host's boot log unchanged since the last round,
what a worker sees between reboots). Prints checks per second, the ratios, cost per check.

Issue 14 point 6: beside each rate, the CPU time per check (this process and its children:
Keylime runs ``tpm2_eventlog`` per call), which does not depend on the other work on the
machine, and the CPU ratio; every row runs twice, on the machine as it is and with a fixed
background load of two busy processes (goal 10x Keylime under that load too). The load
average is printed with each table.

Issue 12 (no regression beyond 5 %): ``APPRAISAL_BENCH_BASE=/path/to/an/older/checkout``
adds a same-run comparison with that checkout's appraisal (the commit before 1640392 is
the code before issue 12). Two worker processes, one importing each checkout's
``tclouds_openstack``, appraise the identical evidence with their own parse of the same
policies; the cold and the steady-state rows are measured alternately (base, now, base,
now ...), each as the best of several runs of CPU time (``time.process_time``) per check,
and printed as before / now / ratio with the load average.
"""
import contextlib
import hashlib
import json
import os
import pathlib
import resource
import secrets
import string
import subprocess
import sys
import tempfile
import time

from benchmarks import load
from tclouds_openstack.attestation.agent import simulated_boot
from tclouds_openstack.attestation.agent import swtpm
from tclouds_openstack.attestation.agent import tpm_device
from tclouds_openstack.attestation import appraisal
from tclouds_openstack.attestation.appraisal import core
from tclouds_openstack.attestation.appraisal import policy as pol
from tclouds_openstack.attestation import keylime_oracle
from tclouds_openstack.tpm import eventlog
from tclouds_openstack.tpm import ima

SHARED = pathlib.Path(os.environ.get('TCLOUDS_SHARED_DATA',
                                     pathlib.Path(__file__).resolve().parents[2]
                                     / 'shared' / 'data'))
SELECTION = {'sha256': list(range(16))}
REPO = pathlib.Path(__file__).resolve().parents[1]
BASE_ENV = 'APPRAISAL_BENCH_BASE'

# A worker appraising with the tclouds_openstack of the checkout it runs in (its cwd, first
# on sys.path): one JSON line of inputs, then one line per measurement request.
_WORKER = r"""
import json, os, sys, time
sys.path.insert(0, os.getcwd())
from tclouds_openstack.attestation import appraisal
from tclouds_openstack.attestation.appraisal import core
from tclouds_openstack.attestation.appraisal import policy as pol
assert core.__file__.startswith(os.getcwd()), core.__file__
case = json.loads(sys.stdin.readline())
h = bytes.fromhex
evidence = appraisal.Evidence(
    ak_public=h(case['ak_public']), attest=h(case['attest']), signature=h(case['signature']),
    pcr_values={bank: {int(i): h(v) for i, v in values.items()}
                for bank, values in case['pcr_values'].items()},
    uefi_log=h(case['uefi_log']), ima_log=case['ima_log'])
nonce = h(case['nonce'])
policy = pol.parse_policy('bench', runtime_policy=case['runtime'], mb_refstate=case['refstate'])
verdict = appraisal.appraise(evidence, policy, nonce)
assert verdict.trusted, verdict.reasons


def cold():
    core._appraise_uefi_cached.cache_clear()
    return appraisal.appraise(evidence, policy, nonce)


def steady():
    return appraisal.appraise(evidence, policy, nonce)


rows = {'cold': cold, 'steady': steady}
print(json.dumps({'ready': core.__file__}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    fn = rows[request['row']]
    best = None
    for _ in range(request['repeat']):
        start = time.process_time()
        for _ in range(request['checks']):
            fn()
        spent = (time.process_time() - start) / request['checks']
        best = spent if best is None else min(best, spent)
    print(json.dumps({'ms': 1000 * best}), flush=True)
"""


class _Worker:
    """One checkout's appraisal in its own process (see _WORKER)."""

    def __init__(self, root, case):
        self.root = str(root)
        self.proc = subprocess.Popen([sys.executable, '-c', _WORKER], cwd=self.root,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=dict(os.environ, PYTHONPATH=''))
        self.proc.stdin.write(json.dumps(case) + '\n')
        self.proc.stdin.flush()
        self.module = self._answer()['ready']

    def _answer(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise RuntimeError('appraisal worker for %s failed (exit %s)'
                               % (self.root, self.proc.returncode))
        return json.loads(line)

    def measure(self, row, checks, repeat):
        """Best CPU ms per check of ``row`` over ``repeat`` runs of ``checks`` checks."""
        self.proc.stdin.write(json.dumps({'row': row, 'checks': checks,
                                          'repeat': repeat}) + '\n')
        self.proc.stdin.flush()
        return self._answer()['ms']

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def _case_json(nonce, evidence, runtime, refstate):
    return {'nonce': nonce.hex(), 'ak_public': evidence.ak_public.hex(),
            'attest': evidence.attest.hex(), 'signature': evidence.signature.hex(),
            'pcr_values': {bank: {str(i): v.hex() for i, v in values.items()}
                           for bank, values in evidence.pcr_values.items()},
            'uefi_log': bytes(evidence.uefi_log).hex(), 'ima_log': evidence.ima_log,
            'runtime': runtime, 'refstate': refstate}


def compare_with_base(base, nonce, evidence, runtime, refstate, quick=False):
    """Issue 12's same-run rows: {row: ([before ms], [now ms])}, printed with the ratios."""
    case = _case_json(nonce, evidence, runtime, refstate)
    rounds, checks, repeat = (2, 20, 3) if quick else (5, 100, 5)
    workers = [_Worker(base, case), _Worker(REPO, case)]
    figures = {'cold': ([], []), 'steady': ([], [])}
    before = load.loadavg()
    try:
        for _ in range(rounds):
            for row, (then, now) in figures.items():
                then.append(workers[0].measure(row, checks, repeat))
                now.append(workers[1].measure(row, checks, repeat))
    finally:
        for worker in workers:
            worker.close()
    print('--- issue 12: same run against %s (%s), CPU ms per check, best of %d runs of %d '
          'checks, %d alternations (load average before %s, after %s)'
          % (base, load.describe_checkout(base), repeat, checks, rounds, before, load.loadavg()))
    print('  %-46s %10s %10s %8s   %s' % ('', 'before', 'now', 'ratio', 'each alternation'))
    labels = {'cold': 'cold (a boot log never seen), policy once',
              'steady': 'steady state (boot log seen last round)'}
    for row, (then, now) in figures.items():
        ratio = min(now) / min(then)
        print('  %-46s %10.3f %10.3f %7.3fx   %s' % (
            labels[row], min(then), min(now), ratio,
            ' '.join('%.2f/%.2f' % pair for pair in zip(then, now))))
    then = min(figures['cold'][0]) - min(figures['steady'][0])
    now = min(figures['cold'][1]) - min(figures['steady'][1])
    print('  %-46s %10.3f %10.3f %7.3fx'
          % ('  of which the boot log (cold - steady)', then, now,
             now / then if then > 0 else float('nan')))
    print('  (ratio = now / before of the best figures; goal <= 1.05x)')
    return figures


def _evidence(device, ak, log, entries):
    nonce = ''.join(secrets.choice(string.ascii_letters) for _ in range(20)).encode()
    attest, signature, values = device.quote(ak, nonce, SELECTION)
    return nonce, appraisal.Evidence(ak_public=ak.public, attest=attest, signature=signature,
                                     pcr_values=values, uefi_log=log,
                                     ima_log=ima.marshal(entries))


def _cpu():
    """CPU seconds of this process and its waited-for children (Keylime's subprocesses)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _measure(fn, seconds):
    """(checks per second by wall clock, CPU ms per check)."""
    count, start, cpu = 0, time.perf_counter(), _cpu()
    while True:
        fn()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed, 1000 * (_cpu() - cpu) / count


def _rate(fn, seconds):
    return _measure(fn, seconds)[0]


def build_case(workdir, files=None):
    """(nonce, evidence, runtime policy, refstate) from an swtpm that replayed the real log.

    ``files`` ({path: contents}) are the IMA-measured files (default: simulated_boot's).
    """
    data = SHARED / 'eventlogs'
    log = (data / 'binary_bios_measurements-secureboot').read_bytes()
    refstate = json.loads((data / 'example_mb_refstate.json').read_text())
    parsed = eventlog.parse_eventlog(log)
    measured = simulated_boot.ima_measurements(eventlog.replay(parsed), files=files)
    runtime = pol.create_runtime_policy(measured.entries)
    with swtpm.Swtpm(os.path.join(workdir, 'bench-tpm')) as tpm:
        with tpm_device.TPMDevice(tpm.tcti) as device:
            for event in parsed.events[1:]:
                if event.event_type != eventlog.EV_NO_ACTION:
                    device.pcr_extend(event.pcr_index, event.digests)
            for pcr, digests in measured.extends:
                device.pcr_extend(pcr, {b: d for b, d in digests.items() if b == 'sha256'})
            ak = device.create_ak('ecc')
            nonce, evidence = _evidence(device, ak, log, measured.entries)
    return nonce, evidence, runtime, refstate


def keylime_setup(workdir, nonce, evidence, runtime, refstate):
    """None when Keylime accepts the case, else why the baseline cannot run."""
    try:
        keylime_oracle.setup(str(SHARED / 'keylime-conf'), os.path.join(workdir, 'keylime'))
    except keylime_oracle.KeylimeUnavailable as e:
        return str(e)
    passed, ids = keylime_oracle.check(evidence, nonce, {}, runtime, refstate)
    if not passed:
        return 'keylime did not accept the evidence: %s' % (ids,)
    return None


def keylime_rate(workdir, nonce, evidence, runtime, refstate, seconds):
    """Keylime check_quote per second on the case (None, reason when Keylime is missing)."""
    why = keylime_setup(workdir, nonce, evidence, runtime, refstate)
    if why is not None:
        return None, why
    return _rate(lambda: keylime_oracle.check(evidence, nonce, {}, runtime, refstate),
                 seconds), None


def _table(title, rows, theirs):
    before = rows.pop('load')
    print('--- %s (load average before %s, after %s)' % (title, before, load.loadavg()))
    print('  %-46s %12s %10s %12s %9s %9s'
          % ('', 'checks/s', 'ms/check', 'CPU ms/check', 'ratio', 'CPU ratio'))
    for name, (rate, cpu) in rows.items():
        ratio = cpu_ratio = ''
        if theirs is not None and name != 'keylime':
            ratio = '%.1fx' % (rate / theirs[0])
            cpu_ratio = '%.1fx' % (theirs[1] / cpu)
        label = {'cold': 'tclouds appraise (policy parsed once)',
                 'parse': 'tclouds appraise (policy parsed every time)',
                 'steady': 'tclouds appraise (boot log seen last round)',
                 'keylime': 'keylime 7.14.3 check_quote (baseline)'}[name]
        print('  %-46s %12.1f %10.2f %12.2f %9s %9s'
              % (label, rate, 1000 / rate, cpu, ratio, cpu_ratio))
    if theirs is not None:
        cold = rows['cold']
        goal = cold[0] / theirs[0]
        print('  goal >= 10x Keylime (policy parsed once): %.1fx by wall clock %s, %.1fx by CPU '
              'time' % (goal, 'met' if goal >= 10 else 'NOT MET', theirs[1] / cold[1]))


def run(quick=False):
    if not (SHARED / 'eventlogs').is_dir():
        print('skipped: %s not present (real event logs needed)' % (SHARED / 'eventlogs'))
        return
    files = {'/usr/bin/tool%d' % i: b'binary %d' % i for i in range(50 if quick else 200)}
    seconds = 1.0 if quick else 5.0
    with tempfile.TemporaryDirectory() as tmp:
        nonce, evidence, runtime, refstate = build_case(tmp, files)
        policy = pol.parse_policy('bench', runtime_policy=runtime, mb_refstate=refstate)
        ours = appraisal.appraise(evidence, policy, nonce)
        assert ours.trusted, ours.reasons
        cache = core._appraise_uefi_cached

        def cold():
            cache.cache_clear()     # a boot log never seen before: full parse and replay
            return appraisal.appraise(evidence, policy, nonce)

        def cold_parse():
            cache.cache_clear()
            return appraisal.appraise(evidence, pol.parse_policy(
                'bench', runtime_policy=runtime, mb_refstate=refstate), nonce)
        events = len(eventlog.parse_eventlog(evidence.uefi_log).events)
        print('inputs: %d UEFI events, %d IMA entries, ECC P-256 AK quote over 16 PCRs; '
              'machine: %s' % (events, len(files) + 1, load.machine()))
        why = keylime_setup(tmp, nonce, evidence, runtime, refstate)
        if why is not None:
            print('baseline skipped: %s' % why)

        def keylime():
            return keylime_oracle.check(evidence, nonce, {}, runtime, refstate)
        base = os.environ.get(BASE_ENV)
        if base:
            compare_with_base(base, nonce, evidence, runtime, refstate, quick)
        for background in (False, True):
            context = load.background_load() if background else contextlib.nullcontext()
            with context:
                rows = {'load': load.loadavg()}
                rows['cold'] = _measure(cold, seconds)
                rows['parse'] = _measure(cold_parse, seconds)
                rows['steady'] = _measure(
                    lambda: appraisal.appraise(evidence, policy, nonce), seconds)
                theirs = None
                if why is None:
                    theirs = rows['keylime'] = _measure(keylime, seconds)
                _table('with two busy processes (background load)' if background
                       else 'the machine as it is', rows, theirs)
        digest = hashlib.sha256(json.dumps(runtime).encode()).hexdigest()[:12]
        print('(same evidence and policies for both; runtime policy %s)' % digest)
