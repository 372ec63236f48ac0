"""The message-bus contract between host agents and the attestation service.

Two oslo.messaging RPC topics (``[attestation] agent_topic`` / ``registrar_topic``),
versioned like Nova's compute RPC API:

- ``tclouds-attestation-agent`` (server = the Nova compute host name): served by each host
  agent, which opens no listening port; the verifier calls :meth:`AgentAPI.get_quote`.
- ``tclouds-attestation``: served by the service workers (the registrar); agents call
  :meth:`RegistrarAPI.register` and :meth:`RegistrarAPI.activate`.

Binary fields travel base64-encoded (messages are JSON). Nothing on the bus is trusted:
an answer is bound to its request by the nonce inside the AK-signed quote.
"""
import base64
import binascii

import oslo_messaging as messaging

AGENT_TOPIC = 'tclouds-attestation-agent'
SERVICE_TOPIC = 'tclouds-attestation'
VERSION = '1.0'


class BadMessage(ValueError):
    """A field of a bus message is missing or malformed (named)."""


def b64(data):
    return base64.b64encode(data).decode('ascii') if data is not None else None


def unb64(message, field, optional=False):
    value = message.get(field) if isinstance(message, dict) else None
    if value is None:
        if optional:
            return None
        raise BadMessage('%s: missing' % field)
    if not isinstance(value, str):
        raise BadMessage('%s: expected base64 text' % field)
    try:
        return base64.b64decode(value.encode('ascii'), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise BadMessage('%s: not base64: %s' % (field, e))


class AgentAPI(object):
    """Verifier side of the agent topic."""

    def __init__(self, transport, timeout=10.0, topic=AGENT_TOPIC):
        target = messaging.Target(topic=topic, version=VERSION)
        self.client = messaging.get_rpc_client(transport, target, timeout=timeout)

    def get_quote(self, host, nonce, selection, ima_offset, timeout=None):
        """Ask ``host``'s agent for a quote and its logs; returns the raw answer dict.

        The quote covers ``selection`` ({bank: [pcr]}) with ``nonce``; the IMA entries
        start at ``ima_offset``.
        """
        cctxt = (self.client.prepare(server=host, timeout=timeout) if timeout is not None
                 else self.client.prepare(server=host))
        return cctxt.call({}, 'get_quote', nonce=b64(nonce),
                          selection={b: list(p) for b, p in selection.items()},
                          ima_offset=int(ima_offset))


class RegistrarAPI(object):
    """Agent side of the service topic."""

    def __init__(self, transport, timeout=30.0, topic=SERVICE_TOPIC):
        target = messaging.Target(topic=topic, version=VERSION)
        self.client = messaging.get_rpc_client(transport, target, timeout=timeout)

    def register(self, host, ek_public, ek_certificate, ak_public):
        reply = self.client.call({}, 'register', host=host, ek_public=b64(ek_public),
                                 ek_certificate=b64(ek_certificate), ak_public=b64(ak_public))
        return unb64(reply, 'id_object'), unb64(reply, 'encrypted_secret')

    def activate(self, host, ak_name, secret):
        return self.client.call({}, 'activate', host=host, ak_name=ak_name.hex(),
                                secret=b64(secret))
