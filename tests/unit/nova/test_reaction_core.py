"""Pure parts of the Nova adapters: notification parsing, verdict judgement, disabled
reason, trait set."""
import datetime

import pytest

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.attestation.backends import keylime
from tclouds_openstack.attestation.backends import tclouds
from tclouds_openstack.nova import placement
from tclouds_openstack.nova import reaction


def test_parse_event_accepts_the_attestation_contract():
    host, status, reasons = reaction.parse_event('attestation.host.untrusted', {
        'host': 'c1', 'status': 'untrusted', 'previous_status': 'trusted',
        'reasons': ['PCR 10 mismatch'], 'verified_at': '2026-11-28T03:00:00+00:00',
        'reset_count': 3, 'ak_name': '000b'})
    assert (host, status, reasons) == ('c1', 'untrusted', ('PCR 10 mismatch',))


@pytest.mark.parametrize('event, payload, field', [
    ('attestation.host.rebooted', {'host': 'c1'}, 'event_type'),
    ('attestation.host.trusted', ['c1'], 'payload'),
    ('attestation.host.trusted', {'host': ''}, 'payload.host'),
    ('attestation.host.trusted', {'host': 'c1', 'status': 'untrusted'}, 'payload.status'),
    ('attestation.host.untrusted', {'host': 'c1', 'reasons': 'x'}, 'payload.reasons'),
    ('attestation.host.untrusted', {'host': 'c1', 'reasons': [1]}, 'payload.reasons'),
    # no name the attestation service admits: huge, separators, look-alikes, not a string
    ('attestation.host.untrusted', {'host': 'c' * 100000}, 'payload.host'),
    ('attestation.host.untrusted', {'host': 'c1,c2'}, 'payload.host'),
    ('attestation.host.untrusted', {'host': 'c1 '}, 'payload.host'),
    ('attestation.host.untrusted', {'host': 'c1\u200b'}, 'payload.host'),
    ('attestation.host.untrusted', {'host': ['c1']}, 'payload.host'),
    ('attestation.host.untrusted', {'host': 7}, 'payload.host'),
])
def test_parse_event_names_the_bad_field(event, payload, field):
    with pytest.raises(reaction.InvalidNotification) as err:
        reaction.parse_event(event, payload)
    assert str(err.value).startswith(field + ':')


def test_disabled_reason_is_prefixed_and_fits_nova_column():
    assert reaction.disabled_reason('unknown', []) == \
        'tclouds: host attestation unknown: no reason given'
    long = reaction.disabled_reason('untrusted', ['x' * 300])
    assert len(long) == 255 and long.endswith('...') and long.startswith('tclouds: ')


def test_desired_traits_touch_only_ours():
    current = {'COMPUTE_NODE', 'OWNER_NOVA', 'CUSTOM_TCLOUDS_TRUSTED',
               'CUSTOM_JURISDICTION_US', 'CUSTOM_GPU'}
    assert placement.desired_traits(current, False, 'DE') == {
        'COMPUTE_NODE', 'OWNER_NOVA', 'CUSTOM_GPU', 'CUSTOM_JURISDICTION_DE'}
    assert placement.desired_traits(current, True, None) == {
        'COMPUTE_NODE', 'OWNER_NOVA', 'CUSTOM_GPU', 'CUSTOM_TCLOUDS_TRUSTED'}


NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize('verdict, judgement', [
    (None, reaction.UNCONFIRMED),                                        # unreadable
    (base.Verdict('h', base.TRUSTED, (), NOW), reaction.CONFIRMED_TRUSTED),
    (base.Verdict('h', base.TRUSTED, (), NOW - datetime.timedelta(seconds=300)),
     reaction.UNCONFIRMED),                                              # stale
    (base.Verdict('h', base.TRUSTED, (), NOW + datetime.timedelta(seconds=60)),
     reaction.UNCONFIRMED),                                              # from the future
    (base.Verdict('h', base.TRUSTED, (), None), reaction.UNCONFIRMED),    # no time
    (base.Verdict('h', base.UNTRUSTED, ('PCR 7',), NOW), reaction.CONFIRMED_NOT_TRUSTED),
    (base.Verdict('h', base.UNKNOWN, ('no answer',), NOW), reaction.CONFIRMED_NOT_TRUSTED),
    # never appraised, by the backend's word (not registered, awaiting approval): no
    # attestation outcome
    (base.Verdict('h', base.UNKNOWN, ('not registered',), None, never_appraised=True),
     reaction.NOT_ATTESTED),
    # an unknown without a time the backend does not explain is an outcome, not that
    (base.Verdict('h', base.UNKNOWN, ('no answer',), None), reaction.CONFIRMED_NOT_TRUSTED),
])
def test_only_a_fresh_verdict_read_from_the_service_confirms(verdict, judgement):
    assert reaction.judge(verdict, 120, 5, now=NOW)[0] == judgement


@pytest.mark.parametrize('verdict, judgement', [
    # a Keylime agent of an attested host that stopped answering (GET_QUOTE_RETRY),
    # was terminated, or that the verifier no longer knows: unknown and no time, but an
    # outcome for a host in the pool -> disabled, as before
    (keylime.verdict_from_agent('h', {'operational_state': 4}), reaction.CONFIRMED_NOT_TRUSTED),
    (keylime.verdict_from_agent('h', {'operational_state': 8}), reaction.CONFIRMED_NOT_TRUSTED),
    (keylime.verdict_from_agent('h', {'operational_state': 3}), reaction.CONFIRMED_NOT_TRUSTED),
    (keylime.verdict_from_agent('h', {}), reaction.CONFIRMED_NOT_TRUSTED),
    # the attestation API's answer: a malformed or timeless entry is not "never appraised"
    (tclouds.verdict_from_dict('h', {'status': 'unknown', 'verified_at': 'yesterday'}),
     reaction.CONFIRMED_NOT_TRUSTED),
    (tclouds.verdict_from_dict('h', {'status': 'unknown', 'reasons': ['agent did not answer']}),
     reaction.CONFIRMED_NOT_TRUSTED),
    (tclouds.verdict_from_dict('h', {'status': 'unknown', 'registration': 'decommissioned'}),
     reaction.CONFIRMED_NOT_TRUSTED),
    (tclouds.verdict_from_dict('h', {'status': 'unknown', 'registration': 'active',
                                     'verified_at': NOW.isoformat()}),
     reaction.CONFIRMED_NOT_TRUSTED),
    (tclouds.verdict_from_dict('h', {'status': 'untrusted', 'registration': 'active'}),
     reaction.CONFIRMED_NOT_TRUSTED),
    # the service's own word: a registration it names that no round ever judged
    (tclouds.verdict_from_dict('h', {'status': 'unknown', 'registration': 'awaiting_approval',
                                     'verified_at': None}), reaction.NOT_ATTESTED),
    (tclouds.verdict_from_dict('h', {'status': 'unknown', 'registration': 'pending'}),
     reaction.NOT_ATTESTED),
])
def test_never_appraised_is_only_the_backends_word(verdict, judgement):
    assert reaction.judge(verdict, 120, 5, now=NOW)[0] == judgement


def test_backends_state_never_appraised_only_for_hosts_outside_the_pool():
    class Client(object):
        def verdicts(self, hosts):
            return {'h1': {'status': 'unknown', 'verified_at': None,
                           'registration': 'awaiting_approval'}}

    out = tclouds.TCloudsBackend(None, client=Client()).get_verdicts(['h1', 'h2'])
    assert out['h1'].never_appraised and out['h2'].never_appraised
    assert 'not registered' in out['h2'].reasons[0]


def test_a_variant_of_a_host_name_never_reaches_that_host():
    """Nova on MySQL answers services.list(host='HOST1') with host1's service."""
    import types

    class Services(object):
        disabled = []

        def list(self, host, binary):
            return [types.SimpleNamespace(id=1, host='host1', status='enabled',
                                          disabled_reason=None)]

        def disable_log_reason(self, service_id, reason):
            self.disabled.append(service_id)

    class Backend(object):
        def get_verdicts(self, hosts):
            return {h: base.Verdict(h, base.UNTRUSTED, ('PCR 0',), NOW) for h in hosts}

    class Sync(object):
        backend = Backend()

        def jurisdictions(self):
            return {}

        def sync_host(self, host, trusted, country=None):
            return False

    conf = types.SimpleNamespace(
        attestation=types.SimpleNamespace(max_verdict_age=120, max_clock_skew=5),
        trust_reactor=types.SimpleNamespace(disable_untrusted_compute=True,
                                            enable_trusted_compute=True,
                                            instance_action='none'))
    nova = types.SimpleNamespace(services=Services())
    sent = []
    notifier = types.SimpleNamespace(info=lambda ctxt, e, p: sent.append(e))
    reactor = reaction.TrustReactor(conf, nova, Sync(), notifier)
    for variant in ('HOST1', 'host1 ', 'Host1'):
        reactor.handle('attestation.host.untrusted', {'host': variant})
    assert Services.disabled == []
    reactor.handle('attestation.host.untrusted', {'host': 'host1'})
    assert Services.disabled == [1]


def test_forged_names_do_not_grow_the_pending_set():
    """The verdict cannot be read (service down): only compute hosts wait for a re-check."""
    import types

    class Backend(object):
        def get_verdicts(self, hosts):
            raise base.BackendUnavailable('down')

    class Sync(object):
        backend = Backend()

        def jurisdictions(self):
            return {}

        def sync_host(self, host, trusted, country=None):
            return False

    services = {'host1': [types.SimpleNamespace(id=1, host='host1', status='enabled',
                                                disabled_reason=None)]}
    nova = types.SimpleNamespace(services=types.SimpleNamespace(
        list=lambda host, binary: services.get(host, [])))
    conf = types.SimpleNamespace(
        attestation=types.SimpleNamespace(max_verdict_age=120, max_clock_skew=5),
        trust_reactor=types.SimpleNamespace(disable_untrusted_compute=True,
                                            enable_trusted_compute=True,
                                            instance_action='none'))
    reactor = reaction.TrustReactor(conf, nova, Sync(),
                                    types.SimpleNamespace(info=lambda *a: None))
    for n in range(100):
        reactor.handle('attestation.host.untrusted', {'host': 'forged-%d' % n})
    reactor.handle('attestation.host.untrusted', {'host': 'host1'})
    assert reactor.pending == {'host1'}
