"""Integrity events of protected volumes: one JSON line in an events file and one
oslo.messaging notification ``blockstore.integrity.failed`` (priority error).

Used by the nbdkit plugin (a sector failed a check: the reader got EIO) and by the os-brick
encryptor (a volume was refused at attach). Imports stay out of the data path: oslo is
loaded only when a notification is sent, which is rare.
"""
import io
import json
import socket

EVENT_TYPE = 'blockstore.integrity.failed'


def record(events_path, event):
    """Append ``event`` as one JSON line to ``events_path``."""
    with io.open(events_path, 'a') as f:
        f.write(json.dumps(event, sort_keys=True) + '\n')


def notify(config_file, event):
    """Send ``event`` once and close the connection again.

    ``config_file`` is an oslo.config file with [DEFAULT] transport_url and
    [oslo_messaging_notifications]. A connection kept open would leave non-daemon AMQP
    threads (heartbeat, pool) that keep nbdkit's interpreter, and so nbdkit, from exiting
    after SIGTERM.
    """
    from oslo_config import cfg
    import oslo_messaging

    conf = cfg.ConfigOpts()
    conf(args=[], project='tclouds', default_config_files=[config_file], default_config_dirs=[])
    transport = oslo_messaging.get_notification_transport(conf)
    try:
        oslo_messaging.Notifier(transport, publisher_id='blockstore.%s' % socket.gethostname()
                                ).error({}, EVENT_TYPE, event)
    finally:
        transport.cleanup()
