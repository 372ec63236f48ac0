"""Shared fixtures of the scenario report tests."""
import pytest

from tclouds_openstack.scenarios import browser


@pytest.fixture
def chromium():
    """Chromium's path; its absence fails the test (the test command installs it)."""
    path = browser.find_chromium()
    assert path is not None, ('no Chromium: install the Debian package chromium '
                              '(bindep.txt, profile test; tools/bootstrap.sh test does)')
    return path
