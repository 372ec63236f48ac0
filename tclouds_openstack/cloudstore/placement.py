"""Which clouds may hold a project's objects: the clouds inside its jurisdictions (pure).

Every cloud of the cloud-of-clouds configuration carries the one country it is in (ISO
3166-1 alpha-2, as hosts and volume backends do: :func:`.requirements.model.
parse_host_label`). A project whose trust requirement names jurisdictions (a country
list, or a group such as EU or EEA, expanded by the requirements model) may use only the
clouds inside them; a cloud without a country is outside every jurisdiction. With fewer
than 3f + 1 such clouds the write is refused, with the countries and clouds named: the
object is never placed on a cloud outside, and never stored with less redundancy than f
needs.
"""
from tclouds_openstack.requirements import model


class PlacementRefused(Exception):
    """A project's objects cannot be placed: too few clouds inside its jurisdictions."""


class Placement:
    """The configured clouds (in order) with their countries, for one ``f``."""

    def __init__(self, names, countries, f):
        self.names = tuple(names)
        self.countries = dict(countries)
        self.f = f

    def describe(self, name):
        """``"aws-fra (DE)"``, or ``"x (no country)"``."""
        return '%s (%s)' % (name, self.countries.get(name) or 'no country')

    def clouds_for(self, requirement):
        """The cloud names (configured order) a project with ``requirement`` may use.

        ``requirement`` is a :class:`.requirements.model.Requirement` (None or one
        without jurisdictions: every cloud). Raises :class:`PlacementRefused` naming the
        allowed countries, the eligible clouds and the ones outside.
        """
        if requirement is None or requirement.jurisdictions is None:
            return self.names
        eligible = [name for name in self.names
                    if requirement.allows(self.countries.get(name))[0]]
        needed = 3 * self.f + 1
        if len(eligible) >= needed:
            return tuple(eligible)
        outside = [self.describe(name) for name in self.names if name not in eligible]
        allowed = (model.format_codes(requirement.jurisdictions)
                   if requirement.jurisdictions else 'none (the requirements contradict '
                   'each other)')
        raise PlacementRefused(
            'the project\'s objects may be stored only in %s: %d cloud(s) are there (%s), '
            '%d are needed to tolerate f=%d faulty clouds (n >= 3f + 1); outside: %s'
            % (allowed, len(eligible),
               ', '.join(self.describe(name) for name in eligible) or 'none', needed,
               self.f, ', '.join(outside) or 'none'))
