"""Byte-level marshalling of TPM 2.0 structures (TPM 2.0 Library Part 1, 18 and Part 2, 5-6).

TPM structures are big-endian with TPM2B sized buffers (a UINT16 size, then that many
bytes). :class:`Reader` unmarshals them while tracking the byte offset, so every failure
names the structure, field and offset (:class:`~tclouds_openstack.tpm.errors.ParseError`).
:class:`Writer` is its inverse. The tpm2-tools PCR file is little-endian host structs, so
both take a byte order. This module must never raise anything but ParseError on input.
"""
import struct

from tclouds_openstack.tpm import errors

BIG_ENDIAN = '>'
LITTLE_ENDIAN = '<'

_INTS = {1: 'B', 2: 'H', 4: 'I', 8: 'Q'}


class Reader:
    """Sequential unmarshaller over ``data`` for the structure named ``structure``."""

    def __init__(self, data, structure, byteorder=BIG_ENDIAN):
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, bytes):
            raise errors.ParseError(structure, '(input)', 0,
                                    'expected bytes, got %s' % type(data).__name__)
        self.data = data
        self.offset = 0
        self.structure = structure
        self._order = byteorder

    def error(self, field, reason, offset=None):
        """A ParseError for ``field`` at ``offset`` (default: the current offset)."""
        return errors.ParseError(self.structure, field, self.offset if offset is None else offset,
                                 reason)

    @property
    def remaining(self):
        return len(self.data) - self.offset

    def take(self, size, field):
        end = self.offset + size
        if end > len(self.data):
            raise self.error(field, 'truncated: need %d bytes, %d left' % (size, self.remaining))
        value = self.data[self.offset:end]
        self.offset = end
        return value

    def _int(self, size, field):
        raw = self.take(size, field)
        return struct.unpack(self._order + _INTS[size], raw)[0]

    def u8(self, field):
        return self._int(1, field)

    def u16(self, field):
        return self._int(2, field)

    def u32(self, field):
        return self._int(4, field)

    def u64(self, field):
        return self._int(8, field)

    def tpm2b(self, field, max_size):
        """A TPM2B: UINT16 size then the buffer; a size above ``max_size`` is rejected."""
        start = self.offset
        size = self.u16(field + '.size')
        if size > max_size:
            raise self.error(field + '.size', 'size %d exceeds the maximum %d' % (size, max_size),
                             start)
        return self.take(size, field)

    def expect_end(self):
        """Parsers accept exactly one structure: trailing bytes are an error."""
        if self.remaining:
            raise self.error('(end)', '%d trailing bytes after the structure' % self.remaining)


class Writer:
    """Sequential marshaller; :meth:`getvalue` returns the bytes."""

    def __init__(self, byteorder=BIG_ENDIAN):
        self._parts = []
        self._order = byteorder

    def _int(self, size, value):
        self._parts.append(struct.pack(self._order + _INTS[size], value))
        return self

    def u8(self, value):
        return self._int(1, value)

    def u16(self, value):
        return self._int(2, value)

    def u32(self, value):
        return self._int(4, value)

    def u64(self, value):
        return self._int(8, value)

    def raw(self, data):
        self._parts.append(bytes(data))
        return self

    def tpm2b(self, data):
        data = bytes(data)
        if len(data) > 0xFFFF:
            raise ValueError('TPM2B buffer of %d bytes does not fit a UINT16 size' % len(data))
        return self.u16(len(data)).raw(data)

    def getvalue(self):
        return b''.join(self._parts)


def tpm2b(data):
    """Marshal ``data`` as a TPM2B (big-endian UINT16 size prefix)."""
    return Writer().tpm2b(data).getvalue()


def unwrap_tpm2b(data, structure, max_size=0xFFFF):
    """The buffer of a TPM2B that must span all of ``data`` (no trailing bytes)."""
    reader = Reader(data, structure)
    value = reader.tpm2b('buffer', max_size)
    reader.expect_end()
    return value
