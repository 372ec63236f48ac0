"""A scenario run's HTML report in headless Chromium, rendered from recorded observation
files (data/*.json): a screenshot is taken and every expected element (the three
pictures, each host's trust track, each server/volume/object on the map, each checkpoint,
each outcome) is in the DOM after the page's script ran, with a non-empty layout box.

Chromium is the Debian package ``chromium`` (bindep.txt, profile test); without it these
tests are skipped with that reason.
"""
import glob
import os

import pytest

from tclouds_openstack.scenarios import browser
from tclouds_openstack.scenarios import core
from tclouds_openstack.scenarios import report

DATA = os.path.join(os.path.dirname(__file__), 'data')
RECORDED = sorted(glob.glob(os.path.join(DATA, '*.json')))


def _render(path, tmp_path, mutate=None):
    with open(path) as f:
        obs = core.Observations.from_json(f.read())
    if mutate:
        mutate(obs)
    outcomes = core.evaluate(obs)
    page = tmp_path / 'report.html'
    page.write_text(report.render(obs, outcomes))
    return obs, outcomes, page


def test_recorded_files_present():
    names = {os.path.basename(p).split('-', 1)[1] for p in RECORDED}
    assert {'healthcare.json', 'lighting.json'} <= names


@pytest.mark.usefixtures('chromium')
@pytest.mark.parametrize('path', RECORDED, ids=os.path.basename)
def test_report_checked_in_chromium(path, tmp_path):
    obs, outcomes, page = _render(path, tmp_path)
    expected = report.expected_elements(obs, outcomes)
    result = browser.check_report(str(page), str(tmp_path / 'report.png'), expected)
    assert result['ok'], result['problems']
    assert result['elements_checked'] == len(expected) > 10
    shot = result['screenshot']
    assert (shot['width'], shot['height']) == browser.WINDOW
    assert os.path.getsize(shot['file']) > 10000


@pytest.mark.usefixtures('chromium')
def test_missing_picture_element_is_reported(tmp_path):
    """The check is not vacuous: an expected element the page lacks is named."""
    obs, outcomes, page = _render(RECORDED[0], tmp_path)
    expected = report.expected_elements(obs, outcomes) + [
        ('host that never existed', 'g', {'class': 'host-track', 'data-host': 'nohost'})]
    result = browser.check_report(str(page), str(tmp_path / 'r.png'), expected)
    assert not result['ok']
    assert result['problems'] == ['missing: host that never existed (<g class="host-track" '
                                  'data-host="nohost">)']


@pytest.mark.usefixtures('chromium')
def test_element_without_layout_is_reported(tmp_path):
    """An element present in the DOM but drawn with an empty box fails the check."""
    obs, outcomes, page = _render(RECORDED[0], tmp_path)
    text = page.read_text().replace('<svg id="trust-timeline"',
                                    '<svg style="display:none" id="trust-timeline"', 1)
    page.write_text(text)
    result = browser.check_report(str(page), str(tmp_path / 'r.png'),
                                  report.expected_elements(obs, outcomes))
    assert not result['ok']
    assert 'not laid out (empty box): trust timeline picture' in result['problems']
