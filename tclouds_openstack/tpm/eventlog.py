"""TCG2 UEFI event log (``binary_bios_measurements``): parse, decode, replay, marshal.

The format is the crypto-agile log of the TCG PC Client Platform Firmware Profile (PFP),
section 10: a first event in the SHA1 format (``TCG_PCClientPCREvent``) whose data is the
``TCG_EfiSpecIDEvent`` ("Spec ID Event03", which lists the hash algorithms and their digest
sizes), followed by ``TCG_PCR_EVENT2`` records carrying one digest per algorithm.

This module is pure: it takes bytes and returns values. Every malformed input raises
:class:`~tclouds_openstack.tpm.errors.EventLogError` naming the event index, byte offset and
field, never anything else; event data is decoded without ever trusting it to be UTF-8 or
UTF-16 (Keylime's replay crashes on such bytes; ours must not).

Replay follows PFP 10.4.5.3: EV_NO_ACTION events are never extended, and the
``StartupLocality`` EV_NO_ACTION event sets the initial value of PCR 0 to the locality from
which TPM2_Startup was issued (0x00..03 for locality 3, 0x00..04 for an H-CRTM). tpm2-tools
5.4 ``tpm2_eventlog`` ignores that locality, so for such logs its PCR 0 differs from a real
TPM's and from ours (see :func:`replay`).
"""
import dataclasses
import functools
import hashlib
import struct
import uuid

from tclouds_openstack.tpm import constants
from tclouds_openstack.tpm.errors import EventLogError

# Event types (PFP 10.4.1, Table 9): pre-boot and UEFI (EV_EFI_EVENT_BASE + n).
EV_PREBOOT_CERT = 0x00000000
EV_POST_CODE = 0x00000001
EV_UNUSED = 0x00000002
EV_NO_ACTION = 0x00000003
EV_SEPARATOR = 0x00000004
EV_ACTION = 0x00000005
EV_EVENT_TAG = 0x00000006
EV_S_CRTM_CONTENTS = 0x00000007
EV_S_CRTM_VERSION = 0x00000008
EV_CPU_MICROCODE = 0x00000009
EV_PLATFORM_CONFIG_FLAGS = 0x0000000A
EV_TABLE_OF_DEVICES = 0x0000000B
EV_COMPACT_HASH = 0x0000000C
EV_IPL = 0x0000000D
EV_IPL_PARTITION_DATA = 0x0000000E
EV_NONHOST_CODE = 0x0000000F
EV_NONHOST_CONFIG = 0x00000010
EV_NONHOST_INFO = 0x00000011
EV_OMIT_BOOT_DEVICE_EVENTS = 0x00000012
EV_POST_CODE2 = 0x00000013
EV_EFI_EVENT_BASE = 0x80000000
EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
EV_EFI_VARIABLE_BOOT = 0x80000002
EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
EV_EFI_BOOT_SERVICES_DRIVER = 0x80000004
EV_EFI_RUNTIME_SERVICES_DRIVER = 0x80000005
EV_EFI_GPT_EVENT = 0x80000006
EV_EFI_ACTION = 0x80000007
EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008
EV_EFI_HANDOFF_TABLES = 0x80000009
EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000000A
EV_EFI_HANDOFF_TABLES2 = 0x8000000B
EV_EFI_VARIABLE_BOOT2 = 0x8000000C
EV_EFI_GPT_EVENT2 = 0x8000000D
EV_EFI_HCRTM_EVENT = 0x80000010
EV_EFI_VARIABLE_AUTHORITY = 0x800000E0
EV_EFI_SPDM_FIRMWARE_BLOB = 0x800000E1
EV_EFI_SPDM_FIRMWARE_CONFIG = 0x800000E2

EVENT_TYPE_NAMES = {value: name for name, value in globals().items()
                    if name.startswith('EV_') and isinstance(value, int)
                    and name != 'EV_EFI_EVENT_BASE'}
EVENT_TYPES_BY_NAME = {name: value for value, name in EVENT_TYPE_NAMES.items()}

# TCG_EfiSpecIDEvent.signature (PFP 10.4.5.1) and TCG_EfiStartupLocalityEvent (10.4.5.3).
SPEC_ID_SIGNATURE = b'Spec ID Event03\x00'
STARTUP_LOCALITY_SIGNATURE = b'StartupLocality\x00'
# EFI_GLOBAL_VARIABLE (UEFI 2.x, 3.3): SecureBoot, PK, KEK, Boot####, BootOrder.
EFI_GLOBAL_VARIABLE = uuid.UUID('8be4df61-93ca-11d2-aa0d-00e098032b8c')
# EFI_IMAGE_SECURITY_DATABASE_GUID (UEFI 2.x, 32.6.1): db, dbx.
EFI_IMAGE_SECURITY_DATABASE = uuid.UUID('d719b2cb-3d3a-4596-a3bc-dad00e67656f')

# A digest larger than SHA-512's is not a TPM bank; refuse it rather than read garbage.
MAX_DIGEST_SIZE = 64
_SHA1_SIZE = 20
_U32 = struct.Struct('<I')
_U16 = struct.Struct('<H')
_PCR_EVENT_HEADER = struct.Struct('<II20sI')      # TCG_PCClientPCREvent without event[]
_EVENT2_HEADER = struct.Struct('<III')             # pcrIndex, eventType, digests.count
_SPEC_ID_FIXED = struct.Struct('<16sIBBBBI')


def event_type_name(event_type):
    """``EV_*`` name of an event type (PFP Table 9), or ``EV_UNKNOWN_0x...`` for others."""
    return EVENT_TYPE_NAMES.get(event_type, 'EV_UNKNOWN_0x%08x' % event_type)


def algorithm_name(algorithm_id):
    """hashlib name of a TPM_ALG_ID ('sha256'), or ``alg_0x0012`` for banks hashlib lacks."""
    return constants.HASH_ALGORITHMS_BY_ID.get(algorithm_id, 'alg_0x%04x' % algorithm_id)


@dataclasses.dataclass(frozen=True)
class SpecIdEvent:
    """TCG_EfiSpecIDEvent (PFP 10.4.5.1): the log's banks, in log order."""

    platform_class: int
    spec_version_minor: int
    spec_version_major: int
    spec_errata: int
    uintn_size: int
    # ((TPM_ALG_ID, digestSize), ...) as the event lists them
    algorithms: tuple
    vendor_info: bytes = b''

    @property
    def digest_sizes(self):
        """{bank name: digest size} for every algorithm the log carries."""
        return {algorithm_name(alg): size for alg, size in self.algorithms}

    @property
    def banks(self):
        return tuple(algorithm_name(alg) for alg, _ in self.algorithms)


@dataclasses.dataclass(frozen=True)
class Event:
    """One log record. Event 0 is the SHA1-format Spec ID event (digests ``{'sha1': 0*20}``).

    ``index`` and ``offset`` locate the record in the log it was parsed from (None for an
    event built with :func:`new_event`); ``digests`` maps bank name to digest, in log order.
    """

    index: object
    offset: object
    pcr_index: int
    event_type: int
    digests: dict
    event_data: bytes

    @property
    def type_name(self):
        return event_type_name(self.event_type)


@dataclasses.dataclass(frozen=True)
class EventLog:
    spec_id: SpecIdEvent
    events: list

    @property
    def startup_locality(self):
        """Locality of the StartupLocality event (PFP 10.4.5.3), or None when there is none."""
        for event in self.events[1:]:
            if (event.event_type == EV_NO_ACTION and event.pcr_index == 0
                    and event.event_data.startswith(STARTUP_LOCALITY_SIGNATURE)):
                return decode_startup_locality(event)
        return None


class _Reader:
    """Bounds-checked little-endian reads; every failure names the event and the field."""

    __slots__ = ('data', 'pos', 'end', 'index', 'event_offset')

    def __init__(self, data, pos=0, end=None, index=0, event_offset=0):
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end
        self.index = index
        self.event_offset = event_offset

    def fail(self, field, reason):
        raise EventLogError(self.index, self.event_offset, field, reason)

    def take(self, size, field):
        if size < 0 or size > self.end - self.pos:
            self.fail(field, 'needs %d bytes at offset %d but only %d remain'
                      % (size, self.pos, self.end - self.pos))
        start = self.pos
        self.pos += size
        return self.data[start:self.pos]

    def unpack(self, fmt, field):
        return fmt.unpack(self.take(fmt.size, field))

    def u8(self, field):
        return self.take(1, field)[0]

    def u16(self, field):
        return self.unpack(_U16, field)[0]

    def u32(self, field):
        return self.unpack(_U32, field)[0]

    def u64(self, field):
        return int.from_bytes(self.take(8, field), 'little')


def _check_pcr_index(reader, pcr_index):
    if pcr_index >= constants.PCR_COUNT:
        reader.fail('pcrIndex', 'PCR %d is outside 0..%d' % (pcr_index, constants.PCR_COUNT - 1))


def _parse_spec_id(event_data, event_offset):
    """TCG_EfiSpecIDEvent (PFP 10.4.5.1) from the first event's data."""
    r = _Reader(event_data, index=0, event_offset=event_offset)
    (signature, platform_class, minor, major, errata, uintn_size,
     count) = r.unpack(_SPEC_ID_FIXED, 'TCG_EfiSpecIDEvent')
    if signature != SPEC_ID_SIGNATURE:
        r.fail('TCG_EfiSpecIDEvent.signature', 'expected %r, found %r (only crypto-agile logs '
               'are supported)' % (SPEC_ID_SIGNATURE, signature))
    if count == 0:
        r.fail('TCG_EfiSpecIDEvent.numberOfAlgorithms', 'is 0: the log carries no bank')
    # Each entry is 4 bytes: bound the count by the data before looping over it.
    if count * 4 > r.end - r.pos:
        r.fail('TCG_EfiSpecIDEvent.numberOfAlgorithms',
               '%d algorithms do not fit in the %d-byte event' % (count, len(event_data)))
    algorithms = []
    for i in range(count):
        alg, size = r.unpack(struct.Struct('<HH'), 'TCG_EfiSpecIDEvent.digestSizes[%d]' % i)
        name = algorithm_name(alg)
        field = 'TCG_EfiSpecIDEvent.digestSizes[%d]' % i
        if any(alg == known for known, _ in algorithms):
            r.fail(field, 'algorithm %s is listed twice' % name)
        if not 0 < size <= MAX_DIGEST_SIZE:
            r.fail(field, 'digest size %d of %s is outside 1..%d' % (size, name, MAX_DIGEST_SIZE))
        expected = constants.DIGEST_SIZES.get(name)
        if expected is not None and size != expected:
            r.fail(field, 'digest size of %s is %d, must be %d' % (name, size, expected))
        algorithms.append((alg, size))
    vendor_size = r.u8('TCG_EfiSpecIDEvent.vendorInfoSize')
    vendor_info = r.take(vendor_size, 'TCG_EfiSpecIDEvent.vendorInfo')
    if r.pos != r.end:
        r.fail('TCG_EfiSpecIDEvent', '%d bytes after vendorInfo' % (r.end - r.pos))
    return SpecIdEvent(platform_class, minor, major, errata, uintn_size, tuple(algorithms),
                       vendor_info)


def parse_eventlog(data):
    """Parse a crypto-agile TCG2 event log into an :class:`EventLog`.

    Raises EventLogError (event index, offset, field) for anything but a well-formed log:
    a truncated record, a digest count above the Spec ID event's algorithm count, an
    algorithm not in the Spec ID table, an event size beyond the end, a PCR index >= 24.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EventLogError(0, 0, 'log', 'expected bytes, got %s' % type(data).__name__)
    data = bytes(data)
    if not data:
        raise EventLogError(0, 0, 'log', 'the log is empty')
    # Event 0: TCG_PCClientPCREvent in the SHA1 format (PFP 10.2.1).
    r = _Reader(data)
    pcr_index, event_type, digest, size = r.unpack(_PCR_EVENT_HEADER, 'TCG_PCClientPCREvent')
    if event_type != EV_NO_ACTION:
        r.fail('eventType', 'the first event must be EV_NO_ACTION (Spec ID event), found %s'
               % event_type_name(event_type))
    _check_pcr_index(r, pcr_index)
    event_data = r.take(size, 'eventDataSize')
    spec_id = _parse_spec_id(event_data, 0)
    events = [Event(0, 0, pcr_index, event_type, {'sha1': digest}, event_data)]

    digest_sizes = dict(spec_id.algorithms)
    max_digests = len(spec_id.algorithms)
    names = {alg: algorithm_name(alg) for alg in digest_sizes}
    end = len(data)
    pcr_count = constants.PCR_COUNT
    header, u16, u32 = _EVENT2_HEADER.unpack_from, _U16.unpack_from, _U32.unpack_from
    index, pos = 1, r.pos
    while pos < end:
        # The well-formed event in one pass of unpack_from; anything else is read again by
        # _read_event, which raises the error naming the field.
        if pos + 12 <= end:
            pcr_index, event_type, count = header(data, pos)
            at = pos + 12
            if pcr_index < pcr_count and count <= max_digests:
                digests = {}
                for _ in range(count):
                    size = digest_sizes.get(u16(data, at)[0]) if at + 2 <= end else None
                    if size is None or at + 2 + size > end:
                        break
                    name = names[u16(data, at)[0]]
                    if name in digests:
                        break
                    digests[name] = data[at + 2:at + 2 + size]
                    at += 2 + size
                else:
                    if at + 4 <= end:
                        size = u32(data, at)[0]
                        at += 4
                        if size <= end - at:
                            events.append(Event(index, pos, pcr_index, event_type, digests,
                                                data[at:at + size]))
                            pos = at + size
                            index += 1
                            continue
        r.pos = pos
        events.append(_read_event(r, index, digest_sizes, max_digests))
        pos = r.pos
        index += 1
    return EventLog(spec_id, events)


def _read_event(r, index, digest_sizes, max_digests):
    """One TCG_PCR_EVENT2 at ``r.pos`` read field by field (raises EventLogError)."""
    offset = r.pos
    r.index, r.event_offset = index, offset
    pcr_index, event_type, count = r.unpack(_EVENT2_HEADER, 'TCG_PCR_EVENT2')
    _check_pcr_index(r, pcr_index)
    if count > max_digests:
        r.fail('digests.count', '%d digests but the Spec ID event lists %d algorithms'
               % (count, max_digests))
    digests = {}
    for i in range(count):
        alg = r.u16('digests[%d].hashAlg' % i)
        if alg not in digest_sizes:
            r.fail('digests[%d].hashAlg' % i, 'algorithm 0x%04x is not in the Spec ID '
                   'event table' % alg)
        name = algorithm_name(alg)
        if name in digests:
            r.fail('digests[%d].hashAlg' % i, '%s digest appears twice' % name)
        digests[name] = r.take(digest_sizes[alg], 'digests[%d].digest' % i)
    size = r.u32('eventSize')
    event_data = r.take(size, 'event')
    return Event(index, offset, pcr_index, event_type, digests, event_data)


def _initial_value(locality, size):
    return locality.to_bytes(size, 'big')


def replay(log):
    """PCR values implied by the log: ``{bank: {pcr_index: bytes}}``.

    Only banks hashlib can compute are replayed, and only PCRs some event touches appear.
    EV_NO_ACTION events are not extended (PFP 10.4.5); a StartupLocality event makes PCR 0
    start at its locality (PFP 10.4.5.3), which is what a TPM started from locality 3 (or an
    H-CRTM, 4) holds. tpm2-tools 5.4 extends from zero instead, so its PCR 0 is wrong for
    such logs. An extended event that lacks a bank's digest makes the bank unprovable: it
    raises EventLogError rather than guess.
    """
    banks = [b for b in log.spec_id.banks if b in constants.DIGEST_SIZES]
    values = {bank: {} for bank in banks}
    locality = log.startup_locality
    if locality:
        for bank in banks:
            values[bank][0] = _initial_value(locality, constants.DIGEST_SIZES[bank])
    # hashlib's own constructors: hashlib.new looks the name up on every call
    hashers = [(bank, values[bank], getattr(hashlib, bank, None)
                if bank in hashlib.algorithms_guaranteed else None) for bank in banks]
    hashers = [(bank, bank_values, new or functools.partial(hashlib.new, bank))
               for bank, bank_values, new in hashers]
    for event in log.events[1:]:
        if event.event_type == EV_NO_ACTION:
            continue
        digests, pcr_index = event.digests, event.pcr_index
        for bank, bank_values, new in hashers:
            digest = digests.get(bank)
            if digest is None:
                raise EventLogError(event.index, event.offset, 'digests',
                                    'no %s digest, so the %s bank cannot be replayed'
                                    % (bank, bank))
            current = bank_values.get(pcr_index)
            if current is None:
                current = bytes(len(digest))
            bank_values[pcr_index] = new(current + digest).digest()
    return values


# -- building logs --------------------------------------------------------------------------


def new_event(pcr_index, event_type, event_data, banks=('sha1', 'sha256'), measured=None):
    """An :class:`Event` whose digests are each bank's hash of ``measured``.

    ``measured`` defaults to the event data itself; pass it when the digest covers something
    else, as for a firmware blob or a PE image (PFP 10.4.4), or grub's EV_IPL strings.
    """
    if isinstance(event_type, str):
        event_type = EVENT_TYPES_BY_NAME[event_type]
    source = event_data if measured is None else measured
    digests = {bank: hashlib.new(bank, source).digest() for bank in banks}
    return Event(None, None, pcr_index, event_type, digests, bytes(event_data))


def marshal_spec_id(banks, vendor_info=b''):
    """The first event: TCG_PCClientPCREvent holding a TCG_EfiSpecIDEvent for ``banks``."""
    algorithms = b''.join(
        struct.pack('<HH', constants.HASH_ALGORITHMS_BY_NAME[b], constants.DIGEST_SIZES[b])
        for b in banks)
    # platformClass 0 (client), spec 2.0 errata 0, uintnSize 2 (= UINT64), PFP 10.4.5.1
    spec = (_SPEC_ID_FIXED.pack(SPEC_ID_SIGNATURE, 0, 0, 2, 0, 2, len(banks)) + algorithms
            + bytes([len(vendor_info)]) + vendor_info)
    return _PCR_EVENT_HEADER.pack(0, EV_NO_ACTION, bytes(_SHA1_SIZE), len(spec)) + spec


def marshal_event2(event):
    """One TCG_PCR_EVENT2 record (PFP 10.2.2), digests in the event's order."""
    parts = [_EVENT2_HEADER.pack(event.pcr_index, event.event_type, len(event.digests))]
    for bank, digest in event.digests.items():
        parts.append(_U16.pack(constants.HASH_ALGORITHMS_BY_NAME[bank]) + digest)
    parts.append(_U32.pack(len(event.event_data)) + event.event_data)
    return b''.join(parts)


def marshal_eventlog(banks, events, vendor_info=b''):
    """A crypto-agile log: the Spec ID event for ``banks``, then ``events`` as TCG_PCR_EVENT2.

    ``events`` are :class:`Event` values (index/offset ignored); a leading Spec ID event, as
    :func:`parse_eventlog` returns it, is skipped so ``marshal_eventlog(log.spec_id.banks,
    log.events)`` reproduces a parsed log.
    """
    events = list(events)
    if events and events[0].index == 0 and events[0].event_data.startswith(SPEC_ID_SIGNATURE):
        events = events[1:]
    return marshal_spec_id(banks, vendor_info) + b''.join(marshal_event2(e) for e in events)


def startup_locality_event(locality, banks=('sha1', 'sha256')):
    """The StartupLocality EV_NO_ACTION event (PFP 10.4.5.3): digests all zero."""
    return Event(None, None, 0, EV_NO_ACTION,
                 {bank: bytes(constants.DIGEST_SIZES[bank]) for bank in banks},
                 STARTUP_LOCALITY_SIGNATURE + bytes([locality]))


# -- event data decoders (what appraisal reads) ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class UefiVariableData:
    """UEFI_VARIABLE_DATA (PFP 10.4.3).

    ``unicode_name`` is decoded leniently (bad UTF-16 becomes U+FFFD);
    ``unicode_name_bytes`` keeps the exact bytes.
    """

    variable_name: uuid.UUID
    unicode_name: str
    variable_data: bytes
    unicode_name_bytes: bytes


@dataclasses.dataclass(frozen=True)
class UefiImageLoadEvent:
    """UEFI_IMAGE_LOAD_EVENT (PFP 10.4.2) of EV_EFI_BOOT_SERVICES_APPLICATION and drivers."""

    image_location_in_memory: int
    image_length_in_memory: int
    image_link_time_address: int
    device_path: bytes

    @property
    def file_paths(self):
        return device_path_file_names(self.device_path)


@dataclasses.dataclass(frozen=True)
class UefiPlatformFirmwareBlob:
    """UEFI_PLATFORM_FIRMWARE_BLOB (PFP 10.4.4)."""

    blob_base: int
    blob_length: int


def _event_reader(event):
    return _Reader(event.event_data, index=event.index if event.index is not None else -1,
                   event_offset=event.offset if event.offset is not None else -1)


def _utf16(raw):
    return raw.decode('utf-16-le', errors='replace')


@functools.lru_cache(maxsize=1024)
def _guid_le(raw):
    """uuid.UUID(bytes_le=raw), once per distinct GUID (UUIDs are immutable)."""
    return uuid.UUID(bytes_le=raw)


def decode_efi_variable(event):
    """UEFI_VARIABLE_DATA of EV_EFI_VARIABLE_* events."""
    r = _event_reader(event)
    guid = _guid_le(r.take(16, 'UEFI_VARIABLE_DATA.VariableName'))
    name_length = r.u64('UEFI_VARIABLE_DATA.UnicodeNameLength')
    data_length = r.u64('UEFI_VARIABLE_DATA.VariableDataLength')
    # UnicodeNameLength counts CHAR16s; compare before multiplying a 64-bit number.
    if name_length > (r.end - r.pos) // 2:
        r.fail('UEFI_VARIABLE_DATA.UnicodeNameLength', '%d characters do not fit in the %d '
               'bytes left' % (name_length, r.end - r.pos))
    raw_name = r.take(name_length * 2, 'UEFI_VARIABLE_DATA.UnicodeName')
    value = r.take(data_length, 'UEFI_VARIABLE_DATA.VariableData')
    return UefiVariableData(guid, _utf16(raw_name), value, raw_name)


def decode_image_load_event(event):
    """UEFI_IMAGE_LOAD_EVENT (PFP 10.4.2) of EV_EFI_BOOT_SERVICES_* and runtime drivers.

    UINTN is 64 bits (Spec ID uintnSize 2).
    """
    r = _event_reader(event)
    location = r.u64('UEFI_IMAGE_LOAD_EVENT.ImageLocationInMemory')
    length = r.u64('UEFI_IMAGE_LOAD_EVENT.ImageLengthInMemory')
    link_address = r.u64('UEFI_IMAGE_LOAD_EVENT.ImageLinkTimeAddress')
    path_length = r.u64('UEFI_IMAGE_LOAD_EVENT.LengthOfDevicePath')
    device_path = r.take(path_length, 'UEFI_IMAGE_LOAD_EVENT.DevicePath')
    return UefiImageLoadEvent(location, length, link_address, device_path)


def device_path_file_names(device_path):
    """The file names (Media File Path nodes, UEFI 2.x 10.3.5.4) in a device path.

    Lenient by design: a malformed node ends the walk, since the names are informational
    and the digest, not the path, is what is measured.
    """
    names = []
    pos = 0
    while pos + 4 <= len(device_path):
        node_type, sub_type, length = struct.unpack_from('<BBH', device_path, pos)
        if length < 4 or pos + length > len(device_path) or node_type == 0x7F:
            break
        if node_type == 0x04 and sub_type == 0x04:
            names.append(_utf16(device_path[pos + 4:pos + length]).rstrip('\x00'))
        pos += length
    return names


def decode_firmware_blob(event):
    """UEFI_PLATFORM_FIRMWARE_BLOB of EV_EFI_PLATFORM_FIRMWARE_BLOB / EV_S_CRTM_CONTENTS."""
    r = _event_reader(event)
    base = r.u64('UEFI_PLATFORM_FIRMWARE_BLOB.BlobBase')
    length = r.u64('UEFI_PLATFORM_FIRMWARE_BLOB.BlobLength')
    return UefiPlatformFirmwareBlob(base, length)


def decode_string(event):
    """Text of EV_IPL, EV_EFI_ACTION, EV_ACTION, EV_POST_CODE, EV_S_CRTM_VERSION ... events.

    Firmware writes ASCII, UTF-8 or UTF-16LE, NUL-terminated or not. Undecodable bytes come
    back as backslash escapes; this never raises.
    """
    data = event.event_data
    # UTF-16LE text has a NUL high byte after most ASCII characters.
    if len(data) >= 2 and len(data) % 2 == 0 and data[1::2].count(0) * 2 > len(data) // 2:
        return data.decode('utf-16-le', errors='backslashreplace').rstrip('\x00')
    return data.decode('utf-8', errors='backslashreplace').rstrip('\x00')


def decode_startup_locality(event):
    """TCG_EfiStartupLocalityEvent (PFP 10.4.5.3): the locality TPM2_Startup came from."""
    r = _event_reader(event)
    if r.take(16, 'TCG_EfiStartupLocalityEvent.Signature') != STARTUP_LOCALITY_SIGNATURE:
        r.fail('TCG_EfiStartupLocalityEvent.Signature', 'is not "StartupLocality"')
    locality = r.u8('TCG_EfiStartupLocalityEvent.StartupLocality')
    if locality not in (0, 3, 4):
        r.fail('TCG_EfiStartupLocalityEvent.StartupLocality',
               'locality %d is not 0, 3 or 4 (H-CRTM)' % locality)
    if r.pos != r.end:
        r.fail('TCG_EfiStartupLocalityEvent', '%d trailing bytes' % (r.end - r.pos))
    return locality


_STRING_EVENTS = frozenset([EV_IPL, EV_EFI_ACTION, EV_ACTION, EV_POST_CODE, EV_S_CRTM_VERSION,
                            EV_COMPACT_HASH, EV_OMIT_BOOT_DEVICE_EVENTS])
_VARIABLE_EVENTS = frozenset([EV_EFI_VARIABLE_DRIVER_CONFIG, EV_EFI_VARIABLE_BOOT,
                              EV_EFI_VARIABLE_BOOT2, EV_EFI_VARIABLE_AUTHORITY])
_IMAGE_EVENTS = frozenset([EV_EFI_BOOT_SERVICES_APPLICATION, EV_EFI_BOOT_SERVICES_DRIVER,
                           EV_EFI_RUNTIME_SERVICES_DRIVER])


def decode_event(event):
    """The decoded data of an event appraisal reads, by type; None for other types.

    Returns a UefiVariableData, UefiImageLoadEvent, UefiPlatformFirmwareBlob, str, the
    SpecIdEvent (event 0) or the startup locality (int). Raises only EventLogError.
    """
    etype = event.event_type
    if etype in _VARIABLE_EVENTS:
        return decode_efi_variable(event)
    if etype in _IMAGE_EVENTS:
        return decode_image_load_event(event)
    if etype == EV_EFI_PLATFORM_FIRMWARE_BLOB:
        return decode_firmware_blob(event)
    if etype in _STRING_EVENTS:
        return decode_string(event)
    if etype == EV_NO_ACTION:
        if event.event_data.startswith(SPEC_ID_SIGNATURE):
            return _parse_spec_id(event.event_data, event.offset or 0)
        if event.event_data.startswith(STARTUP_LOCALITY_SIGNATURE):
            return decode_startup_locality(event)
    return None
