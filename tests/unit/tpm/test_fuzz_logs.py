"""Property tests: the event log and IMA parsers and decoders raise nothing but their own
error on any input, and parse(marshal(x)) round trips. Bounded to a few seconds."""
import hashlib
import struct

import hypothesis
from hypothesis import strategies as st
import pytest

from tclouds_openstack.attestation.agent import simulated_boot
from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import eventlog
from tclouds_openstack.tpm import ima
from tests.conftest import SHARED_DATA

EventLogError = errors.EventLogError
ImaLogError = errors.ImaLogError

SETTINGS = hypothesis.settings(max_examples=300, deadline=None, database=None,
                               suppress_health_check=[hypothesis.HealthCheck.too_slow])

SEED_LOGS = [simulated_boot.measured_boot(startup_locality=3).log]
if (SHARED_DATA / 'eventlogs').is_dir():
    SEED_LOGS += [p.read_bytes() for p in sorted((SHARED_DATA / 'eventlogs').iterdir())
                  if p.name.startswith(('binary_bios', 'mb_log'))]
SEED_IMA = simulated_boot.ima_measurements(
    simulated_boot.measured_boot().pcrs,
    {'/usr/bin/with space': b'1', '/usr/lib/caf\udce9': b'2'}).text.encode(
        'utf-8', 'surrogateescape')
SEED_IMA += simulated_boot.ima_measurements(
    None, {'/b': b'b'}, template='ima-sig',
    signatures={'/b': bytes.fromhex('030204a1b2c3d40100') + b'\x01' * 32}).text.encode()


def exercise_eventlog(data):
    """Parse, replay and decode every event: only EventLogError may escape."""
    try:
        log = eventlog.parse_eventlog(data)
        for event in log.events:
            eventlog.decode_event(event)
            eventlog.decode_string(event)
        eventlog.replay(log)
    except EventLogError as e:
        assert str(e).startswith('event ')
        return None
    return log


def exercise_ima(data):
    try:
        entries = ima.parse_ima_log(data)
        ima.replay(entries)
        for entry in entries:
            ima.template_hash_matches(entry)
    except ImaLogError as e:
        assert str(e).startswith('line ')
        return None
    return entries


# -- event log --------------------------------------------------------------------------------

@hypothesis.given(st.binary(max_size=600))
@SETTINGS
def test_eventlog_random_bytes(data):
    exercise_eventlog(data)


@hypothesis.given(st.binary(max_size=400))
@SETTINGS
def test_eventlog_random_records_after_a_valid_spec_id(data):
    exercise_eventlog(eventlog.marshal_spec_id(('sha1', 'sha256')) + data)


@hypothesis.given(st.sampled_from(SEED_LOGS), st.data())
@SETTINGS
def test_eventlog_truncated_valid_logs(log, data):
    cut = data.draw(st.integers(min_value=0, max_value=len(log)))
    parsed = exercise_eventlog(log[:cut])
    if parsed is not None:     # cut on a record boundary: a prefix of the full log
        full = eventlog.parse_eventlog(log)
        assert parsed.events == full.events[:len(parsed.events)]


@hypothesis.given(st.sampled_from(SEED_LOGS), st.data())
@SETTINGS
def test_eventlog_bit_flipped_valid_logs(log, data):
    flips = data.draw(st.lists(st.integers(min_value=0, max_value=len(log) * 8 - 1),
                               min_size=1, max_size=4))
    mutated = bytearray(log)
    for bit in flips:
        mutated[bit // 8] ^= 1 << (bit % 8)
    exercise_eventlog(bytes(mutated))


@hypothesis.given(st.sampled_from(SEED_LOGS), st.data())
@SETTINGS
def test_eventlog_oversized_size_fields(log, data):
    parsed = eventlog.parse_eventlog(log)
    event = data.draw(st.sampled_from(parsed.events[1:]))
    size_offset = (event.offset + 12 + sum(2 + len(d) for d in event.digests.values()))
    value = data.draw(st.sampled_from([0xFFFFFFFF, 0x80000000, len(log), len(log) + 1]))
    mutated = bytearray(log)
    mutated[size_offset:size_offset + 4] = struct.pack('<I', value)
    with pytest.raises(EventLogError) as info:
        eventlog.parse_eventlog(bytes(mutated))
    assert info.value.index == event.index and info.value.offset == event.offset


@hypothesis.given(st.sampled_from(sorted(eventlog.EVENT_TYPE_NAMES)), st.binary(max_size=120))
@SETTINGS
def test_event_data_decoders_on_random_data(event_type, data):
    event = eventlog.Event(3, 99, 0, event_type, {}, data)
    try:
        eventlog.decode_event(event)
    except EventLogError as e:
        assert (e.index, e.offset) == (3, 99)
    # strings decode to text whatever the bytes (non-UTF-8, odd-length UTF-16, ...)
    assert isinstance(eventlog.decode_string(event), str)
    assert isinstance(eventlog.device_path_file_names(data), list)


U64 = st.one_of(st.integers(min_value=0, max_value=64),
                st.integers(min_value=0, max_value=2 ** 64 - 1))


@hypothesis.given(U64, U64, st.binary(max_size=80))
@SETTINGS
def test_variable_and_image_decoders_with_oversized_length_fields(first, second, tail):
    variable = bytes(16) + struct.pack('<QQ', first, second) + tail
    image = struct.pack('<QQQQ', 0, first, 0, second) + tail
    for etype, data in ((eventlog.EV_EFI_VARIABLE_BOOT, variable),
                        (eventlog.EV_EFI_BOOT_SERVICES_APPLICATION, image)):
        try:
            decoded = eventlog.decode_event(eventlog.Event(1, 2, 0, etype, {}, data))
        except EventLogError as e:
            assert (e.index, e.offset) == (1, 2)
            continue
        if etype == eventlog.EV_EFI_VARIABLE_BOOT:
            assert len(decoded.unicode_name_bytes) == 2 * first
            assert len(decoded.variable_data) == second
        else:
            assert len(decoded.device_path) == second


BANK_SETS = st.sampled_from([('sha1',), ('sha256',), ('sha1', 'sha256'),
                             ('sha1', 'sha256', 'sha384', 'sha512')])


@st.composite
def event_logs(draw):
    banks = draw(BANK_SETS)
    events = []
    for _ in range(draw(st.integers(min_value=0, max_value=8))):
        pcr = draw(st.integers(min_value=0, max_value=23))
        etype = draw(st.sampled_from(sorted(eventlog.EVENT_TYPE_NAMES) + [0x1234]))
        payload = draw(st.binary(max_size=60))
        events.append(eventlog.new_event(pcr, etype, payload, banks))
    return banks, events


@hypothesis.given(event_logs())
@SETTINGS
def test_eventlog_marshal_parse_round_trip(banks_events):
    banks, events = banks_events
    data = eventlog.marshal_eventlog(banks, events)
    log = eventlog.parse_eventlog(data)
    assert log.spec_id.banks == banks
    assert [(e.pcr_index, e.event_type, e.digests, e.event_data) for e in log.events[1:]] == [
        (e.pcr_index, e.event_type, e.digests, e.event_data) for e in events]
    assert eventlog.marshal_eventlog(banks, log.events) == data
    exercise_eventlog(data)


# -- IMA --------------------------------------------------------------------------------------

@hypothesis.given(st.binary(max_size=400))
@SETTINGS
def test_ima_random_bytes(data):
    exercise_ima(data)


@hypothesis.given(st.text(max_size=300))
@SETTINGS
def test_ima_random_text(text):
    exercise_ima(text)


@hypothesis.given(st.lists(st.sampled_from([b'10', b' ', b'ima-ng', b'ima-sig', b'ima', b'ima-buf',
                                            b'sha256:', b'sha1:', b'00' * 20, b'ab' * 32, b'\n',
                                            b'/p', b'\xff', b'03020400000000', b'\x00']),
                           max_size=30))
@SETTINGS
def test_ima_token_soup(tokens):
    exercise_ima(b''.join(tokens))


@hypothesis.given(st.data())
@SETTINGS
def test_ima_truncated_and_bit_flipped(data):
    cut = data.draw(st.integers(min_value=0, max_value=len(SEED_IMA)))
    exercise_ima(SEED_IMA[:cut])
    mutated = bytearray(SEED_IMA)
    for bit in data.draw(st.lists(st.integers(min_value=0, max_value=len(SEED_IMA) * 8 - 1),
                                  min_size=1, max_size=4)):
        mutated[bit // 8] ^= 1 << (bit % 8)
    exercise_ima(bytes(mutated))


PATHS = st.binary(min_size=1, max_size=80).filter(
    lambda b: not any(c in b for c in b'\n\r\x00')).map(
        lambda b: b.decode('utf-8', 'surrogateescape'))
DIGESTS = st.sampled_from(['sha1', 'sha256', 'sha512']).flatmap(
    lambda alg: st.tuples(st.just(alg), st.binary(min_size=hashlib.new(alg).digest_size,
                                                  max_size=hashlib.new(alg).digest_size)))


@st.composite
def ima_entries(draw):
    template = draw(st.sampled_from(ima.TEMPLATES))
    alg, digest = draw(DIGESTS)
    path = draw(PATHS)
    if template == 'ima':
        alg, digest = 'sha1', draw(st.binary(min_size=20, max_size=20))
        path = path.encode('utf-8', 'surrogateescape')[:255].decode('utf-8', 'surrogateescape')
        hypothesis.assume(path)
    signature = buffer = None
    if template == 'ima-sig':
        signature = draw(st.one_of(st.none(), st.binary(min_size=9, max_size=40).map(
            lambda b: b'\x03\x02' + b)))
    if template == 'ima-buf':
        buffer = draw(st.binary(max_size=40))
    return ima.make_entry(path, digest, alg, template, signature=signature, buffer=buffer,
                          pcr=draw(st.sampled_from([10, 10, 11])),
                          violation=draw(st.integers(0, 9)) == 0)


@hypothesis.given(st.lists(ima_entries(), max_size=8))
@SETTINGS
def test_ima_marshal_parse_round_trip(entries):
    text = ima.marshal(entries)
    parsed = ima.parse_ima_log(text)
    for number, (got, want) in enumerate(zip(parsed, entries), 1):
        assert got.line == number
        # an empty ima-buf buffer reads back as None, like a missing signature
        assert got.__class__(**{**vars(got), 'line': 0, 'buffer': got.buffer or b''}) == \
            want.__class__(**{**vars(want), 'buffer': want.buffer or b''})
    assert len(parsed) == len(entries)
    assert ima.replay(parsed) == ima.replay(entries)
    assert parse_bytes_equals_parse_text(text)


def parse_bytes_equals_parse_text(text):
    return ima.parse_ima_log(text.encode('utf-8', 'surrogateescape')) == ima.parse_ima_log(text)
