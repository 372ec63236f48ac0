"""Shared test fixtures.

``shared_data`` points at ../shared/data (real event logs, Merkle vectors) when the
checkout sits beside it; tests that need it skip cleanly when it is absent.
"""
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = pathlib.Path(os.environ.get('TCLOUDS_SHARED_DATA', REPO.parent / 'shared' / 'data'))


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip('../shared/data is not present')
    return SHARED_DATA
