"""Which clouds a project's objects may use: only those inside its jurisdictions."""
import pytest

from tclouds_openstack.cloudstore import placement
from tclouds_openstack.requirements import model

CLOUDS = ('fra', 'par', 'ams', 'dub', 'nyc', 'zrh', 'lab')
COUNTRIES = {'fra': 'DE', 'par': 'FR', 'ams': 'NL', 'dub': 'IE', 'nyc': 'US', 'zrh': 'CH',
             'lab': None}


def _requirement(jurisdictions):
    return model.from_specs({model.SPEC_JURISDICTION: jurisdictions}, 'project p1')


@pytest.fixture
def clouds():
    return placement.Placement(CLOUDS, COUNTRIES, 1)


def test_unrestricted_projects_use_every_cloud(clouds):
    assert clouds.clouds_for(None) == CLOUDS
    assert clouds.clouds_for(model.Requirement(trusted_host=True)) == CLOUDS


def test_eu_projects_use_the_eu_clouds_in_their_configured_order(clouds):
    assert clouds.clouds_for(_requirement('EU')) == ('fra', 'par', 'ams', 'dub')
    # EEA adds Iceland, Liechtenstein and Norway, not Switzerland.
    assert clouds.clouds_for(_requirement('EEA')) == ('fra', 'par', 'ams', 'dub')
    assert clouds.clouds_for(_requirement('EU,US')) == ('fra', 'par', 'ams', 'dub', 'nyc')


@pytest.mark.parametrize('jurisdictions,inside', [
    ('DE,FR', 'fra (DE), par (FR)'),
    ('US', 'nyc (US)'),
    ('JP', 'none'),
])
def test_too_few_clouds_inside_refuses_and_names_countries_and_clouds(
        clouds, jurisdictions, inside):
    with pytest.raises(placement.PlacementRefused) as info:
        clouds.clouds_for(_requirement(jurisdictions))
    message = str(info.value)
    assert "may be stored only in %s:" % model.format_codes(
        model.parse_jurisdictions(jurisdictions)) in message
    assert '(%s)' % inside in message
    assert '4 are needed to tolerate f=1 faulty clouds' in message
    # Every cloud outside is named with its country; an unlabelled one is outside too.
    assert 'lab (no country)' in message and 'zrh (CH)' in message


def test_an_unlabelled_cloud_is_outside_every_jurisdiction():
    clouds = placement.Placement(('a', 'b', 'c', 'd'), {'a': 'DE', 'b': 'DE', 'c': 'DE'}, 1)
    with pytest.raises(placement.PlacementRefused, match='outside: d \\(no country\\)'):
        clouds.clouds_for(_requirement('DE'))


def test_contradicting_requirements_place_nothing(clouds):
    nowhere = model.merge([_requirement('DE'), _requirement('FR')])
    with pytest.raises(placement.PlacementRefused, match='only in none'):
        clouds.clouds_for(nowhere)


def test_larger_f_needs_more_clouds():
    clouds = placement.Placement(CLOUDS, COUNTRIES, 2)
    with pytest.raises(placement.PlacementRefused, match='7 are needed to tolerate f=2'):
        clouds.clouds_for(_requirement('EU'))
