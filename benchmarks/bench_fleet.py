"""Fleet run: N swtpm hosts (ECC AKs) attested every 2 s by one worker over RabbitMQ.

The hosts run in a child process: one swtpm each (bare, no EK certificate, to keep start-up
short; registration still does MakeCredential/ActivateCredential) and one agent each, an
oslo.messaging RPC server on RabbitMQ. Each host booted Keylime's real SecureBoot UEFI log
(../shared/data/eventlogs, 98 events; the simulated boot when absent) and an IMA list. This
process runs the registrar and one verifier worker (``concurrency`` 32) over MariaDB
(sqlite when MariaDB is unreachable), appraising against Keylime's reference state for that
log and a runtime policy. After every host is trusted it samples: the age of every host's
verdict (p50/p99), the worker's CPU time (this process only: agents and swtpms are the
hosts' cost), the rounds done, and the projected hosts per core at this interval.

Baseline (same run): Keylime 7.14.3 ``check_quote`` on the same kind of evidence (real log,
same refstate and IMA size, PCRs 0-15 as Keylime needs), appraisal only. Its projected
hosts per core is interval x checks per second; ours counts the whole worker (messaging,
database, appraisal), so the ratio favours Keylime.
"""
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

INTERVAL = 2.0
SHARED = pathlib.Path(os.environ.get('TCLOUDS_SHARED_DATA',
                                     pathlib.Path(__file__).resolve().parents[2]
                                     / 'shared' / 'data'))


def _cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def agents_main():
    """Child process: start the hosts described on stdin, print 'ready', run until EOF."""
    import concurrent.futures
    from tclouds_openstack.attestation import simfleet
    spec = json.loads(sys.stdin.readline())
    uefi_log = None
    if spec.get('uefi_log'):
        with open(spec['uefi_log'], 'rb') as f:
            uefi_log = f.read()
    conf = simfleet.make_conf('sqlite://', agent_key_algorithm='ecc')
    for key in ('control_exchange',):
        conf.set_override(key, spec[key])
    conf.set_override('agent_topic', spec['agent_topic'], group='attestation')
    conf.set_override('registrar_topic', spec['registrar_topic'], group='attestation')
    transport = simfleet.common_messaging.get_transport(conf)
    hosts = []

    def start(i):
        host = simfleet.SimHost('bench-%03d' % i, conf, transport, None, spec['workdir'],
                                uefi_log=uefi_log)
        host.agent.register()
        host.agent.start()
        return host
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            hosts = list(pool.map(start, range(spec['hosts'])))
        print('ready', flush=True)
        sys.stdin.read()
    finally:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda h: h.stop(), hosts))
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


def run(quick=False):
    from benchmarks import bench_appraisal
    from tclouds_openstack.attestation.service import store as store_mod
    from tclouds_openstack.attestation import simfleet
    real_log = SHARED / 'eventlogs' / 'binary_bios_measurements-secureboot'
    refstate_path = SHARED / 'eventlogs' / 'example_mb_refstate.json'
    uefi_log = real_log.read_bytes() if real_log.exists() else None
    refstate = json.loads(refstate_path.read_text()) if uefi_log else None
    n_hosts = 20 if quick else 100
    window = 8.0 if quick else 30.0
    url, dbname = _database()
    with tempfile.TemporaryDirectory() as workdir:
        url = url or 'sqlite:///%s' % os.path.join(workdir, 'bench.sqlite')
        conf = simfleet.make_conf(url, interval=INTERVAL, jitter=0.1, max_verdict_age=10,
                                  rpc_timeout=5.0, concurrency=32,
                                  require_ek_certificate=False)
        fleet = simfleet.Fleet(conf, workdir, None)
        child = None
        try:
            fleet.start_registrar(None, require_ek_certificate=False)
            documents = simfleet.golden_policy_documents(uefi_log, refstate)
            fleet.store.create_policy('default', **{k: json.dumps(v) for k, v in
                                                    documents.items()})
            child = subprocess.Popen(
                [sys.executable, '-c', 'from benchmarks.bench_fleet import agents_main; '
                 'agents_main()'], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                cwd=str(pathlib.Path(__file__).resolve().parents[1]))
            child.stdin.write(json.dumps({
                'hosts': n_hosts, 'workdir': workdir,
                'control_exchange': conf.control_exchange,
                'agent_topic': conf.attestation.agent_topic,
                'registrar_topic': conf.attestation.registrar_topic,
                'uefi_log': str(real_log) if uefi_log else None}) + '\n')
            child.stdin.flush()
            t0 = time.monotonic()
            line = child.stdout.readline()
            if line.strip() != 'ready':
                raise RuntimeError('agent process failed to start')
            started = time.monotonic() - t0
            # the hosts registered from another process: the operator approves their EKs
            fleet.approve_all()
            rounds = []
            verifier = fleet.start_verifier('bench-worker')
            real = verifier.attest

            def counted(name):
                rounds.append(name)
                return real(name)
            verifier.attest = counted
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                hosts = fleet.store.list_hosts()
                if len(hosts) == n_hosts and all(h.status == 'trusted' for h in hosts):
                    break
                time.sleep(0.5)
            else:
                bad = [(h.name, h.status, h.reasons[:80]) for h in fleet.store.list_hosts()
                       if h.status != 'trusted'][:3]
                raise RuntimeError('fleet not trusted after 120 s: %s' % bad)
            ages = []
            cpu0, wall0, rounds0 = _cpu(), time.monotonic(), len(rounds)
            while time.monotonic() - wall0 < window:
                now = store_mod.utcnow()
                ages.extend((now - verified).total_seconds()
                            for _, _, verified in fleet.store.verdict_times())
                time.sleep(0.5)
            cpu = _cpu() - cpu0
            wall = time.monotonic() - wall0
            done = len(rounds) - rounds0
            statuses = {h.status for h in fleet.store.list_hosts()}
            verifier._stop.set()
            if uefi_log is not None:
                case = bench_appraisal.build_case(workdir)
                rate, why = bench_appraisal.keylime_rate(workdir, *case,
                                                         seconds=2.0 if quick else 5.0)
            else:
                rate, why = None, 'no real UEFI log for Keylime'
        finally:
            if child is not None:
                try:
                    child.stdin.close()
                    child.wait(60)
                except (OSError, subprocess.TimeoutExpired):
                    child.kill()
                    child.wait()
            fleet.close()
        ages.sort()
        cores_per_host = cpu / wall / n_hosts
        per_core = 1.0 / cores_per_host if cores_per_host else float('inf')
        print('hosts: %d swtpm + agents (ECC AKs), interval %.1f s, started and registered '
              'in %.1f s, database %s' % (n_hosts, INTERVAL, started, url.split(':')[0]))
        print('window %.0f s: %d appraisals (%.1f/s, expected %.1f/s), statuses %s'
              % (wall, done, done / wall, n_hosts / INTERVAL, sorted(statuses)))
        print('verdict age: p50 %.2f s, p99 %.2f s, max %.2f s'
              % (statistics.median(ages), ages[int(0.99 * (len(ages) - 1))], ages[-1]))
        print('worker CPU: %.1f%% of a core for %d hosts = %.3f ms CPU per host-attestation'
              % (100 * cpu / wall, n_hosts, 1000 * cpu / max(done, 1)))
        print('tclouds projected hosts per core at %.0f s interval: %.0f'
              % (INTERVAL, per_core))
        if rate is None:
            print('baseline skipped: %s' % why)
        else:
            keylime_per_core = rate * INTERVAL
            print('keylime 7.14.3 check_quote: %.1f checks/s -> at most %.0f hosts per core '
                  '(appraisal only)' % (rate, keylime_per_core))
            print('ratio tclouds/keylime hosts per core: %.1fx' % (per_core / keylime_per_core))
    if dbname:
        _drop(dbname)
