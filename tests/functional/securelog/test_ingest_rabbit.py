"""Ingestion over the real RabbitMQ: the securelog notification driver seals at the
source, the ingestion service appends; a broker restart and a service killed mid-batch
lose nothing and duplicate nothing. RabbitMQ is shared: every test uses its own topic and
deletes its queue; the broker outage is kept to seconds (stop_app / start_app)."""
import json
import os
import signal
import subprocess
import sys
import uuid

from oslo_config import cfg
import oslo_messaging
import pytest

from tclouds_openstack.common import context as tcontext
from tclouds_openstack.common import messaging as common_messaging
from tclouds_openstack import conf as tconf
from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import store as storemod
from tests.functional.securelog import conftest
from tests import hermetic
from tests import watchdog

RABBIT = 'rabbit://guest:guest@127.0.0.1:5672/'


def _write_conf(tmp_path, topic, extra=''):
    path = tmp_path / 'tclouds.conf'
    path.write_text('''[DEFAULT]
transport_url = %(url)s
[oslo_messaging_notifications]
transport_url = %(url)s
[oslo_messaging_rabbit]
amqp_durable_queues = true
rabbit_retry_interval = 1
[securelog]
connection = sqlite:///%(tmp)s/log.sqlite
state_dir = %(tmp)s/logstate
source_state_dir = %(tmp)s/source
origin = test.example/securelog
topic = %(topic)s
batch_size = 50
batch_timeout = 0.2
checkpoint_interval = 1
epoch_entries = 100
%(extra)s
''' % {'url': RABBIT, 'tmp': tmp_path, 'topic': topic, 'extra': extra})
    return path


def _conf(path):
    conf = cfg.ConfigOpts()
    tconf.register_opts(conf)
    return hermetic.parse(conf, [path])


def _notifier(conf, source_name):
    conf.set_override('source_name', source_name, group='securelog')
    transport = oslo_messaging.get_notification_transport(conf, url=RABBIT)
    return transport, oslo_messaging.Notifier(transport, publisher_id='compute.host1',
                                              driver='securelog', topics=['notifications'])


def _start_ingest(path, env=None):
    exe = os.path.join(os.path.dirname(sys.executable), 'tclouds-securelog-ingest')
    return subprocess.Popen([exe] + hermetic.service_args(path, path.parent),
                            env=dict(os.environ, **(env or {})),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_count(store, n):
    watchdog.wait_until(lambda: store.size() >= n, 'the secure log to hold %d records' % n,
                        interval=0.2)
    return store.size()


def _delete_queue(topic):
    watchdog.run(['rabbitmqctl', '-q', 'delete_queue', '%s.info' % topic], capture_output=True)


def _rabbit_restart():
    watchdog.run(['rabbitmqctl', '-q', 'stop_app'], check=True, capture_output=True)
    watchdog.run(['rabbitmqctl', '-q', 'start_app'], check=True, capture_output=True)


def _bundle(tmp_path):
    bundle = keyfiles.AuditorBundle.load(str(tmp_path / 'logstate' / 'auditor'))
    src = keyfiles.AuditorBundle
    for f in (tmp_path / 'source' / 'auditor').iterdir():
        if f.name.startswith('source-'):
            bundle.source_keys[src and f.name[len('source-'):-3]] = bytes.fromhex(f.read_text())
    return bundle


@pytest.fixture
def topic():
    name = 'securelog_test_%s' % uuid.uuid4().hex[:8]
    yield name
    _delete_queue(name)


def test_broker_restart_and_killed_ingest_lose_and_duplicate_nothing(tmp_path, topic):
    path = _write_conf(tmp_path, topic)
    conf = _conf(path)
    transport, notifier = _notifier(conf, 'nova-compute@host1')
    conftest.enroll(tmp_path / 'logstate' / 'source-keys', tmp_path / 'source',
                    'nova-compute@host1')
    store = storemod.SecureLogStore.from_conf(conf)
    n_total = 600
    # The ingestion dies right after committing its 3rd batch, before the acknowledgement.
    proc = _start_ingest(path, {'TCLOUDS_SECURELOG_TEST_CRASH_AFTER_COMMIT': '3'})
    try:
        for i in range(200):
            notifier.info(tcontext.RequestContext(project_id='p1', auth_token='SECRET'),
                          'compute.instance.update', {'n': i})
        watchdog.wait(proc, 'the ingestion to die after its 3rd batch')
        assert proc.returncode == 137
        committed_at_crash = store.size()
        assert 0 < committed_at_crash < 200
        # Broker restart while notifications keep coming (they wait in the source spool).
        _rabbit_restart()
        for i in range(200, 400):
            notifier.info({'project_id': 'p1'}, 'compute.instance.update', {'n': i})
        proc = _start_ingest(path)
        for i in range(400, n_total):
            notifier.info({'project_id': 'p2'}, 'compute.instance.update', {'n': i})
        notifier._driver_mgr.map_method('flush')
        assert _wait_count(store, n_total) == n_total
    finally:
        _stop(proc)
        transport.cleanup()
    rows = store.list(limit=2 * n_total)     # (the bytes are in batch rows, layout 2)
    assert sorted(r.seq for r in rows) == list(range(n_total))  # none lost, none twice
    assert all(b'SECRET' not in bytes(r.data) for r in rows)    # tokens never logged
    report, problems = storemod.SecureLogStore.from_conf(conf).audit(_bundle(tmp_path))
    assert report.ok and not problems, report.summary()
    assert report.size == n_total and report.checkpoints_checked >= 1


def test_wired_in_event_kinds_are_logged(tmp_path, topic):
    """Attestation verdicts, Nova trust reactions and key releases: configuration only."""
    # The services emit through common.messaging.get_notifier; the only change is the
    # driver list in their configuration.
    path = _write_conf(tmp_path, topic, 'source_name = tclouds-attestation@ctl')
    with open(path) as f:
        text = f.read().replace('[oslo_messaging_notifications]\n',
                                '[oslo_messaging_notifications]\ndriver = securelog\n')
    path.write_text(text)
    conf = _conf(path)
    notifier = common_messaging.get_notifier(conf, 'tclouds-attestation.ctl')
    conftest.enroll(tmp_path / 'logstate' / 'source-keys', tmp_path / 'source',
                    'tclouds-attestation@ctl')
    transport = notifier.transport
    store = storemod.SecureLogStore.from_conf(conf)
    proc = _start_ingest(path)
    kinds = [('attestation.host.untrusted', {'host': 'cmp1', 'reasons': ['PCR 7 mismatch']}),
             ('trust.host.disabled', {'host': 'cmp1', 'action': 'disable-compute-service'}),
             ('keymgr.key.released', {'key_id': 'k-1', 'host': 'cmp2', 'verdict': 'trusted'}),
             ('keymgr.key.refused', {'key_id': 'k-1', 'host': 'cmp1', 'verdict': 'untrusted'})]
    try:
        for event_type, payload in kinds:
            ctx = tcontext.RequestContext(project_id='p9', request_id='req-1',
                                          auth_token='SECRET-TOKEN', roles=['admin'])
            notifier.info(ctx, event_type, payload)
        assert _wait_count(store, len(kinds)) == len(kinds)
    finally:
        _stop(proc)
        transport.cleanup()
    rows = store.list(limit=10)
    assert [r.event_type for r in rows] == [k for k, _p in kinds]
    from tclouds_openstack.securelog import api
    view = api.record_view(rows[0])
    assert view['payload']['payload'] == kinds[0][1]
    context = view['payload']['context']
    assert (context['project_id'], context['request_id']) == ('p9', 'req-1')
    assert 'SECRET-TOKEN' not in json.dumps(view) and 'auth_token' not in context
    assert view['tenant'] == 'p9'
    report, _problems = store.audit(_bundle(tmp_path))
    assert report.ok, report.summary()


def test_logging_handler_from_a_log_config_file(tmp_path, topic):
    """The handler as oslo.log's log_config_append would load it (logging.config file)."""
    import logging
    import logging.config
    path = _write_conf(tmp_path, topic, 'source_name = glance-api-log@ctl')
    ini = tmp_path / 'logging.conf'
    ini.write_text('''[loggers]
keys = root
[handlers]
keys = securelog
[formatters]
keys =
[logger_root]
level = INFO
handlers = securelog
[handler_securelog]
class = tclouds_openstack.securelog.handler.SecureLogHandler
args = ('%s',)
level = WARNING
''' % path)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logging.config.fileConfig(str(ini), disable_existing_loggers=False)
    handler = root.handlers[0]
    conftest.enroll(tmp_path / 'logstate' / 'source-keys', tmp_path / 'source',
                    'glance-api-log@ctl')
    store = storemod.SecureLogStore.from_conf(_conf(path))
    proc = _start_ingest(path)
    try:
        logging.getLogger('glance.api').warning('image %s deleted by %s', 'img-1', 'alice')
        logging.getLogger('glance.api').info('not sealed: below the handler level')
        try:
            raise ValueError('boom')
        except ValueError:
            logging.getLogger('glance.store').exception('upload failed')
        assert _wait_count(store, 2) == 2
    finally:
        _stop(proc)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        handler._get_driver().transport.cleanup()
    from tclouds_openstack.securelog import api
    views = [api.record_view(r) for r in store.list(limit=10)]
    assert [v['event_type'] for v in views] == ['log.warning', 'log.error']
    assert views[0]['payload']['payload']['message'] == 'image img-1 deleted by alice'
    assert 'ValueError: boom' in views[1]['payload']['payload']['exception']
    assert views[0]['source'] == 'glance-api-log@ctl'
    report, _problems = store.audit(_bundle(tmp_path))
    assert report.ok, report.summary()
