"""Placement trait sync at 5,000 hosts: calls per pass, incremental versus a full re-read.

Method (as benchmarks/bench_scheduling.py and ../shared/notes/feasibility-nova-scheduling.md):
one child process, real Nova API (OSAPIFixture) and real Placement (PlacementFixture) over
wsgi-intercept, in-memory sqlite cell databases; compute nodes and their resource
providers as database rows (no nova-compute processes), half of them carrying
``CUSTOM_TCLOUDS_TRUSTED``; verdicts from the real attestation API
(``tclouds-attestation-api`` in its own process, over HTTP, ``tclouds`` backend).

Rows, all in one run:

* ``full``: today's full sync before this change, i.e. a pass without remembered state
  (one ``GET /resource_providers/{uuid}/traits`` per provider, the hypervisor list from
  Nova): the baseline;
* ``incremental``: the trait sync as shipped, warm (the provider list with generations,
  then reads and writes only where something changed): nothing changed, and k = 10 and
  k = 100 hosts whose verdict changed (flipped in the attestation database as a worker
  would). Goal: nothing changed <= 10 Placement calls, k changed <= 10 + 2k.

Placement calls are counted at the client; times are medians (the baseline: one pass per
change count); the time ratio is the baseline's time over the row's, same change count,
same run. Peak RSS of the child.
``--quick`` uses 500 hosts.
"""
import json
import os
import subprocess
import sys

SIZE, QUICK_SIZE = 5000, 500


def run(quick=False):
    hosts = QUICK_SIZE if quick else SIZE
    reps = 2 if quick else 3
    out = subprocess.run([sys.executable, '-m', 'benchmarks.bench_traitsync', str(hosts),
                          str(reps)], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         env=dict(os.environ, PYTHONWARNINGS='ignore'))
    lines = [line for line in out.stdout.splitlines() if line.startswith('RESULT ')]
    if out.returncode != 0 or not lines:
        print('trait sync benchmark failed (exit %d):\n%s' % (out.returncode,
                                                              out.stderr[-3000:]))
        return None
    res = json.loads(lines[-1][len('RESULT '):])
    print('%d hosts (%d trusted), load average %s -> %s, peak RSS %.0f MiB'
          % (hosts, hosts // 2, res['load_before'], res['load_after'], res['rss_mib']))
    print('%-12s %8s %16s %14s %10s %8s %s' % ('pass', 'changed', 'placement calls',
                                               'nova calls', 'median s', 'ratio', 'goal'))
    for row in res['rows']:
        base = next(r for r in res['rows'] if r['pass'] == 'full'
                    and r['changed'] == row['changed'])
        goal = ''
        if row['pass'] == 'incremental':
            limit = 10 + 2 * row['changed']
            goal = '<= %d: %s' % (limit, 'met' if row['placement_calls'] <= limit
                                  else 'NOT MET')
        print('%-12s %8d %16d %14d %10.2f %7.1fx %s' % (
            row['pass'], row['changed'], row['placement_calls'], row['nova_calls'],
            row['seconds'], base['seconds'] / row['seconds'], goal))
    return res


# --------------------------------------------------------------------------- child process
def _child(hosts, reps):
    os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
    import nova.tests.functional  # noqa: F401  (nova's patching first)

    import gc
    import logging
    import resource
    import statistics
    import tempfile
    import time

    from keystoneauth1 import session as ks_session
    from nova import context as nova_context
    from nova import objects
    from nova.objects import host_mapping
    from nova import test
    from nova.tests import fixtures as nova_fixtures
    from nova.tests.functional import fixtures as func_fixtures
    from novaclient import client as nova_client
    from oslo_utils import uuidutils
    from placement import context as placement_context
    from placement.objects import resource_provider as rp_obj
    from placement.objects import trait as trait_obj

    from benchmarks import bench_scheduling
    from tclouds_openstack.attestation.backends import tclouds as tclouds_backend
    from tclouds_openstack.attestation import client as att_client
    from tclouds_openstack.attestation.service import models as att_models
    from tclouds_openstack.attestation.service import store as att_store
    from tclouds_openstack import conf as tconf
    from tclouds_openstack.nova import placement as trust_placement
    from tclouds_openstack.requirements import model

    load_before = '%.2f %.2f %.2f' % os.getloadavg()

    class Bench(test.TestCase):
        def runTest(self):
            pass

    class Counting(trust_placement.PlacementClient):
        calls = 0

        def request(self, method, url, body=None, params=None):
            Counting.calls += 1
            return super().request(method, url, body=body, params=params)

    case = Bench('runTest')
    case.setUp()
    logging.getLogger().setLevel(logging.WARNING)
    case.flags(api_paste_config=os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini'),
               group='wsgi')
    case.flags(max_limit=1000, group='api')
    placement = case.useFixture(func_fixtures.PlacementFixture())
    osapi = case.useFixture(nova_fixtures.OSAPIFixture(api_version='v2.1'))
    ctxt = nova_context.get_admin_context()
    pctx = placement_context.RequestContext(user_id='admin', project_id='admin',
                                            config=placement.conf_fixture.conf)
    trait_obj.ensure_sync(pctx)
    trait_obj.Trait(pctx, name=model.TRAIT_TRUSTED).create()

    tmp = tempfile.mkdtemp(prefix='bench-traitsync-')
    conf = tconf.CONF
    conf.set_override('max_verdict_age', 3600, group='attestation')
    connection = 'sqlite:///%s/att.sqlite' % tmp
    store = att_store.Store(connection)
    store.migrate()
    now = att_store.utcnow()
    names = ['host%05d' % i for i in range(hosts)]
    trusted = set(names[::2])
    with_trait = trait_obj.get_all(pctx, filters={'name_in': [
        'OWNER_NOVA', 'COMPUTE_NODE', model.TRAIT_TRUSTED]})
    without = [t for t in with_trait if t.name != model.TRAIT_TRUSTED]
    rows = []
    with nova_context.target_cell(ctxt, case.cell_mappings['cell1']) as cctxt:
        for name in names:
            svc = objects.Service(cctxt, host=name, binary='nova-compute', topic='compute',
                                  report_count=0)
            svc.create()
            cn = objects.ComputeNode(
                cctxt, host=name, hypervisor_hostname=name, uuid=uuidutils.generate_uuid(),
                vcpus=64, memory_mb=262144, local_gb=4000, vcpus_used=0, memory_mb_used=0,
                local_gb_used=0, free_ram_mb=262144, free_disk_gb=4000,
                hypervisor_type='fake', hypervisor_version=1, cpu_info='{}',
                disk_available_least=4000, running_vms=0, current_workload=0,
                service_id=svc.id, cpu_allocation_ratio=16.0, ram_allocation_ratio=1.5,
                disk_allocation_ratio=1.0, supported_hv_specs=[], stats={})
            cn.create()
            rp = rp_obj.ResourceProvider(pctx, uuid=cn.uuid, name=name)
            rp.create()
            rp.set_traits(with_trait if name in trusted else without)
            rows.append(att_models.Host(
                name=name, registration='active', ek_public=b'ek-' + name.encode(),
                ak_public=b'ak', ak_name='00' * 34, registered_at=now, activated_at=now,
                next_attest_at=now, status='trusted' if name in trusted else 'untrusted',
                reasons='[]' if name in trusted else '["PCR 10 does not match"]',
                verified_at=now, ima_offset=0))
    with store._writer() as session:
        session.add_all(rows)
    host_mapping.discover_hosts(ctxt)

    api_proc, url = bench_scheduling._start_attestation_api(tmp, connection)
    backend = tclouds_backend.TCloudsBackend(conf, client=att_client.AttestationClient(
        ks_session.Session(additional_headers={
            'X-Roles': 'service', 'X-User-Id': 'nova', 'X-Project-Id': 'service'}),
        endpoint_override=url))
    nova_calls = [0]
    nova_session = ks_session.Session(additional_headers={
        'X-Auth-User': 'admin', 'X-User-Id': 'admin', 'X-Auth-Project-Id': 'admin',
        'X-Roles': 'admin,member,reader'})
    original = nova_session.request

    def counted_request(*args, **kwargs):
        nova_calls[0] += 1
        return original(*args, **kwargs)
    nova_session.request = counted_request
    novacli = nova_client.Client(trust_placement.NOVA_MICROVERSION, session=nova_session,
                                 endpoint_override=osapi.base_url)
    placement_client = Counting(ks_session.Session(additional_headers={'X-Auth-Token': 'admin'}),
                                endpoint_override=placement.endpoint)

    def new_sync():
        return trust_placement.TraitSync(conf, placement_client, novacli, backend)

    flipped = [0]

    def change(k):
        """k hosts change state, as a verifier worker stores it."""
        stamp = att_store.utcnow()
        for i in range(k):
            name = names[(flipped[0] + i) % hosts]
            host = store.get_host(name)
            status = 'untrusted' if host.status == 'trusted' else 'trusted'
            store.save_verdict(name, status, [] if status == 'trusted' else ['flipped'],
                               stamp, 'bench')
        flipped[0] += k

    def measure(sync_factory, k, reps):
        results = []
        for _ in range(reps):
            change(k)
            sync = sync_factory()
            gc.collect()
            before_p, before_n = Counting.calls, nova_calls[0]
            start = time.perf_counter()
            sync.full_sync()
            results.append((time.perf_counter() - start, Counting.calls - before_p,
                            nova_calls[0] - before_n))
        return {'seconds': statistics.median(r[0] for r in results),
                'placement_calls': max(r[1] for r in results),
                'nova_calls': max(r[2] for r in results), 'changed': k}

    warm = new_sync()
    warm.full_sync()            # the first pass of a starting reactor reads everything
    out = []
    for k in (0, 10, 100):
        # one baseline pass per change count: each reads every provider (minutes at 5,000)
        out.append(dict(measure(new_sync, k, 1), **{'pass': 'full'}))
        warm.full_sync()        # catch up with the baseline's changes (not measured)
        out.append(dict(measure(lambda: warm, k, reps), **{'pass': 'incremental'}))
    api_proc.terminate()
    api_proc.wait(10)
    result = {'rows': out, 'load_before': load_before,
              'load_after': '%.2f %.2f %.2f' % os.getloadavg(),
              'rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}
    print('RESULT ' + json.dumps(result))
    sys.stdout.flush()
    os._exit(0)     # skip fixture cleanup of thousands of rows


if __name__ == '__main__':
    _child(int(sys.argv[1]), int(sys.argv[2]))
