"""Fleet run: N swtpm hosts (ECC AKs) attested by verifier workers over RabbitMQ and MariaDB.

Issue 14 point 2: 1,000 swtpm-backed hosts (``FLEET_BENCH_HOSTS``, default 1000; ``--quick``
20) at an interval they can sustain on this machine (``FLEET_BENCH_INTERVAL``, default 10 s;
``--quick`` 2 s), on the broker ``FLEET_BENCH_TRANSPORT_URL`` (see ``TRANSPORT_URL``).
Goals: <= 2 ms of verifier CPU per attestation (>= 1,000 hosts per core at 2 s), p99
verdict age < 2 intervals, and the same with two workers sharing the fleet.

The hosts run in child processes (at most 250 each): one swtpm each (bare, no EK
certificate, to keep start-up short; registration still does MakeCredential /
ActivateCredential) and one agent each, an oslo.messaging RPC server on RabbitMQ. Each
host booted Keylime's real SecureBoot UEFI log (../shared/data/eventlogs, 98 events; the
simulated boot when absent) and an IMA list. Hosts now register as their operator binds
them: each registers unenrolled and awaits approval, and this process (the registrar)
approves every EK, as ``openstack attestation host approve`` does. The verifier workers run
in their own processes (``concurrency`` ``FLEET_BENCH_CONCURRENCY``, unset: the service's
own sizing from the worker's share; MariaDB;
partitioned with tooz over Redis when Redis answers, as deployed), so their CPU time is
theirs alone (/proc), and each one reports where its CPU went: appraisal
(``appraisal.appraise``), database (the store calls of a round and of the scheduling
loop), messaging (the RPC call in the attesting thread; the reply consumer, heartbeats and
the scheduling loop's own work are in "other"), and by thread (/proc task CPU times: the
attesting threads, the reply poller, the scheduling loop, heartbeats).

Phase 1 is one worker, phase 2 two workers sharing the fleet; each samples, once every
host is trusted and after one settling interval, for a window: the age of every host's
verdict (p50/p99), the attestations done and the workers' CPU per attestation; the
projected hosts per core at the interval (interval / CPU per attestation).

Baseline (same run): Keylime 7.14.3 ``check_quote`` on the same kind of evidence (real log,
same refstate and IMA size, PCRs 0-15 as Keylime needs), appraisal only; its CPU per check
is its wall time per check (one thread, the machine as it is) and the ratio favours it.
"""
import collections
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchmarks import load

SHARED = pathlib.Path(os.environ.get('TCLOUDS_SHARED_DATA',
                                     pathlib.Path(__file__).resolve().parents[2]
                                     / 'shared' / 'data'))
ROOT = pathlib.Path(__file__).resolve().parents[1]
# simulated hosts per agent process (FLEET_BENCH_HOSTS_PER_PROCESS): each host is an
# oslo.messaging RPC server with its own threads, and 250 of them in one Python process
# thrash on its GIL when many quote requests arrive at once (two workers: 64 outstanding)
HOSTS_PER_PROCESS = int(os.environ.get('FLEET_BENCH_HOSTS_PER_PROCESS', '50'))
# Every simulated host's agent holds its own broker connection (as a real host does): a
# broker started with the usual 1024 open files (Erlang sizes its poll set from that limit
# at start) refuses connections (EMFILE) at about 900 hosts. For 1,000 hosts point this at
# a broker started with a higher limit (``ulimit -n 20000`` before it starts; see the
# performance page).
TRANSPORT_URL = os.environ.get('FLEET_BENCH_TRANSPORT_URL',
                               'rabbit://guest:guest@127.0.0.1:5672/')
GOAL_CPU_MS = 2.0
# a checkout (e.g. ``git archive`` of the commit before a change): its workers run after
# this tree's, on the same hosts, database and broker, and are printed beside them
BASE = os.environ.get('FLEET_BENCH_BASE')
# the workers' scheduling tick in seconds (unset: the service's own, min(1, interval / 10));
# the baseline's (default 0.1 s, what this benchmark ran it with before: its loop claims
# one host per statement and starts at most ``concurrency`` per tick)
TICK = float(os.environ['FLEET_BENCH_TICK']) if os.environ.get('FLEET_BENCH_TICK') else None
BASE_TICK = float(os.environ.get('FLEET_BENCH_BASE_TICK', '0.1'))
# a directory: each worker writes the CPU profile of its threads (yappi, pstats format) over
# the measured windows there, worker-N.pstat
PROFILE = os.environ.get('FLEET_BENCH_PROFILE')
# each worker's [attestation] concurrency (outstanding quote requests): a worker attests at
# most concurrency / round-trip time hosts per second, so 1,000 hosts at 10 s with answers
# taking ~1 s on this loaded machine need about 100. Unset: the service's default (sized by
# the worker from its share of the fleet; a checkout before that: 32)
CONCURRENCY = (int(os.environ['FLEET_BENCH_CONCURRENCY'])
               if os.environ.get('FLEET_BENCH_CONCURRENCY') else None)


def _cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _proc_cpu(pid):
    try:
        with open('/proc/%d/stat' % pid) as stream:
            fields = stream.read().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _thread_cpu():
    """{kind of thread: CPU seconds} of this process's live threads (/proc task stats).

    Kinds: the scheduling loop (``verifier-*``), the attesting threads (``attest*``), and
    the others by their target (oslo.messaging's reply poller ``poll``, its connections'
    heartbeat threads, tooz's heart ``_beat_forever_until_stopped``, ...).
    """
    tick = os.sysconf('SC_CLK_TCK')
    out = collections.Counter()
    for thread in threading.enumerate():
        name = thread.name
        if name.startswith('verifier-'):
            kind = 'loop'
        elif name.startswith('attest'):
            kind = 'attesting threads'
        elif name == 'MainThread':
            kind = 'main'
        else:
            target = getattr(thread, '_target', None)
            kind = getattr(target, '__name__', None) or name.split(' ')[-1].strip('()')
        try:
            with open('/proc/self/task/%d/stat' % thread.native_id) as stream:
                fields = stream.read().rsplit(')', 1)[1].split()
        except (OSError, TypeError):
            continue
        out[kind] += (int(fields[11]) + int(fields[12])) / tick
    return dict(out)


def _private_conf(spec, pool=None, **attestation):
    """The run's private configuration (topics, exchange) from the spec handed down.

    ``pool``: the broker connections a process may use at once for sending
    (``rpc_conn_pool_size``, default 30): threads beyond it wait for one (and log it).
    """
    from oslo_messaging._drivers import impl_rabbit
    from tclouds_openstack.attestation import simfleet
    conf = simfleet.make_conf(spec['connection'], **attestation)
    if pool:
        conf.register_opts(impl_rabbit.rabbit_opts, group='oslo_messaging_rabbit')
        conf.set_override('rpc_conn_pool_size', pool, group='oslo_messaging_rabbit')
    conf.set_override('transport_url', spec['transport_url'])
    conf.set_override('control_exchange', spec['control_exchange'])
    conf.set_override('agent_topic', spec['agent_topic'], group='attestation')
    conf.set_override('registrar_topic', spec['registrar_topic'], group='attestation')
    return conf


def agents_main():
    """Child process: start the hosts described on stdin, print 'ready', run until EOF."""
    import concurrent.futures
    from tclouds_openstack.attestation import simfleet
    spec = json.loads(sys.stdin.readline())
    uefi_log = None
    if spec.get('uefi_log'):
        with open(spec['uefi_log'], 'rb') as f:
            uefi_log = f.read()
    # one process stands for up to 250 hosts, each of which has its own connection: their
    # replies may all be sent at once
    conf = _private_conf(dict(spec, connection='sqlite://'), pool=min(64, spec['hosts']),
                         agent_key_algorithm='ecc')
    transport = simfleet.common_messaging.get_transport(conf)
    hosts = []
    lock = threading.Lock()

    def start(i):
        host = simfleet.SimHost('bench-%04d' % i, conf, transport, None, spec['workdir'],
                                uefi_log=uefi_log)
        with lock:
            hosts.append(host)
        host.agent.register()
        host.agent.start()
        return host
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(start, range(spec['first'], spec['first'] + spec['hosts'])))
        print('ready', flush=True)
        sys.stdin.read()
    finally:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda h: h.stop(), hosts))
        transport.cleanup()


def worker_main():
    """Child process: one verifier worker, instrumented; 'mark' on stdin prints its counters."""
    from tclouds_openstack.attestation import appraisal
    from tclouds_openstack.attestation.service import store as store_mod
    from tclouds_openstack.attestation.service import verifier as verifier_mod
    from tclouds_openstack.attestation import simfleet
    spec = json.loads(sys.stdin.readline())
    # each attesting thread may publish at once (``concurrency`` of them; connections are
    # opened as needed)
    fixed = {'concurrency': CONCURRENCY} if CONCURRENCY else {}
    conf = _private_conf(spec, pool=(CONCURRENCY or 256) + 8, interval=spec['interval'],
                         jitter=0.1, max_verdict_age=int(4 * spec['interval']),
                         rpc_timeout=10.0, require_ek_certificate=False,
                         coordination_url=spec.get('coordination_url'), **fixed)
    spent = collections.Counter()
    lock = threading.Lock()

    def timed(key, fn):
        def wrapper(*args, **kwargs):
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                with lock:
                    spent[key] += time.thread_time() - start
        return wrapper
    store = store_mod.Store(spec['connection'])
    # every store call of a round and of the loop (the baseline's and this code's)
    for name in ('get_host', 'save_verdict', 'claim', 'due_hosts', 'policy_version',
                 'get_policy', 'find_policy', 'claim_due', 'save_claimed_verdicts',
                 'renew_claims', 'count_active'):
        if hasattr(store, name):
            setattr(store, name, timed('database', getattr(store, name)))
    appraisal.appraise = timed('appraisal', appraisal.appraise)
    transport = simfleet.common_messaging.get_transport(conf)
    verifier = verifier_mod.Verifier(conf, store, transport, worker=spec['worker'])
    timed_quote = timed('messaging', verifier.agents.get_quote)

    def quote(*args, **kwargs):
        answer = timed_quote(*args, **kwargs)
        # agent API 1.1: an answer that names the held UEFI log instead of carrying it
        with lock:
            spent['answers'] += 1
            spent['log_unchanged'] += isinstance(answer, dict) and \
                'uefi_log_unchanged' in answer
        return answer
    verifier.agents.get_quote = quote
    # what the loop runs per claimed host (the baseline's loop ran attest(name))
    hook = 'attest_claimed' if hasattr(verifier, 'attest_claimed') else 'attest'
    real = getattr(verifier, hook)

    def counted(host):
        result = real(host)
        with lock:
            spent['attestations'] += 1
        return result
    setattr(verifier, hook, counted)
    profile = spec.get('profile')
    if profile:
        # every thread's CPU time by function (yappi; cProfile sees one thread only)
        import yappi
        yappi.set_clock_type('cpu')
    verifier.start(tick=spec.get('tick'))      # None: the service's own tick
    print('ready', flush=True)
    for line in sys.stdin:
        if line.strip() == 'mark':
            if profile and not yappi.is_running():
                yappi.start()
            with lock:
                out = dict(spent)
            out['cpu'] = _cpu()
            out['threads'] = _thread_cpu()
            out['concurrency'] = getattr(verifier, '_concurrency', None) or \
                conf.attestation.concurrency
            out['rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(json.dumps(out), flush=True)
    if profile:
        yappi.stop()
        yappi.get_func_stats().save(profile, type='pstat')
    verifier.stop()
    transport.cleanup()


def _database():
    try:
        import pymysql
        conn = pymysql.connect(host='127.0.0.1', user='root', password='')
        name = 'tclouds_bench_%d' % os.getpid()
        with conn.cursor() as cur:
            cur.execute('CREATE DATABASE %s' % name)
        conn.close()
        return 'mysql+pymysql://root:@127.0.0.1/%s' % name, name
    except Exception:
        return None, None


def _drop(name):
    import pymysql
    conn = pymysql.connect(host='127.0.0.1', user='root', password='')
    with conn.cursor() as cur:
        cur.execute('DROP DATABASE IF EXISTS %s' % name)
    conn.close()


def _redis_url(namespace):
    try:
        import redis
        redis.Redis(host='127.0.0.1', port=6379, socket_timeout=2).ping()
    except Exception:
        return None
    return 'redis://127.0.0.1:6379?timeout=5&namespace=%s' % namespace


def _child(entry, spec, base=None):
    """A child process running ``entry`` of this module.

    ``base``: a checkout whose code (the baseline) the child imports instead of this tree's.
    """
    if base is None:
        code = 'from benchmarks.bench_fleet import %s; %s()' % (entry, entry)
    else:
        code = ('import sys; sys.path.insert(0, %r); import importlib.util as u; '
                's = u.spec_from_file_location("bench_fleet_base_run", %r); '
                'm = u.module_from_spec(s); s.loader.exec_module(m); m.%s()'
                % (str(base), str(pathlib.Path(__file__).resolve()), entry))
    proc = subprocess.Popen(
        [sys.executable, '-c', code],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=str(base or ROOT))
    proc.stdin.write(json.dumps(spec) + '\n')
    proc.stdin.flush()
    return proc


def _ready(proc, what):
    line = proc.stdout.readline()
    if line.strip() != 'ready':
        raise RuntimeError('%s failed to start (exit %s)' % (what, proc.poll()))


def _mark(proc):
    proc.stdin.write('mark\n')
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def _close(procs):
    for proc in procs:
        try:
            proc.stdin.close()
        except OSError:
            pass
    for proc in procs:
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_trusted(store, n_hosts, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hosts = store.verdict_times()
        if len(hosts) == n_hosts and all(status == 'trusted' for _, status, _ in hosts):
            return
        time.sleep(1.0)
    bad = [(h.name, h.status, h.reasons[:80]) for h in store.list_hosts()
           if h.status != 'trusted']
    raise RuntimeError('fleet not trusted after %.0f s: %d hosts, e.g. %s'
                       % (timeout, len(bad), bad[:3]))


def _phase(store, workers, agents, n_hosts, interval, window):
    """Sample verdict ages and the workers' counters over ``window`` seconds."""
    from tclouds_openstack.attestation.service import store as store_mod
    _wait_trusted(store, n_hosts, max(180.0, 6 * interval + 0.2 * n_hosts))
    # after a change of workers: every verdict renewed since (bounded), then settle, so
    # the window starts with every host's schedule at the interval
    deadline = time.monotonic() + 3 * interval
    while time.monotonic() < deadline:
        now = store_mod.utcnow()
        if all(v is not None and (now - v).total_seconds() < 1.5 * interval
               for _, _, v in store.verdict_times()):
            break
        time.sleep(0.5)
    time.sleep(interval)
    before = [_mark(w) for w in workers]
    agents_before = sum(_proc_cpu(p.pid) for p in agents)
    load_before = load.loadavg()
    ages = []
    statuses = collections.Counter()
    wall0 = time.monotonic()
    while time.monotonic() - wall0 < window:
        now = store_mod.utcnow()
        for _, status, verified in store.verdict_times():
            statuses[status] += 1
            if verified is not None:
                ages.append((now - verified).total_seconds())
        time.sleep(0.5)
    wall = time.monotonic() - wall0
    after = [_mark(w) for w in workers]
    agents_cpu = sum(_proc_cpu(p.pid) for p in agents) - agents_before
    delta = collections.Counter()
    for b, a in zip(before, after):
        for key in ('attestations', 'cpu', 'appraisal', 'database', 'messaging', 'answers',
                    'log_unchanged'):
            delta[key] += a.get(key, 0) - b.get(key, 0)
    threads = collections.Counter()
    for b, a in zip(before, after):
        for kind, cpu in a.get('threads', {}).items():
            threads[kind] += cpu - b.get('threads', {}).get(kind, 0.0)
    ages.sort()
    return {'wall': wall, 'ages': ages, 'threads': threads, 'statuses': dict(statuses),
            'delta': delta,
            'agents_cpu': agents_cpu, 'load': (load_before, load.loadavg()),
            'rss_mib': max(a['rss_mib'] for a in after),
            'concurrency': [a.get('concurrency') for a in after],
            'per_worker': [a['attestations'] - b['attestations']
                           for b, a in zip(before, after)]}


def _report(title, result, n_hosts, interval):
    d = result['delta']
    done = max(d['attestations'], 1)
    ages = result['ages']
    ms = 1000 * d['cpu'] / done
    p99 = ages[int(0.99 * (len(ages) - 1))] if ages else float('nan')
    other = d['cpu'] - d['appraisal'] - d['database'] - d['messaging']
    print('--- %s (load average %s -> %s)' % (title, *result['load']), flush=True)
    print('  window %.0f s: %d attestations (%.1f/s, expected %.1f/s; per worker %s, '
          'concurrency %s), statuses sampled %s' % (
              result['wall'], d['attestations'], d['attestations'] / result['wall'],
              n_hosts / interval, result['per_worker'], result['concurrency'],
              result['statuses']))
    print('  verdict age: p50 %.2f s, p99 %.2f s, max %.2f s (goal p99 < %.0f s: %s)'
          % (statistics.median(ages), p99, ages[-1], 2 * interval,
             'met' if p99 < 2 * interval else 'NOT MET'))
    print('  verifier CPU per attestation: %.2f ms (goal <= %.1f ms: %s); workers %.0f%% of a '
          'core, peak RSS %.0f MiB' % (ms, GOAL_CPU_MS, 'met' if ms <= GOAL_CPU_MS
                                       else 'NOT MET', 100 * d['cpu'] / result['wall'],
                                       result['rss_mib']))
    print('    where it goes, ms per attestation: appraisal %.2f, database %.2f, messaging '
          '(RPC call) %.2f, other (reply consumer, heartbeats, scheduling loop) %.2f'
          % tuple(1000 * v / done for v in (d['appraisal'], d['database'], d['messaging'],
                                            other)))
    print('    by thread, ms per attestation: %s' % ', '.join(
        '%s %.2f' % (kind, 1000 * cpu / done) for kind, cpu in
        sorted(result['threads'].items(), key=lambda kv: -kv[1]) if cpu > 0))
    print('  answers without the UEFI log (agent API 1.1, "unchanged"): %d of %d'
          % (d['log_unchanged'], d['answers']))
    print('  projected hosts per core: %.0f at this %.0f s interval, %.0f at 2 s; agents '
          '(hosts\' side) %.2f ms CPU per attestation' % (
              interval * done / max(d['cpu'], 1e-9), interval,
              2.0 * done / max(d['cpu'], 1e-9), 1000 * result['agents_cpu'] / done))
    return {'cpu': ms, 'appraisal': 1000 * d['appraisal'] / done,
            'database': 1000 * d['database'] / done, 'messaging': 1000 * d['messaging'] / done,
            'other': 1000 * other / done, 'p99': p99, 'rate': d['attestations'] / result['wall'],
            'load': result['load'][1]}


def _compare(rows):
    """This code beside the baseline checkout, per component (ms per attestation)."""
    keys = ('cpu', 'appraisal', 'database', 'messaging', 'other', 'p99', 'rate')
    print('--- against the baseline checkout (%s), same run' % BASE)
    print('  %-26s %s' % ('ms per attestation', ''.join('%12s' % k for k in keys)))
    for title, new, old in rows:
        print('  %-26s %s' % ('this code, ' + title, ''.join('%12.2f' % new[k] for k in keys)))
        print('  %-26s %s' % ('baseline, ' + title, ''.join('%12.2f' % old[k] for k in keys)))
        print('  %-26s %s' % ('ratio baseline / this', ''.join(
            '%11.1fx' % (old[k] / new[k]) if new[k] > 0 else '%12s' % '-' for k in keys)))


def run(quick=False):
    from benchmarks import bench_appraisal
    from tclouds_openstack.attestation import simfleet
    real_log = SHARED / 'eventlogs' / 'binary_bios_measurements-secureboot'
    refstate_path = SHARED / 'eventlogs' / 'example_mb_refstate.json'
    uefi_log = real_log.read_bytes() if real_log.exists() else None
    refstate = json.loads(refstate_path.read_text()) if uefi_log else None
    n_hosts = 20 if quick else int(os.environ.get('FLEET_BENCH_HOSTS', '1000'))
    interval = 2.0 if quick else float(os.environ.get('FLEET_BENCH_INTERVAL', '10'))
    window = 10.0 if quick else max(60.0, 4 * interval)
    print('machine: %s; load average %s' % (load.machine(), load.loadavg()))
    url, dbname = _database()
    agents, workers = [], []
    with tempfile.TemporaryDirectory() as workdir:
        url = url or 'sqlite:///%s' % os.path.join(workdir, 'bench.sqlite')
        conf = simfleet.make_conf(url, require_ek_certificate=False)
        conf.set_override('transport_url', TRANSPORT_URL)
        fleet = simfleet.Fleet(conf, workdir, None)
        spec = {'connection': url, 'transport_url': TRANSPORT_URL,
                'control_exchange': conf.control_exchange,
                'agent_topic': conf.attestation.agent_topic,
                'registrar_topic': conf.attestation.registrar_topic,
                'interval': interval,
                'coordination_url': _redis_url('bench%d' % os.getpid())
                if os.environ.get('FLEET_BENCH_COORDINATION', '1') != '0' else None}
        try:
            fleet.start_registrar(None, require_ek_certificate=False)
            documents = simfleet.golden_policy_documents(uefi_log, refstate)
            fleet.store.create_policy('default', **{k: json.dumps(v) for k, v in
                                                    documents.items()})
            t0 = time.monotonic()
            for first in range(0, n_hosts, HOSTS_PER_PROCESS):
                agents.append(_child('agents_main', dict(
                    spec, hosts=min(HOSTS_PER_PROCESS, n_hosts - first), first=first,
                    workdir=workdir, uefi_log=str(real_log) if uefi_log else None)))
            for proc in agents:
                _ready(proc, 'agent process')
            started = time.monotonic() - t0
            # unenrolled registrations await the operator's approval of their EKs
            awaiting = sum(h.registration == 'awaiting_approval'
                           for h in fleet.store.list_hosts())
            fleet.approve_all()
            print('hosts: %d swtpm + agents (ECC AKs) in %d processes, started and registered '
                  'in %.0f s (%d awaited approval, approved), interval %.0f s, worker '
                  'concurrency %s, database %s, workers partitioned %s' % (
                      n_hosts, len(agents), started, awaiting, interval,
                      CONCURRENCY or 'the service\'s default',
                      url.split(':')[0],
                      'with tooz/Redis' if spec['coordination_url'] else
                      'by claims only (no Redis)'))
            split = {}
            for code in (None, BASE) if BASE else (None,):
                for count in (1, 2):
                    while len(workers) < count:
                        name = 'worker-%d' % (len(workers) + 1)
                        workers.append(_child('worker_main', dict(
                            spec, worker=name, tick=BASE_TICK if code else TICK,
                            coordination_url=spec['coordination_url'] and _redis_url(
                                'bench%d%s' % (os.getpid(), 'base' if code else '')),
                            profile=(os.path.join(PROFILE, '%s%s.pstat' % (
                                'base-' if code else '', name)) if PROFILE else None)),
                            base=code))
                        _ready(workers[-1], 'verifier worker')
                    title = '%s%d worker%s' % ('baseline checkout, ' if code else '', count,
                                               's sharing the fleet' if count > 1 else '')
                    try:
                        result = _phase(fleet.store, workers, agents, n_hosts, interval,
                                        window)
                    except RuntimeError as e:       # printed, and the next phase runs
                        print('--- %s (load average %s): %s' % (title, load.loadavg(), e),
                              flush=True)
                        continue
                    # printed at once: a later phase that fails loses nothing
                    split[code, count] = _report(title, result, n_hosts, interval)
                _close(workers)
                workers = []
        finally:
            _close(workers)
            _close(agents)
            fleet.close()
        ms = [split[None, count]['cpu'] for count in (1, 2) if (None, count) in split]
        if BASE:
            _compare([('%d worker%s' % (c, 's' if c > 1 else ''), split[None, c],
                       split[BASE, c]) for c in (1, 2)
                      if (None, c) in split and (BASE, c) in split])
        if uefi_log is not None:
            case = bench_appraisal.build_case(workdir)
            rate, why = bench_appraisal.keylime_rate(workdir, *case,
                                                     seconds=2.0 if quick else 5.0)
        else:
            rate, why = None, 'no real UEFI log for Keylime'
    if dbname:
        _drop(dbname)
    if rate is None:
        print('baseline skipped: %s' % why)
        return
    print('baseline: keylime 7.14.3 check_quote %.1f checks/s = %.1f ms per check (appraisal '
          'only) -> at most %.0f hosts per core at 2 s' % (rate, 1000 / rate, 2 * rate))
    print('ratio keylime ms per check / tclouds verifier CPU per attestation: %s'
          % ', '.join('%.1fx (%d worker%s)' % (1000 / rate / m, i + 1, 's' if i else '')
                      for i, m in enumerate(ms)))
