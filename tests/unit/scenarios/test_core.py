"""The scenarios' expected outcomes are decided from observations alone; missing or
contrary evidence is "not observed", never assumed."""
import json

import pytest

from tclouds_openstack.scenarios import core
from tests.unit.scenarios import sample


@pytest.mark.parametrize('build', [sample.healthcare, sample.lighting])
def test_complete_run_passes(build):
    obs = build()
    outcomes = core.evaluate(obs)
    assert [o.id for o in outcomes] == [e[0] for e in core.EXPECTED[obs.scenario]]
    assert core.passed(outcomes), [o.as_dict() for o in outcomes if not o.ok]


@pytest.mark.parametrize('build', [sample.healthcare, sample.lighting])
def test_round_trip_through_json(build):
    obs = build()
    again = core.Observations.from_json(obs.to_json())
    assert again.data == json.loads(obs.to_json())
    assert core.passed(core.evaluate(again))


@pytest.mark.parametrize('build', [sample.healthcare, sample.lighting])
def test_nothing_observed_passes_nothing(build):
    empty = core.Observations(build().scenario, 'empty', clock=sample.Clock())
    outcomes = core.evaluate(empty)
    # Only the "migration if configured" outcome holds without evidence (none configured).
    assert [o.id for o in outcomes if o.ok] in ([], ['migration'])
    assert not core.passed(outcomes)


def _outcome(obs, oid):
    return {o.id: o for o in core.evaluate(obs)}[oid]


def test_key_released_to_another_host_fails():
    obs = sample.healthcare()
    obs.key('vol-1', 'devstack2', True, 200)
    out = _outcome(obs, 'key-to-host-only')
    assert not out.ok and 'devstack2: released' in out.evidence


def test_fragment_outside_the_allowed_countries_fails():
    obs = sample.healthcare()
    obs.placement('object', 'records/x', clouds=[{'cloud': 'aws-us', 'country': 'US'}])
    out = _outcome(obs, 'documents-eu')
    assert not out.ok and 'aws-us (US)' in out.evidence


def test_server_on_an_unattested_host_fails():
    obs = sample.healthcare()
    obs.data['host_states'] = [s for s in obs['host_states'] if s['host'] != 'devstack1']
    out = _outcome(obs, 'server-placed')
    assert not out.ok and 'not observed' in out.evidence


def test_history_read_at_the_end_is_placed_in_time():
    """The verdict before the boot is the latest by time, not the last recorded.

    The attestation history, read after the run, holds an earlier run's untrusted verdict
    of the host (restored since).
    """
    obs = sample.healthcare()
    boot = [p for p in obs['placements'] if p['kind'] == 'server'][0]['time']
    obs.host_state('devstack1', 'untrusted', 'an earlier run\'s tamper', at=boot - 30)
    out = _outcome(obs, 'server-placed')
    assert out.ok and 'before the boot: trusted' in out.evidence, out.evidence
    obs.host_state('devstack1', 'untrusted', 'tampered just before', at=boot - 0.5)
    assert not _outcome(obs, 'server-placed').ok


def test_host_never_disabled_fails():
    obs = sample.healthcare()
    obs.data['services'] = [s for s in obs['services'] if s['status'] != 'disabled']
    assert not _outcome(obs, 'host-disabled').ok


def test_trust_still_shown_after_the_compromise_fails():
    obs = sample.healthcare()
    obs.server_trust('srv-1', 'trusted')
    assert not _outcome(obs, 'trust-lost').ok


def test_untampered_report_accepted_or_tamper_missed_fails():
    obs = sample.healthcare()
    obs.data['report']['tampered'][1]['exit'] = 0
    out = _outcome(obs, 'auditor')
    assert not out.ok and 'line 2 deleted -> exit 0' in out.evidence


def test_configured_migration_that_did_not_happen_fails():
    obs = sample.healthcare()
    obs.fact('instance_action', 'live-migrate')
    assert not _outcome(obs, 'migration').ok
    obs.placement('server', 'srv-1', name='patient-monitor', host='devstack2')
    assert _outcome(obs, 'migration').ok


@pytest.mark.parametrize('key,value', [('stale', 1), ('wrong', 2), ('failed', 1),
                                       ('served_during_faults', 0)])
def test_control_service_answers(key, value):
    obs = sample.lighting()
    obs.data['facts']['answers'][key] = value
    assert not _outcome(obs, 'answers').ok


def test_unsealed_telemetry_batch_fails():
    obs = sample.lighting()
    obs.data['facts']['telemetry']['in_verified_report'] = 8
    assert not _outcome(obs, 'telemetry-sealed').ok


def test_checkpoint_consistency_not_proved_fails():
    obs = sample.lighting()
    obs.data['consistency'][0]['verified'] = False
    assert not _outcome(obs, 'checkpoints').ok


def test_bad_documents_are_refused_with_the_reason():
    with pytest.raises(core.ScenarioError, match='not JSON'):
        core.Observations.from_json('{')
    with pytest.raises(core.ScenarioError, match='format'):
        core.Observations.from_json('{"format": "other"}')
    with pytest.raises(core.ScenarioError, match='unknown scenario'):
        core.Observations('banking', 'r')
    with pytest.raises(core.ScenarioError, match='not a step of'):
        sample.healthcare().step('fleet', True)


def test_steps_listed_for_dry_run():
    for scenario in core.SCENARIOS:
        ids = [s[0] for s in core.steps(scenario)]
        assert ids[0] == 'tenant' and ids[-1] == 'cleanup' and len(set(ids)) == len(ids)
