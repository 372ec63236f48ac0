"""Objects by jurisdiction, end to end, with real Keystone tokens.

Six independent clouds in six countries (cloud0 DE, cloud1 FR, cloud2 NL, cloud3 IE
through S3, cloud4 US, cloud5 CH) behind a front proxy that authenticates tenants with a
real Keystone (authtoken + keystoneauth) and reads each project's trust requirement from
the real requirements API with the service persona's credential. Project A is restricted
to the EU: exactly the four EU clouds (3f + 1 for f = 1). Project B is restricted to DE
and FR: two clouds, too few, so its writes are refused with the countries and clouds
named, and nothing is stored anywhere; what B wrote before stays readable. Every
placement is sealed into a secure log (securelog notification driver over RabbitMQ,
ingested into a store) with each fragment's cloud and country.
"""
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid

from oslo_config import cfg
import pytest
import swiftclient

from tclouds_openstack.common import client as common_client
from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack import conf as tconf
from tclouds_openstack.requirements import api as requirements_api
from tclouds_openstack.requirements import client as requirements_client
from tclouds_openstack.securelog import api as securelog_api
from tclouds_openstack.securelog import keyfiles as securelog_keyfiles
from tclouds_openstack.securelog import source as securelog_source
from tclouds_openstack.securelog import store as securelog_store
from tests.functional.cloudstore import cluster as cluster_mod
from tests.functional.cloudstore import conftest

COUNTRIES = {'cloud0': 'DE', 'cloud1': 'FR', 'cloud2': 'NL', 'cloud3': 'IE', 'cloud4': 'US',
             'cloud5': 'CH'}
EU_CLOUDS = ['cloud0', 'cloud1', 'cloud2', 'cloud3']


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class RequirementsAPI:
    """The trust requirements API behind keystonemiddleware, on a port it keeps."""

    def __init__(self, workdir, personas):
        self.port = _free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        path = pathlib.Path(workdir) / 'requirements-api.conf'
        path.write_text('[api]\nauth_strategy = keystone\n[attestation]\n'
                        'connection = sqlite:///%s/requirements.sqlite\n%s'
                        % (workdir, personas.authtoken_conf()))
        self.conf = cfg.ConfigOpts()
        tconf.register_opts(self.conf)
        self.conf([], project='tclouds-test', default_config_files=[str(path)])
        self.server = None

    def start(self):
        policy.reset()
        router = wsgi.Router()
        requirements_api.add_routes(router, self.conf)
        policy.get_enforcer(self.conf)
        self.server = wsgi.make_server(wsgi.build_app(self.conf, router), '127.0.0.1',
                                       self.port)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        policy.reset()


@pytest.fixture(scope='module')
def requirements(personas, tmp_path_factory):
    api = RequirementsAPI(tmp_path_factory.mktemp('requirements'), personas).start()
    yield api
    api.stop()


@pytest.fixture(scope='module')
def extra_clouds(cloud_root):
    first = cluster_mod.free_slots(3, conftest.FIRST_SLOT + conftest.N_CLOUDS + 1)
    clusters = [cluster_mod.Cluster(name, first + offset, cloud_root, backend_only=True)
                for offset, name in enumerate(('cloud4', 'cloud5'))]
    clusters.append(first + 2)      # the front proxy's slot
    try:
        for item in clusters[:2]:
            item.start()
        yield clusters
    finally:
        for item in clusters[:2]:
            item.stop()


RABBIT = 'rabbit://guest:guest@127.0.0.1:5672/'
_MESSAGING = """[DEFAULT]
transport_url = %(rabbit)s
[oslo_messaging_notifications]
transport_url = %(rabbit)s
%(driver)s
[oslo_messaging_rabbit]
amqp_durable_queues = true
rabbit_retry_interval = 1
[securelog]
topic = %(topic)s
"""


def _conf(path):
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    conf([], project='tclouds', default_config_files=[str(path)], default_config_dirs=[])
    return conf


@pytest.fixture(scope='module')
def securelog(tmp_path_factory, personas, requirements):
    """``(tclouds.conf of the front proxy, the secure log store its placements reach)``.

    The proxy's conf holds its service credential, the requirements API and the
    ``securelog`` notification driver; a real ingestion service appends what it sends
    (source enrolled first) into a store the test reads.
    """
    workdir = tmp_path_factory.mktemp('securelog')
    topic = 'cloudstore_test_%s' % uuid.uuid4().hex[:8]
    source_name = 'cloudstore-proxy@%s' % topic
    proxy_conf = workdir / 'tclouds-proxy.conf'
    proxy_conf.write_text(_MESSAGING % {'rabbit': RABBIT, 'topic': topic,
                                        'driver': 'driver = securelog'} + (
        'source_name = %(name)s\nsource_state_dir = %(dir)s/source\nepoch_entries = 100\n'
        '[trust_scheduling]\nauth_type = password\nauth_url = %(keystone)s\n'
        'username = service\npassword = %(password)s\nproject_name = service\n'
        'user_domain_id = default\nproject_domain_id = default\n'
        'requirements_endpoint_override = %(requirements)s\n'
        # A changed requirement applies to the next write (the tests change some).
        'requirements_cache_ttl = 0\n'
        % {'name': source_name, 'dir': workdir, 'keystone': personas.url,
           'password': personas.password('service'), 'requirements': requirements.url}))
    ingest_conf = workdir / 'tclouds-ingest.conf'
    ingest_conf.write_text(_MESSAGING % {'rabbit': RABBIT, 'topic': topic, 'driver': ''} + (
        'connection = sqlite:///%(dir)s/log.sqlite\nstate_dir = %(dir)s/logstate\n'
        'source_state_dir = %(dir)s/ingest-source\norigin = test.example/cloudstore\n'
        'batch_size = 50\nbatch_timeout = 0.2\ncheckpoint_interval = 1\n'
        % {'dir': workdir}))
    store = securelog_store.SecureLogStore.from_conf(_conf(ingest_conf))
    empty = workdir / 'conf.d'
    empty.mkdir()
    # The proxy's sealer and K0 exist before its first notification; the log accepts it.
    source = securelog_source.Source(source_name, str(workdir / 'source'))
    with source.open():
        pass
    if hasattr(store, 'enroll_source'):
        store.enroll_source(source_name, securelog_keyfiles.read_k0(source.k0_path()))
    ingest = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), 'tclouds-securelog-ingest'),
         '--config-file', str(ingest_conf),
         # An empty directory: oslo.config reads no machine configuration.
         '--config-dir', str(empty)], stdout=subprocess.DEVNULL,
        stderr=open(workdir / 'ingest.log', 'wb'))
    try:
        yield proxy_conf, store
    finally:
        ingest.terminate()
        ingest.wait()
        subprocess.run(['rabbitmqctl', '-q', 'delete_queue', '%s.info' % topic],
                       capture_output=True)


@pytest.fixture(scope='module')
def front(cloud_root, backend_clusters, extra_clouds, writer_key_file, personas, securelog):
    clouds = backend_clusters + extra_clouds[:2]
    section = cluster_mod.cloudstore_section(clouds, writer_key_file, countries=COUNTRIES,
                                             tclouds_config_file=securelog[0])
    authtoken = dict(line.split(' = ', 1) for line in personas.authtoken_conf().splitlines()
                     if ' = ' in line)
    proxy = cluster_mod.Cluster('front-jurisdiction', extra_clouds[2], cloud_root,
                                cloudstore=section, log_level='INFO',
                                keystone_authtoken=authtoken)
    try:
        yield proxy.start(), clouds
    finally:
        proxy.stop()
        shutil.rmtree(proxy.dir, ignore_errors=True)


def _tenant(front, personas, persona, project):
    return swiftclient.Connection(
        preauthurl='%s/v1/AUTH_%s' % (front[0].url, personas.project_id(project)),
        preauthtoken=personas.token(persona), retries=0)


def _keys(clouds):
    return {item.name: set(item.backend().list('')) for item in clouds}


def _gained(clouds, before):
    """The keys each cloud holds that it did not hold ``before``."""
    return {name: keys - before[name] for name, keys in _keys(clouds).items()}


def _put(tenant, container, name, data, clouds, expected):
    """PUT, then wait until every ``expected`` cloud holds the new version.

    Returns ``(data unit, keys gained per cloud)``. A PUT returns once n - f clouds took
    it; the wait has no time limit (the suite's watchdog reports a hang).
    """
    before = _keys(clouds)
    tenant.put_object(container, name, data)
    while True:
        gained = _gained(clouds, before)
        units = {key.split('/')[0] for keys in gained.values() for key in keys}
        if len(units) == 1 and all(len(gained[cloud]) == 2 for cloud in expected):
            return units.pop(), gained
        time.sleep(0.05)


def _set(personas, requirements, project, jurisdictions):
    client = requirements_client.RequirementsClient(personas.session('admin'),
                                                    endpoint_override=requirements.url)
    if jurisdictions is None:
        try:
            client.unset(personas.project_id(project))
        except common_client.ClientError as exc:
            assert exc.status == 404, exc       # none was set
    else:
        client.set(personas.project_id(project), jurisdictions=jurisdictions)


def _placements(store, data_unit):
    """The ``cloudstore.object.placed`` records of ``data_unit``, once the log has one."""
    return _logged(store, 'cloudstore.object.placed',
                   lambda payload: payload['data_unit'] == data_unit)


def _logged(store, event_type, match):
    """The records of ``event_type`` whose payload ``match`` accepts, once there is one.

    Polls the store the ingestion service appends to; a notification that never comes
    leaves the test waiting, for the suite's watchdog to report (no time limit here).
    """
    while True:
        views = [securelog_api.record_view(record) for record in store.list(
            limit=1000, event_type=event_type)]
        views = [view for view in views if match(view['payload']['payload'])]
        if views:
            return views
        time.sleep(0.2)


def test_eu_project_objects_stay_on_the_eu_clouds(front, personas, requirements, securelog):
    _set(personas, requirements, 'A', ['EU'])
    tenant = _tenant(front, personas, 'member_a', 'A')
    tenant.put_container('records')
    data = os.urandom(200 * 1024)
    unit, gained = _put(tenant, 'records', 'patient-1', data, front[1], EU_CLOUDS)
    # Metadata and value object on each EU cloud; nothing anywhere else.
    assert not gained['cloud4'] and not gained['cloud5'], gained
    assert tenant.get_object('records', 'patient-1')[1] == data
    # Where each fragment went is sealed into the secure log, under the project.
    views = _placements(securelog[1], unit)
    assert len(views) == 1
    payload = views[0]['payload']['payload']
    assert views[0]['tenant'] == personas.project_id('A')
    assert payload['object'] == 'patient-1' and payload['container'] == 'records'
    assert [(item['cloud'], item['country']) for item in payload['fragments']] == [
        (name, COUNTRIES[name]) for name in EU_CLOUDS]
    assert 'US' not in payload['allowed_jurisdictions'] and \
        'DE' in payload['allowed_jurisdictions']


def test_too_few_clouds_in_the_project_countries_refuses_the_write(front, personas,
                                                                   requirements, securelog):
    tenant = _tenant(front, personas, 'member_b', 'B')
    tenant.put_container('plans')
    # Written while B had no restriction: on all six clouds.
    _put(tenant, 'plans', 'old', b'written before the restriction', front[1], COUNTRIES)
    _set(personas, requirements, 'B', ['DE', 'FR'])
    before = _keys(front[1])
    with pytest.raises(swiftclient.ClientException) as info:
        tenant.put_object('plans', 'new', b'must not be stored anywhere')
    assert info.value.http_status == 403
    body = info.value.http_response_content.decode()
    assert 'may be stored only in DE,FR' in body, body
    assert 'cloud0 (DE), cloud1 (FR)' in body and '4 are needed' in body
    assert 'cloud4 (US)' in body and 'cloud5 (CH)' in body
    assert not any(_gained(front[1], before).values())     # nothing stored anywhere
    assert [o['name'] for o in tenant.get_container('plans')[1]] == ['old']
    # The refusal is sealed into the secure log under the project (its report lists it).
    (refusal,) = _logged(securelog[1], 'cloudstore.write.refused',
                         lambda payload: payload['object'] == 'new')
    assert refusal['tenant'] == refusal['payload']['payload']['project_id'] == \
        personas.project_id('B')
    assert 'may be stored only in DE,FR' in refusal['payload']['payload']['reason']
    # Reads still work: the old object is where it was written.
    assert tenant.get_object('plans', 'old')[1] == b'written before the restriction'
    # An overwrite is a write: refused too, and the old version stays.
    with pytest.raises(swiftclient.ClientException) as info:
        tenant.put_object('plans', 'old', b'replacement')
    assert info.value.http_status == 403
    assert tenant.get_object('plans', 'old')[1] == b'written before the restriction'


def test_a_restriction_added_later_moves_the_next_version_inside(front, personas,
                                                                 requirements):
    _set(personas, requirements, 'A', None)
    tenant = _tenant(front, personas, 'manager_a', 'A')
    tenant.put_container('moving')
    # Unrestricted: all six clouds.
    _put(tenant, 'moving', 'doc', b'version 1, anywhere', front[1], COUNTRIES)
    _set(personas, requirements, 'A', ['EU'])
    _, gained = _put(tenant, 'moving', 'doc', b'version 2, EU only', front[1], EU_CLOUDS)
    assert not gained['cloud4'] and not gained['cloud5'], gained
    assert tenant.get_object('moving', 'doc')[1] == b'version 2, EU only'


def test_unreadable_requirements_refuse_writes_and_keep_reads(front, personas, requirements):
    _set(personas, requirements, 'A', ['EU'])
    tenant = _tenant(front, personas, 'member_a', 'A')
    tenant.put_container('outage')
    _put(tenant, 'outage', 'kept', b'readable during the outage', front[1], EU_CLOUDS)
    requirements.stop()
    try:
        before = _keys(front[1])
        with pytest.raises(swiftclient.ClientException) as info:
            tenant.put_object('outage', 'new', b'x')
        assert info.value.http_status == 503
        body = info.value.http_response_content.decode()
        assert 'trust requirements of project %s cannot be read' % personas.project_id(
            'A') in body, body
        assert not any(_gained(front[1], before).values())
        assert tenant.get_object('outage', 'kept')[1] == b'readable during the outage'
    finally:
        requirements.start()
