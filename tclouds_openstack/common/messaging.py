"""oslo.messaging access: RPC transport, notification transport and notifiers.

The transport URL comes from ``[DEFAULT] transport_url`` (RPC) and
``[oslo_messaging_notifications] transport_url`` (notifications, falling back to the RPC
one), as in every OpenStack service.
"""
import json
import logging
import socket
import threading
import time

from oslo_config import cfg
import oslo_messaging as messaging

LOG = logging.getLogger(__name__)


def get_transport(conf):
    return messaging.get_rpc_transport(conf)


def get_notification_transport(conf):
    return messaging.get_notification_transport(conf)


def get_notifier(conf, publisher_id, transport=None):
    """A notifier sending with the drivers of ``[oslo_messaging_notifications]``.

    With no driver configured, oslo.messaging drops notifications silently; services that
    must be heard set ``driver = messagingv2`` (the DevStack plugin does).
    """
    transport = transport or get_notification_transport(conf)
    return messaging.Notifier(transport, publisher_id=publisher_id)


def register_opts(conf):
    """Register every oslo.messaging option on a private ConfigOpts (tests, benchmarks).

    oslo.messaging registers its tracing and metrics options on the global CONF only, and
    the transport options lazily; a private configuration needs them up front.
    """
    from oslo_messaging._metrics import client as metrics
    from oslo_messaging import opts
    for group, group_opts in opts.list_opts():
        conf.register_opts(group_opts, group=group)
    try:
        # tracing came with oslo.messaging 18.3 (OpenStack's constraints may pin 18.2)
        from oslo_messaging._tracing import client as tracing
    except ImportError:
        tracing = None
    if tracing is not None:
        conf.register_opts(tracing.oslo_messaging_tracing, group='oslo_messaging_tracing')
    conf.register_opts(metrics.oslo_messaging_metrics, group='oslo_messaging_metrics')


class UnsupportedTransport(Exception):
    """The transport is not one :class:`OwnQueue` can consume from (not RabbitMQ)."""


def _kombu_url(conf):
    """The kombu connection URL of ``[DEFAULT] transport_url`` (as oslo.messaging's driver).

    Raises :class:`UnsupportedTransport` for a transport other than RabbitMQ.
    """
    from urllib import parse

    from oslo_utils import netutils
    url = messaging.TransportURL.parse(conf, conf.transport_url)
    transport = url.transport or ''
    if transport.replace('kombu+', '') not in ('rabbit', 'amqp', 'pyamqp'):
        raise UnsupportedTransport('transport %r' % transport)
    scheme = transport.replace('kombu+', '').replace('rabbit', 'amqp')
    hosts = url.hosts or [messaging.TransportHost('')]
    return ';'.join('%s://%s:%s@%s:%s/%s' % (
        scheme, parse.quote(host.username or ('' if url.hosts else 'guest')),
        parse.quote(host.password or ('' if url.hosts else 'guest')),
        netutils.escape_ipv6(host.hostname) or 'localhost', host.port or 5672,
        url.virtual_host or '') for host in hosts)


def _kombu_ssl(rabbit):
    if not rabbit.ssl:
        return False
    import ssl
    params = {}
    if rabbit.ssl_key_file:
        params['keyfile'] = rabbit.ssl_key_file
    if rabbit.ssl_cert_file:
        params['certfile'] = rabbit.ssl_cert_file
    if rabbit.ssl_ca_file:
        params['ca_certs'] = rabbit.ssl_ca_file
        params['cert_reqs'] = ssl.CERT_REQUIRED
    return params or True


def _rabbit_options(conf):
    """``[oslo_messaging_rabbit]`` of ``conf`` (registered by the driver once loaded)."""
    try:
        return conf.oslo_messaging_rabbit
    except cfg.NoSuchOptError:
        from oslo_messaging import opts
        for group, group_opts in opts.list_opts():
            if group == 'oslo_messaging_rabbit':
                conf.register_opts(group_opts, group=group)
        return conf.oslo_messaging_rabbit


class OwnQueue(object):
    """Messages cast to ``Target(topic, server)`` on this process's own queue, as they come.

    What oslo.messaging's RPC server does for a topic and server, for one consumer that
    needs no dispatcher: one thread blocks on the broker connection and hands each message
    (the oslo.messaging message: ``{'method': ..., 'args': {...}, ...}``) to ``on_message``
    the moment it arrives. oslo.messaging's listeners (its RPC servers and its reply
    waiter alike) poll with a timeout that restarts at 1 ms after every message and
    doubles (1, 2, 4, 8 ms ...), each timeout an exception through its consume loop: a
    consumer of sparse messages pays some ten wake-ups per message. This one wakes for a
    message, or once every ``idle`` seconds (heartbeats).

    The queue is exclusive and auto-deleted (it lives as long as the connection; a
    message cast while it is re-made is lost, and its sender's request times out), bound
    to ``[DEFAULT] control_exchange`` with the routing key oslo.messaging uses for
    ``Target(topic, server)``, declared as oslo.messaging declares that exchange. RabbitMQ
    transports only (:class:`UnsupportedTransport` otherwise). Nothing received is
    trusted: ``on_message`` gets the decoded message, or nothing for a message that is not
    an oslo.messaging JSON message (dropped and logged).
    """

    IDLE = 1.0
    RETRY_MAX = 10.0

    def __init__(self, conf, topic, server, on_message, name='own-queue'):
        self.conf = conf
        self.routing_key = '%s.%s' % (topic, server)
        self.on_message = on_message
        self.name = name
        self._url = _kombu_url(conf)
        self._stop = threading.Event()
        self.ready = threading.Event()
        self._thread = None
        self._connection = None
        self.dropped = 0

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._consume_own_queue, name=self.name,
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self.ready.clear()
        if self._thread is not None:
            self._thread.join(2 * self.IDLE + 1)
            self._thread = None

    def _entities(self):
        import kombu
        rabbit = _rabbit_options(self.conf)
        # as oslo.messaging's driver declares it (quorum queues make it durable)
        exchange = kombu.Exchange(
            self.conf.control_exchange, 'topic',
            durable=rabbit.amqp_durable_queues or rabbit.rabbit_quorum_queue,
            auto_delete=rabbit.amqp_auto_delete)
        return kombu.Queue(self.routing_key, exchange, routing_key=self.routing_key,
                           durable=False, exclusive=True, auto_delete=True)

    def _consume_own_queue(self):
        import kombu
        rabbit = _rabbit_options(self.conf)
        delay = 0.5
        while not self._stop.is_set():
            connection = kombu.Connection(
                self._url, ssl=_kombu_ssl(rabbit), login_method=rabbit.rabbit_login_method,
                heartbeat=rabbit.heartbeat_timeout_threshold,
                failover_strategy=rabbit.kombu_failover_strategy,
                transport_options={'client_properties': {'connection_name': self.name}})
            try:
                connection.ensure_connection(max_retries=1)
                with connection.Consumer(self._entities(), callbacks=[self._received],
                                         no_ack=True, accept=['json'],
                                         on_decode_error=self._undecodable):
                    self.ready.set()
                    delay = 0.5
                    self._drain(connection)
            except Exception as e:  # broker gone, connection refused...: made again
                self.ready.clear()
                if self._stop.is_set():
                    break
                LOG.warning('own queue %s: %s; re-made in %.1f s', self.routing_key, e,
                            delay)
                self._stop.wait(delay)
                delay = min(self.RETRY_MAX, 2 * delay)
            finally:
                self.ready.clear()
                try:
                    connection.release()
                except Exception:  # noqa: S110 - closing a broken connection
                    pass

    def _drain(self, connection):
        beat = time.monotonic() + self.IDLE
        while not self._stop.is_set():
            try:
                connection.drain_events(timeout=self.IDLE)
            except socket.timeout:
                pass
            now = time.monotonic()
            if now >= beat:
                beat = now + self.IDLE
                connection.heartbeat_check()

    def _undecodable(self, message, error):
        self.dropped += 1
        LOG.warning('own queue %s: message dropped, not JSON: %s', self.routing_key, error)

    def _received(self, body, message):
        # oslo.messaging's envelope (2.0): {"oslo.version": "2.0", "oslo.message": "<json>"}
        try:
            if not isinstance(body, dict) or body.get('oslo.version') != '2.0':
                raise ValueError('not an oslo.messaging 2.0 envelope')
            inner = body.get('oslo.message')
            if not isinstance(inner, str):
                raise ValueError('oslo.message: expected JSON text')
            decoded = json.loads(inner)
            if not isinstance(decoded, dict):
                raise ValueError('oslo.message: expected an object')
        except ValueError as e:
            self.dropped += 1
            LOG.warning('own queue %s: message dropped: %s', self.routing_key, e)
            return
        try:
            self.on_message(decoded)
        except Exception:
            LOG.exception('own queue %s: message not handled', self.routing_key)
