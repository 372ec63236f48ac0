"""The requirements core: parsing, labels, merge to the stricter rule with explanations."""
import pytest

from tclouds_openstack.requirements import model


def test_groups_expand_and_codes_normalise():
    assert model.parse_jurisdictions(' de, fr ') == {'DE', 'FR'}
    eu = model.parse_jurisdictions('EU')
    assert len(eu) == 27 and 'DE' in eu and 'NO' not in eu and 'GB' not in eu
    assert model.parse_jurisdictions(['EEA']) == eu | {'IS', 'LI', 'NO'}


@pytest.mark.parametrize('value, field', [
    ('DE,XX', 'trust:jurisdiction[1]'),
    ('DE,,FR', 'trust:jurisdiction[1]'),
    ('', 'trust:jurisdiction[0]'),
    ([], 'trust:jurisdiction'),
    (42, 'trust:jurisdiction'),
    (['DE', 7], 'trust:jurisdiction[1]'),
])
def test_bad_jurisdictions_name_the_entry(value, field):
    with pytest.raises(model.InvalidRequirement) as err:
        model.parse_jurisdictions(value)
    assert err.value.field == field
    assert str(err.value).startswith(field + ':')


def test_trusted_host_words():
    assert model.parse_trusted_host('required') is True
    assert model.parse_trusted_host('Optional') is False
    with pytest.raises(model.InvalidRequirement, match='trust:trusted_host'):
        model.parse_trusted_host('requried')


def test_host_label_is_one_country():
    assert model.parse_host_label('de') == 'DE'
    for bad in ('EU', 'DE,FR', None, 'ZZ'):
        with pytest.raises(model.InvalidRequirement):
            model.parse_host_label(bad)


def test_from_specs_names_source_and_key():
    req = model.from_specs({'trust:trusted_host': 'required', 'trust:jurisdiction': 'DE'},
                           'flavor m1.secure')
    assert req.requires_trust and req.jurisdictions == {'DE'}
    assert model.from_specs({'hw:cpu_policy': 'dedicated'}, 'flavor x').is_empty
    with pytest.raises(model.InvalidRequirement) as err:
        model.from_specs({'trust:jurisdiction': 'Germany'}, 'flavor m1.secure')
    assert err.value.field == 'flavor m1.secure trust:jurisdiction[0]'


def test_hints_accept_nova_list_form():
    req = model.from_hints({'trust_trusted_host': ['required'], 'trust_jurisdiction': ['DE', 'AT']})
    assert req.requires_trust and req.jurisdictions == {'DE', 'AT'}


def test_traits_from_image():
    req = model.from_traits({'CUSTOM_TCLOUDS_TRUSTED', 'CUSTOM_JURISDICTION_FR', 'HW_CPU_X86_AVX'})
    assert req.requires_trust and req.jurisdictions == {'FR'}
    two = model.from_traits({'CUSTOM_JURISDICTION_FR', 'CUSTOM_JURISDICTION_DE'})
    assert not two.satisfiable and two.conflicts


def test_merge_takes_the_stricter_rule_and_explains():
    project = model.Requirement(trusted_host=False, jurisdictions=frozenset({'DE', 'FR'}),
                                source='project')
    flavor = model.Requirement(trusted_host=True, jurisdictions=frozenset({'DE'}),
                               source='flavor')
    merged = model.merge([project, flavor])
    assert merged.requires_trust
    assert merged.jurisdictions == {'DE'}
    assert any('trusted_host: flavor requires' in c and 'project said optional' in c
               for c in merged.conflicts)
    assert any('the stricter {DE} applies' in c for c in merged.conflicts)


def test_merge_without_conflict_is_quiet():
    a = model.Requirement(jurisdictions=frozenset({'DE'}), source='project')
    b = model.Requirement(jurisdictions=frozenset({'DE'}), source='flavor')
    assert model.merge([a, b]).conflicts == ()
    assert model.merge([]).is_empty


def test_merge_contradiction_is_unsatisfiable():
    a = model.Requirement(jurisdictions=frozenset({'DE'}), source='project')
    b = model.Requirement(jurisdictions=frozenset({'US'}), source='hint')
    merged = model.merge([a, b])
    assert not merged.satisfiable
    assert 'nothing can be placed' in merged.conflicts[0]
    ok, reason = merged.allows('DE')
    assert not ok and 'contradict' in reason


def test_allows_explains():
    req = model.Requirement(jurisdictions=frozenset({'DE', 'FR'}))
    assert req.allows('DE')[0]
    ok, reason = req.allows('US')
    assert not ok and 'host is in US, allowed: DE,FR' == reason
    ok, reason = req.allows(None)
    assert not ok and 'no jurisdiction label' in reason
    assert model.Requirement().allows(None)[0]


def test_to_dict_round_trip_words():
    req = model.Requirement(trusted_host=True, jurisdictions=frozenset({'FR', 'DE'}))
    assert req.to_dict() == {'trusted_host': 'required', 'jurisdictions': ['DE', 'FR'],
                             'conflicts': []}


@pytest.mark.parametrize('make, field', [
    (lambda: model.from_traits(['CUSTOM_TCLOUDS_TRUSTED', 7], 'image'), 'image traits[1]'),
    (lambda: model.from_traits([['CUSTOM_JURISDICTION_DE']], 'image', field='image_traits'),
     'image_traits[0]'),
    (lambda: model.from_traits('CUSTOM_TCLOUDS_TRUSTED', 'image'), 'image traits'),
    (lambda: model.from_hints({'trust_jurisdiction': ['DE', None]}),
     'boot hint trust_jurisdiction[1]'),
    (lambda: model.from_hints({'trust_jurisdiction': [['DE']]}),
     'boot hint trust_jurisdiction[0]'),
    (lambda: model.parse_jurisdictions(['DE', {}], 'req'), 'req[1]'),
])
def test_non_string_members_name_the_member(make, field):
    with pytest.raises(model.InvalidRequirement) as exc:
        make()
    assert exc.value.field == field
