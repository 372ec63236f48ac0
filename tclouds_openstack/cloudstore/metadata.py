"""Signed per-version metadata of a DepSky data unit (Bessani et al. 2011, section 3.2).

Each cloud stores, next to its value object, the metadata of the data unit's newest
version: version number, code parameters, plaintext and segment size, the AES-GCM base
nonce, the names of the clouds in order (cloud i holds value object i) and, for *every*
cloud, the SHA-256 digest that vouches for its value object (format 3: of the object's
trailer of piece hashes; format 2: of the whole object), signed by the writer with
Ed25519 (RFC 8032). A reader that accepts only verified metadata can check any cloud's
value object against it, so a faulty cloud can withhold or replay old data but never make
a reader accept forged data.

Encoding: UTF-8 JSON ``{"body": {...}, "signature": "<128 hex>"}``; the signature covers
the format's signing context followed by the body in canonical form (keys sorted, no
spaces). ``format`` ``tclouds-depsky-ca/3`` is written; ``tclouds-depsky-ca/2`` (no
``clouds`` field: the configured clouds in order) is still read. :func:`parse` accepts
nothing else and raises only :class:`~.errors.MetadataError`; a cloud's answer longer
than :data:`MAX_METADATA_BYTES` is refused before it is read to its end.
"""
import collections
import dataclasses
import hashlib
import json
import re
import threading

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives import serialization

from tclouds_openstack.cloudstore import coding
from tclouds_openstack.cloudstore import errors

FORMAT = 'tclouds-depsky-ca/3'
FORMAT_2 = 'tclouds-depsky-ca/2'
#: Signing context and value object format of each metadata format.
SIGNING_CONTEXTS = {FORMAT: b'tclouds-depsky-ca/3 metadata\x00',
                    FORMAT_2: b'tclouds-depsky-ca/2 metadata\x00'}
SIGNING_CONTEXT = SIGNING_CONTEXTS[FORMAT]
VALUE_FORMATS = {FORMAT: coding.FORMAT_3, FORMAT_2: coding.FORMAT_2}
MAX_METADATA_BYTES = 64 * 1024
MAX_VERSION = 2 ** 63 - 1
MAX_CLOUDS = 64
_DATA_UNIT_RE = re.compile(r'\A[A-Za-z0-9._-]{1,200}\Z')
CLOUD_NAME_RE = re.compile(r'\A[A-Za-z0-9._-]{1,64}\Z')
_HEX_RE = re.compile(r'\A[0-9a-f]*\Z')
_FIELDS_2 = ('data_unit', 'digests', 'ec_type', 'f', 'format', 'n', 'nonce', 'segment_size',
             'size', 'version', 'writer')
_FIELDS = {FORMAT: _FIELDS_2 + ('clouds',), FORMAT_2: _FIELDS_2}
#: Segment sizes a reader accepts (bounds the memory one segment may take).
MIN_SEGMENT_BYTES = 4096
MAX_SEGMENT_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Metadata:
    """One version of a data unit, as the writer signed it."""

    data_unit: str
    version: int
    n: int
    f: int
    size: int
    nonce: bytes
    digests: tuple
    writer: str
    segment_size: int = coding.SEGMENT_BYTES
    ec_type: str = coding.EC_TYPE
    #: Cloud names in order (format 3); None for format 2 (the configured clouds).
    clouds: tuple = None
    format: str = FORMAT

    @property
    def value_format(self):
        """The format of the value objects this metadata vouches for."""
        return VALUE_FORMATS[self.format]

    def body(self):
        body = {'format': self.format, 'data_unit': self.data_unit, 'version': self.version,
                'n': self.n, 'f': self.f, 'ec_type': self.ec_type,
                'size': self.size, 'segment_size': self.segment_size,
                'nonce': self.nonce.hex(),
                'digests': list(self.digests), 'writer': self.writer}
        if self.format != FORMAT_2:
            body['clouds'] = list(self.clouds)
        return body


def key_id(public_key):
    """Hex SHA-256 of the raw Ed25519 public key: names the writer in the metadata."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _canonical(body):
    return json.dumps(body, sort_keys=True, separators=(',', ':'), ensure_ascii=True).encode()


def sign(metadata, private_key):
    """Serialize and sign ``metadata`` with the writer's Ed25519 private key."""
    body = metadata.body()
    signature = private_key.sign(SIGNING_CONTEXTS[metadata.format] + _canonical(body))
    return _canonical({'body': body, 'signature': signature.hex()})


def _int_field(body, name, low, high):
    value = body[name]
    # bool is an int subclass in Python; JSON true must not pass as 1.
    if type(value) is not int:
        raise errors.MetadataError(name, 'expected an integer, found %s' % type(value).__name__)
    if not low <= value <= high:
        raise errors.MetadataError(name, '%d outside %d..%d' % (value, low, high))
    return value


def _hex_field(value, name, length):
    if not isinstance(value, str) or len(value) != length or not _HEX_RE.match(value):
        raise errors.MetadataError(name, 'expected %d lowercase hex digits' % length)
    return value


def parse(data, public_key, data_unit=None):
    """Parse and verify metadata bytes; return :class:`Metadata`.

    ``public_key`` is the writer's Ed25519 public key; ``data_unit``, when given, must be
    the data unit the metadata names (a cloud may not answer with another unit's record).
    Raises :class:`~.errors.MetadataError` naming the field that is wrong.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise errors.MetadataError('(document)', 'expected bytes')
    if len(data) > MAX_METADATA_BYTES:
        raise errors.MetadataError('(document)', '%d bytes exceeds %d'
                                   % (len(data), MAX_METADATA_BYTES))
    try:
        text = bytes(data).decode('utf-8')
    except UnicodeDecodeError as exc:
        raise errors.MetadataError('(document)', 'not UTF-8 at offset %d' % exc.start)
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise errors.MetadataError('(document)', 'not JSON: %s' % exc)
    except RecursionError:
        raise errors.MetadataError('(document)', 'JSON nested too deeply')
    if not isinstance(document, dict) or set(document) != {'body', 'signature'}:
        raise errors.MetadataError('(document)', 'expected an object with exactly "body" '
                                   'and "signature"')
    body = document['body']
    if not isinstance(body, dict):
        raise errors.MetadataError('body', 'expected an object')
    version_format = body.get('format')
    if not isinstance(version_format, str) or version_format not in _FIELDS:
        raise errors.MetadataError('format', 'expected one of %s, found %r'
                                   % (', '.join(sorted(_FIELDS)), version_format))
    missing = sorted(set(_FIELDS[version_format]) - set(body))
    extra = sorted(set(body) - set(_FIELDS[version_format]))
    if missing:
        raise errors.MetadataError('body', 'missing fields %s' % ', '.join(missing))
    if extra:
        raise errors.MetadataError('body', 'unknown fields %s' % ', '.join(extra))
    unit = body['data_unit']
    if not isinstance(unit, str) or not _DATA_UNIT_RE.match(unit):
        raise errors.MetadataError('data_unit', 'expected 1-200 characters [A-Za-z0-9._-]')
    if data_unit is not None and unit != data_unit:
        raise errors.MetadataError('data_unit', 'names %r, expected %r' % (unit, data_unit))
    version = _int_field(body, 'version', 0, MAX_VERSION)
    n = _int_field(body, 'n', 1, MAX_CLOUDS)
    f = _int_field(body, 'f', 0, MAX_CLOUDS)
    if n < 3 * f + 1:
        raise errors.MetadataError('n', 'n=%d < 3f+1 for f=%d' % (n, f))
    if body['ec_type'] != coding.EC_TYPE:
        raise errors.MetadataError('ec_type', 'expected %r' % coding.EC_TYPE)
    size = _int_field(body, 'size', 0, 2 ** 62)
    segment_size = _int_field(body, 'segment_size', MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES)
    nonce = bytes.fromhex(_hex_field(body['nonce'], 'nonce', 2 * coding.NONCE_BYTES))
    digests = body['digests']
    if not isinstance(digests, list) or len(digests) != n:
        raise errors.MetadataError('digests', 'expected a list of n=%d digests' % n)
    for index, value in enumerate(digests):
        _hex_field(value, 'digests[%d]' % index, 64)
    clouds = None
    if version_format != FORMAT_2:
        clouds = body['clouds']
        if not isinstance(clouds, list) or len(clouds) != n:
            raise errors.MetadataError('clouds', 'expected a list of n=%d cloud names' % n)
        for index, name in enumerate(clouds):
            if not isinstance(name, str) or not CLOUD_NAME_RE.match(name):
                raise errors.MetadataError('clouds[%d]' % index, 'expected 1-64 characters '
                                           '[A-Za-z0-9._-]')
        if len(set(clouds)) != n:
            raise errors.MetadataError('clouds', 'names a cloud twice')
        clouds = tuple(clouds)
    writer = _hex_field(body['writer'], 'writer', 64)
    if writer != key_id(public_key):
        raise errors.MetadataError('writer', 'signed by key %s, not the configured writer '
                                   'key %s' % (writer[:16], key_id(public_key)[:16]))
    signature = _hex_field(document['signature'], 'signature', 128)
    try:
        public_key.verify(bytes.fromhex(signature),
                          SIGNING_CONTEXTS[version_format] + _canonical(body))
    except InvalidSignature:
        raise errors.MetadataError('signature', 'Ed25519 signature does not verify')
    return Metadata(data_unit=unit, version=version, n=n, f=f,
                    size=size, segment_size=segment_size, nonce=nonce,
                    digests=tuple(digests), writer=writer, clouds=clouds,
                    format=version_format)


class Verified:
    """:func:`parse` for one writer key, remembering the documents it verified.

    A GET verifies the signed metadata its stub holds, the same bytes every time until the
    object is written again: parsing and the Ed25519 verification cost 0.15-0.2 ms of the
    gateway's CPU per GET. A document is remembered only once :func:`parse` accepted it,
    keyed by its exact bytes and the data unit it was checked against (the key is this
    object's): bytes that differ in any way are parsed and verified afresh, and a document
    refused is never remembered. The most recently used documents are kept, at most
    ``size`` of them and ``max_bytes`` of their bytes in all.
    """

    def __init__(self, public_key, size=1024, max_bytes=4 * 1024 * 1024):
        self.public_key = public_key
        self.size = size
        self.max_bytes = max_bytes
        self._known = collections.OrderedDict()     # (bytes, data unit) -> Metadata
        self._bytes = 0
        self._lock = threading.Lock()

    def parse(self, data, data_unit=None):
        """:func:`parse` of ``data`` with this object's key (the same result, or error)."""
        key = (bytes(data), data_unit)
        with self._lock:
            meta = self._known.get(key)
            if meta is not None:
                self._known.move_to_end(key)
                return meta
        meta = parse(key[0], self.public_key, data_unit)
        with self._lock:
            if key not in self._known:
                self._bytes += len(key[0])
            self._known[key] = meta
            while self._known and (len(self._known) > self.size
                                   or self._bytes > self.max_bytes):
                self._bytes -= len(self._known.popitem(last=False)[0][0])
        return meta


def load_private_key(pem):
    """Ed25519 private key from PEM bytes; raises :class:`~.errors.CloudStoreError`."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise errors.CloudStoreError('writer key: not an unencrypted PEM private key: %s'
                                     % exc)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise errors.CloudStoreError('writer key: expected Ed25519, found %s'
                                     % type(key).__name__)
    return key


def load_public_key(pem):
    """Ed25519 public key from PEM bytes; raises :class:`~.errors.CloudStoreError`."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise errors.CloudStoreError('writer public key: not a PEM public key: %s' % exc)
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise errors.CloudStoreError('writer public key: expected Ed25519, found %s'
                                     % type(key).__name__)
    return key
