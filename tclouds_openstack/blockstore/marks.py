"""Format marks: whether, and as which blockstore volume, a Cinder volume was formatted.

The key service keeps one mark per Cinder volume beside its key and anchor, claimed once
(create-only) right before the first format (see the encryptor). This finds the marks
behind the castellan key manager os-brick hands the encryptor:

* a key manager with ``format_mark(context, volume_id)`` and ``claim_format_mark(context,
  volume_id, blockstore_uuid)`` methods: those;
* the ``tclouds`` driver on a compute host (``role = compute``): the key release API
  (``KeyReleaseClient.format_mark`` / ``claim_format_mark``, the host's own credential);
* the ``tclouds`` driver on a controller wrapping the embedded store (a single-node
  deployment, the tests): the store's marks.

Anything else keeps no marks: :class:`Unknown`, and the encryptor formats nothing.
"""
import socket


class Unknown(Exception):
    """Whether the volume was formatted cannot be known; the message says why."""


class FormatMarks:
    """The format mark of one Cinder volume."""

    def __init__(self, key_manager, context, volume_id):
        if not volume_id:
            raise Unknown('connection_info names no Cinder volume')
        self.volume_id = volume_id
        self._get, self._claim = _find(key_manager, context, volume_id)

    def get(self):
        """The mark ({blockstore_uuid, host, created_at}) or None if never claimed.

        An answer that is neither (a malformed body, a mark naming no volume) is Unknown:
        it says nothing about whether the volume was formatted.
        """
        mark = self._call(self._get)
        if mark is not None and not (isinstance(mark, dict) and isinstance(
                mark.get('blockstore_uuid'), str) and mark['blockstore_uuid']):
            raise Unknown('the key service gave a malformed format mark for volume %s (%s)'
                          % (self.volume_id, _short(mark)))
        return mark

    def claim(self, blockstore_uuid):
        """Create the mark: True if this call created it, False if it existed.

        Only an answer of exactly true or false is believed (a body, a count, a string
        is Unknown, never "claimed").
        """
        claimed = self._call(self._claim, str(blockstore_uuid))
        if not isinstance(claimed, bool):
            raise Unknown('the key service gave a malformed answer to the format mark claim '
                          'of volume %s (%s)' % (self.volume_id, _short(claimed)))
        return claimed

    def _call(self, method, *args):
        try:
            return method(*args)
        except Exception as exc:      # AnchorError, castellan errors, the API's refusal
            raise Unknown('the key service could not say whether volume %s was formatted: '
                          '%s' % (self.volume_id, exc))


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + '...'


def _find(key_manager, context, volume_id):
    """(get, claim) callables for ``volume_id``; Unknown when there are no marks."""
    if callable(getattr(key_manager, 'format_mark', None)) and callable(
            getattr(key_manager, 'claim_format_mark', None)):
        return (lambda: key_manager.format_mark(context, volume_id),
                lambda uuid: key_manager.claim_format_mark(context, volume_id, uuid))
    role = getattr(getattr(key_manager, 'group', None), 'role', None)
    if role == 'compute':
        client = key_manager.client
        return (lambda: client.format_mark(volume_id),
                lambda uuid: client.claim_format_mark(volume_id, uuid))
    store = getattr(getattr(key_manager, 'wrapped', None), 'keystore', None) \
        if role == 'controller' else None
    if store is not None and callable(getattr(store, 'claim_format_mark', None)):
        host = socket.gethostname()
        return (lambda: store.format_mark(volume_id),
                lambda uuid: store.claim_format_mark(volume_id, uuid, host)[0])
    raise Unknown('the key manager (%s) keeps no format marks, so a new volume cannot be '
                  'told from one whose header was damaged' % type(key_manager).__name__)
