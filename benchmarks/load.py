"""What a benchmark needs to say about the machine it ran on, and a fixed background load.

Issue 14 point 6: a compute host's cores are never idle, so every ratio row is also
measured with two busy processes (a compute host's VMs) started and stopped around it,
and the load average is printed beside the figures (the machine is shared).
"""
import contextlib
import os
import subprocess
import sys
import time


def loadavg():
    """``"1.02 0.87 0.55"``: the 1, 5 and 15 minute load averages."""
    with open('/proc/loadavg') as stream:
        return ' '.join(stream.read().split()[:3])


def machine():
    """One line: CPU model, cores, memory."""
    model = 'unknown CPU'
    with open('/proc/cpuinfo') as stream:
        for line in stream:
            if line.startswith('model name'):
                model = line.split(':', 1)[1].strip()
                break
    with open('/proc/meminfo') as stream:
        memory = int(stream.readline().split()[1]) // (1024 * 1024)
    return '%s, %d cores, %d GiB' % (model, os.cpu_count(), memory)


@contextlib.contextmanager
def background_load(busy=2):
    """``busy`` processes spinning on a core each, stopped when the block ends."""
    procs = [subprocess.Popen([sys.executable, '-c', 'while True:\n    pass'])
             for _ in range(busy)]
    try:
        time.sleep(1)         # let the scheduler see them before the first measurement
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def describe_checkout(root):
    """``<short hash> <subject>`` of the commit checked out in ``root`` (a baseline's name)."""
    try:
        return subprocess.run(['git', '-C', str(root), 'log', '-1', '--format=%h %s'],
                              capture_output=True, text=True, check=True
                              ).stdout.strip()[:60]
    except (OSError, subprocess.CalledProcessError):
        return 'not a git checkout'
