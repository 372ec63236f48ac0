"""Shared test fixtures.

``shared_data`` points at ../shared/data (real event logs, Merkle vectors) when the
checkout sits beside it; tests that need it skip cleanly when it is absent.
"""
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = pathlib.Path(os.environ.get('TCLOUDS_SHARED_DATA', REPO.parent / 'shared' / 'data'))


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
