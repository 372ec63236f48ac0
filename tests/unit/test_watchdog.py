"""Hang protection without wall-clock limits (tests/watchdog.py)."""
import subprocess
import sys

import pytest

from tests import watchdog

SLEEPER = [sys.executable, '-c', 'import time; time.sleep(600)']
WORKER = [sys.executable, '-c', 'import time\nend = time.monotonic() + 3\n'
          'while time.monotonic() < end: pass\nprint("done")']


@pytest.fixture
def impatient(monkeypatch):
    monkeypatch.setattr(watchdog, 'STUCK_AFTER', 1.0)
    monkeypatch.setattr(watchdog, 'SAMPLE_EVERY', 0.2)
    monkeypatch.setattr(watchdog, 'MIN_PROGRESS', 0.05)


def test_tree_counts_the_cpu_of_children():
    proc = subprocess.Popen([sys.executable, '-c', 'import subprocess, sys; subprocess.run('
                             '[sys.executable, "-c", "import time; time.sleep(600)"])'])
    try:
        watchdog.wait_until(lambda: len(watchdog.tree(proc.pid)[0]) == 2, 'the grandchild',
                            proc=proc)
        pids, cpu = watchdog.tree(proc.pid)
        assert pids[0] == proc.pid and len(pids) == 2
        assert cpu > 0
    finally:
        killed = watchdog.kill_tree(proc.pid)
        proc.wait()
    assert len(killed) == 2


def test_run_kills_a_child_that_uses_no_cpu(impatient):
    with pytest.raises(watchdog.Stuck) as caught:
        watchdog.run(SLEEPER, capture_output=True)
    assert 'used no CPU' in str(caught.value)


def test_run_lets_a_working_child_finish_however_long_it_takes(impatient):
    # 3 s of work: three times the (shortened) stuck limit; a wall-clock limit would kill it
    result = watchdog.run(WORKER, capture_output=True, text=True, timeout=0.5, check=True)
    assert result.stdout == 'done\n'


def test_run_passes_input_and_checks():
    result = watchdog.run([sys.executable, '-c', 'import sys; print(sys.stdin.read()[::-1])'],
                          input='abc', capture_output=True, text=True)
    assert result.stdout == 'cba\n'
    with pytest.raises(subprocess.CalledProcessError):
        watchdog.run([sys.executable, '-c', 'raise SystemExit(3)'], check=True)


def test_wait_until_returns_the_value_and_fails_when_the_process_exits(impatient):
    assert watchdog.wait_until(lambda: 42, 'the answer') == 42
    proc = subprocess.Popen([sys.executable, '-c', 'raise SystemExit(7)'])
    with pytest.raises(AssertionError, match='exited with status 7'):
        watchdog.wait_until(lambda: False, 'a server', proc=proc)


def test_wait_until_fails_when_nothing_makes_progress(impatient):
    # the polling itself uses CPU: it does not count as progress
    with pytest.raises(AssertionError, match='no CPU used'):
        watchdog.wait_until(lambda: sum(range(20000)) < 0, 'nothing', interval=0.001)


def test_supervise_kills_a_stuck_tree_and_reports(impatient, capfd):
    assert watchdog.supervise(SLEEPER, interval=0.2) == 124
    assert 'used no CPU' in capfd.readouterr().err


def test_supervise_returns_the_status_of_a_working_command(impatient):
    assert watchdog.supervise(WORKER, interval=0.2) == 0


def test_run_works_where_eventlet_patched_subprocess():
    # eventlet's green subprocess raises a TimeoutExpired class of its own
    script = ('import eventlet; eventlet.monkey_patch(); import sys; '
              'sys.path.insert(0, %r); from tests import watchdog; '
              'print(watchdog.run(["sleep", "3"], capture_output=True).returncode)'
              % str(watchdog.__file__.rsplit('/tests/', 1)[0]))
    result = watchdog.run([sys.executable, '-W', 'ignore', '-c', script], capture_output=True,
                          text=True, check=True)
    assert result.stdout == '0\n'
