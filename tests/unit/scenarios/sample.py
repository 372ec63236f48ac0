"""Observation documents of complete scenario runs, built step by step with the recorder
the flows use (a fixed clock): what a run on the DevStack cloud (two fake compute hosts
in DE, four cloud-of-clouds containers in DE) records when everything goes as expected."""
from tclouds_openstack.scenarios import core

T0 = 1764921600.0    # 2025-12-05T08:00:00Z


class Clock(object):
    def __init__(self):
        self.now = T0

    def __call__(self):
        self.now += 1.0
        return self.now


def _common(obs, server_host='devstack1', other='devstack2'):
    obs.data['cloud'] = {'auth_url': 'http://127.0.0.1/identity/v3', 'region': 'RegionOne',
                         'note': 'DevStack (fake virt driver)'}
    obs.data['project'] = {'id': '3f1c2a9be0d04c4c9d3c5a1b2e7f8a90', 'name': 'hospital-r1'}
    obs.data['jurisdictions'] = {'hosts': {server_host: 'DE', other: 'DE'},
                                 'clouds': {'devstack0': 'DE', 'devstack1': 'DE',
                                            'devstack2': 'DE', 'devstack3': 'DE'}}
    obs.step('tenant', True, {'project': obs['project']['id']})
    obs.data['requirement'] = {'trusted_host': 'required', 'jurisdictions': ['EU'],
                               'effective_jurisdictions': sorted(core.EU)}
    obs.step('requirement', True)
    for host in (server_host, other):
        obs.host_state(host, 'trusted')
        obs.service(host, 'enabled')
    obs.step('hosts', True)
    obs.placement('server', 'srv-1', name='patient-monitor', host=server_host,
                  jurisdiction='DE')
    obs.fact('main_server_name', 'patient-monitor')
    obs.server_trust('srv-1', 'trusted')
    obs.step('server', True)
    obs.placement('volume', 'vol-1', name='patient-data', host=server_host, backend='fake')
    obs.fact('volume_encryption_key_id', 'key-1')
    obs.step('volume', True)
    obs.key('vol-1', server_host, True, 200)
    obs.key('vol-1', other, False, 403, 'the volume is not attached to host %s' % other)
    obs.step('key-release', True)


def _log(obs, kinds, lines):
    obs.checkpoint(120, 'cm9vdDE=', True)
    obs.checkpoint(180, 'cm9vdDI=', True)
    obs.consistency(120, 180, True)
    obs.data['report'] = {
        'file': 'report.jsonl', 'lines': len(lines), 'tree_size': 180, 'kinds': kinds,
        'line_indexes': lines, 'summaries': ['server srv-1 on host 5be1... (create.end)'],
        'verify': {'exit': 0, 'output': 'OK: %d lines' % len(lines)},
        'tampered': [{'change': 'line 2 changed', 'exit': 1, 'check': 'changed'},
                     {'change': 'line 2 deleted', 'exit': 1, 'check': 'missing'},
                     {'change': 'lines 2 and 3 swapped', 'exit': 1, 'check': 'order'}]}
    obs.step('log', True)
    obs.step('audit', True)


def healthcare():
    obs = core.Observations('healthcare', 'healthcare-r1', clock=Clock())
    _common(obs)
    obs.placement('object', 'records/patient-0001.pdf', clouds=[
        {'cloud': 'devstack%d' % i, 'country': 'DE'} for i in range(4)])
    obs.fact('documents_read_back_intact', True)
    obs.step('documents', True)
    obs.fact('compromised_host', 'devstack1')
    obs.fact('compromised_at', obs.clock())
    obs.step('compromise', True)
    obs.host_state('devstack1', 'untrusted', 'PCR 4 does not match the event log')
    obs.host_state('devstack2', 'trusted')
    obs.service('devstack1', 'disabled', 'tclouds: host untrusted')
    obs.key('vol-1', 'devstack1', False, 403, 'host devstack1 is untrusted', phase='after')
    obs.server_trust('srv-1', 'untrusted')
    obs.fact('instance_action', 'none')
    obs.step('reaction', True)
    obs.fact('server_after', {'id': 'srv-2', 'status': 'ACTIVE', 'host': 'devstack2'})
    obs.placement('server', 'srv-2', name='patient-monitor-2', host='devstack2',
                  jurisdiction='DE')
    obs.step('after', True)
    _log(obs, {'placement': 6, 'verdict': 3, 'key': 1, 'refusal': 2, 'host-action': 1,
               'trust-action': 1},
         [(10, 'placement'), (31, 'verdict'), (40, 'key'), (41, 'refusal'),
          (77, 'placement'), (150, 'verdict'), (151, 'trust-action'), (160, 'refusal')])
    obs.data['report']['placed_types'] = {'server': 2, 'volume': 1, 'object': 3}
    obs.step('cleanup', True)
    obs.finish()
    return obs


def lighting():
    obs = core.Observations('lighting', 'lighting-r1', clock=Clock())
    _common(obs)
    obs.data['project']['name'] = 'utility-r1'
    for name in ('schedules/district-7.json', 'lamps/lamp-000.json', 'lamps/lamp-001.json'):
        obs.placement('object', name, clouds=[{'cloud': 'devstack%d' % i, 'country': 'DE'}
                                              for i in range(4)])
    obs.step('state', True)
    obs.fact('fleet', {'lamps': 8, 'rounds': 9, 'rounds_during_faults': 3,
                       'writes_acked': 72})
    obs.step('fleet', True)
    obs.fact('storage_faults', {'away': 'devstack0', 'corrupting': 'devstack1',
                                'removed': 24, 'corrupted': 24})
    obs.step('storage-faults', True)
    obs.fact('compromised_host', 'devstack2')
    obs.fact('compromised_at', obs.clock())
    obs.host_state('devstack2', 'untrusted', 'PCR 4 does not match the event log')
    obs.service('devstack2', 'disabled', 'tclouds: host untrusted')
    obs.step('host-fails', True)
    obs.fact('answers', {'served': 140, 'served_during_faults': 50, 'stale': 0, 'wrong': 0,
                         'failed': 0})
    obs.step('answers', True)
    obs.fact('telemetry', {'batches': 9, 'sealed': 9, 'in_verified_report': 9})
    _log(obs, {'placement': 80, 'verdict': 2, 'key': 1, 'refusal': 1, 'integrity': 4,
               'note': 9}, [(12, 'placement'), (60, 'note'), (90, 'integrity')])
    obs.data['report']['integrity_clouds'] = ['devstack1']
    obs.step('cleanup', True)
    obs.finish()
    return obs
