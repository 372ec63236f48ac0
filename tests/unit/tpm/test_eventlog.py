"""TCG2 UEFI event log: parsing, decoders, replay and marshalling (tpm/eventlog.py)."""
import hashlib
import struct
import uuid

import pytest

from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import eventlog

EventLogError = errors.EventLogError

BANKS = ('sha1', 'sha256')
# name: banks of its Spec ID event
REAL_LOGS = {'binary_bios_measurements': ('sha1', 'sha256'),
             'binary_bios_measurements-secureboot': ('sha256',), 'mb_log.bin': ('sha256',),
             'synthetic_bios_measurements': ('sha1', 'sha256')}


def extend(value, digest, bank):
    return hashlib.new(bank, value + digest).digest()


def simple_events():
    return [eventlog.new_event(0, eventlog.EV_S_CRTM_VERSION, b'1\x000\x00\x00\x00'),
            eventlog.new_event(0, eventlog.EV_EFI_PLATFORM_FIRMWARE_BLOB, bytes(16),
                               measured=b'firmware'),
            eventlog.new_event(4, eventlog.EV_SEPARATOR, bytes(4)),
            eventlog.new_event(8, eventlog.EV_IPL, b'grub_cmd: linux /vmlinuz\x00',
                               measured=b'linux /vmlinuz')]


def expected_pcrs(events, initial_pcr0=0):
    out = {}
    for bank in BANKS:
        size = hashlib.new(bank).digest_size
        values = {0: initial_pcr0.to_bytes(size, 'big')} if initial_pcr0 else {}
        for e in events:
            if e.event_type == eventlog.EV_NO_ACTION:
                continue
            values[e.pcr_index] = extend(values.get(e.pcr_index, bytes(size)),
                                         e.digests[bank], bank)
        out[bank] = values
    return out


# -- real logs ----------------------------------------------------------------------------


@pytest.mark.parametrize('name', sorted(REAL_LOGS))
def test_real_logs_parse_decode_and_marshal_back_byte_exact(shared_data, name):
    data = (shared_data / 'eventlogs' / name).read_bytes()
    log = eventlog.parse_eventlog(data)
    assert log.spec_id.banks == REAL_LOGS[name]
    assert log.spec_id.digest_sizes == {b: hashlib.new(b).digest_size for b in REAL_LOGS[name]}
    assert log.events[0].index == 0 and log.events[0].digests == {'sha1': bytes(20)}
    assert [e.index for e in log.events] == list(range(len(log.events)))
    for event in log.events:
        eventlog.decode_event(event)     # every decoder accepts real firmware data
    assert eventlog.marshal_eventlog(log.spec_id.banks, log.events,
                                     log.spec_id.vendor_info) == data


def test_real_log_events_decode_to_what_firmware_recorded(shared_data):
    log = eventlog.parse_eventlog(
        (shared_data / 'eventlogs' / 'binary_bios_measurements-secureboot').read_bytes())
    assert len(log.events) == 99
    variables = [eventlog.decode_event(e) for e in log.events
                 if e.event_type == eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG]
    assert [v.unicode_name for v in variables][:5] == ['SecureBoot', 'PK', 'KEK', 'db', 'dbx']
    assert variables[0].variable_name == eventlog.EFI_GLOBAL_VARIABLE
    assert variables[0].variable_data == b'\x01'
    apps = [eventlog.decode_event(e) for e in log.events
            if e.event_type == eventlog.EV_EFI_BOOT_SERVICES_APPLICATION]
    assert any('shimx64.efi' in p.lower() for a in apps for p in a.file_paths)
    actions = [eventlog.decode_string(e) for e in log.events
               if e.event_type == eventlog.EV_EFI_ACTION]
    assert 'Calling EFI Application from Boot Option' in actions
    ipl = [eventlog.decode_string(e) for e in log.events if e.event_type == eventlog.EV_IPL]
    assert any(s.startswith('kernel_cmdline: ') for s in ipl)


def test_real_log_startup_locality_3_starts_pcr0_at_3(shared_data):
    log = eventlog.parse_eventlog(
        (shared_data / 'eventlogs' / 'binary_bios_measurements').read_bytes())
    assert log.startup_locality == 3
    assert eventlog.decode_event(log.events[1]) == 3
    pcr0 = [e for e in log.events if e.pcr_index == 0]
    assert eventlog.replay(log)['sha256'][0] == expected_pcrs(pcr0, initial_pcr0=3)['sha256'][0]


# -- generated logs -----------------------------------------------------------------------


def test_replay_extends_each_bank_in_log_order():
    events = simple_events()
    log = eventlog.parse_eventlog(eventlog.marshal_eventlog(BANKS, events))
    assert eventlog.replay(log) == expected_pcrs(events)
    assert sorted(eventlog.replay(log)['sha1']) == [0, 4, 8]


def test_event_records_carry_index_offset_and_digests():
    events = simple_events()
    data = eventlog.marshal_eventlog(BANKS, events)
    log = eventlog.parse_eventlog(data)
    first = log.events[1]
    assert first.offset == len(eventlog.marshal_spec_id(BANKS))
    assert log.events[2].offset == first.offset + len(eventlog.marshal_event2(events[0]))
    assert first.digests == events[0].digests
    assert list(first.digests) == ['sha1', 'sha256']
    assert log.events[4].digests['sha256'] == hashlib.sha256(b'linux /vmlinuz').digest()


def test_no_action_events_are_not_extended():
    events = simple_events()
    noise = eventlog.new_event(0, eventlog.EV_NO_ACTION, b'SP800-155 Event\x00data')
    noisy = eventlog.parse_eventlog(eventlog.marshal_eventlog(BANKS, [noise] + events))
    assert eventlog.replay(noisy) == expected_pcrs(events)


@pytest.mark.parametrize('locality, initial', [(0, 0), (3, 3), (4, 4)])
def test_startup_locality_sets_pcr0_initial_value(locality, initial):
    events = [eventlog.startup_locality_event(locality)] + simple_events()
    log = eventlog.parse_eventlog(eventlog.marshal_eventlog(BANKS, events))
    assert log.startup_locality == locality
    assert eventlog.replay(log) == expected_pcrs(events[1:], initial_pcr0=initial)


def test_startup_locality_without_pcr0_events_still_reports_pcr0():
    log = eventlog.parse_eventlog(eventlog.marshal_eventlog(
        BANKS, [eventlog.startup_locality_event(3)]))
    assert eventlog.replay(log)['sha1'] == {0: bytes(19) + b'\x03'}


def test_startup_locality_other_than_0_3_4_is_rejected():
    log = eventlog.parse_eventlog(eventlog.marshal_eventlog(
        BANKS, [eventlog.startup_locality_event(2)] + simple_events()))
    with pytest.raises(EventLogError, match='StartupLocality.*locality 2'):
        eventlog.replay(log)


def test_sha256_only_and_three_bank_logs():
    for banks in (('sha256',), ('sha1', 'sha256', 'sha384')):
        events = [eventlog.new_event(p, eventlog.EV_SEPARATOR, bytes(4), banks) for p in (0, 7)]
        log = eventlog.parse_eventlog(eventlog.marshal_eventlog(banks, events))
        assert log.spec_id.banks == banks
        assert set(eventlog.replay(log)) == set(banks)
        for bank in banks:
            assert eventlog.replay(log)[bank][7] == extend(
                bytes(hashlib.new(bank).digest_size), hashlib.new(bank, bytes(4)).digest(), bank)


def test_unknown_bank_in_spec_id_is_parsed_but_not_replayed():
    # SM3_256 (0x0012) is listed with its size: its digests are skipped, sha256 replays.
    spec = (eventlog.SPEC_ID_SIGNATURE + struct.pack('<IBBBBI', 0, 0, 2, 0, 2, 2)
            + struct.pack('<HHHH', 0x0012, 32, 0x000B, 32) + b'\x00')
    head = struct.pack('<II20sI', 0, eventlog.EV_NO_ACTION, bytes(20), len(spec)) + spec
    sha = hashlib.sha256(b'x').digest()
    record = (struct.pack('<III', 4, eventlog.EV_SEPARATOR, 2) + struct.pack('<H', 0x12)
              + b'\x11' * 32 + struct.pack('<H', 0x0B) + sha + struct.pack('<I', 1) + b'x')
    log = eventlog.parse_eventlog(head + record)
    assert log.spec_id.banks == ('alg_0x0012', 'sha256')
    assert log.events[1].digests['alg_0x0012'] == b'\x11' * 32
    assert eventlog.replay(log) == {'sha256': {4: extend(bytes(32), sha, 'sha256')}}


def test_event_type_names():
    assert eventlog.event_type_name(0x80000003) == 'EV_EFI_BOOT_SERVICES_APPLICATION'
    assert eventlog.event_type_name(eventlog.EV_NO_ACTION) == 'EV_NO_ACTION'
    assert eventlog.event_type_name(0x1234) == 'EV_UNKNOWN_0x00001234'
    assert eventlog.new_event(4, 'EV_SEPARATOR', bytes(4)).type_name == 'EV_SEPARATOR'


# -- malformed logs: EventLogError naming index, offset, field ------------------------------

def _log(*events):
    return eventlog.marshal_eventlog(BANKS, events or simple_events())


def _spec_len():
    return len(eventlog.marshal_spec_id(BANKS))


def _error(data):
    with pytest.raises(EventLogError) as info:
        eventlog.parse_eventlog(data)
    return info.value


def test_empty_and_non_bytes_input():
    assert 'empty' in str(_error(b''))
    assert 'expected bytes' in str(_error('text'))


def test_truncated_first_event():
    err = _error(_log()[:20])
    assert (err.index, err.offset, err.field) == (0, 0, 'TCG_PCClientPCREvent')


def test_first_event_must_be_spec_id():
    data = bytearray(_log())
    data[4] = eventlog.EV_SEPARATOR
    err = _error(bytes(data))
    assert err.field == 'eventType' and 'EV_SEPARATOR' in err.reason
    data = bytearray(_log())
    data[32:48] = b'Spec ID Event02\x00'
    err = _error(bytes(data))
    assert err.field == 'TCG_EfiSpecIDEvent.signature' and 'crypto-agile' in err.reason


def _spec_id_log(count, algorithms, vendor=b'\x00'):
    spec = eventlog.SPEC_ID_SIGNATURE + struct.pack('<IBBBBI', 0, 0, 2, 0, 2, count)
    spec += algorithms + vendor
    return struct.pack('<II20sI', 0, eventlog.EV_NO_ACTION, bytes(20), len(spec)) + spec


def test_spec_id_table_errors():
    assert 'numberOfAlgorithms' in _error(_spec_id_log(0, b'')).field
    err = _error(_spec_id_log(1000, struct.pack('<HH', 4, 20)))
    assert err.field == 'TCG_EfiSpecIDEvent.numberOfAlgorithms' and 'do not fit' in err.reason
    err = _error(_spec_id_log(1, struct.pack('<HH', 0x000B, 20)))
    assert err.field == 'TCG_EfiSpecIDEvent.digestSizes[0]' and 'must be 32' in err.reason
    err = _error(_spec_id_log(2, struct.pack('<HHHH', 4, 20, 4, 20)))
    assert err.field == 'TCG_EfiSpecIDEvent.digestSizes[1]' and 'twice' in err.reason
    err = _error(_spec_id_log(1, struct.pack('<HH', 0x0012, 4000)))
    assert 'outside 1..64' in err.reason
    err = _error(_spec_id_log(1, struct.pack('<HH', 4, 20), vendor=b'\x05ab'))
    assert err.field == 'TCG_EfiSpecIDEvent.vendorInfo'
    err = _error(_spec_id_log(1, struct.pack('<HH', 4, 20), vendor=b'\x00junk'))
    assert err.field == 'TCG_EfiSpecIDEvent' and 'after vendorInfo' in err.reason


def test_truncated_event2_names_index_offset_and_field():
    data = _log()
    second = _spec_len() + len(eventlog.marshal_event2(simple_events()[0]))
    for cut, field in [(second + 5, 'TCG_PCR_EVENT2'), (second + 14, 'digests[0].digest'),
                       (second + 12 + 22 + 2 + 10, 'digests[1].digest'),
                       (second + 12 + 22 + 34 + 2, 'eventSize')]:
        err = _error(data[:cut])
        assert (err.index, err.offset, err.field) == (2, second, field), (cut, str(err))


def test_event_size_beyond_the_end():
    event = eventlog.new_event(4, eventlog.EV_SEPARATOR, bytes(4))
    record = bytearray(eventlog.marshal_event2(event))
    record[-8:-4] = struct.pack('<I', 0xFFFFFFF0)
    err = _error(eventlog.marshal_spec_id(BANKS) + bytes(record))
    assert (err.index, err.offset, err.field) == (1, _spec_len(), 'event')
    assert 'only 4 remain' in err.reason


def test_digest_count_above_algorithm_count():
    record = bytearray(eventlog.marshal_event2(simple_events()[0]))
    record[8:12] = struct.pack('<I', 3)
    err = _error(eventlog.marshal_spec_id(BANKS) + bytes(record))
    assert err.field == 'digests.count' and '3 digests' in err.reason and '2 algorithms' in str(err)


def test_algorithm_not_in_spec_id_table_and_duplicate_digest():
    record = bytearray(eventlog.marshal_event2(simple_events()[0]))
    record[12:14] = struct.pack('<H', 0x000C)          # sha384: not in this log's table
    err = _error(eventlog.marshal_spec_id(BANKS) + bytes(record))
    assert err.field == 'digests[0].hashAlg' and '0x000c' in err.reason
    dup = eventlog.Event(None, None, 0, 1, {'sha1': bytes(20)}, b'')
    record = bytearray(eventlog.marshal_event2(dup))
    record[8:12] = struct.pack('<I', 2)
    record[34:34] = struct.pack('<H', 4) + bytes(20)
    err = _error(eventlog.marshal_spec_id(BANKS) + bytes(record))
    assert err.field == 'digests[1].hashAlg' and 'twice' in err.reason


def test_pcr_index_out_of_range():
    err = _error(_log(eventlog.new_event(24, eventlog.EV_SEPARATOR, bytes(4))))
    assert (err.index, err.field) == (1, 'pcrIndex') and 'PCR 24' in err.reason


def test_replay_refuses_an_event_missing_a_bank_digest():
    partial = eventlog.Event(None, None, 4, eventlog.EV_SEPARATOR,
                             {'sha256': hashlib.sha256(bytes(4)).digest()}, bytes(4))
    log = eventlog.parse_eventlog(_log(simple_events()[0], partial))
    with pytest.raises(EventLogError) as info:
        eventlog.replay(log)
    assert info.value.index == 2 and 'sha1' in info.value.reason


# -- decoders -----------------------------------------------------------------------------

def _event(event_type, data):
    return eventlog.Event(7, 1234, 0, event_type, {}, data)


def test_variable_decoder_and_its_errors():
    guid = uuid.UUID('12345678-1234-5678-1234-567812345678')
    data = guid.bytes_le + struct.pack('<QQ', 2, 3) + 'PK'.encode('utf-16-le') + b'abc'
    var = eventlog.decode_event(_event(eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG, data))
    assert (var.variable_name, var.unicode_name, var.variable_data) == (guid, 'PK', b'abc')
    with pytest.raises(EventLogError) as info:
        eventlog.decode_efi_variable(_event(eventlog.EV_EFI_VARIABLE_BOOT, data[:-1]))
    assert (info.value.index, info.value.offset) == (7, 1234)
    assert info.value.field == 'UEFI_VARIABLE_DATA.VariableData'
    huge = guid.bytes_le + struct.pack('<QQ', 2 ** 63, 0)
    with pytest.raises(EventLogError, match='UnicodeNameLength'):
        eventlog.decode_efi_variable(_event(eventlog.EV_EFI_VARIABLE_BOOT, huge))
    # an unpaired UTF-16 surrogate is replaced, the raw bytes are kept
    odd = guid.bytes_le + struct.pack('<QQ', 1, 0) + b'\x00\xd8'
    var = eventlog.decode_efi_variable(_event(eventlog.EV_EFI_VARIABLE_BOOT, odd))
    assert var.unicode_name == '\ufffd' and var.unicode_name_bytes == b'\x00\xd8'


def test_image_load_decoder_and_device_path():
    path = '\\EFI\\BOOT\\BOOTX64.EFI\0'.encode('utf-16-le')
    dp = (struct.pack('<BBH', 4, 4, 4 + len(path)) + path + b'\x7f\xff\x04\x00')
    data = struct.pack('<QQQQ', 0x1000, 0x2000, 0, len(dp)) + dp
    image = eventlog.decode_event(_event(eventlog.EV_EFI_BOOT_SERVICES_APPLICATION, data))
    assert (image.image_location_in_memory, image.image_length_in_memory) == (0x1000, 0x2000)
    assert image.file_paths == ['\\EFI\\BOOT\\BOOTX64.EFI']
    bad = struct.pack('<QQQQ', 0, 0, 0, 2 ** 64 - 1) + dp
    with pytest.raises(EventLogError) as info:
        eventlog.decode_image_load_event(_event(eventlog.EV_EFI_BOOT_SERVICES_DRIVER, bad))
    assert info.value.field == 'UEFI_IMAGE_LOAD_EVENT.DevicePath'
    # a node claiming more bytes than the path holds ends the walk instead of raising
    assert eventlog.device_path_file_names(b'\x04\x04\xff\xff' + path) == []
    assert eventlog.device_path_file_names(b'\x04\x04\x02\x00') == []


def test_string_decoder_never_raises_on_bad_text():
    assert eventlog.decode_string(_event(eventlog.EV_IPL, b'grub_cmd: ls\xff\xfe\x00')) == \
        'grub_cmd: ls\\xff\\xfe'
    assert eventlog.decode_string(_event(eventlog.EV_S_CRTM_VERSION,
                                         'v1.2\0'.encode('utf-16-le'))) == 'v1.2'
    assert eventlog.decode_string(_event(eventlog.EV_EFI_ACTION, b'')) == ''
    assert eventlog.decode_event(_event(eventlog.EV_SEPARATOR, b'\x00' * 4)) is None


def test_firmware_blob_decoder():
    blob = eventlog.decode_event(_event(eventlog.EV_EFI_PLATFORM_FIRMWARE_BLOB,
                                        struct.pack('<QQ', 0xFF000000, 0x10000)))
    assert (blob.blob_base, blob.blob_length) == (0xFF000000, 0x10000)
    with pytest.raises(EventLogError, match='BlobLength'):
        eventlog.decode_firmware_blob(_event(eventlog.EV_EFI_PLATFORM_FIRMWARE_BLOB, bytes(12)))
