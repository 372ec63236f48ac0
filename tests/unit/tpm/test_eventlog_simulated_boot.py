"""Simulated measured boot (attestation/agent/simulated_boot.py): logs that replay to the
extends it reports, and tampering that shows in the PCRs it should and only those."""
import hashlib
import struct
import uuid

from tclouds_openstack.attestation.agent import simulated_boot
from tclouds_openstack.attestation.appraisal import measured_boot
from tclouds_openstack.tpm import eventlog
from tclouds_openstack.tpm import ima


def fold(extends, banks=('sha1', 'sha256')):
    values = {bank: {} for bank in banks}
    for pcr, digests in extends:
        for bank in banks:
            old = values[bank].get(pcr, bytes(hashlib.new(bank).digest_size))
            values[bank][pcr] = hashlib.new(bank, old + digests[bank]).digest()
    return values


def test_log_replays_to_the_extends_and_pcrs_it_reports():
    boot = simulated_boot.measured_boot()
    log = eventlog.parse_eventlog(boot.log)
    assert log.events == boot.events
    assert fold(boot.extends) == eventlog.replay(log) == boot.pcrs
    assert sorted(boot.pcrs['sha256']) == list(range(10)) + [14]     # 14: shim's MOK lists
    assert all(set(digests) == {'sha1', 'sha256'} for _, digests in boot.extends)


def test_log_holds_what_appraisal_reads():
    boot = simulated_boot.measured_boot(cmdline='root=/dev/vda1 ro quiet')
    decoded = [(e.type_name, eventlog.decode_event(e)) for e in boot.events[1:]]
    names = [d.unicode_name for t, d in decoded if t == 'EV_EFI_VARIABLE_DRIVER_CONFIG']
    assert names == ['SecureBoot', 'PK', 'KEK', 'db', 'dbx']
    apps = [d.file_paths[0] for t, d in decoded if t == 'EV_EFI_BOOT_SERVICES_APPLICATION']
    assert apps == ['\\EFI\\debian\\shimx64.efi', '\\EFI\\debian\\grubx64.efi',
                    '\\vmlinuz-6.1.0-tclouds']
    ipl = [d for t, d in decoded if t == 'EV_IPL']
    assert 'kernel_cmdline: root=/dev/vda1 ro quiet' in ipl
    # grub hashes the command line without its prefix and NUL
    [cmdline_event] = [e for e in boot.events if e.event_data.startswith(b'kernel_cmdline')]
    assert cmdline_event.digests['sha256'] == hashlib.sha256(b'root=/dev/vda1 ro quiet').digest()
    [kernel_file] = [e for e in boot.events if e.pcr_index == 9 and b'vmlinuz' in e.event_data]
    assert kernel_file.digests['sha1'] == hashlib.sha1(simulated_boot.DEFAULT_KERNEL).digest()


def test_tampering_changes_exactly_the_pcrs_that_measure_it():
    good = simulated_boot.measured_boot().pcrs['sha256']

    def changed(**kwargs):
        other = simulated_boot.measured_boot(**kwargs).pcrs['sha256']
        return sorted(i for i in good if good[i] != other[i])

    assert changed(kernel=b'rootkit kernel') == [4, 9]
    assert changed(initrd=b'evil initrd') == [9]
    assert changed(cmdline='root=/dev/vda1 init=/bin/sh') == [8]
    assert changed(firmware=b'old firmware') == [0]
    # without Secure Boot shim does not verify (and measure) the kernel for grub
    assert changed(secure_boot=False) == [4, 7]
    assert changed(grub=b'patched grub') == [4]
    assert changed() == []


def test_startup_locality_3_boot():
    boot = simulated_boot.measured_boot(startup_locality=3)
    assert boot.startup_locality == 3
    assert eventlog.parse_eventlog(boot.log).startup_locality == 3
    plain = simulated_boot.measured_boot()
    # same extends, PCR 0 started at 3 instead of 0
    assert boot.extends == plain.extends
    assert boot.pcrs['sha1'][0] != plain.pcrs['sha1'][0]
    assert boot.pcrs['sha1'][1] == plain.pcrs['sha1'][1]
    start = {'sha1': {0: bytes(19) + b'\x03'}, 'sha256': {0: bytes(31) + b'\x03'}}
    pcr0 = [(p, d) for p, d in boot.extends if p == 0]
    values = start['sha1'][0]
    for _, digests in pcr0:
        values = hashlib.sha1(values + digests['sha1']).digest()
    assert boot.pcrs['sha1'][0] == values


def test_ima_list_starts_with_boot_aggregate_and_replays_to_its_extends():
    boot = simulated_boot.measured_boot()
    files = {'/usr/bin/a': b'a', '/opt/with space/b': b'b'}
    measured = simulated_boot.ima_measurements(boot.pcrs, files)
    entries = ima.parse_ima_log(measured.text)
    assert [e.path for e in entries] == ['boot_aggregate', '/usr/bin/a', '/opt/with space/b']
    aggregate = hashlib.sha256(b''.join(boot.pcrs['sha256'][i] for i in range(10))).digest()
    assert entries[0].file_digest == aggregate
    assert entries[2].file_digest == hashlib.sha256(b'b').digest()
    assert ima.replay(entries) == fold(measured.extends)
    assert all(ima.template_hash_matches(e) for e in entries)


def test_ima_list_can_continue_and_use_ima_sig():
    boot = simulated_boot.measured_boot()
    first = simulated_boot.ima_measurements(boot.pcrs, {'/a': b'a'})
    sig = bytes.fromhex('030204a1b2c3d40100') + b'\x01' * 64
    more = simulated_boot.ima_measurements(None, {'/b': b'b', '/c': b'c'}, template='ima-sig',
                                           signatures={'/b': sig})
    entries = ima.parse_ima_log(first.text + more.text)
    assert [e.signature for e in entries] == [None, None, sig, None]
    assert ima.replay(entries[2:], start=ima.replay(entries[:2])) == fold(
        first.extends + more.extends)


def test_boot_aggregate_of_a_fresh_tpm_is_hash_of_zeros():
    assert ima.boot_aggregate({}) == hashlib.sha256(bytes(320)).digest()
    assert ima.boot_aggregate({}, 'sha1') == hashlib.sha1(bytes(200)).digest()
    boot = simulated_boot.measured_boot()
    assert ima.boot_aggregate(boot.pcrs, 'sha1') == hashlib.sha1(
        b''.join(boot.pcrs['sha1'][i] for i in range(10))).digest()


def test_boot_option_and_secure_boot_variables_are_well_formed_uefi_structures():
    boot = simulated_boot.measured_boot()
    variables = {}
    for event in boot.events[1:]:
        if event.event_type in (eventlog.EV_EFI_VARIABLE_BOOT,
                                eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG,
                                eventlog.EV_EFI_VARIABLE_AUTHORITY):
            var = eventlog.decode_efi_variable(event)
            variables[(event.event_type, var.unicode_name)] = var.variable_data
    # EFI_LOAD_OPTION: Attributes, FilePathListLength, Description, FilePathList (UEFI 3.1.3)
    option = variables[(eventlog.EV_EFI_VARIABLE_BOOT, 'Boot0000')]
    attributes, path_length = struct.unpack_from('<IH', option)
    description = 'debian\0'.encode('utf-16-le')
    assert attributes == 1 and option[6:6 + len(description)] == description
    assert len(option) == 6 + len(description) + path_length
    assert option.endswith(b'\x7f\xff\x04\x00')
    # PK/KEK/db/dbx are EFI_SIGNATURE_LIST arrays; the authority is one db entry
    config = eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG
    for name in ('PK', 'KEK', 'db', 'dbx'):
        assert measured_boot.parse_signature_lists(variables[(config, name)], name)
    db = measured_boot.parse_signature_lists(variables[(config, 'db')], 'db')
    authority = variables[(eventlog.EV_EFI_VARIABLE_AUTHORITY, 'db')]
    owner = str(uuid.UUID(bytes_le=authority[:16]))
    assert len(db) == 2 and (owner, authority[16:].hex()) in db
    assert authority[16:] == b'simulated db certificate (signs shim)'
