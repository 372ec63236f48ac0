"""An integrity failure is EIO to the client and a notification on the real RabbitMQ."""
import signal
import threading
import uuid

from oslo_config import cfg
import oslo_messaging

from tests.functional.blockstore.conftest import qemu_io

RABBIT = 'rabbit://guest:guest@127.0.0.1:5672/'


class Endpoint:
    def __init__(self):
        self.seen = []
        self.event = threading.Event()

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self.seen.append((publisher_id, event_type, payload))
        self.event.set()


def test_integrity_failure_is_notified(served, tmp_path):
    topic = 'tclouds-blockstore-test-%s' % uuid.uuid4().hex[:8]
    conf_file = tmp_path / 'notify.conf'
    # Own exchange: other tests on this broker may have declared "openstack" differently.
    conf_file.write_text('[DEFAULT]\ntransport_url = %s\ncontrol_exchange = %s\n'
                         '[oslo_messaging_notifications]\ndriver = messagingv2\ntopics = %s\n'
                         '[oslo_messaging_rabbit]\namqp_auto_delete = true\n'
                         % (RABBIT, topic, topic))
    conf = cfg.ConfigOpts()
    conf(args=[], default_config_files=[str(conf_file)])
    transport = oslo_messaging.get_notification_transport(conf)
    endpoint = Endpoint()
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [endpoint], executor='threading')
    listener.start()
    try:
        served.create('1M')
        assert served.start() is None
        qemu_io(served.sock, 'write -P 0x21 0 8k')
        served.stop()
        served.patch(served.data_offset(1) + 9, b'\x00\x01')
        assert served.start(extra=['--notify-config', str(conf_file)]) is None
        assert 'Input/output error' in qemu_io(served.sock, 'read 4k 4k')
        assert endpoint.event.wait(30), 'no notification arrived'
        publisher, event_type, payload = endpoint.seen[0]
        assert event_type == 'blockstore.integrity.failed'
        assert publisher.startswith('blockstore.')
        assert payload['sector'] == 1 and payload['check'] == 'tag'
    finally:
        # Known issue (see doc/source/blockstore.rst): when the venv's bin is first on PATH,
        # nbdkit's embedded interpreter does not exit on SIGTERM after sending a
        # notification; this test is about the notification, so end the server with SIGKILL.
        served.stop(sig=signal.SIGKILL)
        listener.stop()
        listener.wait()
        transport.cleanup()
