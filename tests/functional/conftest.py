"""Fixtures shared by the functional tests of every area."""
import pytest


@pytest.fixture(scope='module')
def personas(tmp_path_factory):
    """A real Keystone with the personas of tests/functional/personas.py (one per module)."""
    from tests.functional import personas as personas_mod
    running = personas_mod.start(str(tmp_path_factory.mktemp('keystone')))
    try:
        yield running
    finally:
        running.stop()
