"""Secure log: sealed durable append, full verify, and proofs at 1,000,000 entries.

Each row measures this project and a named baseline in the same run and prints the ratio:

1. append: notifications sealed at the source (forward-secure HMAC), sealed again by the
   log and appended to the sqlite store, one transaction per batch (WAL, synchronous=FULL:
   sqlite's own fsyncs, including its WAL checkpoints), versus a plain
   ``logging.FileHandler`` writing the same JSON records with an ``fsync`` after every
   batch (the same cadence). Goal >= 0.5x. The source lives with the store
   (``SecureLogStore.append_events``, as for a co-located service): its sequence numbers
   are committed with the records, so a batch has one durable point, and the sealers' key
   files are replaced (fsync, rename, directory fsync) whenever a key evolves. For
   comparison, a source that hands its entries out first (``Source.seal``: the path of a
   notification driver's host) followed by ``SecureLogStore.append``: the source makes a
   batch durable with one ``fdatasync`` of its journal (its state file, the key, changes
   only with the key), and the count of the source's syncs per batch is printed.
2. verify: full audit from genesis (record format 2: parse, the sources' hash chains and
   one seal per chain segment, one log seal per batch, Merkle root, checkpoint) from the
   store, and of the same records in memory, versus the floor of any Merkle audit: one
   SHA-256 per record. Goal >= 200,000 entries/s and >= 0.3x of that floor. The store
   keeps each appended batch's records in one row (storage layout 2); the same records
   and checkpoints are also copied into MariaDB in layout 2 and, as before, one row per
   record (layout 1, sqlite and MariaDB), and each copy audited. Beside it,
   the same events in record format 1 (two seals per record) audited in memory, the floor
   of format 1's own primitives (the leaf hash and the two seals every record carries:
   three passes over its bytes), and the floor of any Merkle audit's hashing (the leaf and
   the tree's internal node per record), which no audit can go below.
3. proofs at 1,000,000 entries: inclusion and consistency proof generation + verification
   from the kept tree, versus recomputing the root from all leaf hashes (what an auditor
   without proofs must do). Goal < 5 ms.
4. logs that never stop growing, in MariaDB: a log of 10,000,000 entries (``--quick``:
   100,000; ``TCLOUDS_BENCH_SECURELOG_LOG=N`` sets N, e.g. 1000000 when the 10^7 build,
   about ten minutes, is not wanted) audited from genesis (the auditor's state is kept),
   then 10,000 entries more (``--quick``: 1,000) and a new checkpoint; the incremental
   audit of the new entries (frontier + new records + the new checkpoint, O(new + log n))
   versus the full audit from genesis of the grown log, same run. Goal: incremental < 1 s.
   The full audit from genesis against its floor (one SHA-256 per record), goal >= 0.3x
   by wall clock and by CPU time, with the peak RSS the audit adds (it streams: it must
   not hold the log), and again with two busy processes running (issue 14 point 6).
   ``TCLOUDS_BENCH_SECURELOG_BASE=/path/to/another/checkout`` audits the same log with
   that checkout's code and this one's, each in a process of its own, alternated (the
   same-run baseline of a change to the reading).

The load average is printed beside every section (the machine is shared).
"""
import hashlib
import itertools
import json
import logging
import operator
import os
import pathlib
import random
import shutil
import subprocess
import sys
import tempfile
import time

import sqlalchemy as sa

from benchmarks import load as loadmod
from tclouds_openstack.securelog import audit
from tclouds_openstack.securelog import checkpoint as cpmod
from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import log as logmod
from tclouds_openstack.securelog import merkle
from tclouds_openstack.securelog import sealing
from tclouds_openstack.securelog import source as srcmod
from tclouds_openstack.securelog import store as storemod


def _event(i):
    return {'event_type': 'compute.instance.update', 'publisher_id': 'compute.host%d' % (i % 50),
            'message_id': '%032x' % i, 'priority': 'INFO', 'timestamp': '2026-11-28 03:00:00',
            'payload': {'instance_id': '%08x-0000-4000-8000-%012x' % (i, i), 'state': 'active',
                        'project_id': 'p%d' % (i % 7), 'host': 'host%d' % (i % 50)},
            'context': {'project_id': 'p%d' % (i % 7), 'request_id': 'req-%d' % i}}


def _loadavg():
    return '%.2f %.2f %.2f' % os.getloadavg()


def _plain(path, events, batch):
    handler = logging.FileHandler(path)
    logger = logging.Logger('bench-plain')
    logger.addHandler(handler)
    t0 = time.perf_counter()
    for start in range(0, len(events), batch):
        for event, _tenant in events[start:start + batch]:
            logger.info(json.dumps(event, sort_keys=True, separators=(',', ':')))
        handler.flush()
        os.fsync(handler.stream.fileno())
    elapsed = time.perf_counter() - t0
    handler.close()
    return elapsed


def _sealed(store, src, events, batch):
    t0 = time.perf_counter()
    for start in range(0, len(events), batch):
        store.append_events(src, events[start:start + batch])
    return time.perf_counter() - t0


def _sealed_handed_out(store, src, events, batch):
    """Seconds, and the source's fsync/fdatasync calls per batch (the store's are sqlite's)."""
    syncs = [0]
    real = os.fsync, os.fdatasync

    def counting(fd, _real):
        syncs[0] += 1
        return _real(fd)
    os.fsync = lambda fd: counting(fd, real[0])
    os.fdatasync = lambda fd: counting(fd, real[1])
    try:
        t0 = time.perf_counter()
        for start in range(0, len(events), batch):
            entries = src.seal(events[start:start + batch])
            store.append(entries)
        elapsed = time.perf_counter() - t0
    finally:
        os.fsync, os.fdatasync = real
    return elapsed, syncs[0] / ((len(events) + batch - 1) // batch)


def bench_append(tmp, n, batch, rounds=3):
    """Best of ``rounds`` for each, interleaved (the machine is shared and noisy)."""
    events = [(_event(i), 'p%d' % (i % 7)) for i in range(n)]
    store = storemod.SecureLogStore('sqlite:///%s' % os.path.join(tmp, 'bench.sqlite'),
                                    os.path.join(tmp, 'state'), origin='bench/log',
                                    checkpoint_interval=3600)
    store.tree()
    plain, ours, handed_out = [], [], []
    for r in range(rounds):
        plain.append(_plain(os.path.join(tmp, 'plain-%d.log' % r), events, batch))
        src = srcmod.Source('bench-%d@host' % r, os.path.join(tmp, 'state'))
        ours.append(_sealed(store, src, events, batch))
        src = srcmod.Source('bench-out-%d@host' % r, os.path.join(tmp, 'source-state'))
        with src.open():
            pass            # the source exists: an admin enrols it for ingestion
        store.enroll_source(src.name, keyfiles.read_k0(src.k0_path()))
        handed_out.append(_sealed_handed_out(store, src, events, batch))
    store.checkpoint()
    return (n / min(ours), n / min(plain), n / min(t for t, _s in handed_out),
            max(s for _t, s in handed_out), store)


def bench_verify(tmp, store):
    bundle = keyfiles.AuditorBundle.load(os.path.join(tmp, 'state', 'auditor'))
    bundle.add_source_keys(os.path.join(tmp, 'source-state', 'auditor'))
    notes = store.checkpoint_notes()
    cps = [cpmod.open_checkpoint(n, bundle.log_verifier)[0] for n in notes]
    records = [bytes(r) for r in store.iter_records()]
    n = len(records)
    out = {}

    def timed(name, fn):
        """Wall and CPU seconds (CPU time does not depend on the other work on the machine)."""
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        out[name] = (n / (time.perf_counter() - w0), n / (time.process_time() - c0))
        return result

    report, problems = timed('store', lambda: store.audit(bundle))
    assert report.ok and not problems, report.summary()
    # The same records (and checkpoints) in the other storage layout, and both in MariaDB
    # (where the logs live): one row per record (layout 1) against one per batch.
    for name, url, layout, drop in _copies(tmp):
        try:
            copy = _copy_store(store, url, layout)
            report, problems = timed(name, lambda: copy.audit(bundle))
            assert report.ok and not problems and report.size == n, report.summary()
            copy.close()
        finally:
            drop()
    report = timed('memory', lambda: audit.audit(records, bundle.log_key, bundle.source_keys,
                                                 cps))
    assert report.ok
    # The same events in record format 1 (each record sealed by the log, each entry by its
    # source), sealed in memory in batches of 500 like the store's.
    v1, v1_log, v1_keys = _format1_log(records)
    report = timed('format1', lambda: audit.audit(v1, v1_log, v1_keys))
    assert report.ok and report.size == n, report.summary()
    sha = hashlib.sha256

    def floor():
        for r in records:
            sha(b'\x00' + r).digest()
    timed('floor', floor)
    # What any audit of this format must compute per record, at least: the Merkle leaf and
    # the two seals (HMAC-SHA256 over the record and over the source's entry; the keys'
    # inner and outer states prepared once per epoch, as the audit does).
    inner1, outer1, inner2, outer2 = (hashlib.sha256(os.urandom(64)) for _ in range(4))

    def primitives():
        for r in records:
            sha(b'\x00' + r).digest()
            h = inner1.copy()
            h.update(r[:-32])
            o = outer1.copy()
            o.update(h.digest())
            o.digest()
            h = inner2.copy()
            h.update(r[24:-64])
            o = outer2.copy()
            o.update(h.digest())
            o.digest()
    records_v2, records = records, v1
    timed('primitives', primitives)
    records = records_v2

    def merkle_floor():
        # the leaf and, per record, one internal node of the tree (n - 1 in all)
        leaves = [sha(b'\x00' + r).digest() for r in records]
        while len(leaves) > 1:
            pairs = zip(leaves[0::2], leaves[1::2])
            leaves = [sha(b'\x01' + a + b).digest() for a, b in pairs]
    timed('merkle', merkle_floor)
    return out


def _copies(tmp):
    """(row name, database URL, storage layout, drop) of the copies the verify rows audit."""
    yield ('store_l1', 'sqlite:///%s' % os.path.join(tmp, 'layout1.sqlite'), 1, lambda: None)
    for layout in (2, 1):
        url, drop = _mariadb()
        yield 'mariadb_l%d' % layout, url, layout, drop


def _copy_store(store, url, layout):
    """A store at ``url`` holding ``store``'s records and checkpoints in ``layout``.

    The batch rows are those of ``store`` (the appended batches), the records' index rows
    the same; the keys stay in ``store``'s state directory (only read by an audit).
    """
    copy = storemod.SecureLogStore(url, store.state_dir, origin=store.origin,
                                   checkpoint_interval=3600, layout=layout)
    records = storemod._records
    with store.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.select(
            *[c for c in records.columns if c.name != 'data']).order_by(
                records.c.log_index))]
        firsts = [f for (f,) in conn.execute(sa.select(storemod._batches.c.first_index)
                                             .order_by(storemod._batches.c.first_index))]
        notes = conn.execute(sa.select(storemod._checkpoints)).all()
    data = [bytes(r) for r in store.iter_records()]
    assert firsts and firsts[0] == 0 and len(rows) == len(data)
    names = [c.name for c in records.columns if c.name != 'data'] + ['data']
    with copy.engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            part = range(start, min(len(rows), start + 5000))
            conn.execute(records.insert(), [
                dict(zip(names, rows[i] + (data[i] if layout == 1 else None,)))
                for i in part])
        if layout == 2:
            ends = firsts[1:] + [len(data)]
            for pos in range(0, len(firsts), 100):
                conn.execute(storemod._batches.insert(), [
                    {'first_index': f, 'data': storemod.pack_batch(data[f:e])}
                    for f, e in zip(firsts[pos:pos + 100], ends[pos:pos + 100])])
        conn.execute(storemod._checkpoints.insert(), [dict(n._mapping) for n in notes])
    return copy


def _format1_log(records, batch=500):
    """The entries of ``records`` (format 2) sealed again in format 1: (records, K0s)."""
    entries = [sealing.decode_entry(sealing.record_entry(r)) for r in records]
    logs, k_log = sealing.Sealer.create('log', 0, version=1)
    sources, keys = {}, {}
    out = []
    writer = logmod.LogWriter('bench/v1', logs, None, _Frontier())
    for start in range(0, len(entries), batch):
        sealed = []
        for e in entries[start:start + batch]:
            src = sources.get(e.source)
            if src is None:
                src, keys[e.source] = sealing.Sealer.create(e.source, 0, version=1)
                sources[e.source] = src
            sealed.append(src.seal_entry(e.payload, e.time_ns, e.tenant, e.flags))
        done = writer.seal(sealed, 0)
        writer.commit(done)
        out.extend(map(operator.itemgetter(1), done))
    return out, k_log, keys


def _mariadb():
    """A throw-away MariaDB database (root, as on this machine); (url, drop)."""
    import uuid

    import pymysql
    name = 'tclouds_bench_slog_%s' % uuid.uuid4().hex[:8]

    def admin(sql):
        conn = pymysql.connect(host='127.0.0.1', user='root', password='')
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.close()
    admin('CREATE DATABASE %s CHARACTER SET utf8mb4' % name)
    return ('mysql+pymysql://root:@127.0.0.1/%s?charset=utf8mb4' % name,
            lambda: admin('DROP DATABASE IF EXISTS %s' % name))


class _Frontier(merkle.CompactRange):
    """The writer's tree reduced to what appending and checkpoints need.

    It keeps the last leaf too: the next batch's span begins with it.
    """

    __slots__ = ('last',)

    def append_hash(self, leaf_hash):
        self.append(leaf_hash)
        self.last = leaf_hash

    def leaf_hash(self, index):
        assert index == self.size - 1
        return self.last

    def root(self, size=None):
        assert size is None or size == self.size
        return super().root()


def _floor(records):
    """Records per second (wall, CPU) of one SHA-256 per record."""
    sha = hashlib.sha256
    t0, c0 = time.perf_counter(), time.process_time()
    for r in records:
        sha(b'\x00' + r).digest()
    return (len(records) / (time.perf_counter() - t0),
            len(records) / (time.process_time() - c0))


REPO = pathlib.Path(__file__).resolve().parents[1]
BASE_ENV = 'TCLOUDS_BENCH_SECURELOG_BASE'
# A full audit with the tclouds_openstack of the checkout it runs in (its cwd): prints
# {"wall": s, "cpu": s, "size": n}.
_AUDITOR = r"""
import json, os, sys, time
sys.path.insert(0, os.getcwd())
from tclouds_openstack.securelog import keyfiles, store
assert store.__file__.startswith(os.getcwd()), store.__file__
url, state, origin = sys.argv[1:4]
st = store.SecureLogStore(url, state, origin=origin, checkpoint_interval=3600, migrate=False)
bundle = keyfiles.AuditorBundle.load(os.path.join(state, 'auditor'))
wall, cpu = time.perf_counter(), time.process_time()
report, problems = st.audit(bundle)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
assert report.ok and not problems, report.summary()
st.close()
print(json.dumps({'wall': wall, 'cpu': cpu, 'size': report.size}))
"""


def _audit_in_process(root, url, state_dir, origin):
    """(wall s, CPU s) of a full audit by checkout ``root``'s code, in a process of its own."""
    out = subprocess.run([sys.executable, '-c', _AUDITOR, url, state_dir, origin],
                         cwd=str(root), env=dict(os.environ, PYTHONPATH=''),
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError('audit by %s failed: %s' % (root, out.stderr[-2000:]))
    answer = json.loads(out.stdout.splitlines()[-1])
    return answer['wall'], answer['cpu']


def _reset_peak_rss():
    """Make the process's peak RSS its current RSS (Linux); False where that is not possible."""
    try:
        with open('/proc/self/clear_refs', 'w') as stream:
            stream.write('5')
        return True
    except OSError:
        return False


def _rss_mib(field):
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in MiB, from /proc/self/status."""
    with open('/proc/self/status') as stream:
        for line in stream:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


def _timed_audit(store, bundle):
    """(report, wall s, CPU s, MiB the audit added to the peak RSS or None)."""
    peak = _reset_peak_rss()
    before = _rss_mib('VmRSS')
    t0, c0 = time.perf_counter(), time.process_time()
    report, problems = store.audit(bundle)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert report.ok and not problems, report.summary()
    return report, wall, cpu, (_rss_mib('VmHWM') - before) if peak else None


def bench_growing(tmp, n_log, n_new, batch=10000, base=None, rounds=3):
    """A log of ``n_log`` entries in MariaDB, audited; then ``n_new`` more.

    Returns the timings of the full audit, the incremental audit of the new entries and
    a full audit of the grown log.
    """
    import resource
    url, drop = _mariadb()
    out = {}
    try:
        state_dir = os.path.join(tmp, 'big-state')
        store = storemod.SecureLogStore(url, state_dir, origin='bench/big',
                                        checkpoint_interval=3600, epoch_entries=100000)
        # The writer keeps the whole tree for proofs (64 bytes per entry: 640 MiB at 10^7);
        # building the log needs only its frontier.
        store._tree = _Frontier()
        src = srcmod.Source('big@host', state_dir, epoch_entries=100000)
        t0 = time.perf_counter()
        for start in range(0, n_log, batch):
            store.append_events(src, [(_event(i), 'p%d' % (i % 7))
                                      for i in range(start, min(n_log, start + batch))])
        store.checkpoint()
        out['build_s'] = time.perf_counter() - t0
        bundle = keyfiles.AuditorBundle.load(os.path.join(state_dir, 'auditor'))
        report, out['full_s'], out['full_cpu_s'], out['audit_rss_mib'] = _timed_audit(
            store, bundle)
        sample = [bytes(r) for r in itertools.islice(store.iter_records(),
                                                     min(n_log, 200000))]
        out['floor'] = _floor(sample)
        out['log_mib'] = sum(map(len, sample)) / len(sample) * n_log / (1 << 20)
        with loadmod.background_load():
            out['busy_load'] = _loadavg()
            out['busy'] = _timed_audit(store, bundle)[1:3] + _floor(sample)
        del sample
        if base:
            # the same log audited by the other checkout's code and by this one's
            out['base'] = ([], [])
            for _ in range(rounds):
                for side, root in zip(out['base'], (base, REPO)):
                    side.append(_audit_in_process(root, url, state_dir, 'bench/big'))
            out['base_floor'] = _floor([bytes(r) for r in itertools.islice(
                store.iter_records(), min(n_log, 200000))])
        state = report.state
        for start in range(n_log, n_log + n_new, batch):
            store.append_events(src, [(_event(i), 'p%d' % (i % 7))
                                      for i in range(start, min(n_log + n_new, start + batch))])
        store.checkpoint()
        t0 = time.perf_counter()
        again, problems = store.audit(bundle, resume=state)
        out['incremental_s'] = time.perf_counter() - t0
        assert again.ok and not problems and again.size == n_log + n_new, again.summary()
        t0 = time.perf_counter()
        full, problems = store.audit(bundle)
        out['full_grown_s'] = time.perf_counter() - t0
        assert full.ok and full.root == again.root
        out['rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        store.close()
    finally:
        drop()
    return out


def bench_proofs(n, samples):
    t0 = time.perf_counter()
    tree = merkle.MerkleTree()
    for i in range(n):
        tree.append_hash(hashlib.sha256(b'%d' % i).digest())
    build = time.perf_counter() - t0
    root = tree.root()
    rnd = random.Random(7)
    t0 = time.perf_counter()
    for _ in range(samples):
        i = rnd.randrange(n)
        merkle.verify_inclusion(tree.leaf_hash(i), i, n, tree.inclusion_proof(i), root)
    inclusion = (time.perf_counter() - t0) / samples
    t0 = time.perf_counter()
    for _ in range(samples):
        m = rnd.randrange(1, n)
        merkle.verify_consistency(m, n, tree.consistency_proof(m), tree.root(m), root)
    consistency = (time.perf_counter() - t0) / samples
    leaves = [tree.leaf_hash(i) for i in range(n)]
    t0 = time.perf_counter()
    assert merkle.root_from_leaf_hashes(leaves) == root
    recompute = time.perf_counter() - t0
    return build, inclusion, consistency, recompute


def run(quick=False):
    n_append, batch = (5000, 250) if quick else (30000, 500)
    n_proof = 100000 if quick else 1000000
    tmp = tempfile.mkdtemp(prefix='bench-securelog-')
    try:
        print('machine: %d cores, load average %s' % (os.cpu_count(), _loadavg()))
        ours, plain, handed_out, source_syncs, store = bench_append(tmp, n_append, batch)
        print('append   %7d records, batch %d, fsync per batch, best of 3' % (n_append, batch))
        print('  sealed durable append (sqlite)  %10.0f records/s' % ours)
        print('  logging.FileHandler + fsync     %10.0f records/s' % plain)
        print('  ratio                           %10.2fx   (goal >= 0.5x)' % (ours / plain))
        print('  a source that hands its entries out (the notification driver\'s path):')
        print('    Source.seal + append          %10.0f records/s   (%.2fx)'
              % (handed_out, handed_out / plain))
        print('    source fsyncs per batch       %10.2f   (its journal; 2 before: the state '
              'file and its directory, every batch)' % source_syncs)
        rates = bench_verify(tmp, store)
        print('verify   %7d records from genesis (entries/s by wall clock | by CPU time)'
              % (6 * n_append))
        print('  full audit from the store        %10.0f | %10.0f   (goal >= 200,000/s; '
              'sqlite, storage layout 2: a row per appended batch)' % rates['store'])
        print('  full audit, records in memory    %10.0f | %10.0f' % rates['memory'])
        print('  floor: one SHA-256 per record    %10.0f | %10.0f' % rates['floor'])
        print('  ratio store / floor              %10.2fx | %9.2fx   (goal >= 0.3x)'
              % tuple(a / b for a, b in zip(rates['store'], rates['floor'])))
        for key, label in (('mariadb_l2', 'MariaDB, layout 2 '), ('store_l1', 'sqlite, layout 1  '),
                           ('mariadb_l1', 'MariaDB, layout 1 ')):
            print('  the same from %s  %10.0f | %10.0f   ratio to the floor %.2fx | %.2fx%s'
                  % ((label,) + rates[key] + tuple(
                      a / b for a, b in zip(rates[key], rates['floor']))
                     + ('   (goal >= 0.3x)' if key == 'mariadb_l2' else
                        '   (a row per record, as before)',)))
        print('  ratio in memory / floor          %10.2fx | %9.2fx'
              % tuple(a / b for a, b in zip(rates['memory'], rates['floor'])))
        print('  the Merkle audit\'s own hashing   %10.0f | %10.0f   (leaf + one internal '
              'node per record: %.2fx of the floor by CPU time, no audit goes below)'
              % (*rates['merkle'], rates['merkle'][1] / rates['floor'][1]))
        print('  ratio store / Merkle hashing     %10.2fx | %9.2fx'
              % tuple(a / b for a, b in zip(rates['store'], rates['merkle'])))
        print('  before: record format 1 (the same events, two seals per record):')
        print('    full audit, records in memory  %10.0f | %10.0f   (%.2fx of the floor by '
              'CPU time)' % (*rates['format1'], rates['format1'][1] / rates['floor'][1]))
        print('    format 1\'s own primitives     %10.0f | %10.0f   (leaf SHA-256 + two '
              'HMAC-SHA256 per record: %.2fx of the floor by CPU time, the best any audit of '
              'format 1 can reach)'
              % (*rates['primitives'], rates['primitives'][1] / rates['floor'][1]))
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n_log, n_new = (100000, 1000) if quick else (10 ** 7, 10 ** 4)
    n_log = int(os.environ.get('TCLOUDS_BENCH_SECURELOG_LOG') or n_log)
    base = os.environ.get(BASE_ENV)
    tmp = tempfile.mkdtemp(prefix='bench-securelog-big-')
    try:
        load = _loadavg()
        big = bench_growing(tmp, n_log, n_new, base=base, rounds=2 if quick else 3)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print('growing log in MariaDB: %d entries (built in %.0f s), then %d more; load average '
          '%s -> %s' % (n_log, big['build_s'], n_new, load, _loadavg()))
    print('  full audit from genesis (%d)    %10.0f entries/s   (%.1f s; by CPU time %.0f/s)'
          % (n_log, n_log / big['full_s'], big['full_s'], n_log / big['full_cpu_s']))
    print('  floor: one SHA-256 per record    %10.0f entries/s   (by CPU time %.0f/s)'
          % big['floor'])
    print('  ratio full audit / floor         %10.2fx   (goal >= 0.3x; by CPU time %.2fx)'
          % (n_log / big['full_s'] / big['floor'][0],
             n_log / big['full_cpu_s'] / big['floor'][1]))
    print('  peak RSS the full audit added    %10s MiB (the log: about %.0f MiB of records)'
          % ('?' if big['audit_rss_mib'] is None else '%.0f' % big['audit_rss_mib'],
             big['log_mib']))
    wall, cpu, floor_wall, floor_cpu = big['busy']
    print('  with two busy processes (load average %s): full audit %.1f s, CPU %.1f s; '
          'ratio to the floor measured with them %.2fx | CPU %.2fx'
          % (big['busy_load'], wall, cpu, n_log / wall / floor_wall, n_log / cpu / floor_cpu))
    if base:
        floor_wall, floor_cpu = big['base_floor']
        print('  same run, the same log audited in a process of its own, %d alternations '
              '(wall s / CPU s each; ratios to the floor of the best):' % len(big['base'][0]))
        for label, root, runs in (('before', base, big['base'][0]),
                                  ('now', REPO, big['base'][1])):
            print('    %-6s %-58s %s   %.2fx | %.2fx' % (
                label, '%s (%s)' % (root, loadmod.describe_checkout(root)),
                ' '.join('%.2f/%.2f' % run for run in runs),
                n_log / min(w for w, _c in runs) / floor_wall,
                n_log / min(c for _w, c in runs) / floor_cpu))
    print('  incremental audit of the %d new  %10.3f s     (goal < 1 s)'
          % (n_new, big['incremental_s']))
    print('  baseline: full audit of %d       %10.1f s' % (n_log + n_new, big['full_grown_s']))
    print('  ratio baseline / incremental     %10.0fx   (peak RSS %.0f MiB)'
          % (big['full_grown_s'] / big['incremental_s'], big['rss_mib']))
    build, inclusion, consistency, recompute = bench_proofs(n_proof, 200 if quick else 1000)
    print('proofs   tree of %d entries (built in %.1f s)' % (n_proof, build))
    print('  inclusion proof + verify          %10.3f ms   (goal < 5 ms)' % (inclusion * 1e3))
    print('  consistency proof + verify        %10.3f ms   (goal < 5 ms)' % (consistency * 1e3))
    print('  baseline: root from all leaves    %10.1f ms' % (recompute * 1e3))
    print('  ratio baseline / inclusion        %10.0fx' % (recompute / inclusion))
