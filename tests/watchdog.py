"""Hang protection that load cannot trip: stuck means "used no CPU", never "took long".

A wall-clock limit fails a healthy run on a busy machine: with both cores busy the suite takes
two to three times as long, and any fixed limit is only a guess at how busy CI will be. A hung
process, however, waits on a lock, a socket or a child and uses no CPU at all. So the only
limit here is: a process tree (a process and all its descendants) that used less than
``MIN_PROGRESS`` CPU-seconds during ``STUCK_AFTER`` seconds is stuck and is killed, with
a report of what it was doing. A busy-looping hang does use CPU: a whole pytest process is
also stopped once its tree has used ``CPU_BUDGET`` CPU-seconds, a budget of work (the
largest area of the suite uses a few CPU-minutes), not of time.

Knobs (environment): ``TCLOUDS_STUCK_MINUTES`` (default 5), ``TCLOUDS_CPU_BUDGET_MINUTES``
(default 60).

Three uses:

* ``python -m tests.watchdog -- CMD ...``: tools/run-tests.sh runs each pytest process so.
  When stuck (or over budget) every Python process of the tree dumps its threads' stacks
  (faulthandler, registered by tests/conftest.py on SIGUSR1, into ``$TCLOUDS_STACKS_FILE``),
  the report is printed and the tree is killed; the exit status is 124.
* ``watchdog.run(cmd, ...)``: ``subprocess.run`` for tests without a ``timeout``: the child
  runs as long as it works; when its tree is stuck it is killed and
  :class:`Stuck` (a ``subprocess.TimeoutExpired``) is raised.
* ``watchdog.wait_until(predicate, what, proc=None)``: a polling wait that gives up when the
  awaited process exited or is stuck, or (without a process) when nothing in this process
  tree except the polling thread used CPU for ``STUCK_AFTER``; ``watchdog.wait(proc, what)``
  waits for a process to exit on the same terms.
"""
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

STUCK_AFTER = float(os.environ.get('TCLOUDS_STUCK_MINUTES', '5')) * 60
CPU_BUDGET = float(os.environ.get('TCLOUDS_CPU_BUDGET_MINUTES', '60')) * 60
MIN_PROGRESS = 1.0      # CPU-seconds per STUCK_AFTER: more than the idle noise of heartbeats
SAMPLE_EVERY = 2.0      # seconds between two readings of /proc (a reading costs a few ms)
_TICK = os.sysconf('SC_CLK_TCK')


def _processes():
    """{pid: (ppid, cpu seconds incl. reaped children)} of every process on the machine."""
    procs = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry, 'rb') as f:
                stat = f.read()
        except OSError:
            continue        # exited meanwhile
        # the command name (field 2) may hold spaces and parentheses: split after its end
        fields = stat[stat.rfind(b')') + 2:].split()
        ppid = int(fields[1])
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        procs[int(entry)] = (ppid, (utime + stime + cutime + cstime) / _TICK)
    return procs


def tree(pid):
    """The pids of ``pid`` and all its live descendants, with their CPU-seconds in total."""
    procs = _processes()
    children = {}
    for child, (ppid, _cpu) in procs.items():
        children.setdefault(ppid, []).append(child)
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in procs:
            pids.append(p)
            todo.extend(children.get(p, ()))
    return pids, sum(procs[p][1] for p in pids)


class Progress:
    """Tells whether the CPU time of a process tree still grows."""

    def __init__(self, pid, exclude=None):
        self.pid = pid
        self.exclude = exclude          # a callable: CPU-seconds not to count (the poller's)
        self.last_cpu = self.used = self.cpu()
        self.last_change = self.last_sample = time.monotonic()

    def cpu(self):
        used = tree(self.pid)[1]
        return used - self.exclude() if self.exclude else used

    def stuck(self):
        """True when the tree used less than MIN_PROGRESS CPU-seconds in STUCK_AFTER."""
        now = time.monotonic()
        if now - self.last_sample >= SAMPLE_EVERY:
            self.last_sample, self.used = now, self.cpu()
            if self.used - self.last_cpu >= MIN_PROGRESS:
                self.last_cpu, self.last_change = self.used, now
        return now - self.last_change > STUCK_AFTER


def _describe(pids):
    lines = []
    for pid in pids:
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                cmd = f.read().replace(b'\0', b' ').decode('utf-8', 'replace').strip()
        except OSError:
            continue
        lines.append('  %d %s' % (pid, cmd[:300]))
    return '\n'.join(lines)


def _signal_all(pids, sig, only_python=False):
    for pid in pids:
        if only_python:
            try:
                with open('/proc/%d/comm' % pid) as f:
                    if not f.read().startswith('python'):
                        continue
            except OSError:
                continue
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def kill_tree(pid):
    """SIGKILL ``pid`` and every descendant (descendants first found, then killed together)."""
    pids, _ = tree(pid)
    _signal_all(pids, signal.SIGKILL)
    return pids


class Stuck(subprocess.TimeoutExpired):
    def __str__(self):
        return ('%r used no CPU for %d s (stuck; tests/watchdog.py): killed'
                % (self.cmd, STUCK_AFTER))


def run(cmd, input=None, check=False, **kwargs):
    """``subprocess.run`` without a wall-clock limit: kill the child only when stuck."""
    kwargs.pop('timeout', None)
    if kwargs.pop('capture_output', False):
        kwargs['stdout'] = kwargs['stderr'] = subprocess.PIPE
    if input is not None:
        kwargs['stdin'] = subprocess.PIPE
    with subprocess.Popen(cmd, **kwargs) as proc:
        progress = Progress(proc.pid)
        while True:
            try:
                out, err = proc.communicate(input, timeout=2)
                break
            except Exception as exc:
                # by name: eventlet's green subprocess raises a TimeoutExpired class of its own
                if type(exc).__name__ != 'TimeoutExpired':
                    raise
                input = None        # already sent
                if progress.stuck():
                    kill_tree(proc.pid)
                    out, err = proc.communicate()
                    raise Stuck(cmd, STUCK_AFTER, out, err)
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check:
        result.check_returncode()
    return result


def wait_until(predicate, what, proc=None, interval=0.1):
    """Poll ``predicate`` until it returns something true, and return that.

    Fails (AssertionError naming ``what``) when ``proc`` (a Popen) exited or its tree is stuck;
    without ``proc``, when this process tree used no CPU for STUCK_AFTER besides the polling
    (the calls of ``predicate`` and the checks here): whatever should make ``predicate`` true
    is then not working on it. CPU used by other threads, or by other greenthreads while
    this one sleeps (eventlet), counts as progress.
    """
    polling = [0.0]         # CPU-seconds this thread spent polling
    if proc is not None:
        progress = Progress(proc.pid)
    else:
        progress = Progress(os.getpid(), exclude=lambda: polling[0])
    while True:
        started = time.thread_time()
        try:
            value = predicate()
            if value:
                return value
            if proc is not None and proc.poll() is not None:
                raise AssertionError('%s: the process exited with status %s first'
                                     % (what, proc.returncode))
            if progress.stuck():
                raise AssertionError('%s: nothing made progress (no CPU used) for %d s'
                                     % (what, STUCK_AFTER))
        finally:
            polling[0] += time.thread_time() - started
        time.sleep(interval)


def wait_for(predicate, timeout=None, step=0.05):
    """``wait_until`` with the signature of the attestation service's ``wait_for``.

    ``timeout`` is ignored: the wait ends when ``predicate`` is true, or fails when nothing
    makes progress (a limit in seconds is a timing assertion that load can break).
    """
    code = getattr(predicate, '__code__', None)
    where = '%s:%d' % (os.path.basename(code.co_filename), code.co_firstlineno) if code else ''
    return wait_until(predicate, 'the condition at %s' % where, interval=step)


def wait(proc, what):
    """``proc.wait()`` without a wall-clock limit: fails only when its tree is stuck."""
    wait_until(lambda: proc.poll() is not None, what, proc=proc)
    return proc.returncode


def supervise(cmd, interval=5.0):
    """Run ``cmd``; kill its tree when stuck or over CPU_BUDGET. Returns its exit status."""
    stacks = tempfile.NamedTemporaryFile(prefix='tclouds-stacks-', suffix='.txt', delete=False)
    stacks.close()
    env = dict(os.environ, TCLOUDS_STACKS_FILE=stacks.name)
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    try:
        proc = subprocess.Popen(cmd, env=env)
        progress = Progress(proc.pid)
        while True:
            try:
                status = proc.wait(timeout=interval)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                print('== %.0f s, %.0f CPU-s' % (
                    time.monotonic() - started,
                    after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime))
                return status
            except subprocess.TimeoutExpired:
                pass
            stuck = progress.stuck()
            if stuck or progress.used > CPU_BUDGET:
                break
        pids, _ = tree(proc.pid)
        why = ('used no CPU for %d s' % STUCK_AFTER if stuck
               else 'used more than %d CPU-seconds' % CPU_BUDGET)
        print('\n== watchdog: %s %s (tests/watchdog.py); its processes:\n%s'
              % (' '.join(cmd), why, _describe(pids)), file=sys.stderr)
        _signal_all(pids, signal.SIGUSR1, only_python=True)
        time.sleep(3)
        kill_tree(proc.pid)
        proc.wait()
        with open(stacks.name, errors='replace') as f:
            dumped = f.read()
        if dumped:
            print('== watchdog: stacks of its Python processes:\n%s' % dumped, file=sys.stderr)
        return 124
    finally:
        os.unlink(stacks.name)


def register_stack_dump():
    """In a supervised process: dump every thread's stack on SIGUSR1 (see supervise)."""
    path = os.environ.get('TCLOUDS_STACKS_FILE')
    if not path:
        return
    import faulthandler
    global _STACKS
    _STACKS = open(path, 'a')       # kept open: faulthandler writes to its descriptor
    faulthandler.register(signal.SIGUSR1, file=_STACKS, all_threads=True)


_STACKS = None


def main(argv):
    if argv[:1] != ['--'] or len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    return supervise(argv[1:])


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
