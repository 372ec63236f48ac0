"""Nova select_destinations, stock vs. attestation-based scheduling enabled (1,000/5,000 hosts).

Method (../shared/notes/feasibility-nova-scheduling.md): one process per fleet size, real
Nova scheduler (nova.test.TestCase: in-memory sqlite API/cell DBs) and real Placement
(PlacementFixture), hosts as database rows (Service + ComputeNode in the cell DB, resource
provider + inventory + traits through Placement's object layer), host instance info
synced as nova-compute does. The timed call is ``SchedulerManager.select_destinations``
(what the conductor's RPC call runs) with a RequestSpec from_components; the allocation is
deleted outside the timing; variants are interleaved; gc is frozen after setup.

Variants, all in the same process and run:

* ``stock``: Nova's default filters, no tclouds plugin, request without requirements.
* ``enabled/none``: TrustedHostFilter + JurisdictionFilter enabled, the trust request
  filter registered, the project requirement read from the real requirements API
  (cached as configured), request without requirements. Target <= 1.05x stock.
* ``enabled/trust``: flavor ``trust:trusted_host=required``; half the fleet carries
  ``CUSTOM_TCLOUDS_TRUSTED`` (as the trait sync leaves it) and is ``trusted`` in the real
  attestation service's database; the filter makes one batched ``GET /v1/verdicts`` over
  HTTP per request (``verdict_cache_ttl = 0``: no reuse across requests). Target <= 0.70x.
* ``enabled/trust-cached``: the same with the shipped default ``verdict_cache_ttl = 2``
  (a batch is reused by requests within 2 s; its own cache, not warmed by other variants).
* ``stock/trait``: stock Nova with a bare ``trait:CUSTOM_TCLOUDS_TRUSTED=required`` flavor
  (the reference the issue quotes: 0.59x at 1,000 hosts).

Full run (about 4-6 minutes on 2 cores): ``python -m benchmarks scheduling``;
``--quick`` uses 200 hosts and fewer repetitions.
"""
import json
import os
import subprocess
import sys

SIZES = ((1000, 1000), (5000, 5000))     # (hosts, [scheduler] max_placement_results)
QUICK_SIZES = ((200, 1000),)
VARIANTS = ('stock', 'enabled/none', 'enabled/trust', 'enabled/trust-cached', 'stock/trait')


def run(quick=False):
    sizes = QUICK_SIZES if quick else SIZES
    reps = 5 if quick else 15
    print('%-6s %-14s %10s %8s %10s' % ('hosts', 'variant', 'median ms', 'ratio', 'candidates'))
    results = []
    for hosts, max_results in sizes:
        out = subprocess.run(
            [sys.executable, '-m', 'benchmarks.bench_scheduling', str(hosts), str(max_results),
             str(reps)],
            capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(
                os.path.abspath(__file__))), env=dict(os.environ, PYTHONWARNINGS='ignore'))
        lines = [line for line in out.stdout.splitlines() if line.startswith('RESULT ')]
        if out.returncode != 0 or not lines:
            print('%d hosts: benchmark process failed (exit %d):\n%s'
                  % (hosts, out.returncode, out.stderr[-3000:]))
            continue
        res = json.loads(lines[-1][len('RESULT '):])
        stock = res['stock']['median_ms']
        for variant in VARIANTS:
            r = res[variant]
            print('%-6d %-14s %10.1f %7.2fx %10s' % (
                hosts, variant, r['median_ms'], r['median_ms'] / stock, r['candidates']))
        results.append((hosts, res))
    for hosts, res in results:
        stock = res['stock']['median_ms']
        none = res['enabled/none']['median_ms'] / stock
        trust = res['enabled/trust']['median_ms'] / stock
        cached = res['enabled/trust-cached']['median_ms'] / stock
        print('%d hosts: no requirement %.2fx stock (target <= 1.05); trust required %.2fx '
              'stock with one verdict call per request (%s call(s) of <= 1,000 hosts), %.2fx '
              'with the default 2 s verdict cache (target <= 0.70)'
              % (hosts, none, trust, res['enabled/trust']['verdict_calls_per_request'],
                 cached))
    return results


# --------------------------------------------------------------------------- child process
def _start_attestation_api(tmp, connection):
    """Run ``tclouds-attestation-api`` (noauth) on a free port; (process, url).

    It reads its own file only (tests/hermetic.py): no /etc/tclouds, no policy file there.
    """
    import socket
    import urllib.error
    import urllib.request

    from tests import hermetic
    from tests import watchdog

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    path = os.path.join(tmp, 'attestation-api.conf')
    with open(path, 'w') as f:
        f.write('[api]\nauth_strategy = noauth\n[attestation]\nconnection = %s\n'
                'api_host = 127.0.0.1\napi_port = %d\nmax_verdict_age = 3600\n%s'
                % (connection, port, hermetic.POLICY_SECTION))
    proc = subprocess.Popen([sys.executable, '-m', 'tclouds_openstack.cmd.attestation_api']
                            + hermetic.service_args(path, tmp),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = 'http://127.0.0.1:%d' % port

    def up():
        try:
            urllib.request.urlopen(url + '/', timeout=60).close()
            return True
        except urllib.error.HTTPError:      # 401 without identity headers: it is up
            return True
        except OSError:
            return False

    try:
        watchdog.wait_until(up, 'tclouds-attestation-api to answer on %s' % url, proc=proc)
    except AssertionError:
        proc.kill()
        raise
    return proc, url


def _child(hosts, max_results, reps):
    """One fleet size; prints RESULT <json>.

    Exits at once, also on failure: Nova's services are never stopped, and their threads
    would keep the interpreter from exiting (it hung there for good).
    """
    try:
        _measure(hosts, max_results, reps)
    except BaseException:
        import traceback
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)     # skip fixture cleanup of thousands of rows


def _measure(hosts, max_results, reps):
    os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
    import nova.tests.functional  # noqa: F401  (nova's patching first)

    import gc
    import logging
    import statistics
    import tempfile
    import time
    import types

    from keystoneauth1 import session as ks_session
    from nova import context as nova_context
    from nova import objects
    from nova.objects import host_mapping
    from nova.scheduler import request_filter
    from nova import test
    from nova.tests.functional import fixtures as func_fixtures
    from oslo_config import cfg
    from oslo_utils import uuidutils
    from placement import context as placement_context
    from placement.objects import inventory as inv_obj
    from placement.objects import resource_provider as rp_obj
    from placement.objects import trait as trait_obj

    from tclouds_openstack.attestation.backends import tclouds as tclouds_backend
    from tclouds_openstack.attestation import client as att_client
    from tclouds_openstack.attestation.service import models as att_models
    from tclouds_openstack.attestation.service import store as att_store
    from tclouds_openstack import conf as tconf
    from tclouds_openstack.nova import scheduler as trust_scheduler
    from tclouds_openstack.nova import verdicts as trust_verdicts
    from tclouds_openstack.requirements import client as req_client
    from tclouds_openstack.requirements import model
    from tests import hermetic

    service_headers = {'X-Roles': 'service', 'X-User-Id': 'nova', 'X-Project-Id': 'service'}

    class Bench(test.TestCase):
        def runTest(self):
            pass

    case = Bench('runTest')
    # Nova's fixtures call oslo.config without default_config_dirs (/etc/nova/nova.conf.d)
    hermetic.NoDefaultConfigDirs().setUp()
    case.setUp()
    logging.getLogger().setLevel(logging.WARNING)
    case.flags(max_placement_results=max_results, group='scheduler')
    case.flags(service_down_time=10 ** 6)
    case.flags(available_filters=['nova.scheduler.filters.all_filters',
                                  'tclouds_openstack.nova.scheduler.TrustedHostFilter',
                                  'tclouds_openstack.nova.scheduler.JurisdictionFilter'],
               group='filter_scheduler')
    case.flags(verdict_cache_ttl=0, project_requirements=True, group='trust_scheduling')
    placement = case.useFixture(func_fixtures.PlacementFixture())
    ctxt = nova_context.get_admin_context()
    pctx = placement_context.RequestContext(user_id='admin', project_id='admin',
                                            config=placement.conf_fixture.conf)
    trait_obj.ensure_sync(pctx)
    for name in (model.TRAIT_TRUSTED,):
        trait_obj.Trait(pctx, name=name).create()

    # -- the real attestation service (with the requirements routes) over HTTP
    tmp = tempfile.mkdtemp(prefix='bench-sched-')
    aconf = cfg.ConfigOpts()
    tconf.register_opts(aconf)
    hermetic.parse(aconf, project='tclouds-bench')
    aconf.set_override('auth_strategy', 'noauth', group='api')
    aconf.set_override('connection', 'sqlite:///%s/att.sqlite' % tmp, group='attestation')
    aconf.set_override('max_verdict_age', 3600, group='attestation')
    store = att_store.Store(aconf.attestation.connection)
    store.migrate()
    now = att_store.utcnow()

    # -- the fleet
    names = ['host%05d' % i for i in range(hosts)]
    trusted = set(names[::2])
    rows = []
    cell = case.cell_mappings['cell1']
    with nova_context.target_cell(ctxt, cell) as cctxt:
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
            rp.set_inventory([
                inv_obj.Inventory(pctx, resource_provider=rp, resource_class=rc, total=total,
                                  reserved=0, min_unit=1, max_unit=total, step_size=1,
                                  allocation_ratio=ratio)
                for rc, total, ratio in (('VCPU', 64, 16.0), ('MEMORY_MB', 262144, 1.5),
                                         ('DISK_GB', 4000, 1.0))])
            traits = ['OWNER_NOVA', 'COMPUTE_NODE']
            if name in trusted:
                traits.append(model.TRAIT_TRUSTED)
            rp.set_traits(trait_obj.get_all(pctx, filters={'name_in': traits}))
            rows.append(att_models.Host(
                name=name, registration='active', ek_public=b'ek', ak_public=b'ak',
                ak_name='00' * 34, registered_at=now, activated_at=now, next_attest_at=now,
                status='trusted' if name in trusted else 'untrusted',
                reasons='[]' if name in trusted else '["PCR 10 does not match the policy"]',
                verified_at=now, ima_offset=0))
    with store._writer() as session:
        session.add_all(rows)
    host_mapping.discover_hosts(ctxt)

    # The real API in its own process, as deployed (tclouds-attestation-api).
    api_proc, url = _start_attestation_api(tmp, aconf.attestation.connection)
    session = ks_session.Session(additional_headers=service_headers)
    backend = tclouds_backend.TCloudsBackend(
        aconf, client=att_client.AttestationClient(session, endpoint_override=url))
    # Two caches: "strict" makes one HTTP call per request (TTL 0); "cached" is the shipped
    # default ([trust_scheduling] verdict_cache_ttl = 2 s), filled only by its own variant.
    caches = {ttl: trust_verdicts.VerdictCache(
        lambda: backend, conf=types.SimpleNamespace(
            trust_scheduling=types.SimpleNamespace(verdict_cache_ttl=ttl)))
        for ttl in (0.0, 2.0)}
    trust_scheduler.PROJECTS = req_client.ProjectRequirements(
        tconf.CONF, req_client.RequirementsClient(session, endpoint_override=url))

    scheduler = case.start_service('scheduler')
    manager = scheduler.manager
    hm = manager.host_manager
    for name in names:
        hm.update_instance_info(ctxt, name, objects.InstanceList(objects=[]))
        hm.sync_instance_info(ctxt, name, [])
    stock_filters = list(hm.enabled_filters)
    enabled_filters = hm._choose_host_filters(
        [f.__class__.__name__ for f in stock_filters]
        + ['TrustedHostFilter', 'JurisdictionFilter'])

    def flavor(name, extra_specs):
        return objects.Flavor(ctxt, name=name, flavorid=name, memory_mb=1024, vcpus=1,
                              root_gb=10, ephemeral_gb=0, swap=0, extra_specs=extra_specs,
                              is_public=True, rxtx_factor=1.0, vcpu_weight=0, disabled=False)

    flavors = {'plain': flavor('plain', {}),
               'trust': flavor('trust', {model.SPEC_TRUSTED_HOST: 'required'}),
               'trait': flavor('trait', {'trait:%s' % model.TRAIT_TRUSTED: 'required'})}
    setups = {
        'stock': (stock_filters, False, 'plain', 0.0),
        'enabled/none': (enabled_filters, True, 'plain', 0.0),
        'enabled/trust': (enabled_filters, True, 'trust', 0.0),
        'enabled/trust-cached': (enabled_filters, True, 'trust', 2.0),
        'stock/trait': (stock_filters, False, 'trait', 0.0),
    }
    project_id = 'a0e0c3a9a3bb4b8c9bde0de0de0de0de'
    timings = {v: [] for v in setups}
    candidates = {}
    calls = {}

    def one(variant):
        filters_, plugin, flavor_name, ttl = setups[variant]
        hm.enabled_filters = filters_
        verdicts = trust_scheduler.VERDICTS = caches[ttl]
        if plugin and trust_scheduler.trust_request_filter not in \
                request_filter.ALL_REQUEST_FILTERS:
            request_filter.ALL_REQUEST_FILTERS.append(trust_scheduler.trust_request_filter)
        if not plugin and trust_scheduler.trust_request_filter in \
                request_filter.ALL_REQUEST_FILTERS:
            request_filter.ALL_REQUEST_FILTERS.remove(trust_scheduler.trust_request_filter)
        uuid = uuidutils.generate_uuid()
        # a fresh image per request, as each request arrives deserialized from RPC
        image = objects.ImageMeta.from_dict({'properties': {}, 'disk_format': 'raw'})
        spec = objects.RequestSpec.from_components(
            ctxt, uuid, image, flavors[flavor_name], None, None, {}, None, None,
            project_id=project_id, user_id='u')
        gc.collect()
        before = verdicts.calls
        start = time.perf_counter()
        selections = manager.select_destinations(ctxt, spec_obj=spec, instance_uuids=[uuid],
                                                 return_objects=True, return_alternates=True)
        elapsed = (time.perf_counter() - start) * 1000
        chosen = selections[0][0].service_host
        if flavor_name != 'plain':
            assert chosen in trusted, '%s chose untrusted %s' % (variant, chosen)
        manager.placement_client.delete_allocation_for_instance(ctxt, uuid, force=True)
        calls.setdefault(variant, []).append(verdicts.calls - before)
        return elapsed

    for variant in setups:      # warm-up (imports, caches, first HTTP connection)
        one(variant)
    gc.collect()
    gc.freeze()
    for _ in range(reps):
        for variant in setups:
            timings[variant].append(one(variant))
    if os.environ.get('TCLOUDS_BENCH_PROFILE'):
        # where the time goes in one request of the named variant (stderr)
        import cProfile
        import pstats
        prof = cProfile.Profile()
        prof.runcall(one, os.environ['TCLOUDS_BENCH_PROFILE'])
        pstats.Stats(prof, stream=sys.stderr).sort_stats('cumulative').print_stats(40)
    for variant in setups:
        candidates[variant] = (hosts if setups[variant][2] == 'plain' else len(trusted))
        candidates[variant] = min(candidates[variant], max_results)
    result = {v: {'median_ms': statistics.median(t), 'candidates': candidates[v],
                  'verdict_calls_per_request': max(calls[v])}
              for v, t in timings.items()}
    api_proc.terminate()
    api_proc.wait(10)
    print('RESULT ' + json.dumps(result))


if __name__ == '__main__':
    _child(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
