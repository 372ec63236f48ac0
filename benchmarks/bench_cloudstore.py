"""Cloud-of-clouds PUT/GET (DepSky-CA, n=4, f=1) against Swift's own erasure coding (2+2).

Starts, as separate processes on loopback (free ports in 21000-21999, devices on tmpfs):
four backend Swift clusters (one reached through s3api with boto3) and a front proxy with
the cloudstore middleware; the baseline a user would otherwise pick, one Swift cluster
whose default policy is erasure coding with the same overhead (liberasurecode ISA-L,
``isa_l_rs_vand``, 2 data + 2 parity fragments, 1 MiB segments, four devices); and, for
reference with the earlier figures, a plain single-replica cluster. Everything shares this
machine's cores.

For 16 MiB and 1 GiB objects it measures PUTs and GETs with python-swiftclient,
alternating between the targets (so that they see the same background load), idle and
again with two busy processes started and stopped here (issue 14 point 6), and prints:

- median MB/s of each target and the ratio to the EC baseline (goals: PUT >= 0.7x,
  GET >= 0.8x);
- the CPU time every process spent, per GiB, beside the baseline's (load-independent);
- the gateway's own CPU per MiB (the front proxy process) beside the floor of its
  primitives, measured here on one core: MD5 (the ETag), AES-256-GCM, the ISA-L erasure
  code, SHA-256 of every piece and the S3 cloud's SigV4 payload hash for a PUT; AES-GCM,
  erasure decoding and SHA-256 of the f + 1 pieces read for a GET (goal within 1.5x);
- the front proxy's peak RSS during a 1 GiB PUT and GET (VmHWM, reset before each);
- a 1 MiB Range GET in the middle of the 1 GiB object beside the GET of a 1 MiB object
  (goal within 2x: only the segments of the range are fetched and decoded);
- the bytes stored on the clouds per object byte (2.0x for n=4, f=1; the EC baseline
  also 2.0x, the plain replica 1.0x).

Issue 12 (no regression beyond 5 %): ``CLOUDSTORE_BENCH_BASE=/path/to/an/older/checkout``
adds a second front proxy whose cloudstore middleware is that checkout's (a checkout of
e84b382^ is the gateway before issue 12), over four clouds of its own (a write answered
after a quorum goes on uploading to the last cloud: that CPU is the gateway's own).
PUTs and GETs of ``CLOUDSTORE_BENCH_BASE_SIZES`` (default ``16M,1G``; ``16M`` alone with
``--quick``) alternate between the two gateways, and the rows print before / now / ratio:
median MB/s, the gateway process's CPU per MiB, the CPU of every process (gateway,
clouds) per GiB, each counted until the processes are idle again, the CPU of the whole
comparison per GiB moved, and the cloud faults each gateway logged.
Objects up to 64 MiB alternate ``CLOUDSTORE_BENCH_BASE_ROUNDS`` times (default 16, 5 with
``--quick``; larger ones as many times as the other rows repeat): a 16 MiB PUT takes a
quarter of a second and varies by tens of per cent from one request to the next on a
shared machine, so five rounds could not tell a 5 % regression from noise (the medians of
5 of 16 same-run rounds gave MB/s ratios from 0.93x to 1.27x, 5-95 %, where all 16 gave
1.05x).
Each MB/s row also prints the spread of the per-round ratios (each round's two requests
ran back to back), the quartiles and extremes, beside the ratio of the medians.

The client streams each body from one random 16 MiB block and compares what it reads
back with it, so it never holds a 1 GiB object. ``--quick`` uses 64 MiB for the large
size and one repetition.
"""
import contextlib
import hashlib
import json
import os
import pathlib
import shutil
import statistics
import time

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives import serialization
import swiftclient

from benchmarks import load
from tclouds_openstack.cloudstore import coding
from tests.functional.cloudstore import cluster as cluster_mod

MIB = 1024 * 1024
BLOCK = 16 * MIB
FIRST_SLOT = 10
CHUNK = MIB
BASE_ENV = 'CLOUDSTORE_BENCH_BASE'
#: Alternations of the issue 12 comparison for objects up to 64 MiB (see the docstring).
BASE_ROUNDS = 16


def _cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as stream:
        fields = stream.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _status(pid, field):
    with open('/proc/%d/status' % pid) as stream:
        for line in stream:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak(pid):
    with open('/proc/%d/clear_refs' % pid, 'w') as stream:
        stream.write('5')       # Linux >= 4.0: VmHWM := VmRSS


class _Body:
    """A file-like ``size``-byte body cut from a repeated random block."""

    def __init__(self, block, size):
        self._block = memoryview(block + block[:CHUNK])
        self._size = size
        self._position = 0

    def read(self, amount=-1):
        amount = CHUNK if amount is None or amount < 0 else min(amount, CHUNK)
        amount = min(amount, self._size - self._position)
        start = self._position % BLOCK
        self._position += amount
        return bytes(self._block[start:start + amount])


def _check_body(chunks, block, size, start=0):
    """Compare a streamed body with the repeated block (from object offset ``start``)."""
    doubled = memoryview(block + block)
    position = start
    for chunk in chunks:
        offset = position % BLOCK
        while chunk:
            piece = min(len(chunk), BLOCK)
            if doubled[offset:offset + piece] != chunk[:piece]:
                raise AssertionError('GET returned different bytes at offset %d' % position)
            chunk = chunk[piece:]
            position += piece
            offset = position % BLOCK
    if position - start != size:
        raise AssertionError('GET returned %d bytes, expected %d' % (position - start, size))


def _settle(pids, interval=0.5, idle=0.02, longest=300):
    """Wait until ``pids`` ({name: pid}) spend less than ``idle`` CPU s in ``interval``."""
    last = sum(_cpu_seconds(pid) for pid in pids.values())
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = sum(_cpu_seconds(pid) for pid in pids.values())
        if now - last < idle:
            return
        last = now


class _Target:
    """One Swift endpoint under test and the processes whose CPU its requests use."""

    def __init__(self, name, cluster, clusters):
        self.name = name
        self.cluster = cluster
        self.conn = swiftclient.Connection(cluster.auth_url, cluster_mod.USER,
                                           cluster_mod.KEY, retries=0, timeout=600)
        # The proxy of a split cluster is its process; its storage servers run apart.
        self.pids = {}
        for item in clusters:
            self.pids[item.name] = item.process.pid
            if item.split:
                self.pids[item.name + ' storage'] = item.storage_pid()
        self.gateway = cluster
        self.seconds = {}
        self.cpu = {}
        self.peak = {}
        self.peak_abs = {}     # the process's peak RSS (VmHWM) itself

    def timed(self, key, fn, *args, settle=False, **kwargs):
        """Run ``fn``: its seconds, every process's CPU, the gateway's peak RSS.

        ``settle``: the CPU counted until every process is idle again (a write answered
        after a quorum of clouds still uploads to the others after the response).
        """
        pids = self.pids
        before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        gateway = self.gateway.process.pid
        _reset_peak(gateway)
        rss = _status(gateway, 'VmRSS')
        client = time.process_time()
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds.setdefault(key, []).append(time.perf_counter() - start)
        if settle:
            _settle(pids)
        spent = self.cpu.setdefault(key, {})
        spent['client'] = spent.get('client', 0.0) + time.process_time() - client
        for name, pid in pids.items():
            spent[name] = spent.get(name, 0.0) + _cpu_seconds(pid) - before[name]
        hwm = _status(gateway, 'VmHWM')
        self.peak[key] = max(self.peak.get(key, 0), hwm - rss)
        self.peak_abs[key] = max(self.peak_abs.get(key, 0), hwm)
        return result

    def median(self, key):
        return statistics.median(self.seconds[key])

    def mbps(self, key, size):
        return size / self.median(key) / 1e6

    def cpu_per_request(self, key, name=None):
        """Mean CPU seconds per request: of process ``name``, or of all of them."""
        count = len(self.seconds[key])
        spent = self.cpu[key]
        if name is not None:
            return spent.get(name, 0.0) / count
        return sum(value for process, value in spent.items() if process != 'client') / count

    def put(self, key, name, block, size):
        self.timed(key, self.conn.put_object, 'bench', name, _Body(block, size),
                   content_length=size, chunk_size=CHUNK)

    def get(self, key, name, block, size, headers=None, start=0):
        def fetch():
            _, body = self.conn.get_object('bench', name, resp_chunk_size=CHUNK,
                                           headers=headers)
            _check_body(body, block, size, start)
        self.timed(key, fetch)


def _floor_ms_per_mib(repeats=16):
    """The gateway's primitives per MiB on one core: {'put': ms, 'get': ms, parts}."""
    data = os.urandom(MIB)
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    driver = coding.ec_driver(2, 2)
    nonce = os.urandom(12)
    ciphertext = aead.encrypt(nonce, data, b'ad')
    pieces = driver.encode(ciphertext)

    def best(fn):
        times = []
        for _ in range(repeats):
            start = time.process_time()
            fn()
            times.append(time.process_time() - start)
        return 1000 * min(times)

    parts = {
        'md5': best(lambda: hashlib.md5(data, usedforsecurity=False).digest()),
        'aes-gcm': best(lambda: aead.encrypt(nonce, data, b'ad')),
        'ec encode': best(lambda: driver.encode(ciphertext)),
        'sha256 of 4 pieces': best(lambda: [hashlib.sha256(p).digest() for p in pieces]),
        's3 sigv4 payload hash': best(lambda: hashlib.sha256(pieces[3]).digest()),
        'aes-gcm decrypt': best(lambda: aead.decrypt(nonce, ciphertext, b'ad')),
        'ec decode': best(lambda: driver.decode(pieces[:2])),
        'data fragments joined': best(lambda: b''.join(
            memoryview(piece)[coding.FRAGMENT_HEADER_BYTES:] for piece in pieces[:2])),
        'sha256 of 2 pieces': best(lambda: [hashlib.sha256(p).digest() for p in pieces[:2]]),
    }
    put = sum(parts[name] for name in ('md5', 'aes-gcm', 'ec encode', 'sha256 of 4 pieces',
                                       's3 sigv4 payload hash'))
    get = sum(parts[name] for name in ('aes-gcm decrypt', 'ec decode', 'sha256 of 2 pieces'))
    # What the gateway computes for a GET: the code is systematic, so from the data
    # fragments it joins them instead of calling pyeclib's decode.
    joined = sum(parts[name] for name in ('aes-gcm decrypt', 'data fragments joined',
                                          'sha256 of 2 pieces'))
    return {'put': put, 'get': get, 'get joined': joined, 'parts': parts}


def _round(targets, block, size, label, repeats, with_plain):
    for index in range(repeats):
        for target in targets:
            if target.name == 'plain' and not with_plain:
                continue
            target.put('put %s' % label, 'obj %s' % label, block, size)
        for target in targets:
            if target.name == 'plain' and not with_plain:
                continue
            target.get('get %s' % label, 'obj %s' % label, block, size)


def _print_ratio_rows(targets, label, size, floor):
    base, plain, ours = targets
    rows = []
    print('  %-46s %10s %10s' % ('%s, median' % label, 'PUT MB/s', 'GET MB/s'))
    for target, what in ((base, 'baseline: Swift EC policy, ISA-L 2+2'),
                         (plain, 'reference: one plain replica-1 cluster'),
                         (ours, 'cloudstore, n=4 f=1 (1 via S3)')):
        if 'put %s' % label not in target.seconds:
            continue
        print('  %-46s %10.1f %10.1f' % (what, target.mbps('put %s' % label, size),
                                         target.mbps('get %s' % label, size)))
    put = ours.mbps('put %s' % label, size) / base.mbps('put %s' % label, size)
    get = ours.mbps('get %s' % label, size) / base.mbps('get %s' % label, size)
    print('  %-46s %9.2fx %9.2fx' % ('ratio to EC (goals >= 0.7x, >= 0.8x)', put, get))
    rows += [('put %s' % label, 1.0, put), ('get %s' % label, 1.0, get)]
    if 'put %s' % label in plain.seconds:
        # The earlier releases' row: against one plain replica (for regressions).
        plain_put = ours.mbps('put %s' % label, size) / plain.mbps('put %s' % label, size)
        plain_get = ours.mbps('get %s' % label, size) / plain.mbps('get %s' % label, size)
        print('  %-46s %9.2fx %9.2fx' % ('ratio to the plain replica (earlier row)',
                                         plain_put, plain_get))
        rows += [('put %s vs plain' % label, 1.0, plain_put),
                 ('get %s vs plain' % label, 1.0, plain_get)]
    gib = size / (1024 * MIB)
    for operation in ('put', 'get'):
        key = '%s %s' % (operation, label)
        ours_cpu = ours.cpu_per_request(key) / gib
        base_cpu = base.cpu_per_request(key) / gib
        gateway = 1000 * ours.cpu_per_request(key, 'front') / (size / MIB)
        print('  CPU per GiB %s: cloudstore %.2f s (%s), EC baseline %.2f s (%s); client '
              '%.2f s' % (operation.upper(), ours_cpu, ', '.join(
                  '%s %.2f' % (name, value / len(ours.seconds[key]) / gib)
                  for name, value in sorted(ours.cpu[key].items()) if name != 'client'),
                  base_cpu, ', '.join('%s %.2f' % (name, value / len(base.seconds[key]) / gib)
                                      for name, value in sorted(base.cpu[key].items())
                                      if name != 'client'),
                  ours.cpu_per_request(key, 'client') / gib))
        print('  gateway (front proxy process) CPU per MiB %s: %.2f ms, floor of its '
              'primitives %.2f ms: %.2fx (goal <= 1.5x)' % (
                  operation.upper(), gateway, floor[operation], gateway / floor[operation]))
        if operation == 'get':
            print('    (floor with the data fragments joined instead of pyeclib\'s decode, '
                  'as the gateway does: %.2f ms: %.2fx)' % (
                      floor['get joined'], gateway / floor['get joined']))
        rows.append(('cpu %s %s' % (key, 'gateway/floor'), 1.0, gateway / floor[operation]))
        rows.append(('cpu/GiB %s' % key, base_cpu, ours_cpu))
    return rows


def _sizes(text):
    sizes = []
    for item in text.split(','):
        item = item.strip().upper()
        unit = {'K': 1024, 'M': MIB, 'G': 1024 * MIB}.get(item[-1:], 1)
        sizes.append(int(item.rstrip('KMG')) * unit)
    return sizes


def _label(size):
    return '%d GiB' % (size // (1024 * MIB)) if size >= 1024 * MIB else '%d MiB' % (size // MIB)


def base_clusters(base, slot, root, key_file):
    """``base``'s gateway over four clouds of its own (slots ``slot`` .. ``slot`` + 4).

    Its own clouds: a write answered after a quorum goes on uploading to the last cloud,
    and that work must count for the gateway that caused it, never for the other one.
    """
    clouds = [cluster_mod.Cluster('bcloud%d' % index, slot + index, root,
                                  s3api=(index == 3), backend_only=True)
              for index in range(4)]
    front = cluster_mod.Cluster('front-base', slot + 4, root, split=True, code=base,
                                cloudstore=cluster_mod.cloudstore_section(
                                    clouds, key_file, timeout=60,
                                    fault_log=pathlib.Path(root) / 'faults-before.log'))
    return clouds, front


def _faults(path):
    """{(cloud, kind): count} of a gateway's fault log."""
    counts = {}
    if os.path.exists(path):
        with open(path) as stream:
            for line in stream:
                record = json.loads(line)
                key = '%s %s' % (record.get('cloud'), record.get('kind'))
                counts[key] = counts.get(key, 0) + 1
    return counts


def _round_ratios(theirs, ours, key, count):
    """``min / 25 % / median / 75 % / max`` of the per-round MB/s ratios, now / before."""
    ratios = sorted(then / now for then, now in zip(theirs.seconds[key][-count:],
                                                    ours.seconds[key][-count:]))
    if len(ratios) < 2:
        return ''
    low, median, high = statistics.quantiles(ratios, n=4, method='inclusive')
    return 'per-round ratios: min %.2f, quartiles %.2f / %.2f / %.2f, max %.2f' % (
        ratios[0], low, median, high, ratios[-1])


def compare_with_base(ours, theirs, block, sizes, repeats, fault_logs, small_rounds=None):
    """Issue 12's same-run rows, before (``theirs``) and now (``ours``); returns rows.

    ``small_rounds``: alternations for objects up to 64 MiB (default ``repeats + 2``).

    Each gateway has its own four clouds; ``fault_logs`` (before, now) are their fault
    logs. A request's CPU is counted until every process of its gateway is idle again.
    """
    before_load = load.loadavg()
    totals = {}
    for target in (theirs, ours):
        target.conn.put_container('bench-issue12')
        _settle(target.pids)
        totals[target.name] = sum(_cpu_seconds(pid) for pid in target.pids.values())
    moved = 0
    for size in sizes:
        label = 'issue12 %s' % _label(size)
        count = (small_rounds or repeats + 2) if size <= 64 * MIB else repeats
        for index in range(count):
            # alternate the order too, so neither always follows the other's GC or flush
            pair = (theirs, ours) if index % 2 == 0 else (ours, theirs)
            for target in pair:
                target.timed('put ' + label, target.conn.put_object, 'bench-issue12',
                             label, _Body(block, size), content_length=size,
                             chunk_size=CHUNK, settle=True)
            for target in pair:
                def fetch(target=target):
                    _, body = target.conn.get_object('bench-issue12', label,
                                                     resp_chunk_size=CHUNK)
                    _check_body(body, block, size)
                target.timed('get ' + label, fetch, settle=True)
            moved += 2 * size
    for target in (theirs, ours):
        _settle(target.pids)
        totals[target.name] = sum(_cpu_seconds(pid) for pid in target.pids.values()) - \
            totals[target.name]
    print('-- issue 12: the gateway before (%s) and now, same run, alternated, each over '
          'four clouds of its own (load average before %s, after %s)'
          % (theirs.gateway.code, before_load, load.loadavg()))
    print('  %-44s %10s %10s %8s' % ('', 'before', 'now', 'ratio'))
    rows = []
    for size in sizes:
        label = 'issue12 %s' % _label(size)
        mib, gib = size / MIB, size / (1024 * MIB)
        for operation in ('put', 'get'):
            key = '%s %s' % (operation, label)
            figures = [
                ('%s %s median MB/s' % (operation.upper(), _label(size)),
                 theirs.mbps(key, size), ours.mbps(key, size)),
                ('%s %s gateway CPU ms/MiB' % (operation.upper(), _label(size)),
                 1000 * theirs.cpu_per_request(key, theirs.gateway.name) / mib,
                 1000 * ours.cpu_per_request(key, ours.gateway.name) / mib),
                ('%s %s all processes CPU s/GiB' % (operation.upper(), _label(size)),
                 theirs.cpu_per_request(key) / gib, ours.cpu_per_request(key) / gib)]
            for name, then, now in figures:
                print('  %-44s %10.2f %10.2f %7.2fx' % (name, then, now, now / then))
                rows.append(('issue 12 ' + name, then, now))
            spread = _round_ratios(theirs, ours, key, len(ours.seconds[key]))
            if spread:
                print('    %s MB/s %s' % (operation.upper(), spread))
            print('    CPU s/GiB by process, before: %s; now: %s' % tuple(
                ', '.join('%s %.2f' % (process.replace(target.gateway.name, 'gateway'),
                                       spent / len(target.seconds[key]) / gib)
                          for process, spent in sorted(target.cpu[key].items()))
                for target in (theirs, ours)))
    gib = moved / (1024 * MIB)
    then, now = totals[theirs.name] / gib, totals[ours.name] / gib
    print('  %-44s %10.2f %10.2f %7.2fx'
          % ('every process, whole run, CPU s/GiB moved', then, now, now / then))
    rows.append(('issue 12 whole run CPU s/GiB', then, now))
    print('  (%d alternations for sizes up to 64 MiB, %d above; MB/s until the answer, CPU '
          'until every process is idle again; goals: MB/s ratio >= 0.95, CPU ratios <= 1.05)'
          % (small_rounds or repeats + 2, repeats))
    for which, path in zip(('before', 'now'), fault_logs):
        print('  cloud faults logged by the gateway %s: %s' % (which, ', '.join(
            '%s %d' % item for item in sorted(_faults(path).items())) or 'none'))
    return rows


def run(quick=False):
    repeats = 1 if quick else 3
    small, large = 16 * MIB, (64 * MIB if quick else 1024 * MIB)
    large_label = '%d MiB' % (large // MIB) if large < 1024 * MIB else '1 GiB'
    base_code = os.environ.get(BASE_ENV)
    first_slot = cluster_mod.free_slots(12 if base_code else 7, FIRST_SLOT)
    root = cluster_mod.make_root('tclouds-cloudstore-bench')
    key = ed25519.Ed25519PrivateKey.generate()
    key_file = pathlib.Path(root) / 'writer.pem'
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    clouds = [cluster_mod.Cluster('cloud%d' % index, first_slot + index, root,
                                  s3api=(index == 3), backend_only=True)
              for index in range(4)]
    # The front proxy, the EC and the plain cluster run their proxy and their storage
    # servers (the stubs, the fragments, the replicas) in separate processes.
    section = cluster_mod.cloudstore_section(
        clouds, key_file, timeout=60, fault_log=pathlib.Path(root) / 'faults-now.log')
    front = cluster_mod.Cluster('front', first_slot + 4, root, cloudstore=section, split=True)
    ec = cluster_mod.Cluster('ec', first_slot + 5, root, ec=(2, 2), split=True)
    plain = cluster_mod.Cluster('plain', first_slot + 6, root, split=True)
    everything = clouds + [front, ec, plain]
    if base_code:
        base_clouds, base_front = base_clusters(base_code, first_slot + 7, root, key_file)
        everything += base_clouds + [base_front]
    block = os.urandom(BLOCK)
    print('machine: %s; load average before: %s' % (load.machine(), load.loadavg()))
    floor = _floor_ms_per_mib()
    print('floor of the gateway primitives per MiB on one core: %s' % ', '.join(
        '%s %.2f ms' % item for item in floor['parts'].items()))
    rows = []
    try:
        for item in everything:
            item.start()
        base = _Target('ec', ec, [ec])
        reference = _Target('plain', plain, [plain])
        ours = _Target('cloudstore', front, [front] + clouds)
        targets = [base, reference, ours]
        for target in targets:
            target.conn.put_container('bench')
            target.conn.put_object('bench', 'warmup', block[:MIB])
        if base_code:
            before = _Target('cloudstore before', base_front, [base_front] + base_clouds)
            before.conn.put_container('bench')
            before.conn.put_object('bench', 'warmup', block[:MIB])
            rows += compare_with_base(ours, before, block, _sizes(os.environ.get(
                BASE_ENV + '_SIZES', '16M' if quick else '16M,1G')), repeats, (
                    pathlib.Path(root) / 'faults-before.log',
                    pathlib.Path(root) / 'faults-now.log'),
                small_rounds=int(os.environ.get(BASE_ENV + '_ROUNDS',
                                                5 if quick else BASE_ROUNDS)))
        for background, suffix in ((False, ''), (True, ', 2 busy processes')):
            context = load.background_load() if background else contextlib.nullcontext()
            with context:
                print('-- %s (load average %s)' % ('with two busy processes started here'
                                                   if background else 'no added load',
                                                   load.loadavg()))
                _round(targets, block, small, '16 MiB' + suffix, repeats + 2, True)
                rows += _print_ratio_rows(targets, '16 MiB' + suffix, small, floor)
                _round(targets, block, large, large_label + suffix, repeats, False)
                rows += _print_ratio_rows(targets, large_label + suffix, large, floor)
                for target in (base, ours):
                    print('  %s peak RSS over its start (VmHWM - VmRSS): %s PUT %.0f MiB, '
                          'GET %.0f MiB; peak RSS of the process (VmHWM) %.0f / %.0f MiB' % (
                              'gateway' if target is ours else 'EC proxy', large_label,
                              target.peak['put %s' % (large_label + suffix)] / MIB,
                              target.peak['get %s' % (large_label + suffix)] / MIB,
                              target.peak_abs['put %s' % (large_label + suffix)] / MIB,
                              target.peak_abs['get %s' % (large_label + suffix)] / MIB))
                rows.append(('gateway peak RSS GET %s MiB' % (large_label + suffix),
                             base.peak['get %s' % (large_label + suffix)] / MIB,
                             ours.peak['get %s' % (large_label + suffix)] / MIB))
                rows += _range_rows(base, ours, block, large, large_label, suffix, repeats)
        rows += _storage_rows(ours, base, reference, clouds, ec, plain, block)
    finally:
        for item in everything:
            item.stop()
        shutil.rmtree(root, ignore_errors=True)
    print('load average after: %s' % load.loadavg())
    return rows


def _range_rows(base, ours, block, large, large_label, suffix, repeats):
    """1 MiB in the middle of the large object, beside a whole 1 MiB object."""
    rows = []
    start = large // 2 + 12345
    headers = {'Range': 'bytes=%d-%d' % (start, start + MIB - 1)}
    for target in (base, ours):
        target.put('put 1 MiB', 'one MiB', block, MIB)
    for _ in range(repeats + 4):
        for target in (base, ours):
            target.get('range' + suffix, 'obj %s' % (large_label + suffix), block, MIB,
                       headers=headers, start=start)
            target.get('1 MiB' + suffix, 'one MiB', block, MIB)
    for target in (base, ours):
        ratio = target.median('range' + suffix) / target.median('1 MiB' + suffix)
        print('  %s: 1 MiB Range GET of the %s object %.1f ms, GET of a 1 MiB object %.1f '
              'ms: %.2fx%s' % ('cloudstore' if target is ours else 'EC baseline',
                               large_label, 1000 * target.median('range' + suffix),
                               1000 * target.median('1 MiB' + suffix), ratio,
                               ' (goal <= 2x)' if target is ours else ''))
    rows.append(('range GET / 1 MiB GET' + suffix,
                 base.median('range' + suffix) / base.median('1 MiB' + suffix),
                 ours.median('range' + suffix) / ours.median('1 MiB' + suffix)))
    # What a GET costs the gateway apart from its bytes (the stub, the requests): the
    # CPU of a 1 MiB GET; per MiB beyond it, the 16 MiB GET's extra CPU over 15 MiB.
    one = 1000 * ours.cpu_per_request('1 MiB' + suffix, 'front')
    sixteen = 1000 * ours.cpu_per_request('get 16 MiB' + suffix, 'front')
    print('  gateway CPU of a 1 MiB GET %.1f ms; per MiB beyond it (16 MiB GET) %.2f ms'
          % (one, (sixteen - one) / 15))
    return rows


def _storage_rows(ours, base, reference, clouds, ec, plain, block):
    """Bytes stored per object byte: one more 16 MiB object on each target."""
    before = [sum(item.stored_bytes() for item in clouds), ec.stored_bytes(),
              plain.stored_bytes()]
    for target in (ours, base, reference):
        target.conn.put_object('bench', 'storage', _Body(block, BLOCK),
                               content_length=BLOCK, chunk_size=CHUNK)
    after = [sum(item.stored_bytes() for item in clouds), ec.stored_bytes(),
             plain.stored_bytes()]
    cloud_bytes, ec_bytes, plain_bytes = [(a - b) / BLOCK for a, b in zip(after, before)]
    print('storage per object byte: clouds %.2fx (goal 2.0x), EC baseline %.2fx, plain '
          'replica %.2fx' % (cloud_bytes, ec_bytes, plain_bytes))
    return [('storage', ec_bytes, cloud_bytes)]
