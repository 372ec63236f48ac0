"""DepSky-CA encoding of one version: AEAD, key shares, erasure code, value objects.

Bessani et al. 2011, section 3.3 (DepSky-CA): the writer encrypts the value with a fresh
key, splits the key with secret sharing (threshold f + 1), erasure-codes the ciphertext
into n fragments of which any f + 1 rebuild it, and stores share i and fragment i on
cloud i. No single cloud holds more than one share and one fragment, so f clouds together
learn nothing about the key and cannot rebuild the ciphertext.

The value is processed in segments of ``segment_size`` plaintext bytes (the last one may
be shorter; an empty value is one empty segment), as Swift's own erasure coding does, so
that a writer can stream an object to the clouds while it is still arriving and a reader
can decode while it sends, with bounded buffers:

- Cipher: AES-256-GCM (NIST SP 800-38D) per segment. Segment ``i`` uses the nonce
  ``base_nonce + i`` (mod 2**96; the key is fresh per version, so nonces never repeat
  under one key) and associated data that binds it to its data unit, version, position
  and to being the last segment or not: segments cannot be reordered, dropped, moved
  between versions or truncated at a segment boundary without failing the tag.
- Erasure code: pyeclib's ``isa_l_rs_vand`` (Reed-Solomon over GF(2^8), Vandermonde, as
  Swift's EC policies), k = f + 1 data fragments, m = n - k parity fragments, applied to
  each ciphertext segment; *piece* i of a segment (pyeclib's fragment, its 80-byte header
  included) goes to cloud i.

The value object stored on cloud i::

    magic "DSCA" | format 2 (1 byte) | cloud index i (1 byte) | share (67 bytes)
    | piece i of segment 0 | piece i of segment 1 | ...

Piece lengths follow from the plaintext size and segment size in the signed metadata
(:func:`layout`), so a value object is parsed without trusting anything it says.
"""
import functools
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyeclib import ec_iface

from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import shamir

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
SEGMENT_BYTES = 1024 * 1024
EC_TYPE = 'isa_l_rs_vand'
VALUE_MAGIC = b'DSCA'
VALUE_FORMAT = 2
SHARE_BYTES = 1 + shamir.SHARE_Y_BYTES
VALUE_HEADER_BYTES = len(VALUE_MAGIC) + 2 + SHARE_BYTES


def associated_data(data_unit, version, index, last):
    """AEAD associated data of segment ``index`` (``last``: no segment follows it)."""
    return b'tclouds-depsky-ca/2\x00%s\x00%d\x00%d\x00%d' % (
        data_unit.encode('utf-8'), version, index, 1 if last else 0)


def segment_nonce(base_nonce, index):
    """The AES-GCM nonce of segment ``index``: the version's base nonce plus ``index``."""
    value = (int.from_bytes(base_nonce, 'big') + index) % (1 << (8 * NONCE_BYTES))
    return value.to_bytes(NONCE_BYTES, 'big')


def digest(data):
    """SHA-256 hex digest of a value object (what the signed metadata lists per cloud)."""
    return hashlib.sha256(data).hexdigest()


@functools.lru_cache(maxsize=16)
def ec_driver(k, m):
    """The pyeclib driver for k data + m parity fragments (cached: creation is costly)."""
    return ec_iface.ECDriver(k=k, m=m, ec_type=EC_TYPE)


@functools.lru_cache(maxsize=64)
def piece_bytes(k, m, ciphertext_bytes):
    """Length of each of the n pieces pyeclib makes of a ``ciphertext_bytes`` segment."""
    info = ec_driver(k, m).get_segment_info(ciphertext_bytes, ciphertext_bytes)
    return info['fragment_size']


def segment_sizes(size, segment_size):
    """Plaintext bytes of every segment of a ``size``-byte value."""
    full, rest = divmod(size, segment_size)
    sizes = [segment_size] * full
    if rest or not sizes:
        sizes.append(rest)
    return sizes


def layout(size, segment_size, n, f):
    """``[(plaintext_bytes, piece_bytes, offset_in_value_object)]`` for every segment."""
    k = f + 1
    offset = VALUE_HEADER_BYTES
    segments = []
    for plain in segment_sizes(size, segment_size):
        piece = piece_bytes(k, n - k, plain + TAG_BYTES)
        segments.append((plain, piece, offset))
        offset += piece
    return segments


def value_object_bytes(size, segment_size, n, f):
    """Length of every value object of a ``size``-byte value."""
    plain, piece, offset = layout(size, segment_size, n, f)[-1]
    return offset + piece


class Encoder:
    """Encodes one version segment by segment: a fresh key, its shares, the pieces."""

    def __init__(self, data_unit, version, n, f, segment_size=SEGMENT_BYTES):
        self.data_unit = data_unit
        self.version = version
        self.n = n
        self.k = f + 1
        self.segment_size = segment_size
        key = AESGCM.generate_key(bit_length=8 * KEY_BYTES)
        self.nonce = os.urandom(NONCE_BYTES)
        self._aead = AESGCM(key)
        shares = shamir.split(key, self.k, n)
        #: The start of value object i: magic, format, index, share i.
        self.headers = [value_header(index, shares[index]) for index in range(n)]

    def encode(self, index, plaintext, last):
        """Return the n pieces of segment ``index`` (``len(plaintext) <= segment_size``)."""
        ciphertext = self._aead.encrypt(segment_nonce(self.nonce, index), plaintext,
                                        associated_data(self.data_unit, self.version,
                                                        index, last))
        return ec_driver(self.k, self.n - self.k).encode(ciphertext)


def encode_value_objects(data, data_unit, version, n, f, segment_size=SEGMENT_BYTES):
    """Encode a whole value at once: ``(nonce, [value object of cloud i])``."""
    encoder = Encoder(data_unit, version, n, f, segment_size)
    parts = [[header] for header in encoder.headers]
    sizes = segment_sizes(len(data), segment_size)
    for index, start in enumerate(range(0, len(sizes) * segment_size, segment_size)):
        pieces = encoder.encode(index, data[start:start + segment_size],
                                index == len(sizes) - 1)
        for cloud, piece in enumerate(pieces):
            parts[cloud].append(piece)
    return encoder.nonce, [b''.join(part) for part in parts]


def value_header(index, share):
    """The header of cloud ``index``'s value object, which carries key ``share``."""
    return VALUE_MAGIC + bytes([VALUE_FORMAT, index]) + shamir.encode_share(share)


def parse_header(data, expected_index):
    """Return the key share in the header of a value object meant for ``expected_index``.

    Raises :class:`~.errors.FragmentError` naming the offset of the first bad field.
    """
    if len(data) < VALUE_HEADER_BYTES:
        raise errors.FragmentError('length', len(data), 'value object is %d bytes, shorter '
                                   'than its %d-byte header' % (len(data), VALUE_HEADER_BYTES))
    if data[:4] != VALUE_MAGIC:
        raise errors.FragmentError('magic', 0, 'expected %r, found %r'
                                   % (VALUE_MAGIC, bytes(data[:4])))
    if data[4] != VALUE_FORMAT:
        raise errors.FragmentError('format', 4, 'unknown format %d (this reader knows %d)'
                                   % (data[4], VALUE_FORMAT))
    if data[5] != expected_index:
        raise errors.FragmentError('index', 5, 'value object of cloud %d served as cloud %d'
                                   % (data[5], expected_index))
    share = shamir.decode_share(bytes(data[6:6 + SHARE_BYTES]))
    if share[0] != expected_index + 1:
        raise errors.FragmentError('share.x', 6, 'share index %d, expected %d'
                                   % (share[0], expected_index + 1))
    return share


def parse_value_object(data, expected_index, metadata, pieces=True):
    """Return ``(share, [piece of every segment])`` of a value object of ``metadata``.

    With ``pieces=False`` only the header and the length are checked (the pieces list is
    None). Raises :class:`~.errors.FragmentError` naming the offset of the first bad field.
    """
    share = parse_header(data, expected_index)
    segments = layout(metadata.size, metadata.segment_size, metadata.n, metadata.f)
    expected = segments[-1][2] + segments[-1][1]
    if len(data) != expected:
        raise errors.FragmentError('length', min(len(data), expected),
                                   'value object is %d bytes, the metadata implies %d'
                                   % (len(data), expected))
    if not pieces:
        return share, None
    return share, [_piece(data, offset, piece) for _, piece, offset in segments]


def _piece(data, offset, length):
    # pyeclib asserts (aborting the process) on memoryviews: pieces must be bytes.
    return bytes(memoryview(data)[offset:offset + length])


class Decoder:
    """Decodes a version from the value objects of at least f + 1 clouds.

    The caller has already checked each value object against ``metadata.digests``; this
    still re-parses every field and raises :class:`~.errors.FragmentError` on any
    inconsistency (pyeclib errors included), never another exception type.
    """

    def __init__(self, value_objects, metadata):
        self.metadata = metadata
        self.k = metadata.f + 1
        if len(value_objects) < self.k:
            raise errors.FragmentError('fragments', 0, 'need %d fragments, have %d'
                                       % (self.k, len(value_objects)))
        shares = []
        self._values = []
        for index, data in sorted(value_objects.items())[:self.k]:
            share, _ = parse_value_object(data, index, metadata, pieces=False)
            shares.append(share)
            self._values.append(data)
        self._aead = AESGCM(shamir.combine(shares, KEY_BYTES))
        self.segments = layout(metadata.size, metadata.segment_size, metadata.n, metadata.f)

    def segment(self, index):
        """Plaintext of segment ``index``."""
        meta = self.metadata
        plain, piece, offset = self.segments[index]
        try:
            ciphertext = ec_driver(self.k, meta.n - self.k).decode(
                [_piece(data, offset, piece) for data in self._values])
        except Exception as exc:  # pyeclib raises its own ECDriverError family and ValueError
            raise errors.FragmentError('fragment', offset, 'erasure decoding of segment %d '
                                       'failed: %s' % (index, exc))
        if len(ciphertext) != plain + TAG_BYTES:
            raise errors.FragmentError('fragment', offset, 'segment %d decoded to %d bytes, '
                                       'the metadata implies %d'
                                       % (index, len(ciphertext), plain + TAG_BYTES))
        last = index == len(self.segments) - 1
        try:
            return self._aead.decrypt(segment_nonce(meta.nonce, index), ciphertext,
                                      associated_data(meta.data_unit, meta.version,
                                                      index, last))
        except InvalidTag:
            raise errors.FragmentError('ciphertext', offset, 'AES-GCM tag of segment %d does '
                                       'not verify for %s version %d'
                                       % (index, meta.data_unit, meta.version))

    def __iter__(self):
        for index in range(len(self.segments)):
            yield self.segment(index)


def decode(value_objects, metadata):
    """Rebuild the whole plaintext from ``{index: value object}`` of at least f + 1 clouds."""
    return b''.join(Decoder(value_objects, metadata))
