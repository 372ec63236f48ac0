"""The two tested sets of constraints (tools/constraints.py) and the requirements' bounds."""
import importlib.util
import re

from packaging import requirements as pkg_requirements
from packaging import version as pkg_version
import pytest

from tests import conftest

SPEC = importlib.util.spec_from_file_location('constraints_tool',
                                              conftest.REPO / 'tools' / 'constraints.py')
constraints = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(constraints)

UPPER = '''# comment
oslo.config===10.7.0
pbr===7.0.3
cryptography===43.0.3
'''
TESTED = '''# header
oslo-config==10.7.1
pbr==7.1.3
nova==34.0.0
tpm2-pytss==3.0.0
Keylime==7.14.3
'''


def test_upper_constraints_win_and_the_tested_set_fills_the_gaps(monkeypatch):
    monkeypatch.setattr(constraints, 'OPENSTACK_OVERRIDES',
                        {'tpm2-pytss': '2.3.0', 'asn1crypto': '1.5.1'})
    merged = constraints.openstack(UPPER, TESTED)
    pins = [line for line in merged.splitlines() if line and not line.startswith('#')]
    assert pins == ['oslo.config===10.7.0', 'pbr===7.0.3', 'cryptography===43.0.3',
                    'nova==34.0.0', 'tpm2-pytss==2.3.0', 'Keylime==7.14.3',
                    'asn1crypto==1.5.1']


def _pins(text):
    pins = {}
    for line in text.splitlines():
        match = re.match(r'^([A-Za-z0-9][A-Za-z0-9._-]*)===?([^;\s]+)', line)
        if match:
            pins[constraints._normalize(match.group(1))] = pkg_version.Version(match.group(2))
    return pins


def _requirements():
    for name in ('requirements.txt', 'test-requirements.txt'):
        for line in (conftest.REPO / name).read_text().splitlines():
            line = line.split('#')[0].strip()
            if line:
                yield name, pkg_requirements.Requirement(line)


@pytest.mark.parametrize('which', ['tested', 'openstack'])
def test_every_requirement_is_pinned_in_both_sets_within_its_bounds(which):
    if which == 'openstack' and not constraints.VENDORED.is_file():
        pytest.skip('no vendored upper-constraints beside the checkout')
    if which == 'tested':
        pins = _pins(constraints.TESTED.read_text())
    else:
        pins = _pins(constraints.openstack(constraints.VENDORED.read_text(),
                                           constraints.TESTED.read_text()))
    for source, req in _requirements():
        pinned = pins.get(constraints._normalize(req.name))
        assert pinned is not None, '%s (%s) is not pinned in the %s set' % (
            req.name, source, which)
        assert req.specifier.contains(pinned), '%s %s (%s) excludes the %s set\'s %s' % (
            req.name, req.specifier, source, which, pinned)


def test_lower_bounds_are_tested_versions():
    """A lower bound is the older of the two sets' versions: never a version nobody tests."""
    if not constraints.VENDORED.is_file():
        pytest.skip('no vendored upper-constraints beside the checkout')
    tested = _pins(constraints.TESTED.read_text())
    upper = _pins(constraints.openstack(constraints.VENDORED.read_text(),
                                        constraints.TESTED.read_text()))
    for source, req in _requirements():
        name = constraints._normalize(req.name)
        bounds = [s.version for s in req.specifier if s.operator == '>=']
        assert bounds, '%s (%s) states no lower bound' % (req.name, source)
        assert pkg_version.Version(bounds[0]) == min(tested[name], upper[name]), req
