"""oslo.messaging access: RPC transport, notification transport and notifiers.

The transport URL comes from ``[DEFAULT] transport_url`` (RPC) and
``[oslo_messaging_notifications] transport_url`` (notifications, falling back to the RPC
one), as in every OpenStack service.
"""
import oslo_messaging as messaging


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
