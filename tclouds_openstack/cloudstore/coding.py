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
  under one key) and associated data that binds it to its format, data unit, version,
  position and to being the last segment or not: segments cannot be reordered, dropped,
  moved between versions or truncated at a segment boundary without failing the tag.
- Erasure code: pyeclib's ``isa_l_rs_vand`` (Reed-Solomon over GF(2^8), Vandermonde, as
  Swift's EC policies), k = f + 1 data and m = n - k parity fragments, applied to each
  ciphertext segment; *piece* i of a segment (pyeclib's fragment, its 80-byte header
  included) goes to cloud i.

Value object of cloud i, format 3 (written since the second release)::

    piece i of segment 0 | piece i of segment 1 | ... | trailer
    trailer = magic "DSCA" | format 3 (1 byte) | cloud index i (1 byte) | share (67 bytes)
              | SHA-256 of piece i of every segment (32 bytes each)

The signed metadata lists the SHA-256 of every cloud's trailer, so a reader verifies the
trailer (one small ranged read), then any single piece against its hash as it arrives: a
GET streams through a window of segments and a Range GET fetches only the pieces of the
segments it needs, and a cloud serving a bad piece is caught at that piece.

Format 2 (the first streaming release; still read, never written): the same fields as a
header in front of the pieces, and the metadata lists the SHA-256 of the whole value
object, so a reader must hold a whole value object before it can trust any of it::

    magic "DSCA" | format 2 | cloud index i | share | piece i of segment 0 | ...

Piece lengths follow from the plaintext size and segment size in the signed metadata
(:func:`layout`), so a value object is parsed without trusting anything it says.
"""
import dataclasses
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
#: Format 2: header first, one digest over the whole value object (read only).
FORMAT_2 = 2
#: Format 3: pieces first, a trailer with a hash per piece (what writers produce).
FORMAT_3 = 3
VALUE_FORMAT = FORMAT_3
FORMATS = (FORMAT_2, FORMAT_3)
SHARE_BYTES = 1 + shamir.SHARE_Y_BYTES
#: Magic, format, cloud index and key share: format 2's header, format 3's trailer start.
FIXED_BYTES = len(VALUE_MAGIC) + 2 + SHARE_BYTES
VALUE_HEADER_BYTES = FIXED_BYTES
PIECE_HASH_BYTES = 32
#: liberasurecode's header in front of every fragment pyeclib makes.
FRAGMENT_HEADER_BYTES = 80


def associated_data(data_unit, version, index, last, value_format=VALUE_FORMAT):
    """AEAD associated data of segment ``index`` (``last``: no segment follows it)."""
    return b'tclouds-depsky-ca/%d\x00%s\x00%d\x00%d\x00%d' % (
        value_format, data_unit.encode('utf-8'), version, index, 1 if last else 0)


def segment_nonce(base_nonce, index):
    """The AES-GCM nonce of segment ``index``: the version's base nonce plus ``index``."""
    value = (int.from_bytes(base_nonce, 'big') + index) % (1 << (8 * NONCE_BYTES))
    return value.to_bytes(NONCE_BYTES, 'big')


def digest(data):
    """SHA-256 hex digest, as the signed metadata lists one per cloud.

    Format 3: of the value object's trailer; format 2: of the whole value object.
    """
    return hashlib.sha256(data).hexdigest()


def piece_hash(piece):
    """The SHA-256 of one piece, as a format 3 trailer lists it."""
    return hashlib.sha256(piece).digest()


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


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where everything is in a value object of a ``size``-byte value (from signed fields).

    Computed, not listed: a 1 TiB value has a million segments.
    """

    size: int
    segment_size: int
    n: int
    f: int
    value_format: int

    def __post_init__(self):
        k = self.f + 1
        count = max(1, -(-self.size // self.segment_size))
        last_plain = self.size - (count - 1) * self.segment_size
        object.__setattr__(self, 'count', count)
        object.__setattr__(self, '_last_plain', last_plain)
        object.__setattr__(self, '_full_piece',
                           piece_bytes(k, self.n - k, self.segment_size + TAG_BYTES))
        object.__setattr__(self, '_last_piece',
                           piece_bytes(k, self.n - k, last_plain + TAG_BYTES))
        object.__setattr__(self, 'base',
                           FIXED_BYTES if self.value_format == FORMAT_2 else 0)

    def plain(self, index):
        """Plaintext bytes of segment ``index``."""
        return self._last_plain if index == self.count - 1 else self.segment_size

    def piece(self, index):
        """Bytes of each piece of segment ``index``."""
        return self._last_piece if index == self.count - 1 else self._full_piece

    def offset(self, index):
        """Where piece ``index`` starts in the value object."""
        return self.base + index * self._full_piece

    def span(self, first, stop):
        """``(offset, length)`` of the pieces of segments ``first`` .. ``stop - 1``."""
        start = self.offset(first)
        return start, self.offset(stop - 1) + self.piece(stop - 1) - start

    @property
    def pieces_end(self):
        return self.offset(self.count - 1) + self._last_piece

    @property
    def trailer_bytes(self):
        """Length of the format 3 trailer (0 for format 2)."""
        if self.value_format == FORMAT_2:
            return 0
        return FIXED_BYTES + PIECE_HASH_BYTES * self.count

    @property
    def total(self):
        """Length of the value object."""
        return self.pieces_end + self.trailer_bytes

    def __iter__(self):
        """``(plaintext_bytes, piece_bytes, offset)`` of every segment."""
        for index in range(self.count):
            yield self.plain(index), self.piece(index), self.offset(index)


@functools.lru_cache(maxsize=256)
def layout(size, segment_size, n, f, value_format=VALUE_FORMAT):
    """The :class:`Layout` of a ``size``-byte value."""
    return Layout(size, segment_size, n, f, value_format)


def layout_of(metadata):
    return layout(metadata.size, metadata.segment_size, metadata.n, metadata.f,
                  metadata.value_format)


def value_object_bytes(size, segment_size, n, f, value_format=VALUE_FORMAT):
    """Length of every value object of a ``size``-byte value."""
    return layout(size, segment_size, n, f, value_format).total


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
        self.shares = shamir.split(key, self.k, n)

    def encode(self, index, plaintext, last):
        """Return the n pieces of segment ``index`` (``len(plaintext) <= segment_size``)."""
        ciphertext = self._aead.encrypt(segment_nonce(self.nonce, index), plaintext,
                                        associated_data(self.data_unit, self.version,
                                                        index, last))
        return ec_driver(self.k, self.n - self.k).encode(ciphertext)

    def trailer(self, cloud, piece_hashes):
        """The trailer of cloud ``cloud``'s value object, given the hashes of its pieces."""
        return fixed_fields(FORMAT_3, cloud, self.shares[cloud]) + b''.join(piece_hashes)


def encode_value_objects(data, data_unit, version, n, f, segment_size=SEGMENT_BYTES):
    """Encode a whole value at once: ``(nonce, [value object of cloud i])`` (format 3)."""
    encoder = Encoder(data_unit, version, n, f, segment_size)
    parts = [[] for _ in range(n)]
    sizes = segment_sizes(len(data), segment_size)
    for index, start in enumerate(range(0, len(sizes) * segment_size, segment_size)):
        pieces = encoder.encode(index, data[start:start + segment_size],
                                index == len(sizes) - 1)
        for cloud, piece in enumerate(pieces):
            parts[cloud].append(piece)
    return encoder.nonce, [b''.join(part) + encoder.trailer(cloud, [piece_hash(piece)
                                                                    for piece in part])
                           for cloud, part in enumerate(parts)]


def fixed_fields(value_format, index, share):
    """Magic, format, cloud index and key share (format 2 header, format 3 trailer start)."""
    return VALUE_MAGIC + bytes([value_format, index]) + shamir.encode_share(share)


def value_header(index, share):
    """The format 2 header of cloud ``index``'s value object (repair of old objects)."""
    return fixed_fields(FORMAT_2, index, share)


def _parse_fixed(data, expected_index, value_format, base):
    """The key share in the fixed fields at the start of ``data``.

    ``base`` is where ``data`` starts in the value object (for messages).
    """
    if len(data) < FIXED_BYTES:
        raise errors.FragmentError('length', base + len(data), 'value object ends inside its '
                                   '%d bytes of magic, format, index and key share'
                                   % FIXED_BYTES)
    if data[:4] != VALUE_MAGIC:
        raise errors.FragmentError('magic', base, 'expected %r, found %r'
                                   % (VALUE_MAGIC, bytes(data[:4])))
    if data[4] != value_format:
        raise errors.FragmentError('format', base + 4, 'format %d, the signed metadata '
                                   'names format %d' % (data[4], value_format))
    if data[5] != expected_index:
        raise errors.FragmentError('index', base + 5, 'value object of cloud %d served as '
                                   'cloud %d' % (data[5], expected_index))
    share = shamir.decode_share(bytes(data[6:6 + SHARE_BYTES]))
    if share[0] != expected_index + 1:
        raise errors.FragmentError('share.x', base + 6, 'share index %d, expected %d'
                                   % (share[0], expected_index + 1))
    return share


def parse_header(data, expected_index):
    """The key share in the header of a format 2 value object meant for ``expected_index``.

    Raises :class:`~.errors.FragmentError` naming the offset of the first bad field.
    """
    return _parse_fixed(data, expected_index, FORMAT_2, 0)


def parse_trailer(data, expected_index, metadata):
    """``(share, [piece hash of every segment])`` of a format 3 trailer.

    The caller has matched ``data`` against the signed digest; this still checks every
    field. Raises :class:`~.errors.FragmentError` naming the offset of the first bad one.
    """
    where = layout_of(metadata)
    if len(data) != where.trailer_bytes:
        raise errors.FragmentError('length', where.pieces_end + min(len(data),
                                                                    where.trailer_bytes),
                                   'trailer is %d bytes, the metadata implies %d'
                                   % (len(data), where.trailer_bytes))
    share = _parse_fixed(data, expected_index, FORMAT_3, where.pieces_end)
    hashes = bytes(data[FIXED_BYTES:])
    return share, [hashes[i:i + PIECE_HASH_BYTES]
                   for i in range(0, len(hashes), PIECE_HASH_BYTES)]


def parse_value_object(data, expected_index, metadata, pieces=True):
    """Return ``(share, [piece of every segment])`` of a whole value object of ``metadata``.

    With ``pieces=False`` only the fixed fields and the length are checked (the pieces
    list is None). A format 3 object's pieces are checked against its trailer's hashes.
    Raises :class:`~.errors.FragmentError` naming the offset of the first bad field.
    """
    where = layout_of(metadata)
    if metadata.value_format == FORMAT_2:
        share = parse_header(data, expected_index)
    if len(data) != where.total:
        raise errors.FragmentError('length', min(len(data), where.total),
                                   'value object is %d bytes, the metadata implies %d'
                                   % (len(data), where.total))
    if metadata.value_format == FORMAT_2:
        hashes = None
    else:
        share, hashes = parse_trailer(memoryview(data)[where.pieces_end:], expected_index,
                                      metadata)
    if not pieces:
        return share, None
    result = []
    for index, (_, length, offset) in enumerate(where):
        piece = _piece(data, offset, length)
        if hashes is not None and piece_hash(piece) != hashes[index]:
            raise errors.FragmentError('piece', offset, 'piece of segment %d does not match '
                                       'its hash in the trailer' % index)
        result.append(piece)
    return share, result


def _piece(data, offset, length):
    # pyeclib asserts (aborting the process) on memoryviews: pieces must be bytes.
    return bytes(memoryview(data)[offset:offset + length])


def split(chunks, lengths, digests=None):
    """Cut the byte ``chunks`` (as a cloud sends them) into pieces of ``lengths``.

    One copy per piece, none of the whole. Returns ``(pieces, surplus)``: fewer pieces
    than lengths when the chunks end early, ``surplus`` the bytes beyond the last one.
    ``digests``, a list, receives the :func:`piece_hash` of each piece as it is cut: its
    bytes are then still in the CPU's cache (hashing a window of pieces afterwards reads
    them from memory again, about 1.6 times the CPU of SHA-256 itself).
    """
    pieces = []
    parts = []
    have = 0
    surplus = 0
    wanted = iter(lengths)
    need = next(wanted, None)
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            if need is None:
                surplus += len(view)
                break
            take = min(len(view), need - have)
            parts.append(view[:take])
            view = view[take:]
            have += take
            if have == need:
                pieces.append(b''.join(parts))
                if digests is not None:
                    digests.append(piece_hash(pieces[-1]))
                parts = []
                have = 0
                need = next(wanted, None)
    if need == 0:       # an empty last piece needs no byte to arrive
        pieces.append(b'')
        if digests is not None:
            digests.append(piece_hash(b''))
    return pieces, surplus


class Piece:
    """A piece received in two parts: pyeclib's fragment header and the fragment's payload.

    Pieces of the data fragments (clouds 0 .. k - 1) are read straight into place in one
    ciphertext buffer of their segment (``buffer``: ``payload`` is its slice ``index``
    of k equal ones), so that :class:`SegmentDecoder` decrypts the segment where it lies,
    without joining the fragments; other pieces have a buffer of their own (``buffer``
    None). ``bytes(piece)`` is the piece as stored.
    """

    __slots__ = ('header', 'payload', 'buffer')

    def __init__(self, header, payload, buffer=None):
        self.header = header
        self.payload = payload
        self.buffer = buffer

    def __len__(self):
        return len(self.header) + len(self.payload)

    def __bytes__(self):
        return b''.join((self.header, self.payload))


def _payload(piece):
    if isinstance(piece, Piece):
        return piece.payload
    return memoryview(piece)[FRAGMENT_HEADER_BYTES:]


def _stored(piece):
    # pyeclib asserts (aborting the process) on anything but bytes
    return bytes(piece) if isinstance(piece, Piece) else piece


class SegmentDecoder:
    """Decrypts segments of one version from pieces of f + 1 clouds (already verified).

    Everything that can go wrong raises :class:`~.errors.FragmentError` (pyeclib errors
    included), never another exception type.
    """

    def __init__(self, metadata, shares):
        self.metadata = metadata
        self.k = metadata.f + 1
        if len(shares) < self.k:
            raise errors.FragmentError('fragments', 0, 'need %d fragments, have %d'
                                       % (self.k, len(shares)))
        self._aead = AESGCM(shamir.combine(list(shares)[:self.k], KEY_BYTES))
        self.layout = layout_of(metadata)

    def decode(self, index, pieces):
        """Plaintext of segment ``index`` from ``pieces``: ``{cloud index: piece}`` (k).

        The code is systematic: the pieces of clouds 0 .. k - 1 (the data fragments) are
        the ciphertext cut in k, behind pyeclib's fragment header, so with those at hand
        decoding is a concatenation (pyeclib's own decode copies and checks the same bytes
        at about 1 GB/s); any other set goes through pyeclib. AES-GCM verifies either.
        """
        meta = self.metadata
        where = self.layout
        offset = where.offset(index)
        wanted = where.plain(index) + TAG_BYTES
        nonce = segment_nonce(meta.nonce, index)
        data = associated_data(meta.data_unit, meta.version, index,
                               index == where.count - 1, meta.value_format)
        if all(cloud in pieces for cloud in range(self.k)):
            buffer = getattr(pieces[0], 'buffer', None)
            if buffer is not None and len(buffer) >= wanted and all(
                    getattr(pieces[cloud], 'buffer', None) is buffer
                    for cloud in range(1, self.k)):
                # the data fragments were read into place: the ciphertext is their start
                ciphertext = memoryview(buffer)[:wanted]
            else:
                parts = []
                remaining = wanted
                for cloud in range(self.k):
                    parts.append(_payload(pieces[cloud])[:remaining])
                    remaining -= len(parts[-1])
                ciphertext = b''.join(parts) if remaining == 0 else None
            if ciphertext is not None:
                try:
                    return self._aead.decrypt(nonce, ciphertext, data)
                except InvalidTag:
                    pass    # decided below, by pyeclib's own decode
        try:
            ciphertext = ec_driver(self.k, meta.n - self.k).decode(
                [_stored(piece) for _, piece in sorted(pieces.items())][:self.k])
        except Exception as exc:  # pyeclib raises its own ECDriverError family and ValueError
            raise errors.FragmentError('fragment', offset, 'erasure decoding of segment %d '
                                       'failed: %s' % (index, exc))
        if len(ciphertext) != wanted:
            raise errors.FragmentError('fragment', offset, 'segment %d decoded to %d bytes, '
                                       'the metadata implies %d'
                                       % (index, len(ciphertext), wanted))
        try:
            return self._aead.decrypt(nonce, ciphertext, data)
        except InvalidTag:
            raise errors.FragmentError('ciphertext', offset, 'AES-GCM tag of segment %d does '
                                       'not verify for %s version %d'
                                       % (index, meta.data_unit, meta.version))


class Decoder:
    """Decodes a version from whole value objects of at least f + 1 clouds.

    The caller has already checked each value object against ``metadata.digests``; this
    still re-parses every field and raises :class:`~.errors.FragmentError` on any
    inconsistency, never another exception type.
    """

    def __init__(self, value_objects, metadata):
        self.metadata = metadata
        k = metadata.f + 1
        if len(value_objects) < k:
            raise errors.FragmentError('fragments', 0, 'need %d fragments, have %d'
                                       % (k, len(value_objects)))
        parsed = {index: parse_value_object(data, index, metadata)
                  for index, data in sorted(value_objects.items())[:k]}
        self._decoder = SegmentDecoder(metadata, [share for share, _ in parsed.values()])
        self._pieces = {index: pieces for index, (_, pieces) in parsed.items()}
        self.layout = self._decoder.layout

    def segment(self, index):
        """Plaintext of segment ``index``."""
        return self._decoder.decode(index, {cloud: pieces[index]
                                            for cloud, pieces in self._pieces.items()})

    def __iter__(self):
        for index in range(self.layout.count):
            yield self.segment(index)


def decode(value_objects, metadata):
    """Rebuild the whole plaintext from ``{index: value object}`` of at least f + 1 clouds."""
    return b''.join(Decoder(value_objects, metadata))
