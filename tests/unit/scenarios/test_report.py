"""The HTML report: every expected element is in the page (the browser check is in
tests/functional/scenarios), values are escaped, and the pictures follow the observations."""
import pytest

from tclouds_openstack.scenarios import browser
from tclouds_openstack.scenarios import core
from tclouds_openstack.scenarios import report
from tests.unit.scenarios import sample


@pytest.mark.parametrize('build', [sample.healthcare, sample.lighting])
def test_expected_elements_in_the_page(build):
    obs = build()
    outcomes = core.evaluate(obs)
    page = report.render(obs, outcomes)
    elements = browser.parse_dom(page)
    expected = report.expected_elements(obs, outcomes)
    missing = [d for d, tag, attrs in expected
               if not any(browser._matches(e, tag, attrs) for e in elements)]
    assert missing == []
    # before a browser ran the page's script, nothing is laid out
    problems = browser.check_dom(page, expected)
    assert any('script did not run' in p for p in problems)


def test_trust_segments_follow_the_samples():
    obs = sample.healthcare()
    svg = report.trust_timeline(obs)
    elements = browser.parse_dom(svg)
    statuses = [a['data-status'] for t, a in elements
                if t == 'rect' and 'trust-segment' in a.get('class', '')]
    assert statuses.count('untrusted') == 1 and statuses.count('trusted') == 3
    assert any(a.get('data-event') == 'compromise' for t, a in elements)


def test_map_joins_objects_to_their_clouds_and_shades_allowed_countries():
    obs = sample.healthcare()
    obs.placement('object', 'x/y', clouds=[{'cloud': 'aws-us', 'country': 'US'}])
    elements = browser.parse_dom(report.jurisdiction_map(obs))
    countries = {a['data-country']: a['data-allowed'] for t, a in elements
                 if t == 'g' and a.get('class') == 'country'}
    assert countries['DE'] == 'true' and countries['US'] == 'false'
    insets = {a['data-country'] for t, a in elements if a.get('class') == 'jurisdiction-inset'}
    assert insets == {'DE', 'US'}
    assert any(a.get('data-id') == 'x/y' for t, a in elements if a.get('class') == 'resource')


def test_values_are_escaped():
    obs = sample.healthcare()
    obs.placement('object', '<script>alert(1)</script>', clouds=[
        {'cloud': 'devstack0', 'country': 'DE'}])
    page = report.render(obs, core.evaluate(obs))
    assert '<script>alert(1)' not in page
    assert '&lt;script&gt;alert(1)' in page


def test_failed_run_says_so():
    obs = sample.lighting()
    obs.data['facts']['answers']['wrong'] = 3
    outcomes = core.evaluate(obs)
    page = report.render(obs, outcomes)
    banner = [a for t, a in browser.parse_dom(page) if a.get('id') == 'verdict'][0]
    assert banner['data-passed'] == 'false'
    assert 'NOT every expected outcome' in page


def test_png_checks():
    with pytest.raises(browser.BrowserError, match='not a PNG'):
        browser.png_info(b'GIF89a')
