"""Post-deployment check of a DevStack cloud with the tclouds-openstack plugin.

Reads what stack.sh wrote and asks the running services, then prints one line per check
(``ok`` / ``FAIL``, with what was found) and exits 1 if any failed:

- configuration: Nova's and Cinder's filters, key manager and notification drivers (one
  line per driver), the audit middleware in the Nova, Cinder and Swift pipelines, the
  cloudstore filter and storage policy, Keystone's secure-log settings, each compute
  host's own credential;
- services: every tclouds daemon's unit active, every tclouds API answering (401 without
  a token, 200 with one);
- state: every compute host enrolled, registered, trusted and known to Nova, enabled, in
  its jurisdiction aggregate, with its Placement traits; the default appraisal policy;
  Nova, Cinder and Keystone notifications sealed into the secure log; no service log
  saying a notification driver could not be loaded.

Run as the DevStack user with DevStack's Python: the capabilities checked are those
enabled (``--capabilities``), the hosts those of this node (``--hosts``). Credentials:
``devstack-admin`` of /etc/openstack/clouds.yaml.
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time

RESULTS = []


def check(name, ok, found=''):
    RESULTS.append(ok)
    print('%-4s %s%s' % ('ok' if ok else 'FAIL', name, (': %s' % (found,)) if found else ''))
    return ok


def ini_values(path, section, key):
    """Every value of ``key`` in ``section`` (multi-valued options: one line each)."""
    values, current = [], None
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return None
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped[0] in '#;':
            continue
        m = re.match(r'^\[(.+)\]$', stripped)
        if m:
            current = m.group(1)
            continue
        if current == section and '=' in stripped:
            k, v = stripped.split('=', 1)
            if k.strip() == key:
                values.append(v.strip())
    return values


def ini_value(path, section, key):
    values = ini_values(path, section, key)
    return values[-1] if values else None


def pipelines(path):
    """Names of every pipeline-like line of a paste file (key = a b c ...)."""
    out = []
    for line in open(path).read().splitlines():
        m = re.match(r'^\s*([\w.-]+)\s*=\s*(.+?)\s*$', line)
        if m and not line.lstrip().startswith(('#', ';')):
            out.append(m.group(2).split())
    return out


def check_conf(args):
    nova, cinder = '/etc/nova/nova.conf', '/etc/cinder/cinder.conf'
    caps = args.capabilities
    drivers = ['messagingv2', 'securelog'] if 'securelog' in caps else ['messagingv2']
    files = [nova, '/etc/nova/nova-cpu.conf', cinder, args.tclouds_conf]
    if 'securelog' in caps:
        files.append('/etc/keystone/keystone.conf')
    for path in files:
        found = ini_values(path, 'oslo_messaging_notifications', 'driver')
        check('%s: notification drivers one per line %s' % (path, drivers),
              found == drivers, found)
    if 'securelog' in caps:
        check('keystone.conf: CADF notifications',
              ini_value('/etc/keystone/keystone.conf', 'DEFAULT', 'notification_format')
              == 'cadf')
        for path, app in (('/etc/nova/api-paste.ini', 'osapi_compute_app_v21'),
                          ('/etc/cinder/api-paste.ini', 'apiv3')):
            ends = [p for p in pipelines(path) if p[-1] == app and len(p) > 1]
            check('%s: audit right before %s in every pipeline' % (path, app),
                  ends and all(p[-2] == 'audit' for p in ends),
                  [' '.join(p[-3:]) for p in ends])
            mapfile = ini_value(path, 'filter:audit', 'audit_map_file')
            check('%s: audit map exists' % path, bool(mapfile) and os.path.isfile(mapfile),
                  mapfile)
    if 'scheduling' in caps:
        filters = ini_value(nova, 'filter_scheduler', 'enabled_filters') or ''
        check('nova.conf: TrustedHostFilter and JurisdictionFilter enabled',
              'TrustedHostFilter' in filters.split(',')
              and 'JurisdictionFilter' in filters.split(','), filters)
        available = ini_values(nova, 'filter_scheduler', 'available_filters') or []
        check('nova.conf: filters available (one per line)',
              'tclouds_openstack.nova.scheduler.TrustedHostFilter' in available
              and 'nova.scheduler.filters.all_filters' in available, available)
        cfilters = ini_value(cinder, 'DEFAULT', 'scheduler_default_filters') or ''
        check('cinder.conf: JurisdictionFilter enabled',
              'JurisdictionFilter' in cfilters.split(','), cfilters)
        labels = ini_value(cinder, 'trust_cinder', 'backend_jurisdictions') or ''
        backends = [b.strip() for b in (ini_value(cinder, 'DEFAULT', 'enabled_backends')
                                        or '').split(',') if b.strip()]
        check('cinder.conf: every backend has a jurisdiction',
              backends and all(('%s:' % b) in labels for b in backends),
              '%s / %s' % (backends, labels))
    if 'blockstore' in caps:
        for path in (nova, cinder, args.tclouds_conf):
            check('%s: key manager tclouds, controller' % path,
                  ini_value(path, 'key_manager', 'backend') == 'tclouds'
                  and ini_value(path, 'tclouds_key_manager', 'role') == 'controller')
        for host, conf in host_confs(args):
            check('%s: nova-compute uses its own host credential, role compute' % host,
                  ini_value(conf, 'tclouds_key_manager', 'role') == 'compute'
                  and ini_value(conf, 'tclouds_key_manager', 'username')
                  == 'tclouds-host-%s' % host, conf)
    proxy = '/etc/swift/proxy-server.conf'
    if os.path.exists(proxy):
        pipeline = (ini_value(proxy, 'pipeline:main', 'pipeline') or '').split()
        tail = [n for n in ('audit', 'cloudstore') if n in caps_filters(caps)]
        check('proxy-server.conf: %s right before proxy-logging proxy-server'
              % ' '.join(tail) if tail else 'proxy-server.conf: pipeline',
              pipeline[-2 - len(tail):] == tail + ['proxy-logging', 'proxy-server'],
              ' '.join(pipeline[-5:]))
        if 'cloudstore' in caps:
            names = [s for s in open('/etc/swift/swift.conf').read().splitlines()
                     if s.strip().startswith('name')]
            check('swift.conf: storage policy cloudofclouds',
                  any(n.split('=', 1)[1].strip() == 'cloudofclouds' for n in names), names)


def caps_filters(caps):
    return (['audit'] if 'securelog' in caps else []) + \
        (['cloudstore'] if 'cloudstore' in caps else [])


def host_confs(args):
    if len(args.hosts) == 1 and not glob.glob('/etc/nova/nova-fake.conf-*'):
        return [(args.hosts[0], '/etc/nova/nova-cpu.conf')]
    return [(h, '/etc/nova/nova-fake.conf-%s' % h[len(args.hostname):]) for h in args.hosts]


def units(caps, hosts):
    names = {'securelog': ['tclouds-securelog-ingest', 'tclouds-securelog-api'],
             'attestation': ['tclouds-attestation-api', 'tclouds-attestation-worker']
             + ['tclouds-swtpm-%s' % h for h in hosts]
             + ['tclouds-attestation-agent-%s' % h for h in hosts],
             'scheduling': ['tclouds-trust-reactor'],
             'blockstore': ['tclouds-key-release']}
    return [u for c in caps for u in names.get(c, [])]


def check_services(args, session):
    for unit in units(args.capabilities, args.hosts):
        state = subprocess.run(['sudo', '-n', 'systemctl', 'is-active',
                                'devstack@%s.service' % unit],
                               capture_output=True, text=True).stdout.strip()
        check('unit devstack@%s active' % unit, state == 'active', state)
    import requests
    apis = {'securelog': ('secure-log', '/v1/checkpoint'),
            'attestation': ('attestation', '/v1/hosts'),
            'blockstore': ('key-release', None)}
    for cap, (service_type, path) in apis.items():
        if cap not in args.capabilities:
            continue
        endpoint = session.get_endpoint(service_type=service_type, interface='public')
        anonymous = requests.get(endpoint + (path or '/'), timeout=30).status_code
        check('%s API %s refuses an anonymous request' % (service_type, endpoint),
              anonymous == 401, anonymous)
        if path:
            status = session.get(endpoint + path, raise_exc=False).status_code
            check('%s API answers the admin: GET %s' % (service_type, path), status == 200,
                  status)


def check_state(args, conn):
    session = conn.session
    caps = args.capabilities
    if 'attestation' in caps:
        from tclouds_openstack.attestation import client
        api = client.AttestationClient(session, interface='public')
        policies = [p['name'] for p in api.list_policies()]
        check('appraisal policy "default" exists', 'default' in policies, policies)
        for host in args.hosts:
            view = api.show_host(host)
            check('%s registered and trusted' % host,
                  view.get('registration') == 'active' and view.get('status') == 'trusted',
                  {k: view.get(k) for k in ('registration', 'status', 'reasons')})
            enrolment = api.show_enrolment(host)
            credentials = enrolment.get('credentials') or []
            check('%s enrolled with its EK and one credential' % host,
                  bool(enrolment.get('ek_sha256')) and len(credentials) == 1)
    services = {s.host: s for s in conn.compute.services(binary='nova-compute')}
    for host in args.hosts:
        s = services.get(host)
        check('Nova knows %s, enabled and up' % host,
              s is not None and s.status == 'enabled' and s.state == 'up',
              s and (s.status, s.state, s.disabled_reason))
    if 'scheduling' in caps:
        aggregates = [a for a in conn.compute.aggregates()
                      if (a.metadata or {}).get('trust:jurisdiction')]
        members = {h for a in aggregates for h in a.hosts}
        check('every compute host in a jurisdiction aggregate',
              set(args.hosts) <= members, sorted(members))
        want = {'CUSTOM_TCLOUDS_TRUSTED'} | {
            'CUSTOM_JURISDICTION_%s' % a.metadata['trust:jurisdiction'] for a in aggregates}
        deadline = time.monotonic() + 120
        while True:
            traits = {}
            for rp in conn.placement.resource_providers():
                if rp.name in args.hosts or rp.name.split('.')[0] in args.hosts:
                    traits[rp.name] = set(conn.placement.get(
                        '/resource_providers/%s/traits' % rp.id,
                        microversion='1.6').json()['traits'])
            ok = len(traits) == len(args.hosts) and all(want <= t for t in traits.values())
            if ok or time.monotonic() > deadline:
                break
            time.sleep(5)
        check('Placement traits %s on every compute host' % sorted(want), ok,
              {k: sorted(t & (want | {'CUSTOM_TCLOUDS_TRUSTED'})) for k, t in traits.items()})
    if 'securelog' in caps:
        check_securelog(conn)


def check_securelog(conn):
    # Something for each source to say, then wait for it to be sealed and ingested.
    conn.block_storage.get('/types', microversion=None)
    list(conn.compute.servers())
    list(conn.identity.projects())
    endpoint = conn.session.get_endpoint(service_type='secure-log', interface='public')
    wanted = ('nova', 'cinder', 'keystone')
    deadline = time.monotonic() + 180
    while True:
        records = conn.session.get(endpoint + '/v1/records', params={'limit': 1000}).json()
        sources = sorted({r.get('source', '') for r in records.get('records', [])})
        found = {w: [s for s in sources if w in s] for w in wanted}
        if all(found.values()) or time.monotonic() > deadline:
            break
        time.sleep(5)
    check('secure log holds records of Nova, Cinder and Keystone',
          all(found.values()), sources)
    cp = conn.session.get(endpoint + '/v1/checkpoint').json()
    check('secure log checkpoint is signed and covers the records',
          bool(cp.get('checkpoint')) and cp.get('tree_size', 0) > 0,
          {k: cp.get(k) for k in ('origin', 'tree_size')})


def check_logs(args):
    bad = []
    for path in glob.glob(args.log_glob):
        try:
            with open(path, errors='replace') as f:
                for line in f:
                    if 'Could not load' in line and 'driver' in line.lower():
                        bad.append('%s: %s' % (os.path.basename(path), line.strip()[:160]))
        except OSError:
            continue
    check('no service failed to load a notification driver', not bad, bad[:5])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--capabilities', default='securelog,attestation,scheduling,'
                        'blockstore,cloudstore', type=lambda s: s.split(','))
    parser.add_argument('--hosts', default='', type=lambda s: s.split())
    parser.add_argument('--hostname', default=os.uname().nodename)
    parser.add_argument('--tclouds-conf', default='/etc/tclouds/tclouds.conf')
    parser.add_argument('--log-glob', default='/var/log/journal/*')
    args = parser.parse_args()
    import openstack
    conn = openstack.connect(cloud=os.environ.get('OS_CLOUD', 'devstack-admin'))
    for step in (lambda: check_conf(args), lambda: check_services(args, conn.session),
                 lambda: check_state(args, conn), lambda: check_logs(args)):
        try:
            step()
        except Exception as e:  # a check that cannot run is a failed check, with why
            check('check could run', False, '%s: %s' % (type(e).__name__, e))
    failed = RESULTS.count(False)
    print(json.dumps({'checks': len(RESULTS), 'failed': failed}))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
