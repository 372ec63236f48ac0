"""Protected block export (nbdkit plugin, AES-256-GCM + on-disk Merkle tree) vs qemu LUKS1.

Both are served over NBD on a unix socket and driven by the same ``qemu-img bench`` runs
(like for like: the client, transport and page cache are the same; only the server and
the on-disk format differ). Rows: sequential 1 MiB and 4 KiB at a 257-sector stride
(``qemu-img bench`` 7.2 has no random mode; the stride defeats readahead and sequential
merging), queue depth 1 and 16, write then read (reads decrypt data written before, never
the zero fast path). Goals (issues 6 and 14): >= 2.0x sequential, >= 0.75x random 4 KiB.
Also prints the per-sector cipher measurement behind the choice of AES-GCM.

Volumes are sparse and large (``BLOCKSTORE_BENCH_SIZE``, default 64G, both targets the same
size): the format keeps its tree and records on disk behind a bounded cache (64 MiB), so a
row measures the format at a real size. The sequential rows write and read 256 MiB from the
start; the 4 KiB rows touch 10,000 sectors 257 sectors apart (a 10 GB span).

Each row runs 5 times per target (1 with ``--quick``), interleaved, and the first target
rotates between repetitions; the table shows medians, the ``range`` column the lowest and
highest ratio of one repetition, and the CPU time each server spent per GiB moved (from
/proc, summed over the repetitions: load-independent). The flush row writes as many
requests as the other 4 KiB rows (156 flushes). Every row runs twice: on the machine as
it is, and with a fixed background load of two busy processes started and stopped here
(goal: every row meets its goal under that load too). The load average is printed with
each table. The client (``qemu-img bench``) runs pinned to CPU 1, the servers where the
scheduler puts them (unpinned QD1 ratios were decided by where the scheduler happened to
put client and server).

``BLOCKSTORE_BENCH_BASE=/path/to/an/older/checkout`` adds that checkout's server as a
third target (same rows, same run), to compare two versions of the format against the
same LUKS1 baseline; its volume has ``BLOCKSTORE_BENCH_BASE_SIZE`` (default the same size:
format 1 keeps its state in memory and opens in time linear in the size, so give it 128M,
the size its own figures were taken at, or 12G: the 4 KiB rows then touch the same 10,000
sectors spread over 10 GB as on the format 2 volume, where at 128M they fall on 10,000 of
its 32,768 sectors, whose records and tree are a few hundred pages).

Scale (issue 14): a sparse 1 TiB volume is created and opened (the time of the open is
measured in a fresh process, with its peak RSS), served, written (10,000 4 KiB writes spread
over the whole 1 TiB and 1 GiB sequential) and read back; the server's peak RSS (VmHWM) is
read from /proc. ``check`` then scrubs the whole volume in a child process: its speed
over the data it decrypted (the written sectors) against the same export's sequential
read, and its peak RSS (getrusage of that child); also both by CPU time (the check's
whole command per GiB decrypted, the server's during the sequential read). Goals: server
<= 256 MiB, open <= 2 s, check >= 0.5x the sequential read, bounded memory.
"""
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers import modes
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac

from benchmarks import load
from tclouds_openstack.cmd import blockstore as blockstore_cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = [sys.executable, '-m', 'tclouds_openstack.cmd.blockstore']
STRIDE = 257 * 4096
SEQ_BYTES = 256 << 20
GOALS = {'rss_mib': 256, 'open_s': 2.0, 'check_ratio': 0.5}


def _wait_socket(path, proc, timeout=60):
    if not blockstore_cli.wait_listening(path, proc, timeout):
        raise RuntimeError('server exited with %s' % proc.returncode)


# The client always on the same CPU, for every target (see the docstring).
_CLIENT_CPU = ['taskset', '-c', '1'] if (os.cpu_count() or 1) > 1 else []


def _cpu_seconds(pid):
    """User + system CPU time of a process (all its threads), from /proc."""
    with open('/proc/%d/stat' % pid) as stream:
        fields = stream.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _peak_rss_mib(pid):
    """Peak resident set size (VmHWM) of a running process, MiB."""
    with open('/proc/%d/status' % pid) as stream:
        for line in stream:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    raise RuntimeError('no VmHWM for pid %d' % pid)


class _Target:
    def __init__(self, name, proc, sock):
        self.name, self.proc, self.sock = name, proc, sock


def _write_key(path):
    with open(path, 'w') as f:
        f.write(os.urandom(32).hex())


def _plugin_of(pid):
    """The nbd_plugin.py the server at ``pid`` runs (nbdkit's command line)."""
    with open('/proc/%d/cmdline' % pid, 'rb') as stream:
        argv = stream.read().decode().split('\0')
    return next((a for a in argv if a.endswith('nbd_plugin.py')), '')


def _start_tclouds(work, name, size, cli=None, env=None, cache_mb=None, timeout=60,
                   code=None):
    """Create and serve a volume with this checkout's code or, with ``code``, another's.

    ``python -m`` puts its working directory first on the path, ahead of PYTHONPATH: the
    other checkout's server runs from that checkout, and what nbdkit loaded is checked.
    """
    cli = cli or CLI
    code = os.path.realpath(code or REPO)
    vol, anchor, key = (os.path.join(work, name + s) for s in ('.vol', '.anchor', '.key'))
    _write_key(key)
    args = [vol, '--anchor', anchor, '--key-file', key]
    subprocess.run(cli + ['create'] + args + ['--size', str(size)], check=True,
                   stdout=subprocess.DEVNULL, env=env, cwd=code)
    sock = os.path.join(work, name + '.sock')
    extra = ['--cache-mb', str(cache_mb)] if cache_mb else []
    proc = subprocess.Popen(cli + ['serve'] + args + ['--socket', sock] + extra,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=code)
    _wait_socket(sock, proc, timeout)
    plugin = os.path.realpath(_plugin_of(proc.pid))
    if not plugin.startswith(code + os.sep):
        proc.kill()
        raise RuntimeError('the %s server runs %s, not the code of %s' % (name, plugin, code))
    return _Target(name, proc, sock), args


def _start_luks(work, size):
    img = os.path.join(work, 'luks.img')
    secret = '--object', 'secret,id=sec0,data=benchmark-passphrase'
    for _ in range(5):   # PBKDF calibration fails now and then ("accurate CPU usage")
        res = subprocess.run(['qemu-img', 'create', '-f', 'luks', *secret, '-o',
                              'key-secret=sec0', img, str(size)], capture_output=True)
        if res.returncode == 0:
            break
    else:
        raise RuntimeError('qemu-img create -f luks failed: %s' % res.stderr.decode())
    sock = os.path.join(work, 'luks.sock')
    proc = subprocess.Popen(['qemu-nbd', *secret, '--persistent', '--image-opts', '-k', sock,
                             'driver=luks,key-secret=sec0,file.filename=%s' % img],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_socket(sock, proc)
    return _Target('LUKS1 (qemu)', proc, sock)


def _bench(sock, write, size, depth, count, step, flush_every=0, offset=0):
    cmd = _CLIENT_CPU + ['qemu-img', 'bench', '-f', 'raw', '-t', 'none', '-c', str(count),
                         '-s', str(size), '-d', str(depth), '-S', str(step),
                         '-o', str(offset)]
    cmd += ['-w', '--pattern', '0x5c'] if write else []
    if flush_every:
        cmd.append('--flush-interval=%d' % flush_every)
    out = subprocess.run(cmd + ['nbd+unix:///?socket=%s' % sock], capture_output=True,
                         text=True, check=True).stdout
    seconds = float(re.search(r'Run completed in ([0-9.]+) seconds', out).group(1))
    return count / seconds


def _cipher_choice(n=20000):
    """Python cost per 4 KiB sector: AES-256-GCM vs AES-256-XTS + HMAC-SHA256 tag."""
    data = os.urandom(4096)
    gcm = AESGCM(os.urandom(32))
    xts_key, mac_key = os.urandom(64), os.urandom(32)
    t = time.perf_counter()
    for i in range(n):
        gcm.encrypt(i.to_bytes(12, 'big'), data, b'aad')
    t_gcm = (time.perf_counter() - t) / n
    t = time.perf_counter()
    for i in range(n):
        enc = Cipher(algorithms.AES(xts_key), modes.XTS(i.to_bytes(16, 'little'))).encryptor()
        ct = enc.update(data) + enc.finalize()
        h = hmac.HMAC(mac_key, hashes.SHA256())
        h.update(ct)
        h.finalize()
    t_xts = (time.perf_counter() - t) / n
    return t_gcm, t_xts


ROWS = [  # name, write, request size, depth, unit, flush every N requests (0: at the end)
    ('seq write 1M QD1', True, 1 << 20, 1, 'MB/s', 0),
    ('seq read 1M QD1', False, 1 << 20, 1, 'MB/s', 0),
    ('4K write QD1', True, 4096, 1, 'IOPS', 0),
    ('4K read QD1', False, 4096, 1, 'IOPS', 0),
    ('4K write QD16', True, 4096, 16, 'IOPS', 0),
    ('4K read QD16', False, 4096, 16, 'IOPS', 0),
    # Flushes are where freshness costs: tree update, fdatasync, anchor commit.
    ('4K write QD1 flush/64', True, 4096, 1, 'IOPS', 64),
]


def _rows(targets, repeats, small_ops, title):
    """Run every row on every target; print the table (first target vs the last)."""
    ours, base = targets[0], targets[-1]
    load_before = load.loadavg()
    results = {}
    for name, write, req, depth, unit, flush_every in ROWS:
        count = (SEQ_BYTES // req) if req > 4096 else small_ops
        step = req if req > 4096 else STRIDE
        rates = {t.name: [] for t in targets}
        cpu = {t.name: 0.0 for t in targets}
        for i in range(repeats):       # interleaved, so load spikes hit every target
            k = i % len(targets)
            for target in targets[k:] + targets[:k]:
                before = _cpu_seconds(target.proc.pid)
                rates[target.name].append(_bench(target.sock, write, req, depth, count,
                                                 step, flush_every))
                cpu[target.name] += _cpu_seconds(target.proc.pid) - before
        moved_gib = repeats * count * req / (1 << 30)
        for target in targets:
            rate = statistics.median(rates[target.name])
            results[name, target.name] = rate * req / 1e6 if unit == 'MB/s' else rate
            results[name, target.name, 'cpu'] = cpu[target.name] / moved_gib
        ratios = [a / b for a, b in zip(rates[ours.name], rates[base.name])]
        results[name, 'range'] = min(ratios), max(ratios)
    print('--- %s (load average before %s, after %s)' % (title, load_before, load.loadavg()))
    head = '%-22s' % 'test'
    for target in targets:
        head += ' %14s' % target.name[:14]
    head += ' %8s %11s' % ('ratio', 'range')
    for target in targets[1:-1]:
        head += ' %8s' % ('ratio ' + target.name[:2])
    head += '  goal         CPU s/GiB ' + ' / '.join(t.name.split()[0] for t in targets)
    print(head)
    missed = 0
    for name, write, req, depth, unit, flush_every in ROWS:
        line = '%-22s' % name
        for target in targets:
            line += ' %9.0f %-4s' % (results[name, target.name], unit)
        ratio = results[name, ours.name] / results[name, base.name]
        line += ' %7.2fx %5.2f-%.2fx' % (ratio, *results[name, 'range'])
        for target in targets[1:-1]:
            line += ' %7.2fx' % (results[name, target.name] / results[name, base.name])
        goal = 2.0 if req > 4096 else 0.75
        missed += ratio < goal
        line += '  >=%.2fx %-6s %s' % (goal, 'met' if ratio >= goal else 'MISSED', ' / '.join(
            '%.2f' % results[name, t.name, 'cpu'] for t in targets))
        print(line)
    return missed


def _stop(procs):
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _size_bytes(text):
    return blockstore_cli.parse_size(text)


def _ratio_tables(work, quick):
    size = _size_bytes(os.environ.get('BLOCKSTORE_BENCH_SIZE', '8G' if quick else '64G'))
    repeats = 1 if quick else 5
    small_ops = 2000 if quick else 10000
    targets = []
    try:
        ours, _ = _start_tclouds(work, 'format2', size)
        targets.append(ours)
        base_tree = os.environ.get('BLOCKSTORE_BENCH_BASE')
        base_size = size
        if base_tree:
            env = dict(os.environ, PYTHONPATH=os.path.abspath(base_tree))
            base_size = _size_bytes(os.environ.get('BLOCKSTORE_BENCH_BASE_SIZE', str(size)))
            # Format 1 builds its whole tree in memory when it opens: minutes at 12 GiB.
            base, _ = _start_tclouds(work, 'base', base_size, env=env, timeout=1800,
                                     code=base_tree)
            base.name = 'base checkout'
            targets.append(base)
        targets.append(_start_luks(work, size))
        print('volumes: %d MiB sparse (the base checkout\'s %d MiB); tclouds cache 64 MiB'
              % (size >> 20, base_size >> 20))
        missed = _rows(targets, repeats, small_ops, 'the machine as it is')
        with load.background_load():
            missed_loaded = _rows(targets, repeats, small_ops,
                                  'with two busy processes (background load)')
        return missed, missed_loaded
    finally:
        _stop([t.proc for t in targets])


def _child_open(args):
    """Open the volume in a fresh process: (seconds, peak RSS MiB of that process)."""
    code = ('import sys, time, resource\n'
            'from tclouds_openstack.cmd import blockstore as cli\n'
            'args = cli.build_parser().parse_args(["info"] + sys.argv[1:])\n'
            'args.opened = []\n'
            'key = cli.get_key(args)\n'
            't = time.perf_counter()\n'
            'vol = cli._open(args, readonly=True, key=key)\n'
            'print(time.perf_counter() - t, '
            'resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n')
    out = subprocess.run([sys.executable, '-c', code] + args, capture_output=True,
                         text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def _scale(work, quick):
    size = _size_bytes('64G' if quick else '1T')
    print('--- scale: a sparse %d GiB volume (load average %s)' % (size >> 30, load.loadavg()))
    t = time.perf_counter()
    server, args = _start_tclouds(work, 'scale', size)
    started = time.perf_counter() - t
    _stop([server.proc])
    open_s, open_rss = _child_open(args)
    t = time.perf_counter()
    proc = subprocess.Popen(CLI + ['serve'] + args + ['--socket', server.sock],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_socket(server.sock, proc)
    serve_s = time.perf_counter() - t
    try:
        ops = 2000 if quick else 10000
        stride = (size // ops) // 4096 * 4096
        seq = (64 if quick else 1024) << 20
        _bench(server.sock, True, 4096, 16, ops, stride)
        _bench(server.sock, True, 1 << 20, 1, seq >> 20, 1 << 20)
        _bench(server.sock, False, 4096, 16, ops, stride)
        cpu_before = _cpu_seconds(proc.pid)
        seq_read = _bench(server.sock, False, 1 << 20, 1, seq >> 20, 1 << 20) * (1 << 20)
        seq_cpu = (_cpu_seconds(proc.pid) - cpu_before) / (seq / (1 << 30))
        rss = _peak_rss_mib(proc.pid)
    finally:
        _stop([proc])
    t = time.perf_counter()
    child = subprocess.Popen(CLI + ['check'] + args, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    check_s = time.perf_counter() - t
    out = child.stdout.read().decode() + child.stderr.read().decode()
    child.stdout.close()
    child.stderr.close()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError('check failed: %s' % out)
    written = seq + ops * 4096
    # The check's own figure: bytes decrypted over its scrub time (not the start-up).
    match = re.search(r'(\d+) MiB of written data decrypted in ([0-9.]+) s', out)
    check_rate = int(match.group(1)) * (1 << 20) / float(match.group(2))
    # CPU time (load-independent): the whole command's, per GiB it decrypted.
    check_cpu = (usage.ru_utime + usage.ru_stime) / (int(match.group(1)) / 1024)
    rows = [
        ('create + serve until listening', '%.2f s' % started, ''),
        ('open (fresh process, in-process open)', '%.3f s' % open_s,
         '<= %.1f s %s' % (GOALS['open_s'], 'met' if open_s <= GOALS['open_s'] else 'MISSED')),
        ('peak RSS of that process', '%.0f MiB' % open_rss, ''),
        ('serve until listening (existing volume)', '%.2f s' % serve_s, ''),
        ('server peak RSS after %d scattered 4K + %d MiB seq writes and reads'
         % (ops, seq >> 20), '%.0f MiB' % rss, '<= %d MiB %s' % (
             GOALS['rss_mib'], 'met' if rss <= GOALS['rss_mib'] else 'MISSED')),
        ('check of the whole volume (%d MiB written), whole command' % (written >> 20),
         '%.1f s' % check_s, ''),
        ('check streaming (written data / scrub time)', '%.0f MB/s' % (check_rate / 1e6), ''),
        ('seq read 1M QD1 of the same export', '%.0f MB/s' % (seq_read / 1e6), ''),
        ('check / seq read', '%.2fx' % (check_rate / seq_read), '>= %.1fx %s' % (
            GOALS['check_ratio'],
            'met' if check_rate / seq_read >= GOALS['check_ratio'] else 'MISSED')),
        ('check peak RSS (getrusage of the child)', '%.0f MiB' % (usage.ru_maxrss / 1024),
         ''),
        ('CPU s/GiB: check (whole command) / server of the seq read',
         '%.2f / %.2f' % (check_cpu, seq_cpu), ''),
        ('check / seq read by CPU time', '%.2fx' % (seq_cpu / check_cpu), ''),
    ]
    for name, value, goal in rows:
        print('%-70s %20s  %s' % (name, value, goal))


def run(quick=False):
    t_gcm, t_xts = _cipher_choice(2000 if quick else 20000)
    print('cipher per 4 KiB sector (Python, cryptography): AES-256-GCM %.2f us, '
          'AES-256-XTS + HMAC-SHA256 %.2f us -> GCM (%.1fx cheaper)'
          % (t_gcm * 1e6, t_xts * 1e6, t_xts / t_gcm))
    print('machine: %s; benchmark process peak RSS so far %.0f MiB'
          % (load.machine(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    work = tempfile.mkdtemp(prefix='bench-blockstore-')
    try:
        _ratio_tables(work, quick)
        _scale(work, quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)
