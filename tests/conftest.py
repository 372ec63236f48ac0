"""Shared test fixtures and the suite's guards.

``shared_data`` points at ../shared/data (real event logs, Merkle vectors) when the
checkout sits beside it; tests that need it skip cleanly when it is absent.

No test reads machine configuration: tests/hermetic_site/sitecustomize.py notes every read
of /etc/<service> or ~/.<service>, and every oslo.config lookup there, in this process and
in every Python process a test starts. With ``TCLOUDS_MACHINE_CONFIG_GUARD=fail`` a test
during which one happened fails, and so does the run; otherwise (``report``, the default
while the last areas are made hermetic) the run lists them at its end.

Hang protection is tests/watchdog.py (no wall-clock limits); a supervised pytest process
dumps its threads' stacks when the watchdog asks.
"""
import importlib.util
import os
import pathlib
import tempfile

import pytest

from tests import watchdog

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = pathlib.Path(os.environ.get('TCLOUDS_SHARED_DATA', REPO.parent / 'shared' / 'data'))
GUARD_SITE = REPO / 'tests' / 'hermetic_site'


def _install_machine_config_guard():
    """Returns (the guard's log, whether this process created it)."""
    log, created = os.environ.get('TCLOUDS_MACHINE_CONFIG_LOG'), False
    if not log:
        fd, log = tempfile.mkstemp(prefix='tclouds-machine-config-', suffix='.log')
        os.close(fd)
        os.environ['TCLOUDS_MACHINE_CONFIG_LOG'] = log
        created = True
    paths = os.environ.get('PYTHONPATH', '').split(os.pathsep)
    if str(GUARD_SITE) not in paths:
        os.environ['PYTHONPATH'] = os.pathsep.join([str(GUARD_SITE)] + [p for p in paths if p])
    spec = importlib.util.spec_from_file_location('tclouds_machine_config_guard',
                                                  GUARD_SITE / 'sitecustomize.py')
    spec.loader.exec_module(importlib.util.module_from_spec(spec))   # installs the guard
    return log, created


MACHINE_CONFIG_LOG, _LOG_CREATED = _install_machine_config_guard()
GUARD_FAILS = os.environ.get('TCLOUDS_MACHINE_CONFIG_GUARD', 'report') != 'report'
watchdog.register_stack_dump()


def _guard_lines(offset=0):
    try:
        with open(MACHINE_CONFIG_LOG, 'rb') as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return offset, []
    lines = [line.decode('utf-8', 'replace').replace('\\n', '\n')
             for line in data.splitlines()]
    return offset + len(data), lines


@pytest.fixture(autouse=True)
def _no_machine_configuration():
    offset, _ = _guard_lines()
    yield
    _, lines = _guard_lines(offset)
    if lines and GUARD_FAILS:
        pytest.fail('the test read machine configuration (tests/conftest.py):\n'
                    + '\n'.join(lines), pytrace=False)


_FOUND = []


def pytest_sessionfinish(session, exitstatus):
    if os.getpid() != _SESSION_PID:
        return      # a forked test process
    _, lines = _guard_lines()
    _FOUND.extend(lines)
    if _LOG_CREATED:
        try:
            os.unlink(MACHINE_CONFIG_LOG)
        except OSError:
            pass
    if lines and GUARD_FAILS:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    if not _FOUND:
        return
    seen = sorted(set(line.split('\n')[0] for line in _FOUND))
    terminalreporter.write_line('== machine configuration read during the run '
                                '(tests/conftest.py): %d' % len(_FOUND))
    for line in seen:
        terminalreporter.write_line('  ' + line)
    if os.environ.get('TCLOUDS_MACHINE_CONFIG_GUARD') == 'report':     # with the stacks
        for line in _FOUND:
            terminalreporter.write_line(line)


_SESSION_PID = os.getpid()


def pytest_ignore_collect(collection_path, config):
    """Leave out modules needing a process of their own when TCLOUDS_SKIP_ISOLATED=1.

    tools/run-tests.sh runs them separately: see tests/isolation.py.
    """
    if (os.environ.get('TCLOUDS_SKIP_ISOLATED') == '1' and collection_path.suffix == '.py'
            and collection_path.name.startswith('test_')):
        from tests import isolation
        if isolation.needs_isolation(collection_path):
            return True
    return None


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip('../shared/data is not present')
    return SHARED_DATA


def _forked_report_compat():
    """Make pytest-forked 1.7.5 work with pytest 9.2.

    pytest-forked marshals TestReport.__dict__, which under pytest 9.2 holds a NodeId
    object (``_id``) that marshal rejects: every @pytest.mark.forked test then "EXITED
    with status 3". Send the node id as the ``nodeid`` string instead.
    """
    import pytest_forked

    original = pytest_forked.serialize_report
    if getattr(original, 'tclouds_compat', False):
        return

    def serialize_report(rep):
        data = original(rep)
        if '_id' in data:
            data['nodeid'] = str(data.pop('_id'))
        return data

    serialize_report.tclouds_compat = True
    pytest_forked.serialize_report = serialize_report


_forked_report_compat()
