"""Tenant security requirements (ACaaS): what a workload demands of the host it runs on.

PURE: values in, values out; no network, no database, no oslo.config.

A :class:`Requirement` says whether an *attested* host is required (a fresh ``trusted``
verdict) and which jurisdictions (ISO 3166-1 alpha-2 country codes) the host may be in.
Requirements come from several places at once: the project (stored by the service), the
flavor extra specs (``trust:trusted_host=required``, ``trust:jurisdiction=DE,FR``), the
image (``trait:CUSTOM_TCLOUDS_TRUSTED=required``, ``trait:CUSTOM_JURISDICTION_DE=required``:
Nova keeps only known image properties, and ``trait:`` is one of them) and boot hints
(``trust_trusted_host``, ``trust_jurisdiction``). :func:`merge` combines them to the
*stricter* rule and explains every conflict, so the API and the scheduler can say why.
"""
import dataclasses

# Spec keys (flavor extra specs, the stored project requirement, boot hints).
SPEC_TRUSTED_HOST = 'trust:trusted_host'
SPEC_JURISDICTION = 'trust:jurisdiction'
HINT_TRUSTED_HOST = 'trust_trusted_host'
HINT_JURISDICTION = 'trust_jurisdiction'
# Host labels: Nova host aggregate metadata and Cinder backend configuration.
AGGREGATE_JURISDICTION_KEY = 'trust:jurisdiction'

# Placement traits (os-traits custom namespace: CUSTOM_[A-Z0-9_]+).
TRAIT_TRUSTED = 'CUSTOM_TCLOUDS_TRUSTED'
TRAIT_JURISDICTION_PREFIX = 'CUSTOM_JURISDICTION_'

REQUIRED = 'required'
OPTIONAL = 'optional'
_TRUE_WORDS = {REQUIRED: True, 'true': True, 'yes': True, '1': True,
               OPTIONAL: False, 'false': False, 'no': False, '0': False}

# ISO 3166-1 alpha-2, officially assigned codes (249).
ISO_3166_ALPHA2 = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
VN VU WF WS YE YT ZA ZM ZW""".split())

# Named groups: the one table. EU: the 27 member states (since 2020-02-01); EEA: EU plus
# Iceland, Liechtenstein, Norway.
_EU = frozenset('AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO '
                'SE SI SK'.split())
JURISDICTION_GROUPS = {
    'EU': _EU,
    'EEA': _EU | {'IS', 'LI', 'NO'},
}


class InvalidRequirement(ValueError):
    """A requirement or label is malformed; ``field`` names where."""

    def __init__(self, field, message):
        super().__init__('%s: %s' % (field, message))
        self.field = field


def parse_jurisdictions(value, field=SPEC_JURISDICTION):
    """Parse ``"DE,FR"`` / ``"EU"`` / a list of codes into a frozenset of alpha-2 codes.

    Groups expand to their members. Case and blanks are forgiven; an unknown code, an
    empty entry or an empty list raises InvalidRequirement naming the field and entry.
    """
    if isinstance(value, str):
        items = value.split(',')
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    else:
        raise InvalidRequirement(field, 'expected a comma-separated string or a list of '
                                 'country codes, got %s' % type(value).__name__)
    codes = set()
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidRequirement('%s[%d]' % (field, index), 'not a string')
        code = item.strip().upper()
        if not code:
            raise InvalidRequirement('%s[%d]' % (field, index), 'empty country code')
        if code in JURISDICTION_GROUPS:
            codes |= JURISDICTION_GROUPS[code]
        elif code in ISO_3166_ALPHA2:
            codes.add(code)
        else:
            raise InvalidRequirement(
                '%s[%d]' % (field, index),
                '%r is neither an ISO 3166-1 alpha-2 code nor a group (%s)'
                % (item, ', '.join(sorted(JURISDICTION_GROUPS))))
    if not codes:
        raise InvalidRequirement(field, 'no country code given')
    return frozenset(codes)


def parse_trusted_host(value, field=SPEC_TRUSTED_HOST):
    """``required``/``optional`` (or a boolean word) -> bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS:
        return _TRUE_WORDS[value.strip().lower()]
    raise InvalidRequirement(field, 'expected "required" or "optional", got %r' % (value,))


def parse_host_label(value, field=AGGREGATE_JURISDICTION_KEY):
    """A host or backend is in exactly ONE country: a group or a list is rejected."""
    if not isinstance(value, str) or value.strip().upper() not in ISO_3166_ALPHA2:
        raise InvalidRequirement(field, 'a host is labelled with exactly one ISO 3166-1 '
                                 'alpha-2 code, got %r' % (value,))
    return value.strip().upper()


def jurisdiction_trait(code):
    return TRAIT_JURISDICTION_PREFIX + code


def format_codes(codes):
    return ','.join(sorted(codes))


@dataclasses.dataclass(frozen=True)
class Requirement:
    """What one source demands (or, after :func:`merge`, what all sources demand).

    ``trusted_host``: None = not stated, True = required, False = stated optional.
    ``jurisdictions``: None = anywhere; a frozenset = only these countries (empty = nowhere,
    the result of contradicting sources). ``source`` names where it came from;
    ``conflicts`` explains every disagreement :func:`merge` resolved.
    """
    trusted_host: bool = None
    jurisdictions: frozenset = None
    source: str = ''
    conflicts: tuple = ()

    @property
    def requires_trust(self):
        return bool(self.trusted_host)

    @property
    def is_empty(self):
        return not self.trusted_host and self.jurisdictions is None

    @property
    def satisfiable(self):
        return self.jurisdictions is None or bool(self.jurisdictions)

    def allows(self, country):
        """Is a host labelled ``country`` (None = unlabelled) acceptable? (allowed, reason)."""
        if self.jurisdictions is None:
            return True, 'no jurisdiction required'
        if not self.jurisdictions:
            return False, 'the requirements contradict each other: no jurisdiction is allowed'
        if country is None:
            return False, ('host has no jurisdiction label (aggregate metadata %s) and the '
                           'request allows only %s' % (AGGREGATE_JURISDICTION_KEY,
                                                       format_codes(self.jurisdictions)))
        if country in self.jurisdictions:
            return True, 'host is in %s' % country
        return False, 'host is in %s, allowed: %s' % (country, format_codes(self.jurisdictions))

    def to_dict(self):
        return {
            'trusted_host': (None if self.trusted_host is None
                             else REQUIRED if self.trusted_host else OPTIONAL),
            'jurisdictions': (None if self.jurisdictions is None
                              else sorted(self.jurisdictions)),
            'conflicts': list(self.conflicts),
        }

    def describe(self):
        parts = []
        if self.trusted_host:
            parts.append('trusted host required')
        if self.jurisdictions is not None:
            parts.append('jurisdiction in {%s}' % format_codes(self.jurisdictions))
        return ', '.join(parts) or 'no requirement'


def from_specs(specs, source, trusted_key=SPEC_TRUSTED_HOST, jurisdiction_key=SPEC_JURISDICTION):
    """Requirement from a key/value mapping (flavor extra specs, a stored project record).

    Keys absent -> not stated. Malformed values raise InvalidRequirement naming
    ``<source> <key>``: a typo in a flavor must not silently drop a security requirement.
    """
    specs = specs or {}
    trusted = None
    jurisdictions = None
    if specs.get(trusted_key) is not None:
        trusted = parse_trusted_host(specs[trusted_key], '%s %s' % (source, trusted_key))
    if specs.get(jurisdiction_key) is not None:
        jurisdictions = parse_jurisdictions(specs[jurisdiction_key],
                                            '%s %s' % (source, jurisdiction_key))
    return Requirement(trusted_host=trusted, jurisdictions=jurisdictions, source=source)


def _strings(values, field):
    """``values`` (a list or set) when every member is a string; else which one is not."""
    if not isinstance(values, (list, tuple, set, frozenset)):
        raise InvalidRequirement(field, 'expected a list of strings, got %s'
                                 % type(values).__name__)
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise InvalidRequirement('%s[%d]' % (field, index), 'not a string: %s'
                                     % type(value).__name__)
    return values


def from_hints(hints, source='boot hint'):
    """Requirement from scheduler hints (values may be lists, as Nova stores them)."""
    flat = {}
    for key in (HINT_TRUSTED_HOST, HINT_JURISDICTION):
        value = (hints or {}).get(key)
        if isinstance(value, list) and key == HINT_TRUSTED_HOST:
            value = value[0] if len(value) == 1 else value
        if isinstance(value, list):
            value = ','.join(_strings(value, '%s %s' % (source, key)))
        if value is not None:
            flat[key] = value
    return from_specs(flat, source, HINT_TRUSTED_HOST, HINT_JURISDICTION)


def from_traits(traits, source='image', field=None):
    """Requirement from required traits (image ``trait:...=required`` properties).

    Several jurisdiction traits required at once mean a host in all of them: no host is
    in two countries, so that is unsatisfiable and reported as such by :func:`merge`.
    A member that is not a string raises InvalidRequirement naming ``field[index]``
    (default ``<source> traits``).
    """
    traits = set(_strings(traits or (), field or '%s traits' % source))
    trusted = True if TRAIT_TRUSTED in traits else None
    codes = [t[len(TRAIT_JURISDICTION_PREFIX):] for t in sorted(traits)
             if t.startswith(TRAIT_JURISDICTION_PREFIX)]
    parts = [Requirement(trusted_host=trusted, source=source)]
    for code in codes:
        parts.append(Requirement(
            jurisdictions=parse_jurisdictions([code], '%s trait %s%s'
                                              % (source, TRAIT_JURISDICTION_PREFIX, code)),
            source=source))
    return merge(parts, source=source) if len(parts) > 1 else parts[0]


def merge(requirements, source='merged'):
    """Combine requirements to the stricter rule, explaining every conflict.

    Trusted host: required by anyone -> required (a source that said ``optional`` is
    overruled, and that is a conflict). Jurisdictions: the intersection of every stated
    set; a source that narrows another is a conflict, an empty intersection leaves no
    allowed place (``satisfiable`` is False) and says which sources contradict.
    """
    trusted = None
    trusted_by = None
    optional_by = []
    jurisdictions = None
    jurisdiction_by = None
    conflicts = []
    for req in requirements:
        conflicts.extend(req.conflicts)
        if req.trusted_host is True:
            trusted = True
            trusted_by = trusted_by or req.source
        elif req.trusted_host is False:
            optional_by.append(req.source)
            if trusted is None:
                trusted = False
        if req.jurisdictions is not None:
            if jurisdictions is None:
                jurisdictions, jurisdiction_by = req.jurisdictions, req.source
                continue
            narrowed = jurisdictions & req.jurisdictions
            if narrowed != jurisdictions or narrowed != req.jurisdictions:
                if narrowed:
                    conflicts.append(
                        'jurisdiction: %s allows {%s}, %s allows {%s}: the stricter {%s} applies'
                        % (jurisdiction_by, format_codes(jurisdictions), req.source,
                           format_codes(req.jurisdictions), format_codes(narrowed)))
                else:
                    conflicts.append(
                        'jurisdiction: %s allows {%s}, %s allows {%s}: no country satisfies '
                        'both, nothing can be placed' % (
                            jurisdiction_by, format_codes(jurisdictions), req.source,
                            format_codes(req.jurisdictions)))
            jurisdictions = narrowed
            jurisdiction_by = '%s+%s' % (jurisdiction_by, req.source)
    if trusted and optional_by:
        conflicts.append('trusted_host: %s requires a trusted host, %s said optional: '
                         'required applies' % (trusted_by, ', '.join(optional_by)))
    return Requirement(trusted_host=trusted, jurisdictions=jurisdictions, source=source,
                       conflicts=tuple(conflicts))
