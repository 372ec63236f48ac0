"""Tests shipped inside the package: the Tempest plugin (``tempest/``), which runs against a
deployed cloud. The unit and functional suites live in the repository's ``tests/``."""
