"""Format marks: whether, as which blockstore volume and in which block format, a Cinder
volume was formatted.

The key service keeps one mark per Cinder volume beside its key and anchor, claimed once
(create-only) right before the first format (see the encryptor). The mark also records the
block format: the format the volume was created in, raised (never lowered) to the format a
host opened and verified it in. A volume is never served in an older format than its mark
records: an older header is a downgrade (format 1 draws GCM nonces from the anchor
version, so a rollback of volume and anchor together could repeat them). A mark claimed
before formats were recorded has ``format_version`` None until the first open records it.

This finds the marks behind the castellan key manager os-brick hands the encryptor:

* a key manager with ``format_mark(context, volume_id)`` and ``claim_format_mark(context,
  volume_id, blockstore_uuid, format_version)`` methods: those (and ``record_format(
  context, volume_id, blockstore_uuid, format_version)`` if it has one);
* the ``tclouds`` driver on a compute host (``role = compute``): the key release API
  (``KeyReleaseClient.format_mark`` / ``claim_format_mark`` / ``record_format``, the host's
  own credential);
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
        self._get, self._claim, self._record = _find(key_manager, context, volume_id)

    def get(self):
        """The mark ({blockstore_uuid, host, created_at, format_version}) or None.

        None if never claimed. An answer that is neither (a malformed body, a mark naming
        no volume, a format that is not a positive integer) is Unknown: it says nothing
        about whether, or how, the volume was formatted.
        """
        return self._checked(self._call(self._get))

    def _checked(self, mark):
        if mark is not None and not (isinstance(mark, dict) and isinstance(
                mark.get('blockstore_uuid'), str) and mark['blockstore_uuid']):
            raise Unknown('the key service gave a malformed format mark for volume %s (%s)'
                          % (self.volume_id, _short(mark)))
        if mark is not None and not _is_format(mark.get('format_version'), none_ok=True):
            raise Unknown('the key service gave a malformed format version in the format '
                          'mark of volume %s (%s)' % (self.volume_id, _short(mark)))
        return mark

    def claim(self, blockstore_uuid, format_version):
        """Create the mark: True if this call created it, False if it existed.

        Only an answer of exactly true or false is believed (a body, a count, a string
        is Unknown, never "claimed").
        """
        claimed = self._call(self._claim, str(blockstore_uuid), format_version)
        if not isinstance(claimed, bool):
            raise Unknown('the key service gave a malformed answer to the format mark claim '
                          'of volume %s (%s)' % (self.volume_id, _short(claimed)))
        return claimed

    def record_format(self, blockstore_uuid, format_version):
        """Record that the volume opened in ``format_version``; the mark as it is now.

        Creates a missing mark, raises a lower or unknown recorded format, never lowers
        it. Unknown when the key manager cannot record formats, or the answer is not a
        mark of ``blockstore_uuid`` recording at least ``format_version``.
        """
        if self._record is None:
            raise Unknown('the key manager cannot record the format of volume %s'
                          % self.volume_id)
        mark = self._checked(self._call(self._record, str(blockstore_uuid), format_version))
        if (mark is None or mark['blockstore_uuid'] != str(blockstore_uuid)
                or (mark.get('format_version') or 0) < format_version):
            raise Unknown('the key service did not record format %d of volume %s (its mark: '
                          '%s)' % (format_version, self.volume_id, _short(mark)))
        return mark

    def _call(self, method, *args):
        try:
            return method(*args)
        except Exception as exc:      # AnchorError, castellan errors, the API's refusal
            raise Unknown('the key service could not say whether volume %s was formatted: '
                          '%s' % (self.volume_id, exc))


def _is_format(value, none_ok=False):
    if value is None:
        return none_ok
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + '...'


def _find(key_manager, context, volume_id):
    """(get, claim, record or None) callables for ``volume_id``; Unknown without marks."""
    if callable(getattr(key_manager, 'format_mark', None)) and callable(
            getattr(key_manager, 'claim_format_mark', None)):
        record = getattr(key_manager, 'record_format', None)
        return (lambda: key_manager.format_mark(context, volume_id),
                lambda uuid, version: key_manager.claim_format_mark(context, volume_id, uuid,
                                                                    version),
                None if not callable(record) else
                lambda uuid, version: record(context, volume_id, uuid, version))
    role = getattr(getattr(key_manager, 'group', None), 'role', None)
    if role == 'compute':
        client = key_manager.client
        return (lambda: client.format_mark(volume_id),
                lambda uuid, version: client.claim_format_mark(volume_id, uuid, version),
                lambda uuid, version: client.record_format(volume_id, uuid, version))
    store = getattr(getattr(key_manager, 'wrapped', None), 'keystore', None) \
        if role == 'controller' else None
    if store is not None and callable(getattr(store, 'claim_format_mark', None)):
        host = socket.gethostname()
        return (lambda: store.format_mark(volume_id),
                lambda uuid, version: store.claim_format_mark(volume_id, uuid, host,
                                                              version)[0],
                lambda uuid, version: store.record_format(volume_id, uuid, host, version))
    raise Unknown('the key manager (%s) keeps no format marks, so a new volume cannot be '
                  'told from one whose header was damaged' % type(key_manager).__name__)
