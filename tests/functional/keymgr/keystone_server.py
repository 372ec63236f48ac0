"""Moved to tests/functional/keystone_server.py (shared by every area); kept for old imports.

New tests use the ``personas`` fixture (tests/functional/personas.py).
"""
from tests.functional.keystone_server import ADMIN_PASSWORD  # noqa: F401
from tests.functional.keystone_server import Keystone  # noqa: F401
