"""Appending through the secure log API never speaks as the service (issue 11, point 6).

The API behind keystonemiddleware validating real Keystone tokens (the personas), its
publisher the ``securelog`` notification driver as ``tclouds-securelog-api`` runs it,
the sealed events crossing the real RabbitMQ to the ingestion service. A record appended
through the API names its submitter (the validated user, its project and roles), never
the API service: a service credential of a compute host (role ``service``, as DevStack
gives every host) cannot write "the secure log service says ...", and a host's own
credential (role ``tclouds_host``) cannot append at all.
"""
import threading

import oslo_messaging
import pytest
import requests

from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack.securelog import api
from tclouds_openstack.securelog import ingest
from tclouds_openstack.securelog import store as storemod
from tests.functional.securelog import conftest
from tests.functional.securelog import test_ingest_rabbit as rabbit
from tests import watchdog

topic = rabbit.topic
API_SOURCE = 'securelog-api@ctl'


@pytest.fixture
def served(personas, tmp_path, topic):
    path = rabbit._write_conf(tmp_path, topic, 'source_name = %s' % API_SOURCE)
    path.write_text(path.read_text() + '[api]\nauth_strategy = keystone\n'
                    + personas.authtoken_conf())
    conf = rabbit._conf(path)
    conftest.enroll(tmp_path / 'logstate' / 'source-keys', tmp_path / 'source', API_SOURCE)
    store = storemod.SecureLogStore.from_conf(conf)
    service = ingest.IngestService(conf, store)
    service.start()
    # the publisher of tclouds-securelog-api (cmd/securelog.py api_main)
    transport = oslo_messaging.get_notification_transport(conf, url=rabbit.RABBIT)
    publisher = oslo_messaging.Notifier(transport, publisher_id='securelog-api',
                                        driver='securelog')
    policy.reset()
    server = wsgi.make_server(api.build_app(conf, store, publisher), '127.0.0.1', 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield 'http://127.0.0.1:%d' % server.server_port, store
    finally:
        server.shutdown()
        server.server_close()
        service.stop()
        transport.cleanup()
        store.close()
        policy.reset()


def post(personas, url, persona, body):
    return requests.post(url + '/v1/records', json=body, headers=personas.headers(persona),
                         timeout=120)


def test_appended_records_name_their_submitter_never_the_service(served, personas):
    url, store = served
    claim = {'event_type': 'trust.host.enabled', 'payload': {'host': 'compute-1'}}
    # the compute host's own credential may not append at all
    resp = post(personas, url, 'host', claim)
    assert resp.status_code == 403, resp.text
    # a service credential may; the record says who it was
    resp = post(personas, url, 'service', claim)
    assert resp.status_code == 202, resp.text
    service_user = personas.user_id('service')
    watchdog.wait_until(lambda: store.size() == 1, 'the appended record', interval=0.2)
    view = api.record_view(store.list(limit=1)[0])
    event = view['payload']
    assert event['publisher_id'] == 'user:%s' % service_user
    assert event['publisher_id'] != 'securelog-api'
    assert event['context']['user_id'] == service_user
    assert event['context']['project_id'] == personas.project_id('service')
    assert 'service' in event['context']['roles']
    assert (event['event_type'], event['payload']) == (claim['event_type'], claim['payload'])
    assert view['tenant'] == personas.project_id('service')
    assert 'auth_token' not in event['context']
    assert resp.json()['submitted_by'] == 'user:%s' % service_user
