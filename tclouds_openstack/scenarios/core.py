"""Scenario core (pure): steps, observations, expected outcomes.

A run records what it *observed* on the cloud in an :class:`Observations` document (JSON,
written next to the HTML report as ``observations.json``); :func:`evaluate` decides from
that document alone, for every expected outcome of the scenario, whether it was observed,
with the evidence. A run passes only when every required outcome was observed: an
outcome whose evidence is missing (a step failed or never ran) is *not observed*, never
assumed. Nothing here talks to a cloud, so the decisions and the report are tested from
recorded observation files.

Observation document (version 1)::

    scenario, run_id, started, finished (Unix seconds), cloud {auth_url, region, note}
    project {id, name}, requirement {trusted_host, jurisdictions, effective_jurisdictions}
    jurisdictions {hosts: {host: CC}, clouds: {cloud: CC}}
    steps [{id, title, time, ok, detail}]           what the run did, in order
    host_states [{time, host, status, reason}]      trust verdicts sampled during the run
    services [{time, host, status, reason}]         nova-compute service state samples
    placements [{time, kind, id, name, host, backend, jurisdiction, clouds[{cloud, country}]}]
    keys [{time, volume, host, released, status, reason, phase}]
    server_trust [{time, server, status}]           the tenant's view of its server's trust
    checkpoints [{time, tree_size, root, signature_verified}]
    consistency [{from_size, to_size, verified}]
    report {file, lines, tree_size, kinds {kind: n}, summaries [...], verify {exit, output},
            tampered [{change, exit, check}]}
    facts {...}                                     scenario-specific numbers (see below)
"""
import json
import time

FORMAT = 'tclouds-scenario-observations/v1'
SCENARIOS = ('healthcare', 'lighting')
# Countries of the EU, for "EU only" (the requirements API's group EU expands to these).
EU = frozenset(('AT', 'BE', 'BG', 'CY', 'CZ', 'DE', 'DK', 'EE', 'ES', 'FI', 'FR', 'GR', 'HR',
                'HU', 'IE', 'IT', 'LT', 'LU', 'LV', 'MT', 'NL', 'PL', 'PT', 'RO', 'SE', 'SI',
                'SK'))


class ScenarioError(Exception):
    """A step could not be carried out (the message says which and why)."""


# ------------------------------------------------------------------------- the steps
# (id, title, what it does with which standard tool) - printed by --dry-run and shown in
# the report; the flows record each under the same id.
STEPS = {
    'healthcare': [
        ('tenant', 'A hospital project and its user',
         'admin: openstack project create / user create / role add member'),
        ('requirement', 'Restrict the project to EU hosts, trusted hosts only',
         'tenant: openstack trust requirement set --trusted-host --jurisdiction EU'),
        ('hosts', 'Attestation state and jurisdiction of every compute host',
         'admin: openstack attestation host show; openstack aggregate list/show'),
        ('server', 'Boot the patient-monitoring server',
         'tenant: openstack server create --wait; admin: openstack server show (host)'),
        ('volume', 'Encrypted volume attached to the server',
         'tenant: openstack volume create --type <encrypted> ; openstack server add volume'),
        ('key-release', 'The volume key goes to the server\'s host only',
         'each host\'s own credential: POST key-release /v1/volumes/{id}/key'),
        ('documents', 'Patient documents into an EU-only cloud-of-clouds container',
         'tenant: swift post -H X-Storage-Policy ; swift upload ; swift download'),
        ('compromise', 'The server\'s host is compromised: its measured boot changes',
         'the deployment\'s tamper command (a rogue PCR 4 measurement in the host\'s TPM)'),
        ('reaction', 'The cloud reacts: host untrusted and disabled, key refused, trust lost',
         'admin: openstack attestation host show, openstack compute service list; '
         'host credential: key release; tenant: GET attestation /v1/trust/servers/{id}'),
        ('after', 'A new server of the project avoids the compromised host',
         'tenant: openstack server create --wait'),
        ('log', 'Every step in the secure log: the project\'s data-protection report',
         'tenant: openstack secure-log checkpoint show --vkey; openstack secure-log report'),
        ('audit', 'The hospital\'s auditor verifies the report offline',
         'tclouds-securelog verify-report REPORT --public-key log.vkey --project P '
         '(and a changed, deleted, reordered copy is rejected)'),
        ('cleanup', 'Restore the host, delete the project\'s resources, project and user',
         'the deployment\'s restore command; openstack server/volume/container/project delete'),
    ],
    'lighting': [
        ('tenant', 'A utility project and its user',
         'admin: openstack project create / user create / role add member'),
        ('requirement', 'Trusted hosts in the EU only',
         'tenant: openstack trust requirement set --trusted-host --jurisdiction EU'),
        ('hosts', 'Attestation state and jurisdiction of every compute host',
         'admin: openstack attestation host show; openstack aggregate list/show'),
        ('server', 'Boot the lighting-control server',
         'tenant: openstack server create --wait'),
        ('volume', 'The control service\'s protected (encrypted) volume',
         'tenant: openstack volume create --type <encrypted>; openstack server add volume'),
        ('key-release', 'The volume key goes to the control server\'s host only',
         'each host\'s own credential: POST key-release /v1/volumes/{id}/key'),
        ('state', 'Schedules and lamp states in a cloud-of-clouds container',
         'tenant: Swift PUT into a container of the cloud-of-clouds storage policy'),
        ('fleet', 'A simulated fleet of street-light controllers writes telemetry '
                  'continuously; the control service answers requests from the stored state',
         'tenant: Swift PUT/GET; the cloud-of-clouds gateway seals each write (its MD5) '
         'in the project\'s placement records'),
        ('storage-faults', 'One storage cloud goes away, another serves corrupted data',
         'storage provider credential: its fragments of the project deleted on one cloud, '
         'rewritten with flipped bytes on another'),
        ('host-fails', 'One compute host fails attestation',
         'the deployment\'s tamper command; admin: openstack attestation host show'),
        ('answers', 'The control service kept answering with correct state',
         'requests served, stale answers, wrong answers, failed requests'),
        ('log', 'Telemetry sealed into the secure log; the project\'s report',
         'tenant: openstack secure-log record list/show; openstack secure-log report'),
        ('audit', 'The utility\'s auditor verifies the report offline',
         'tclouds-securelog verify-report REPORT --public-key log.vkey --project P'),
        ('cleanup', 'Restore the host and the clouds, delete everything the run created',
         'the deployment\'s restore command; openstack/swift delete'),
    ],
}


def steps(scenario):
    if scenario not in STEPS:
        raise ScenarioError('unknown scenario %r (known: %s)' % (scenario, ', '.join(SCENARIOS)))
    return STEPS[scenario]


# ------------------------------------------------------------------------- observations
class Observations(object):
    """What one run observed (a JSON document; see the module documentation)."""

    LISTS = ('steps', 'host_states', 'services', 'placements', 'keys', 'server_trust',
             'checkpoints', 'consistency')

    def __init__(self, scenario, run_id, clock=time.time, data=None):
        steps(scenario)
        self.clock = clock
        self.data = data if data is not None else {
            'format': FORMAT, 'scenario': scenario, 'run_id': run_id,
            'started': clock(), 'finished': None, 'cloud': {}, 'project': {},
            'requirement': {}, 'jurisdictions': {'hosts': {}, 'clouds': {}},
            'report': {}, 'facts': {}}
        for name in self.LISTS:
            self.data.setdefault(name, [])

    @property
    def scenario(self):
        return self.data['scenario']

    def __getitem__(self, key):
        return self.data[key]

    def _add(self, _list, **item):
        item.setdefault('time', self.clock())
        self.data[_list].append(item)
        return item

    def step(self, step_id, ok, detail=None):
        titles = dict((s[0], s[1]) for s in steps(self.scenario))
        if step_id not in titles:
            raise ScenarioError('step %r is not a step of %s' % (step_id, self.scenario))
        return self._add('steps', id=step_id, title=titles[step_id], ok=bool(ok),
                         detail=detail or {})

    def host_state(self, host, status, reason=None, at=None):
        return self._add('host_states', host=host, status=status, reason=reason,
                         **({'time': at} if at is not None else {}))

    def service(self, host, status, reason=None):
        return self._add('services', host=host, status=status, reason=reason)

    def placement(self, kind, rid, name=None, host=None, backend=None, jurisdiction=None,
                  clouds=None):
        return self._add('placements', kind=kind, id=rid, name=name, host=host,
                         backend=backend, jurisdiction=jurisdiction, clouds=clouds or [])

    def key(self, volume, host, released, status, reason=None, phase='before'):
        return self._add('keys', volume=volume, host=host, released=bool(released),
                         status=status, reason=reason, phase=phase)

    def server_trust(self, server, status):
        return self._add('server_trust', server=server, status=status)

    def checkpoint(self, tree_size, root, signature_verified):
        return self._add('checkpoints', tree_size=tree_size, root=root,
                         signature_verified=bool(signature_verified))

    def consistency(self, from_size, to_size, verified):
        return self._add('consistency', from_size=from_size, to_size=to_size,
                         verified=bool(verified))

    def fact(self, key, value):
        self.data['facts'][key] = value
        return value

    def finish(self):
        self.data['finished'] = self.clock()

    def to_json(self):
        return json.dumps(self.data, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ScenarioError('observations are not JSON: %s' % e)
        if not isinstance(data, dict) or data.get('format') != FORMAT:
            raise ScenarioError('not a scenario observation document (format %r, want %r)'
                                % (isinstance(data, dict) and data.get('format'), FORMAT))
        if data.get('scenario') not in SCENARIOS:
            raise ScenarioError('unknown scenario %r' % data.get('scenario'))
        return cls(data['scenario'], data.get('run_id'), data=data)


# ------------------------------------------------------------------------- helpers
def effective_countries(codes):
    """ISO codes of a jurisdiction list (the group EU expanded)."""
    out = set()
    for code in codes or ():
        out |= EU if code == 'EU' else {code}
    return out


def _step(obs, step_id):
    found = [s for s in obs['steps'] if s['id'] == step_id]
    return found[-1] if found else None


def _placements(obs, kind):
    return [p for p in obs['placements'] if p['kind'] == kind]


def _states(obs, host, after=None, before=None):
    """A host's states in time order.

    Verdicts from the attestation history are recorded after the run's live samples, with
    the times they were made.
    """
    return sorted((s for s in obs['host_states'] if s['host'] == host
                   and (after is None or s['time'] >= after)
                   and (before is None or s['time'] <= before)), key=lambda s: s['time'])


def _fact(obs, key, default=None):
    return obs['facts'].get(key, default)


class Outcome(object):
    def __init__(self, oid, text, ok, evidence, required=True):
        self.id, self.text, self.ok, self.evidence, self.required = \
            oid, text, ok, evidence, required

    def as_dict(self):
        return {'id': self.id, 'text': self.text, 'ok': self.ok, 'evidence': self.evidence,
                'required': self.required}


# Each check: obs -> (ok, evidence). Missing evidence is "not observed".
def _requirement(obs):
    req = obs['requirement']
    allowed = effective_countries(req.get('jurisdictions'))
    ok = req.get('trusted_host') == 'required' and bool(allowed) and allowed <= EU
    return ok, 'stored requirement: trusted_host=%s, jurisdictions=%s' % (
        req.get('trusted_host'), ','.join(req.get('jurisdictions') or []) or 'none')


def _first_server(obs):
    servers = [p for p in _placements(obs, 'server') if p.get('name') == obs['facts'].get(
        'main_server_name')] or _placements(obs, 'server')
    return servers[0] if servers else None


def _server_placed(obs):
    server = _first_server(obs)
    if server is None or not server.get('host'):
        return False, 'no server placement observed'
    host = server['host']
    country = server.get('jurisdiction') or obs['jurisdictions']['hosts'].get(host)
    allowed = effective_countries(obs['requirement'].get('jurisdictions'))
    states = _states(obs, host, before=server['time'])
    last = states[-1]['status'] if states else None
    ok = bool(country) and country in allowed and last == 'trusted'
    return ok, 'server %s on host %s (%s), host\'s verdict before the boot: %s' % (
        server['id'], host, country or 'no jurisdiction', last or 'not observed')


def _volume_encrypted(obs):
    vols = _placements(obs, 'volume')
    server = _first_server(obs)
    if not vols or server is None:
        return False, 'no volume or no server observed'
    vol = vols[0]
    encrypted = _fact(obs, 'volume_encryption_key_id')
    ok = bool(encrypted) and vol.get('host') == server.get('host')
    return ok, 'volume %s: encryption key %s, attached on host %s (server on %s)' % (
        vol['id'], 'present' if encrypted else 'absent', vol.get('host'), server.get('host'))


def _key_to_host_only(obs):
    server = _first_server(obs)
    before = [k for k in obs['keys'] if k['phase'] == 'before']
    if server is None or not before:
        return False, 'no key release attempt observed'
    mine = [k for k in before if k['host'] == server['host']]
    others = [k for k in before if k['host'] != server['host']]
    ok = bool(mine) and all(k['released'] for k in mine) and bool(others) and \
        not any(k['released'] for k in others)
    return ok, '; '.join('%s: %s (HTTP %s)' % (k['host'], 'released' if k['released'] else
                                               'refused', k['status']) for k in before)


def _objects_in(obs, countries_ok):
    objs = _placements(obs, 'object')
    if not objs:
        return False, 'no object placement observed'
    bad, descr = [], []
    for o in objs:
        clouds = o.get('clouds') or []
        if not clouds:
            bad.append(o['id'])
        for c in clouds:
            if not countries_ok(c.get('country')):
                bad.append('%s on %s (%s)' % (o['id'], c.get('cloud'), c.get('country')))
        where = ', '.join('%s(%s)' % (c.get('cloud'), c.get('country')) for c in clouds)
        descr.append('%s -> %s' % (o['id'], where or 'no clouds'))
    return not bad, ('outside: %s; ' % ', '.join(bad) if bad else '') + '; '.join(descr[:6])


def _objects_eu(obs):
    allowed = effective_countries(obs['requirement'].get('jurisdictions'))
    ok, evidence = _objects_in(obs, lambda c: c in allowed)
    intact = _fact(obs, 'documents_read_back_intact')
    return ok and intact is True, evidence + '; read back intact: %s' % intact


def _compromised_host(obs):
    return _fact(obs, 'compromised_host')


def _host_untrusted(obs):
    host, at = _compromised_host(obs), _fact(obs, 'compromised_at')
    if not host or at is None:
        return False, 'no host was compromised'
    after = [s for s in _states(obs, host, after=at) if s['status'] == 'untrusted']
    if not after:
        return False, 'host %s never seen untrusted after %s' % (host, at)
    return bool(after[0].get('reason')), 'host %s untrusted %.0f s after the change: %s' % (
        host, after[0]['time'] - at, after[0].get('reason'))


def _host_disabled(obs):
    host, at = _compromised_host(obs), _fact(obs, 'compromised_at')
    if not host or at is None:
        return False, 'no host was compromised'
    disabled = [s for s in obs['services'] if s['host'] == host and s['time'] >= at
                and s['status'] == 'disabled']
    if not disabled:
        return False, 'nova-compute of %s never seen disabled' % host
    return True, 'nova-compute of %s disabled: %s' % (host, disabled[0].get('reason'))


def _key_refused_after(obs):
    host = _compromised_host(obs)
    after = [k for k in obs['keys'] if k['phase'] == 'after' and k['host'] == host]
    if not after:
        return False, 'no key release to %s attempted after the compromise' % host
    ok = not any(k['released'] for k in after)
    return ok, '; '.join('%s: HTTP %s %s' % (k['host'], k['status'], k.get('reason') or '')
                         for k in after)


def _server_trust_lost(obs):
    server, at = _first_server(obs), _fact(obs, 'compromised_at')
    if server is None or at is None:
        return False, 'no server or no compromise'
    before = [t for t in obs['server_trust'] if t['server'] == server['id'] and t['time'] < at]
    after = [t for t in obs['server_trust'] if t['server'] == server['id'] and t['time'] >= at]
    ok = bool(before) and before[-1]['status'] == 'trusted' and bool(after) and \
        after[-1]['status'] != 'trusted'
    return ok, 'tenant view of server %s: %s before, %s after' % (
        server['id'], before[-1]['status'] if before else 'not observed',
        after[-1]['status'] if after else 'not observed')


def _migration(obs):
    action = _fact(obs, 'instance_action')
    if not action or action == 'none':
        return True, 'no instance action configured (trust_reactor instance_action = %s): ' \
            'the server stays, shown untrusted' % (action or 'not given')
    server = _first_server(obs)
    moved = [p for p in _placements(obs, 'server') if server and p['id'] == server['id']
             and p.get('host') != server.get('host')]
    return bool(moved), 'instance action %s: server %s' % (
        action, 'moved to %s' % moved[-1]['host'] if moved else 'not moved')


def _new_server_avoids(obs):
    host = _compromised_host(obs)
    after = _fact(obs, 'server_after')
    if not after:
        return False, 'no server booted after the compromise'
    ok = after.get('status') == 'ACTIVE' and after.get('host') and after['host'] != host
    return ok, 'server %s: %s on %s (compromised: %s)' % (after.get('id'), after.get('status'),
                                                          after.get('host'), host)


def _report_has(obs, needed, placed=()):
    kinds = (obs['report'] or {}).get('kinds') or {}
    types = (obs['report'] or {}).get('placed_types') or {}
    missing = [k for k in needed if not kinds.get(k)] + [
        '%s placement' % t for t in placed if not types.get(t)]
    return not missing and bool(kinds), 'report lines by kind: %s%s' % (
        ', '.join('%s=%d' % kv for kv in sorted(kinds.items())) or 'no report',
        '; missing: %s' % ', '.join(missing) if missing else '')


def _checkpoints_signed(obs):
    cps = obs['checkpoints']
    cons = obs['consistency']
    ok = len(cps) >= 2 and all(c['signature_verified'] for c in cps) and bool(cons) and \
        all(c['verified'] for c in cons)
    return ok, '%d checkpoints (signatures %s), %d consistency proofs %s' % (
        len(cps), 'verified' if cps and all(c['signature_verified'] for c in cps) else
        'NOT all verified', len(cons),
        'verified' if cons and all(c['verified'] for c in cons) else 'NOT all verified')


def _auditor(obs):
    rep = obs['report'] or {}
    verify = rep.get('verify') or {}
    tampered = rep.get('tampered') or []
    caught = [t for t in tampered if t.get('exit') == 1]
    ok = verify.get('exit') == 0 and len(tampered) >= 3 and len(caught) == len(tampered)
    return ok, 'verify-report exit %s; tampered copies rejected: %s' % (
        verify.get('exit'), ', '.join('%s -> exit %s (%s)' % (t['change'], t.get('exit'),
                                                              t.get('check'))
                                      for t in tampered) or 'none tried')


def _fleet(obs):
    fleet = _fact(obs, 'fleet') or {}
    ok = fleet.get('writes_acked', 0) > 0 and fleet.get('rounds_during_faults', 0) > 0
    return ok, 'telemetry writes acknowledged: %s over %s rounds (%s during the faults)' % (
        fleet.get('writes_acked'), fleet.get('rounds'), fleet.get('rounds_during_faults'))


def _storage_faults(obs):
    faults = _fact(obs, 'storage_faults') or {}
    ok = faults.get('removed', 0) > 0 and faults.get('corrupted', 0) > 0 and \
        faults.get('away') != faults.get('corrupting')
    return ok, 'cloud %s went away (%s fragments gone), cloud %s served corrupted data ' \
        '(%s fragments rewritten)' % (faults.get('away'), faults.get('removed'),
                                      faults.get('corrupting'), faults.get('corrupted'))


def _faults_detected(obs):
    faults = _fact(obs, 'storage_faults') or {}
    kinds = (obs['report'] or {}).get('integrity_clouds') or []
    ok = faults.get('corrupting') in kinds
    return ok, 'clouds named faulty in the project\'s report: %s' % (', '.join(kinds) or
                                                                     'none')


def _answers(obs):
    a = _fact(obs, 'answers') or {}
    ok = a.get('served', 0) > 0 and a.get('served_during_faults', 0) > 0 and \
        a.get('stale', 1) == 0 and a.get('wrong', 1) == 0 and a.get('failed', 1) == 0
    return ok, 'requests served %s (%s during the faults), stale %s, wrong %s, failed %s ' \
        '(reads retried: %s)' % (a.get('served'), a.get('served_during_faults'), a.get('stale'),
                                 a.get('wrong'), a.get('failed'), a.get('retried', 0))


def _telemetry_sealed(obs):
    t = _fact(obs, 'telemetry') or {}
    batches = t.get('batches', 0)
    ok = batches > 0 and t.get('sealed', 0) == batches and \
        t.get('in_verified_report', 0) == batches
    return ok, 'telemetry writes acknowledged %s: %s found sealed in the log with their ' \
        'digests, %s in the verified report' % (
            batches, t.get('sealed'), t.get('in_verified_report'))


def _lighting_server(obs):
    ok, evidence = _server_placed(obs)
    return ok, evidence


def _lighting_volume(obs):
    ok1, ev1 = _volume_encrypted(obs)
    ok2, ev2 = _key_to_host_only(obs)
    return ok1 and ok2, ev1 + '; keys: ' + ev2


def _state_stored(obs):
    ok, evidence = _objects_in(obs, lambda c: c in effective_countries(
        obs['requirement'].get('jurisdictions')))
    return ok, evidence


# What both scenarios expect of the secure log and the auditor.
LOG_OUTCOMES = [
    ('checkpoints', 'The log\'s checkpoints are signed and each extends the previous one',
     _checkpoints_signed),
    ('auditor', 'The auditor verifies the report offline; changed, deleted and reordered '
                'lines are rejected', _auditor),
]

EXPECTED = {
    'healthcare': [
        ('requirement', 'The hospital project requires trusted hosts inside the EU',
         _requirement),
        ('server-placed', 'The patient-monitoring server runs on an attested (trusted) EU host',
         _server_placed),
        ('volume-encrypted', 'Its volume is encrypted and attached on the server\'s host',
         _volume_encrypted),
        ('key-to-host-only', 'The volume key is released to the server\'s host and refused '
                             'to every other host', _key_to_host_only),
        ('documents-eu', 'Patient documents are stored only on clouds inside the EU and read '
                         'back intact', _objects_eu),
        ('host-untrusted', 'The compromised host is appraised untrusted, with the reason',
         _host_untrusted),
        ('host-disabled', 'The trust reactor disables the compromised host\'s compute service',
         _host_disabled),
        ('key-refused', 'The volume key is refused to the compromised host', _key_refused_after),
        ('trust-lost', 'The tenant sees its server\'s trust lost', _server_trust_lost),
        ('migration', 'The server is migrated if the operator configured it', _migration),
        ('new-server', 'A new server of the project avoids the compromised host',
         _new_server_avoids),
        ('log-complete', 'The project\'s report holds the placements, verdicts, key releases '
                         'and refusals, the trust reactor\'s actions and the object\'s clouds',
         lambda obs: _report_has(obs, ('placement', 'verdict', 'key', 'refusal', 'host-action'),
                                 ('server', 'volume', 'object'))),
    ] + LOG_OUTCOMES,
    'lighting': [
        ('requirement', 'The utility project requires trusted hosts inside the EU',
         _requirement),
        ('server-placed', 'The lighting-control server runs on an attested EU host',
         _lighting_server),
        ('protected-volume', 'Its protected volume is encrypted, its key released to its host '
                             'only', _lighting_volume),
        ('state-stored', 'Schedules and lamp state live on cloud-of-clouds storage inside '
                         'the allowed countries', _state_stored),
        ('fleet', 'The fleet kept writing telemetry, also during the faults', _fleet),
        ('storage-faults', 'One storage cloud went away and another served corrupted data',
         _storage_faults),
        ('faults-detected', 'The corrupting cloud is named in the project\'s report',
         _faults_detected),
        ('host-untrusted', 'The failing compute host is appraised untrusted', _host_untrusted),
        ('host-disabled', 'Its compute service is disabled', _host_disabled),
        ('answers', 'The control service answered every request with correct state (stale = '
                    '0, wrong = 0, failed = 0)', _answers),
        ('telemetry-sealed', 'Every acknowledged telemetry write is sealed into the secure '
                             'log and in the verified report', _telemetry_sealed),
    ] + LOG_OUTCOMES,
}


def evaluate(obs):
    """Every expected outcome of the run's scenario, decided from its observations."""
    outcomes = []
    for oid, text, check in EXPECTED[obs.scenario]:
        try:
            ok, evidence = check(obs)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            ok, evidence = False, 'observations incomplete: %s: %s' % (type(e).__name__, e)
        outcomes.append(Outcome(oid, text, bool(ok), evidence))
    return outcomes


def passed(outcomes):
    return all(o.ok for o in outcomes if o.required)
