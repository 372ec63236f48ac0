"""Helpers of the demo tests: run ``tclouds-demo`` as a user would, find leftover servers."""
import os
import sys

from tests import watchdog


def run_demo(*args, timeout=None):
    """``python -m tclouds_openstack.demo.main *args``; the CompletedProcess (text).

    No time limit (``timeout`` is ignored): the demo is stopped only when it is stuck
    (tests/watchdog.py), however long a loaded machine makes it take.
    """
    return watchdog.run([sys.executable, '-m', 'tclouds_openstack.demo.main', *args],
                        capture_output=True, text=True)


def processes(program, marker):
    """PIDs of live ``program`` processes whose command line mentions ``marker``."""
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                argv = f.read().split(b'\0')
            with open('/proc/%s/stat' % pid) as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if state != 'Z' and os.path.basename(argv[0]) == program.encode() \
                and any(marker.encode() in arg for arg in argv):
            found.append(int(pid))
    return found
