"""Smart lighting: an energy utility's lighting-control service on the deployed cloud.

The utility's project (trusted EU hosts only) runs a lighting-control server with a
protected volume; the service's state (the district's switching schedule and each lamp's
latest state) lives in a cloud-of-clouds container. A simulated fleet of street-light
controllers writes telemetry continuously (each lamp's state, one batch per round), while
the control service answers requests from the stored state. During the run one storage
cloud goes away (the provider loses every fragment of the utility's objects) and another
serves corrupted data (the provider rewrites them with flipped bytes), and one compute host
fails attestation. Measured: the
requests the control service answered, and how many answers were stale (older than the
last write acknowledged before the request), wrong (not a state the fleet wrote) or
failed: all three must be 0.

The telemetry is sealed by the cloud, not by the tenant (whose role may read its project's
records, not append to the log: policy securelog:record:create): the cloud-of-clouds
gateway seals a placement record of every object write, attributed to the project, with
the object's MD5 (``etag``); every write the fleet saw acknowledged must have such a
record, and each of those must be a line of the verified report (same leaf hash).

The control service is run by the scenario driver beside the fleet (DevStack's compute
hosts use Nova's fake driver: its servers run no code); the Nova server stands for its
placement and trust, the requests go to the cloud-of-clouds storage through Swift.
"""
import hashlib
import json
import os
import threading
import time

from tclouds_openstack.scenarios import cloud
from tclouds_openstack.scenarios import core

LAMPS = 8
NORMAL_ROUNDS = 2      # before the faults, and again after them
# The control service reads again after a failed read (as a service behind a load balancer
# would), at most this often; a request is "failed" only when every attempt failed, and
# the retries are counted and reported.
READ_RETRIES = 2
FAULT_ROUNDS = 3
SCHEDULE = {'district': 7, 'on': '16:42', 'off': '07:55', 'dim_after': '23:00',
            'dim_level': 40}


def lamp_name(i):
    return 'lamps/lamp-%03d.json' % i


class Truth(object):
    """What the fleet wrote.

    Every body tried per lamp (by digest) and the sequence number of the last write
    Swift acknowledged.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.written = {i: {} for i in range(LAMPS)}
        self.acked = {i: -1 for i in range(LAMPS)}

    def attempt(self, lamp, seq, body):
        with self.lock:
            self.written[lamp][hashlib.sha256(body).hexdigest()] = seq

    def ack(self, lamp, seq):
        with self.lock:
            self.acked[lamp] = max(self.acked[lamp], seq)

    def judge(self, lamp, acked_before, body):
        """'ok', 'stale' or 'wrong' for an answer about ``lamp``."""
        with self.lock:
            seq = self.written[lamp].get(hashlib.sha256(body).hexdigest())
        if seq is None:
            return 'wrong'
        return 'stale' if seq < acked_before else 'ok'


class Injector(object):
    """The storage providers' faults on the utility's data units.

    On one cloud every fragment disappears, on another every fragment is rewritten with
    flipped bytes. ``away`` and ``corrupt``: ``(Objects of that cloud's provider, the
    container holding its fragments)``.
    """

    def __init__(self, away, corrupt):
        self.away, self.corrupt = away, corrupt
        self.units = set()
        self.removed = self.corrupted = 0

    def apply(self):
        (gone, gone_container), (bad, bad_container) = self.away, self.corrupt
        for unit in sorted(self.units):
            for key in gone.list(gone_container, prefix=unit):
                try:
                    gone.delete(gone_container, key)
                    self.removed += 1
                except gone.swift.ClientException:
                    pass
            for key in bad.list(bad_container, prefix=unit):
                data = bad.get(bad_container, key)
                if not data:
                    continue
                flipped = bytearray(data)
                for pos in range(0, len(flipped), max(len(flipped) // 16, 1)):
                    flipped[pos] ^= 0x5a
                bad.put(bad_container, key, bytes(flipped))
                self.corrupted += 1


class Lighting(object):
    """The fleet and the control service of one run.

    ``r``: the run (its ``run_id``, ``wait`` and tenant credentials); ``objects(who)``: a
    new Swift client for a thread (default: the tenant's); ``append(payload)``: also hand
    each round's batch digest to a sealer, ``(ok, error)`` (default: none; on the cloud the
    gateway's placement records seal every write, see the module docstring).
    """

    def __init__(self, r, container, objects=None, append=None):
        self.r = r
        self.container = container
        self.objects = objects or (
            lambda who: cloud.Objects(self._creds(), who, cloud.Transcript()))
        self.append = append
        self.truth = Truth()
        self.stop = threading.Event()
        self.faults = threading.Event()
        self.injector = None
        self.rounds = 0
        self.rounds_during_faults = 0
        self.writes_acked = 0
        self.write_errors = []
        self.batches = []           # (round, sha256) handed to ``append``
        self.acked_writes = []      # (round, object name, MD5 of the body) acknowledged
        self.answers = {'served': 0, 'served_during_faults': 0, 'stale': 0, 'wrong': 0,
                        'failed': 0, 'retried': 0, 'errors': []}
        self.lock = threading.Lock()

    def _creds(self):
        c = self.r.tenant_creds
        return cloud.Creds(c.auth_url, c.username, c.password, c.project_name,
                           region=c.region, project_id=c.project_id)

    # -- the fleet: one round = every lamp reports once; a batch digest per round
    def fleet(self):
        objects = self.objects('fleet')
        seq = 0
        while not self.stop.is_set():
            seq += 1
            during = self.faults.is_set()
            bodies = []
            for lamp in range(LAMPS):
                body = json.dumps({'lamp': lamp, 'seq': seq, 'on': seq % 2 == 0,
                                   'power_w': 40 + (lamp * 7 + seq * 3) % 60,
                                   'at': time.time()}, sort_keys=True).encode()
                self.truth.attempt(lamp, seq, body)
                try:
                    objects.put(self.container, lamp_name(lamp), body)
                except Exception as e:
                    self.write_errors.append('round %d lamp %d: %s' % (seq, lamp, e))
                    continue
                self.truth.ack(lamp, seq)
                self.writes_acked += 1
                self.acked_writes.append((seq, lamp_name(lamp),
                                          hashlib.md5(body, usedforsecurity=False).hexdigest()))
                bodies.append(body)
            if self.append is not None:
                digest = hashlib.sha256(b''.join(sorted(bodies))).hexdigest()
                ok, error = self.append({'run': self.r.run_id, 'round': seq,
                                         'lamps': len(bodies), 'sha256': digest})
                if ok:
                    self.batches.append((seq, digest))
                else:
                    self.write_errors.append('batch %d not appended: %s' % (seq, error))
            if during and self.injector is not None:
                try:
                    self.injector.apply()
                except Exception as e:
                    self.write_errors.append('fault injection: %s' % e)
            with self.lock:
                self.rounds = seq
                if during:
                    self.rounds_during_faults += 1
            self._until_answered(LAMPS)

    def _until_answered(self, n):
        """Let the control service answer ``n`` requests between two rounds."""
        with self.lock:
            target = self.answers['served'] + self.answers['failed'] + n
        while not self.stop.is_set():
            with self.lock:
                if self.answers['served'] + self.answers['failed'] >= target:
                    return
            time.sleep(0.1)

    # -- the control service and its clients' requests
    def control(self):
        objects = self.objects('control')
        schedule = json.dumps(SCHEDULE, sort_keys=True).encode()
        n = 0
        while not self.stop.is_set():
            n += 1
            during = self.faults.is_set()
            lamp = n % (LAMPS + 1)
            name = 'schedules/district-7.json' if lamp == LAMPS else lamp_name(lamp)
            with self.truth.lock:
                before = self.truth.acked.get(lamp)
            body = None
            for attempt in range(1 + READ_RETRIES):
                try:
                    body = objects.get(self.container, name)
                    break
                except Exception as e:
                    with self.lock:
                        self.answers['retried' if attempt < READ_RETRIES else 'failed'] += 1
                        if len(self.answers['errors']) < 20:
                            self.answers['errors'].append('%s (attempt %d): %s' % (
                                name, attempt + 1, str(e)[-500:]))
            if body is None:
                continue
            if lamp == LAMPS:
                verdict = 'ok' if body == schedule else 'wrong'
            else:
                verdict = self.truth.judge(lamp, before, body)
            with self.lock:
                self.answers['served'] += 1
                if during:
                    self.answers['served_during_faults'] += 1
                if verdict != 'ok':
                    self.answers[verdict] += 1
                    if len(self.answers['errors']) < 20:
                        self.answers['errors'].append('%s answer about %s' % (
                            verdict, 'the schedule' if lamp == LAMPS else 'lamp %d' % lamp))


def run(r):
    state = {}
    r.opening('utility', 'lighting-control', 'lighting-state', state)

    container = 'lighting-state-%s' % r.short
    app = Lighting(r, container)

    def stored_state():
        r.dep.need('cloudstore_policy')
        objects = cloud.Objects(r.tenant_creds, 'tenant', r.transcript)
        objects.create_container(container, r.dep.cloudstore_policy)
        r.later('container %s' % container, objects.delete_container, container)
        objects.put(container, 'schedules/district-7.json',
                    json.dumps(SCHEDULE, sort_keys=True).encode())
        for lamp in range(LAMPS):
            body = json.dumps({'lamp': lamp, 'seq': 0, 'on': False, 'power_w': 0},
                              sort_keys=True).encode()
            app.truth.attempt(lamp, 0, body)
            objects.put(container, lamp_name(lamp), body)
            app.truth.ack(lamp, 0)
        names = ['schedules/district-7.json'] + [lamp_name(i) for i in range(LAMPS)]
        state['placed'] = r.object_placements(container, names)
        return {'container': container, 'objects': len(names)}
    r.step('state', stored_state)

    threads = [threading.Thread(target=app.control, name='control', daemon=True),
               threading.Thread(target=app.fleet, name='fleet', daemon=True)]

    def stop_app():
        app.stop.set()
        for t in threads:
            if t.ident is not None:
                t.join(timeout=120)
    r.later('fleet and control service', stop_app)

    def fleet():
        for t in threads:
            t.start()
        _rounds(app, NORMAL_ROUNDS, 'the fleet\'s first rounds')
        return {'rounds': app.rounds, 'writes_acked': app.writes_acked}
    r.step('fleet', fleet)

    def storage_faults():
        placed = state['placed']
        any_object = placed[sorted(placed)[0]]
        fragments = sorted(any_object.get('fragments') or [], key=lambda f: f['fragment'])
        containers = r.dep.cloudstore_backend_containers
        if len(fragments) < 4 or len(containers) != len(fragments):
            raise core.ScenarioError(
                'cannot tell which backend container holds which cloud\'s fragments: %d '
                'fragments, backend containers %s' % (len(fragments), containers))
        provider = cloud.Objects(r.dep.provider_creds(r.admin_creds), 'storage provider',
                                 r.transcript)
        away, corrupting = fragments[0]['cloud'], fragments[1]['cloud']
        app.injector = Injector((provider, containers[0]), (provider, containers[1]))
        app.injector.units = {p.get('data_unit') for p in placed.values()
                              if p.get('data_unit')}
        app.faults.set()
        state['faults'] = {'away': away, 'corrupting': corrupting}
        _rounds(app, 1, 'a fleet round with the faults', during_faults=True)
        return {'away': away, 'away_container': containers[0], 'corrupting': corrupting,
                'corrupting_container': containers[1], 'data_units': len(app.injector.units)}
    r.step('storage-faults', storage_faults)

    other = [h for h in r.hosts if h != state['server']['host']][0]
    r.step('host-fails', lambda: dict(r.compromise(other), **r.await_reaction(other)))

    def answers():
        _rounds(app, FAULT_ROUNDS, 'fleet rounds during the faults', during_faults=True)
        app.faults.clear()
        r.obs.fact('storage_faults', dict(state['faults'], removed=app.injector.removed,
                                          corrupted=app.injector.corrupted))
        _rounds(app, app.rounds + NORMAL_ROUNDS, 'fleet rounds after the faults')
        stop_app()
        r.obs.fact('fleet', {'lamps': LAMPS, 'rounds': app.rounds,
                             'rounds_during_faults': app.rounds_during_faults,
                             'writes_acked': app.writes_acked,
                             'write_errors': app.write_errors[:20]})
        a = dict(app.answers)
        r.obs.fact('answers', a)
        return a
    r.step('answers', answers)
    r.checkpoint()

    def sealed_writes():
        """The gateway's placement record of each acknowledged telemetry write."""
        wanted = {(name, md5) for _seq, name, md5 in app.acked_writes}
        found = {}
        for rec in r.records('cloudstore.object.placed'):
            payload = rec.get('payload') or {}
            payload = payload.get('payload', payload) if isinstance(payload, dict) else {}
            key = (payload.get('object'), payload.get('etag'))
            if payload.get('container') == container and key in wanted:
                found[key] = rec
        return wanted, found

    def log():
        def writes_in(lines):
            wanted, found = sealed_writes()
            state['sealed'] = found
            indexes = {ln['index'] for ln in lines[1:]}
            return set(found) == wanted and all(rec['index'] in indexes
                                                for rec in found.values())
        path, lines = r.project_report(('placement', 'integrity'), extra=writes_in)
        state['report'], state['lines'] = path, lines
        return {'report': os.path.basename(path), 'lines': len(lines) - 1,
                'kinds': r.obs['report']['kinds']}
    r.step('log', log)

    def audit():
        out = r.audit(state['report'])
        verified = r.obs['report']['verify']['exit'] == 0
        by_index = {ln['index']: ln for ln in state['lines'][1:]}
        wanted, found = sealed_writes()
        sealed = in_report = 0
        for key in wanted:
            rec = found.get(key)
            if rec is None:
                continue
            sealed += 1
            line = by_index.get(rec['index'])
            if verified and line is not None and line.get('leaf_hash') == rec.get('leaf_hash'):
                in_report += 1
        r.obs.fact('telemetry', {'batches': len(wanted), 'sealed': sealed,
                                 'in_verified_report': in_report,
                                 'sealed_by': 'cloudstore.object.placed (etag = MD5)'})
        return dict(out, telemetry_writes=len(wanted), sealed=sealed,
                    in_verified_report=in_report)
    r.step('audit', audit)


def _rounds(app, n, what, during_faults=False):
    """Wait until the fleet finished round ``n``, or ``n`` rounds begun with the faults on.

    ``during_faults``: a round under way when the faults are set began without them, so
    counting rounds since then would count it.
    """
    def reached():
        if app.write_errors:
            raise core.ScenarioError('the fleet failed: %s' % '; '.join(app.write_errors[:3]))
        return (app.rounds_during_faults if during_faults else app.rounds) >= n
    return app.r.wait(what, reached, timeout=900, interval=1)
