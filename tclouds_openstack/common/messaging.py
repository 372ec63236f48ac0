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
