"""What both scenario flows do on the cloud: a tenant with its own Keystone user, the
hosts' trust and jurisdictions, a server, an encrypted volume and its key release, host
compromise and the cloud's reaction, the secure log's checkpoints, the project's report
and its offline verification, clean-up. Every call goes through :mod:`.cloud`; every
observation into :class:`.core.Observations`."""
import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import threading
import time

from tclouds_openstack.scenarios import cloud
from tclouds_openstack.scenarios import core


def _jurisdiction_of(properties):
    """The ``trust:jurisdiction`` of an aggregate's properties (a dict or OSC's text)."""
    if isinstance(properties, dict):
        return properties.get('trust:jurisdiction')
    for part in str(properties or '').split(','):
        key, _, value = part.partition('=')
        if key.strip() == 'trust:jurisdiction':
            return value.strip().strip("'\"")
    return None


class Run(object):
    """One run of a scenario against a deployed cloud."""

    def __init__(self, scenario, deployment, admin_creds, out_dir, echo=print, run_id=None,
                 verify_command=None):
        self.run_id = run_id or '%s-%s' % (
            scenario, time.strftime('%Y%m%dT%H%M%SZ', time.gmtime()))
        self.short = secrets.token_hex(3)
        self.obs = core.Observations(scenario, self.run_id)
        self.dep = deployment
        self.out_dir = out_dir
        self.echo = echo
        self.transcript = cloud.Transcript(echo)
        self.admin_creds = admin_creds
        self.admin = cloud.CLI(admin_creds, 'admin', self.transcript, deployment.openstack_cli)
        self.admin_rest = cloud.REST(admin_creds, 'admin', self.transcript)
        self.tenant_creds = self.tenant = self.tenant_rest = None
        self.cleanups = []
        self.hosts = []
        self.verify_command = verify_command or self._default_verify_command()
        self._sampling = None
        self.obs.data['cloud'] = {'auth_url': admin_creds.auth_url,
                                  'region': admin_creds.region,
                                  'note': 'deployment options from %s' % deployment.source
                                  if deployment.source else ''}
        self.obs.fact('instance_action', deployment.instance_action)

    def _default_verify_command(self):
        here = os.path.dirname(self.dep.openstack_cli) if os.path.isabs(
            self.dep.openstack_cli) else ''
        candidate = os.path.join(here, 'tclouds-securelog') if here else None
        return candidate if candidate and os.path.exists(candidate) else (
            shutil.which('tclouds-securelog') or 'tclouds-securelog')

    # ------------------------------------------------------------------ plumbing
    def say(self, text):
        if self.echo:
            self.echo(text)

    def step(self, step_id, fn):
        """Run one step; recorded ok with its detail, or failed with the reason (raised)."""
        title = dict((s[0], s[1]) for s in core.steps(self.obs.scenario))[step_id]
        self.say('== %s: %s' % (step_id, title))
        try:
            detail = fn() or {}
        except core.ScenarioError as e:
            self.obs.step(step_id, False, {'error': str(e)})
            self.say('   FAILED: %s' % e)
            raise
        except Exception as e:  # an unexpected failure is reported, never a traceback
            self.obs.step(step_id, False, {'error': '%s: %s' % (type(e).__name__, e)})
            self.say('   FAILED: %s: %s' % (type(e).__name__, e))
            raise core.ScenarioError('%s: %s: %s' % (step_id, type(e).__name__, e))
        self.obs.step(step_id, True, detail)
        return detail

    def later(self, what, fn, *args, **kwargs):
        self.cleanups.append((what, fn, args, kwargs))

    def cleanup(self):
        errors = []
        for what, fn, args, kwargs in reversed(self.cleanups):
            try:
                fn(*args, **kwargs)
            except Exception as e:
                errors.append('%s: %s' % (what, e))
                self.say('   clean-up of %s failed: %s' % (what, e))
        self.cleanups = []
        return errors

    def wait(self, what, predicate, timeout=None, interval=2.0):
        return cloud.wait_for(what, predicate, timeout or self.dep.attestation_interval * 15,
                              interval)

    # ------------------------------------------------------------------ the tenant
    def create_tenant(self, prefix):
        name = '%s-%s' % (prefix, self.short)
        project = self.admin.run('project', 'create', name, '--domain', 'default',
                                 '--description', 'tclouds scenario %s' % self.run_id)
        self.later('project %s' % name, self.admin.run, 'project', 'delete', project['id'],
                   parse=False)
        password = secrets.token_urlsafe(18)
        user = self.admin.run('user', 'create', '%s-user' % name, '--domain', 'default',
                              '--password', password, '--project', project['id'])
        self.later('user %s' % user['id'], self.admin.run, 'user', 'delete', user['id'],
                   parse=False)
        self.admin.run('role', 'add', '--user', user['id'], '--project', project['id'],
                       'member', parse=False)
        self.tenant_creds = cloud.Creds(self.admin_creds.auth_url, '%s-user' % name, password,
                                        name, region=self.admin_creds.region,
                                        project_id=project['id'])
        self.tenant = cloud.CLI(self.tenant_creds, 'tenant', self.transcript,
                                self.dep.openstack_cli)
        self.tenant_rest = cloud.REST(self.tenant_creds, 'tenant', self.transcript)
        self.obs.data['project'] = {'id': project['id'], 'name': name}
        return {'project': project['id'], 'user': user['id']}

    def require(self, jurisdictions=('EU',)):
        pid = self.obs['project']['id']
        args = ['trust', 'requirement', 'set', '--project', pid, '--trusted-host']
        for j in jurisdictions:
            args += ['--jurisdiction', j]
        self.tenant.run(*args)
        self.later('trust requirement', self.admin.run, 'trust', 'requirement', 'unset',
                   '--project', pid, parse=False, check=False)
        shown = self.tenant.run('trust', 'requirement', 'show', '--project', pid)
        req = {'trusted_host': shown.get('trusted_host'),
               'jurisdictions': [j for j in (shown.get('jurisdictions') or '').split(',')
                                 if j and j != 'any'],
               'effective_jurisdictions': [j for j in (shown.get('effective_jurisdictions')
                                                       or '').split(',') if j and j != 'any']}
        self.obs.data['requirement'] = req
        return req

    # ------------------------------------------------------------------ hosts
    def discover_hosts(self):
        hosts = list(self.dep.compute_hosts)
        if not hosts:
            services = self.admin.run('compute', 'service', 'list', '--service',
                                      'nova-compute')
            hosts = sorted(s['Host'] for s in services)
        if len(hosts) < 2:
            raise core.ScenarioError('the scenario needs two attested compute hosts, the '
                                     'cloud has %s' % (', '.join(hosts) or 'none'))
        self.hosts = hosts
        where = {}
        for agg in self.admin.run('aggregate', 'list'):
            shown = self.admin.run('aggregate', 'show', agg['ID'] if 'ID' in agg else agg['id'])
            country = _jurisdiction_of(shown.get('properties'))
            if country:
                for host in shown.get('hosts') or []:
                    where[host] = country
        self.obs.data['jurisdictions']['hosts'] = {h: where.get(h) for h in hosts}
        states = {}
        for host in hosts:
            shown = self.admin.run('attestation', 'host', 'show', host)
            states[host] = shown.get('status')
        self.sample()
        return {'hosts': hosts, 'jurisdictions': self.obs['jurisdictions']['hosts'],
                'verdicts': states}

    def host_view(self, host, rest=None):
        status, body = (rest or self.admin_rest).call('GET', 'attestation', '/v1/hosts/%s' % host)
        if status != 200:
            raise core.ScenarioError('attestation host %s: HTTP %s %s' % (
                host, status, cloud.error_text(body)))
        return body.get('host', body)

    def services(self, rest=None):
        status, body = (rest or self.admin_rest).call(
            'GET', 'compute', '/os-services?binary=nova-compute')
        if status != 200:
            raise core.ScenarioError('compute services: HTTP %s %s' % (
                status, cloud.error_text(body)))
        return {s['host']: s for s in body['services']}

    def sample(self, rest=None):
        """One sample of every host's verdict and compute service state."""
        services = self.services(rest)
        for host in self.hosts:
            view = self.host_view(host, rest)
            reasons = view.get('reasons') or []
            self.obs.host_state(host, view.get('status'), '; '.join(
                str(r) for r in reasons)[:300] if reasons else None)
            svc = services.get(host)
            if svc is not None:
                self.obs.service(host, svc.get('status'), svc.get('disabled_reason'))
        return services

    def start_sampling(self, interval=None):
        """Sample hosts in the background until :meth:`stop_sampling` (the timeline)."""
        stop = threading.Event()
        interval = interval or max(self.dep.attestation_interval / 2.0, 2.0)

        def loop():
            quiet = cloud.Transcript()
            rest = cloud.REST(self.admin_creds, 'admin', quiet)
            while not stop.wait(interval):
                try:
                    self.sample(rest)
                except Exception as e:  # a missed sample is only a gap in the picture
                    self.say('   (host sample failed: %s)' % e)
        thread = threading.Thread(target=loop, name='host-sampler', daemon=True)
        thread.start()
        self._sampling = (stop, thread)

    def stop_sampling(self):
        if self._sampling:
            stop, thread = self._sampling
            stop.set()
            thread.join()
            self._sampling = None

    # ------------------------------------------------------------------ server, volume
    def boot(self, name, wait_for_host=True):
        self.dep.need('image', 'flavor')
        server = self.tenant.run('--os-compute-api-version', '2.37', 'server', 'create',
                                 '--image', self.dep.image, '--flavor', self.dep.flavor,
                                 '--nic', 'none', name)
        self.later('server %s' % name, self._delete_server, server['id'])
        shown = self.wait('server %s built' % name, lambda: (
            lambda s: s if s.get('status') in ('ACTIVE', 'ERROR') else None)(
                self.admin.run('server', 'show', server['id'])), timeout=600, interval=3)
        host = shown.get('OS-EXT-SRV-ATTR:host')
        status = shown.get('status')
        if wait_for_host and (status != 'ACTIVE' or not host):
            fault = shown.get('fault')
            raise core.ScenarioError('server %s is %s on %s%s' % (
                name, status, host, ': %s' % fault if fault else ''))
        self.obs.placement('server', server['id'], name=name, host=host,
                           jurisdiction=self.obs['jurisdictions']['hosts'].get(host))
        return {'id': server['id'], 'status': status, 'host': host}

    def _delete_server(self, server_id):
        self.admin.run('server', 'delete', '--wait', server_id, parse=False, check=False)

    def server_trust(self, server_id):
        status, body = self.tenant_rest.call('GET', 'attestation',
                                             '/v1/trust/servers/%s' % server_id)
        if status != 200:
            # an observation (the outcome that needs it is then not observed), not a stop
            error = 'HTTP %s: %s' % (status, cloud.error_text(body))
            self.obs.server_trust(server_id, 'unavailable (%s)' % error[:200])
            self.say('   tenant trust view of server %s unavailable: %s' % (server_id, error))
            return {'status': None, 'error': error}
        view = body.get('server', body)
        self.obs.server_trust(server_id, view.get('status'))
        return view

    def encrypted_volume(self, name, server):
        self.dep.need('encrypted_volume_type')
        vol = self.tenant.run('volume', 'create', '--size', '1', '--type',
                              self.dep.encrypted_volume_type, name)
        self.later('volume %s' % name, self._delete_volume, vol['id'], server['id'])
        self.wait('volume %s available' % name, lambda: (
            lambda v: v if v.get('status') == 'available' else (
                _raise('volume %s is %s' % (name, v.get('status')))
                if v.get('status') == 'error' else None))(
                    self.tenant.run('volume', 'show', vol['id'])), timeout=300)
        self.tenant.run('server', 'add', 'volume', server['id'], vol['id'], parse=False)
        detail = self.wait('volume %s in-use' % name, lambda: (
            lambda v: v if v.get('status') == 'in-use' else None)(
                self.admin_volume(vol['id'])), timeout=300)
        attached = [a.get('host_name') for a in detail.get('attachments') or []]
        self.obs.placement('volume', vol['id'], name=name,
                           host=attached[0] if attached else None,
                           backend=detail.get('os-vol-host-attr:host'),
                           jurisdiction=self.obs['jurisdictions']['hosts'].get(
                               attached[0] if attached else None))
        self.obs.fact('volume_encryption_key_id', detail.get('encryption_key_id'))
        return {'id': vol['id'], 'key_id': detail.get('encryption_key_id'),
                'attached_to': attached, 'backend': detail.get('os-vol-host-attr:host')}

    def admin_volume(self, volume_id):
        sess = self.admin_creds.session()
        resp = sess.get('/volumes/%s' % volume_id, endpoint_filter={
            'service_type': 'block-storage', 'interface': 'public',
            'region_name': self.admin_creds.region},
            headers={'OpenStack-API-Version': 'volume 3.64'}, raise_exc=False)
        self.transcript.add('admin', ['HTTP', 'GET', 'block-storage:/volumes/%s' % volume_id],
                            resp.status_code)
        if resp.status_code != 200:
            raise core.ScenarioError('volume %s: HTTP %s' % (volume_id, resp.status_code))
        return resp.json()['volume']

    def _delete_volume(self, volume_id, server_id):
        self.tenant.run('server', 'remove', 'volume', server_id, volume_id, parse=False,
                        check=False)
        try:
            self.wait('volume %s detached' % volume_id, lambda: self.admin_volume(
                volume_id).get('status') in ('available', 'error'), timeout=120)
        except core.ScenarioError:
            pass
        self.admin.run('volume', 'delete', '--force', volume_id, parse=False, check=False)

    def release_key(self, volume, host, phase):
        creds = self.dep.host_creds(self.admin_creds, host)
        rest = cloud.REST(creds, 'host %s' % host, self.transcript)
        status, body = rest.call('POST', 'key-release', '/v1/volumes/%s/key' % volume['id'],
                                 {'key_id': volume['key_id']})
        released = status == 200 and isinstance(body, dict) and bool(body.get('secret'))
        self.obs.key(volume['id'], host, released, status,
                     None if released else cloud.error_text(body), phase=phase)
        return {'host': host, 'status': status, 'released': released}

    def opening(self, prefix, server_name, volume_name, state):
        """The steps both scenarios open with, up to the volume key's release.

        A tenant (``prefix``-<id>) restricted to trusted EU hosts, the hosts' trust and
        jurisdictions, the main server and its encrypted volume, the key released to each
        host in turn; ``state`` gets ``server`` and ``volume``.
        """
        self.step('tenant', lambda: self.create_tenant(prefix))
        self.step('requirement', lambda: self.require(['EU']))
        self.step('hosts', self.discover_hosts)
        self.start_sampling()
        self.checkpoint()

        def server():
            s = self.boot(server_name)
            self.obs.fact('main_server_name', server_name)
            state['server'] = s
            s['trust'] = self.server_trust(s['id']).get('status')
            return s
        self.step('server', server)

        def volume():
            v = self.encrypted_volume(volume_name, state['server'])
            if not v['key_id']:
                raise core.ScenarioError('volume %s has no encryption key id' % v['id'])
            state['volume'] = v
            return v
        self.step('volume', volume)
        self.step('key-release', lambda: {'attempts': [
            self.release_key(state['volume'], host, 'before') for host in self.hosts]})

    # ------------------------------------------------------------------ compromise
    def compromise(self, host):
        at = time.time()
        self.obs.fact('compromised_host', host)
        self.obs.fact('compromised_at', at)
        self.later('host %s restored' % host, self.restore, host)
        self.dep.run_host_command('tamper_command', host, self.transcript)
        return {'host': host, 'command': self.dep.tamper_command.format(host=host)}

    def await_reaction(self, host):
        verdict = self.wait('%s appraised untrusted' % host, lambda: (
            lambda v: v if v.get('status') == 'untrusted' else None)(self.host_view(host)))
        self.sample()
        service = self.wait('nova-compute of %s disabled' % host, lambda: (
            lambda s: s if s and s.get('status') == 'disabled' else None)(
                self.services().get(host)))
        self.sample()
        return {'verdict': verdict.get('status'), 'reasons': verdict.get('reasons'),
                'service': service.get('status'),
                'disabled_reason': service.get('disabled_reason')}

    def restore(self, host):
        self.dep.run_host_command('restore_command', host, self.transcript)
        self.wait('%s trusted again' % host, lambda: self.host_view(host).get('status')
                  == 'trusted')
        self.wait('nova-compute of %s enabled again' % host, lambda: (
            self.services().get(host) or {}).get('status') == 'enabled')

    # ------------------------------------------------------------------ the secure log
    def vkey(self):
        if not self.dep.log_vkey:
            raise core.ScenarioError('the log\'s public key is needed (--log-vkey FILE: the '
                                     'log.vkey of the operator\'s auditor bundle)')
        try:
            with open(self.dep.log_vkey) as f:
                return f.read().strip()
        except OSError as e:
            raise core.ScenarioError('cannot read the log\'s public key %s: %s' % (
                self.dep.log_vkey, e.strerror))

    def checkpoint(self):
        """The latest signed checkpoint, checked and proved to extend the previous one.

        Its signature is checked with the log's key (``--vkey``).
        """
        cp = self.tenant.run('secure-log', 'checkpoint', 'show', '--vkey', self.vkey())
        size = int(cp['tree_size'])
        prev = self.obs['checkpoints'][-1] if self.obs['checkpoints'] else None
        if prev is not None and prev['tree_size'] == size:
            return size
        self.obs.checkpoint(size, cp.get('root_hash'), cp.get('signature') == 'verified')
        if prev is not None and prev['tree_size'] < size:
            proof = self.tenant.run('secure-log', 'prove', 'consistency',
                                    prev['tree_size'], '--vkey', self.vkey(), check=False)
            self.obs.consistency(prev['tree_size'],
                                 int(proof['second']) if proof else size,
                                 bool(proof) and proof.get('verified') in (True, 'True'))
        return size

    def records(self, event_type):
        """The tenant's own records of one event type (with payload, index, leaf hash)."""
        from tclouds_openstack.securelog import client as sl_client
        client = sl_client.SecureLogClient(self.tenant_creds.session(), interface='public',
                                           region_name=self.tenant_creds.region)
        out, marker = [], None
        while True:
            page = client.list_records(marker=marker, limit=1000, event_type=event_type,
                                       project=self.obs['project']['id'])
            self.transcript.add('tenant', ['openstack', 'secure-log', 'record', 'list',
                                           '--event-type', event_type], 0)
            out.extend(page)
            if len(page) < 1000:
                return out
            marker = page[-1]['index'] + 1

    def object_placements(self, container, names, timeout=None):
        """Wait for the log's record of where each object's fragments went."""
        wanted = {'%s/%s' % (container, n) for n in names}

        def found():
            got = {}
            for rec in self.records('cloudstore.object.placed'):
                payload = rec.get('payload') or {}
                payload = payload.get('payload', payload) if isinstance(payload, dict) else {}
                key = '%s/%s' % (payload.get('container'), payload.get('object'))
                if key in wanted:
                    got[key] = payload
            return got if set(got) == wanted else None
        got = self.wait('placement records of %d objects in the secure log' % len(wanted),
                        found, timeout=timeout or 180, interval=3)
        for key, payload in sorted(got.items()):
            clouds = [{'cloud': f.get('cloud'), 'country': f.get('country'),
                       'fragment': f.get('fragment'), 'acknowledged': f.get('acknowledged')}
                      for f in payload.get('fragments') or []]
            self.obs.placement('object', key, clouds=clouds)
            for c in clouds:
                self.obs.data['jurisdictions']['clouds'][c['cloud']] = c['country']
        return got

    def project_report(self, needed_kinds, extra=None, timeout=None):
        """The project's report, once a signed checkpoint covers the run's records.

        Fetched with the OSC, which checks it with the log's key.
        """
        path = os.path.join(self.out_dir, 'report-%s.jsonl' % self.obs['project']['id'])
        pid = self.obs['project']['id']

        def fetch():
            self.checkpoint()
            self.tenant.run('secure-log', 'report', '--project', pid, '--output', path,
                            '--vkey', self.vkey())
            lines = _read_report(path)
            kinds = {}
            for line in lines[1:]:
                kinds[line['kind']] = kinds.get(line['kind'], 0) + 1
            missing = [k for k in needed_kinds if not kinds.get(k)]
            if missing or (extra and not extra(lines)):
                self.say('   report has %s; waiting for %s' % (
                    kinds, ', '.join(missing) or 'the last records'))
                return None
            return lines
        lines = self.wait('a signed report covering the run', fetch,
                          timeout=timeout or 600, interval=10)
        kinds = {}
        for line in lines[1:]:
            kinds[line['kind']] = kinds.get(line['kind'], 0) + 1
        header = lines[0]
        self.obs.data['report'] = {
            'file': os.path.basename(path), 'lines': len(lines) - 1,
            'tree_size': header.get('tree_size'), 'kinds': kinds,
            'line_indexes': [(ln['index'], ln['kind']) for ln in lines[1:]],
            'placed_types': _count(((ln.get('resource') or {}).get('type') for ln in lines[1:]
                                    if ln['kind'] == 'placement')),
            'summaries': [ln.get('summary') for ln in lines[1:]][:300],
            'integrity_clouds': sorted({(ln.get('details') or {}).get('cloud')
                                        for ln in lines[1:] if ln['kind'] == 'integrity'
                                        and (ln.get('details') or {}).get('cloud')})}
        return path, lines

    def audit(self, path):
        """The auditor's offline check, also of tampered copies.

        ``tclouds-securelog verify-report`` on the report and on copies with a changed, a
        deleted and two swapped lines.
        """
        pid = self.obs['project']['id']
        result = self._verify(path, pid)
        self.obs.data['report']['verify'] = result
        with open(path, 'rb') as f:
            raw = f.read().split(b'\n')
        body = [ln for ln in raw if ln]
        if len(body) < 4:
            raise core.ScenarioError('the report has %d lines: too few to show that changes '
                                     'are detected' % (len(body) - 1))
        changed = json.loads(body[2])
        changed['summary'] = changed.get('summary', '') + ' (edited)'
        variants = [
            ('line 2 changed (summary edited)',
             body[:2] + [json.dumps(changed, sort_keys=True).encode()] + body[3:]),
            ('line 2 deleted', body[:2] + body[3:]),
            ('lines 2 and 3 swapped', body[:2] + [body[3], body[2]] + body[4:]),
        ]
        tampered = []
        for change, lines in variants:
            copy = path + '.tampered'
            with open(copy, 'wb') as f:
                f.write(b'\n'.join(lines) + b'\n')
            out = self._verify(copy, pid)
            check = (out.get('json') or {}).get('check')
            tampered.append({'change': change, 'exit': out['exit'], 'check': check,
                             'message': out.get('stderr')})
            os.unlink(copy)
        self.obs.data['report']['tampered'] = tampered
        return {'verify_exit': result['exit'], 'tampered': [(t['change'], t['exit'], t['check'])
                                                            for t in tampered]}

    def _verify(self, path, project):
        argv = [self.verify_command, 'verify-report', path, '--public-key',
                self.dep.log_vkey, '--project', project]
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise core.ScenarioError('cannot run %s: %s' % (self.verify_command, e))
        self.transcript.add('auditor', argv, res.returncode)
        try:
            parsed = json.loads(res.stdout)
        except ValueError:
            parsed = None
        return {'exit': res.returncode, 'json': parsed if isinstance(parsed, dict) else None,
                'output': (res.stderr.strip() + '\n' + res.stdout.strip())[:4000]}

    def history(self, since):
        """Every verdict of every host since the run started (the timeline's backbone)."""
        for host in self.hosts:
            status, body = self.admin_rest.call('GET', 'attestation',
                                                '/v1/hosts/%s/history?limit=1000' % host)
            if status != 200:
                continue
            for item in body.get('history') or []:
                at = _iso_seconds(item.get('verified_at'))
                if at is not None and at >= since - 60:
                    self.obs.host_state(host, item.get('status'), '; '.join(
                        str(r) for r in item.get('reasons') or [])[:300] or None, at=at)


def _count(values):
    out = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _raise(message):
    raise core.ScenarioError(message)


def _iso_seconds(text):
    if not text:
        return None
    import datetime
    try:
        value = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.timestamp()


def _read_report(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as e:
        raise core.ScenarioError('cannot read the report %s: %s' % (path, e))


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def b64(data):
    return base64.b64encode(data).decode('ascii')
