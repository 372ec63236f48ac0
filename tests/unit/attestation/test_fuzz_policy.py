"""Property tests of the policy parsers (tpm_policy, runtime policy, measured-boot reference
state, the policy bundle): on any input they return a policy or raise PolicyError naming a
field of the document, never another exception; valid documents mutated anywhere keep that
promise; PCR indexes and GUIDs are accepted exactly in their ASCII forms. Bounded to a few
seconds, like the evidence parsers' tests in tests/unit/tpm/test_fuzz_*.py.
"""
import copy
import json
import re

import hypothesis
from hypothesis import strategies as st

from tclouds_openstack.attestation.appraisal import policy as pol
from tests.unit.attestation import crafted_boot
from tests.unit.attestation import test_policy_parsing as cases

SETTINGS = hypothesis.settings(max_examples=300, deadline=None, database=None,
                               suppress_health_check=list(hypothesis.HealthCheck))

PARSERS = {'tpm_policy': pol.parse_tpm_policy, 'runtime_policy': pol.parse_runtime_policy,
           'mb_refstate': pol.parse_mb_refstate}
VALID = {'tpm_policy': {'7': ['00' * 32], '10': ['0x' + 'ab' * 20], 'mask': '0x480'},
         'runtime_policy': cases.runtime(), 'mb_refstate': crafted_boot.good_refstate()}

# strings a hostile or careless document may hold: unicode digits, hex look-alikes, GUIDs
tricky_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(['0x', '0x' + '00' * 32, '00' * 32, 'AB' * 20, '7', '٧', '３', '+7', ' 7',
                     '(', '.*', '(?i)x', 'a{99999999999}', crafted_boot.ATTACKER_GUID,
                     crafted_boot.ATTACKER_GUID.upper(), '{%s}' % crafted_boot.ATTACKER_GUID,
                     'sha256', 'sha1', 'example', 'accept-all', 'true', 'null', '']))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    tricky_text)
json_values = st.recursive(
    scalars, lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(tricky_text, children, max_size=4)), max_leaves=12)


def check(name, document, **kwargs):
    """Parse: a result, or a PolicyError naming a field of this document."""
    try:
        return PARSERS[name](document, **kwargs)
    except pol.PolicyError as err:
        assert err.field.startswith((name, 'mb_engine')), err.field
        assert str(err) == '%s: %s' % (err.field, err.reason)
        return None


def paths(value, prefix=()):
    """Every path into a JSON value (the root included)."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths(child, prefix + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from paths(child, prefix + (i,))


def notation(name, path):
    """The field name PolicyError uses for ``path`` in document ``name``."""
    field = name
    for key in path:
        field = '%s[%d]' % (field, key) if isinstance(key, int) else pol._member(field, key)
    return field


@st.composite
def mutated(draw, name, with_path=False):
    """A valid document with one value replaced, one key deleted or one key added.

    ``with_path``: also return the changed path when a value was replaced or deleted
    (None when a key was added), for checking that the error names it.
    """
    document = copy.deepcopy(VALID[name])
    path = draw(st.sampled_from(list(paths(document))[1:]))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(['replace', 'delete', 'add']))
    if action == 'replace':
        parent[path[-1]] = draw(json_values)
    elif action == 'delete':
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(tricky_text)] = draw(json_values)
    else:
        parent.append(draw(json_values))
    if with_path:
        return document, path if action != 'add' else None
    return document


@SETTINGS
@hypothesis.given(st.sampled_from(sorted(PARSERS)), json_values)
def test_any_json_value_parses_or_names_a_field(name, value):
    check(name, value)


@SETTINGS
@hypothesis.given(st.sampled_from(sorted(PARSERS)),
                  st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_any_text_parses_or_names_a_field(name, text):
    check(name, text)


@SETTINGS
@hypothesis.given(st.data())
def test_mutated_documents_parse_or_name_a_field(data):
    name = data.draw(st.sampled_from(sorted(PARSERS)))
    document, path = data.draw(mutated(name, with_path=True))
    before = copy.deepcopy(document)
    try:
        parsed = PARSERS[name](document)
    except pol.PolicyError as err:
        parsed = None
        if path is not None:
            # the error names the changed value, a part of it, or one of its parents (the
            # document itself for an incomplete reference state)
            assert err.field.startswith(notation(name, path)) or err.field in [
                notation(name, path[:k]) for k in range(len(path))], (err.field, path)
    assert document == before       # never mutated
    if parsed is not None:
        # the same document as JSON text parses to the same policy
        assert check(name, json.dumps(document)) == parsed


@SETTINGS
@hypothesis.given(st.data())
def test_mutated_refstates_for_every_engine(data):
    document = data.draw(mutated('mb_refstate'))
    for engine in pol.MB_ENGINES:
        parsed = check('mb_refstate', document, engine=engine)
        if engine != 'example':
            assert parsed is not None       # a JSON object is all they need


@SETTINGS
@hypothesis.given(json_values, json_values, json_values)
def test_policy_bundle_options(engine, allow, refstate):
    try:
        pol.parse_policy('p', mb_refstate=refstate, mb_engine=engine,
                         allow_unorderly_shutdown=allow)
    except pol.PolicyError as err:
        assert err.field.split('.')[0].split('[')[0] in (
            'mb_engine', 'mb_refstate', 'allow_unorderly_shutdown'), err.field


@SETTINGS
@hypothesis.given(st.one_of(st.text(max_size=4), st.sampled_from(['07', '23', '24', '٣'])))
def test_pcr_index_accepted_exactly_in_ascii_digits(key):
    valid = re.fullmatch(r'[0-9]{1,2}', key, re.ASCII) is not None and int(key) < 24
    parsed = check('tpm_policy', {key: ['00' * 32]})
    assert (parsed is not None) == valid
    if valid:
        assert set(parsed.pcrs) == {int(key)}


@SETTINGS
@hypothesis.given(st.one_of(st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()),
                            st.uuids().map(lambda u: u.hex), st.text(max_size=40)))
def test_guid_accepted_exactly_in_registry_format(owner):
    document = copy.deepcopy(VALID['mb_refstate'])
    document['pk'] = [{'SignatureOwner': owner, 'SignatureData': '0x' + 'ab' * 8}]
    valid = re.fullmatch(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}',
                         owner.lower(), re.ASCII) is not None
    parsed = check('mb_refstate', document)
    assert (parsed is not None) == valid
    if valid:
        assert parsed.pk == {(owner.lower(), 'ab' * 8)}
