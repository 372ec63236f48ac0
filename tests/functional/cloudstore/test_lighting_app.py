"""The lighting scenario's application against real Swift clusters and the cloudstore proxy.

The fleet, the control service and the storage providers' faults of
``tools/scenario.sh lighting`` (tclouds_openstack/scenarios/lighting.py), run here over
this area's four independent Swift clusters behind a front proxy with the cloudstore
middleware (tempauth; no Keystone, Nova or secure log: the telemetry batches are kept in a
list). While the fleet writes, cloud0 loses every fragment of the application's objects
after each round and cloud1's are rewritten with flipped bytes: the control service must
answer every request with a state the fleet wrote and no older than the last acknowledged
write (stale = wrong = failed = 0), and the front proxy must record cloud1 as faulty.
"""
import json
import threading
import types

import swiftclient

from tclouds_openstack.scenarios import cloud
from tclouds_openstack.scenarios import core
from tclouds_openstack.scenarios import lighting
from tests.functional.cloudstore import cluster as cluster_mod


def _objects(cluster, who):
    conn = swiftclient.Connection(cluster.auth_url, cluster_mod.USER, cluster_mod.KEY,
                                  retries=0, starting_backoff=0.01)
    return cloud.Objects(None, who, cloud.Transcript(), connection=conn)


def _units(objects):
    try:
        return {key.split('/', 1)[0] for key in objects.list('cloudstore')}
    except swiftclient.ClientException as e:
        if e.http_status != 404:     # no fragment stored on that cloud yet
            raise
        return set()


def test_control_service_answers_right_through_a_lost_and_a_corrupting_cloud(
        front_proxy, clouds):
    run = types.SimpleNamespace(run_id='lighting-ftest', wait=lambda what, predicate, **kw:
                                cloud.wait_for(what, predicate, 600, 0.2))
    sealed = []
    container = 'lighting-%s' % threading.get_ident()
    tenant = _objects(front_proxy, 'tenant')
    tenant.create_container(container)
    app = lighting.Lighting(run, container, objects=lambda who: _objects(front_proxy, who),
                            append=lambda payload: (sealed.append(payload) or True, None))
    away, corrupting = _objects(clouds[0], 'provider0'), _objects(clouds[1], 'provider1')
    before = _units(away)
    tenant.put(container, 'schedules/district-7.json',
               json.dumps(lighting.SCHEDULE, sort_keys=True).encode())
    for lamp in range(lighting.LAMPS):
        body = json.dumps({'lamp': lamp, 'seq': 0}, sort_keys=True).encode()
        app.truth.attempt(lamp, 0, body)
        tenant.put(container, lighting.lamp_name(lamp), body)
        app.truth.ack(lamp, 0)
    units = _units(away) - before
    assert len(units) == lighting.LAMPS + 1
    app.injector = lighting.Injector((away, 'cloudstore'), (corrupting, 'cloudstore'))
    app.injector.units = units
    faults_before = front_proxy.fault_log.read_text().count('"cloud1"') \
        if front_proxy.fault_log.exists() else 0

    threads = [threading.Thread(target=app.control, daemon=True),
               threading.Thread(target=app.fleet, daemon=True)]
    for t in threads:
        t.start()
    try:
        lighting._rounds(app, 2, 'rounds before the faults')
        app.faults.set()
        lighting._rounds(app, 3, 'rounds with the faults', during_faults=True)
        app.faults.clear()
        lighting._rounds(app, app.rounds + 1, 'a round after the faults')
    finally:
        app.stop.set()
        for t in threads:
            t.join(timeout=120)

    a = app.answers
    assert app.write_errors == []
    assert app.rounds_during_faults >= 3
    assert app.injector.removed > 0 and app.injector.corrupted > 0
    assert a['served'] > 0 and a['served_during_faults'] > 0, a
    print('lighting app: %s' % json.dumps(a, indent=1))
    assert (a['stale'], a['wrong'], a['failed']) == (0, 0, 0), a['errors']
    assert [p['round'] for p in sealed] == list(range(1, app.rounds + 1))
    # the proxy found cloud1's corrupted fragments
    assert front_proxy.fault_log.read_text().count('"cloud1"') > faults_before

    # the core decides the same from these numbers
    obs = core.Observations('lighting', run.run_id)
    obs.fact('answers', a)
    assert {o.id: o for o in core.evaluate(obs)}['answers'].ok


def test_judge_tells_stale_and_wrong_answers():
    truth = lighting.Truth()
    truth.attempt(3, 1, b'one')
    truth.ack(3, 1)
    truth.attempt(3, 2, b'two')
    assert truth.judge(3, 1, b'one') == 'ok'
    assert truth.judge(3, 1, b'two') == 'ok'         # in flight, newer: fine
    truth.ack(3, 2)
    assert truth.judge(3, 2, b'one') == 'stale'
    assert truth.judge(3, 2, b'forged') == 'wrong'
