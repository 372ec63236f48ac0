"""Scale-out and robustness: two workers over one MariaDB partitioned with tooz (Redis);
a worker that dies hands its hosts over; kill -9 of the worker process loses nothing."""
import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from tests.functional.attestation import conftest as fx
from tests import hermetic
from tests.watchdog import wait_for  # no time limit: see tests/watchdog.py

INTERVAL = 1.0


@pytest.fixture
def mariadb():
    name, url = fx.mariadb_url()
    try:
        yield url
    finally:
        fx.drop_mariadb(name)


def _recording(verifier, log):
    real = verifier.attest_claimed     # what the loop runs for each host it claimed

    def attest(host):
        log.append((verifier.worker, host.name, time.monotonic()))
        return real(host)
    verifier.attest_claimed = attest


def test_two_workers_share_the_fleet_and_take_over(mariadb, tmp_path, local_ca):  # noqa: F811
    group = uuid.uuid4().hex[:8]
    conf = fx.make_conf(mariadb, interval=INTERVAL, jitter=0.1, max_verdict_age=10,
                        rpc_timeout=2.0,
                        coordination_url='redis://127.0.0.1:6379?timeout=2&namespace=t%s'
                        % group)
    fleet = fx.Fleet(conf, str(tmp_path), local_ca)
    try:
        first = fleet.add_host('compute-0', register=False, serve=False)
        fleet.start_registrar(local_ca.ca_bundle_pem())
        first.agent.register()
        first.agent.start()
        for i in range(1, 6):
            fleet.add_host('compute-%d' % i)
        names = sorted(fleet.hosts)
        fleet.store.create_policy('default', **{k: json.dumps(v) for k, v in
                                                fx.golden_policy_documents().items()})
        log = []
        w1 = fleet.start_verifier('worker-1')
        w2 = fleet.start_verifier('worker-2')
        for verifier in (w1, w2):
            _recording(verifier, log)
        # both see each other before the measured window starts
        assert wait_for(lambda: len(w1.partitioner.ring.nodes) == 2
                        and len(w2.partitioner.ring.nodes) == 2, 10)
        assert wait_for(lambda: all(fleet.status(n) == 'trusted' for n in names), 30)
        start = time.monotonic()
        time.sleep(4 * INTERVAL)
        elapsed = time.monotonic() - start
        window = [entry for entry in log if start <= entry[2] <= start + elapsed]
        by_worker = collections.defaultdict(set)
        for worker, host, _ in window:
            by_worker[worker].add(host)
        assert by_worker['worker-1'] and by_worker['worker-2'], by_worker
        # each worker attests its share of the ring; a host both attested was overdue by a
        # whole interval when one of them took it over (its owner was not keeping up)
        shared = by_worker['worker-1'] & by_worker['worker-2']
        assert shared <= set(w1.taken_over) | set(w2.taken_over), (by_worker, shared)
        assert by_worker['worker-1'] | by_worker['worker-2'] == set(names)
        # never twice in one round: a host is attested at most once per (jittered) interval.
        # Counted, not timed: a busy machine starts an attestation late and the next one on
        # time (a short gap, no fault), but it can only lower the count; a host claimed
        # twice per round doubles it.
        rounds = int(elapsed / (INTERVAL * (1 - 0.1))) + 1
        counts = collections.Counter(host for _, host, _ in window)
        assert all(n <= rounds + 1 for n in counts.values()), (rounds, counts)

        # worker-1 dies without leaving the group (its heartbeat stops)
        w1._stop.set()
        w1._thread.join(5)
        w1.coordinator.stop()   # stops heartbeats; the membership expires after timeout
        w1.coordinator = None
        died = time.monotonic()
        orphaned = by_worker['worker-1']

        def taken_over():
            recent = {h for w, h, at in log if w == 'worker-2' and at > died + 0.5}
            return orphaned <= recent
        assert wait_for(taken_over, 20), orphaned
        assert all(fleet.status(n) == 'trusted' for n in names)
    finally:
        fleet.close()


WORKER_CONF = """[DEFAULT]
host = {host}
transport_url = {transport}
control_exchange = {exchange}
[oslo_messaging_notifications]
driver = messagingv2
topics = {notifications}
[attestation]
connection = {db}
interval = {interval}
jitter = 0.1
max_verdict_age = 10
rpc_timeout = 2
agent_topic = {agent_topic}
registrar_topic = {registrar_topic}
[tpm]
ek_ca_bundle = {bundle}
"""


def _start_worker(path, log):
    return subprocess.Popen([sys.executable, '-m', 'tclouds_openstack.cmd.attestation_worker']
                            + hermetic.service_args(path, os.path.dirname(path)),
                            stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.parametrize('backend', ['sqlite', 'mariadb'])
def test_worker_process_kill9_loses_nothing(backend, tmp_path, local_ca):  # noqa: F811
    if backend == 'mariadb':
        name, db = fx.mariadb_url()
    else:
        name, db = None, 'sqlite:///%s' % (tmp_path / 'a.sqlite')
    conf = fx.make_conf(db, interval=INTERVAL)
    fleet = fx.Fleet(conf, str(tmp_path), local_ca)
    worker = None
    logfile = open(tmp_path / 'worker.log', 'wb')
    try:
        first = fleet.add_host('compute-0', register=False, serve=False)
        bundle = tmp_path / 'ek-ca.pem'
        bundle.write_bytes(local_ca.ca_bundle_pem())
        path = tmp_path / 'tclouds.conf'
        path.write_text(WORKER_CONF.format(
            host='worker-proc', transport=fx.RABBIT, exchange=conf.control_exchange,
            notifications=conf.oslo_messaging_notifications.topics[0], db=db,
            interval=INTERVAL, agent_topic=conf.attestation.agent_topic,
            registrar_topic=conf.attestation.registrar_topic, bundle=bundle))
        worker = _start_worker(str(path), logfile)
        # the registrar's queue exists once the worker says it runs
        assert wait_for(lambda: b'running' in (tmp_path / 'worker.log').read_bytes(), 30)
        first.agent.register()      # served by the worker process's registrar
        first.agent.start()
        fleet.add_host('compute-1')
        fleet.store.create_policy('default', **{k: json.dumps(v) for k, v in
                                                fx.golden_policy_documents().items()})
        assert wait_for(lambda: all(fleet.status(n) == 'trusted' for n in fleet.hosts), 30)
        before = {h.name: (h.ak_name, h.activated_at) for h in fleet.store.list_hosts()}
        # kill -9 in the middle of rounds
        time.sleep(0.3)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        after = {h.name: (h.ak_name, h.activated_at) for h in fleet.store.list_hosts()}
        assert after == before
        assert all(fleet.status(n) == 'trusted' for n in fleet.hosts)
        last = {n: fleet.store.get_host(n).verified_at for n in fleet.hosts}
        worker = _start_worker(str(path), logfile)
        assert wait_for(lambda: all(fleet.store.get_host(n).verified_at > last[n]
                                    for n in fleet.hosts), 30)
        assert all(fleet.status(n) == 'trusted' for n in fleet.hosts)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
        worker = None
    finally:
        if worker is not None:
            worker.kill()
            worker.wait()
        logfile.close()
        fleet.close()
        if name:
            fx.drop_mariadb(name)


def test_api_with_database_down_gives_unknown_not_trusted(tmp_path, personas):
    """The consumers' path (backend -> API -> database): an outage means not trusted.

    The API runs behind keystonemiddleware; the backend calls it with the service
    persona's real Keystone token, as Nova's and Cinder's schedulers do.
    """
    from tclouds_openstack.attestation.backends import base
    from tclouds_openstack.attestation.backends import tclouds as tclouds_backend
    from tclouds_openstack.attestation import client as client_mod
    from tclouds_openstack.attestation.service import api
    from tclouds_openstack.attestation.service import store as store_mod
    from tclouds_openstack.common import policy
    from tclouds_openstack.common import wsgi

    name, url = fx.mariadb_url()
    policy.reset()
    conf = personas.api_conf(tmp_path, '[attestation]\nconnection = %s\n' % url)
    store = store_mod.Store(url, max_retries=0)
    store.migrate()
    fx.simfleet.admit_host(store, 'compute-1', ak_name='aa')
    store.save_verdict('compute-1', 'trusted', [], store_mod.utcnow(), 'w')
    server = wsgi.make_server(api.create_app(conf, store), '127.0.0.1', 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = client_mod.AttestationClient(
        personas.session('service'),
        endpoint_override='http://127.0.0.1:%d' % server.server_port)
    backend = tclouds_backend.TCloudsBackend(conf, client=client)
    try:
        verdict = backend.get_verdicts(['compute-1'])['compute-1']
        assert base.check_trusted(verdict, 60)[0]
        fx.drop_mariadb(name)        # the database goes away
        with pytest.raises(base.BackendUnavailable):
            backend.get_verdicts(['compute-1'])
    finally:
        server.shutdown()
        server.server_close()
        fx.drop_mariadb(name)
        policy.reset()
