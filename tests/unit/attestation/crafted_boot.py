"""Crafted boots for the appraisal tests: the simulated measured boot with events added,
repeated, relabelled or altered, as firmware, a boot loader or an attacker could log them.

Every log is consistent with its own PCRs (the unit tests' soft TPM and the functional
tests' swtpm extend exactly its events), so only the reference state can tell a crafted
boot from the good one (:func:`good_refstate`, made from the unmodified boot). Used by the
unit tests (soft TPM), the swtpm tests and the Keylime differential test.
"""
import dataclasses
import hashlib
import struct
import uuid

from tclouds_openstack.attestation.agent import simulated_boot as sb
from tclouds_openstack.attestation.appraisal import measured_boot
from tclouds_openstack.tpm import eventlog as el

BANKS = sb.DEFAULT_BANKS
ATTACKER_GUID = '2b6e1f6c-0a5f-4c8e-9d5a-5f0e7b1c9a33'


def new(pcr, etype, data, measured=None):
    return el.new_event(pcr, etype, data, BANKS, measured=measured)


def grub_cmd(command):
    return new(8, el.EV_IPL, b'grub_cmd: %s\0' % command.encode(), measured=command.encode())


def kernel_cmdline(text):
    return new(8, el.EV_IPL, b'kernel_cmdline: %s\0' % text.encode(), measured=text.encode())


def grub_file(path, contents):
    return new(9, el.EV_IPL, path.encode() + b'\0', measured=contents)


def application(path, image, location=0x70000000):
    return new(4, el.EV_EFI_BOOT_SERVICES_APPLICATION,
               sb._image_load_event(location, image, path), measured=image)


def variable(name, data, guid=el.EFI_GLOBAL_VARIABLE,
             etype=el.EV_EFI_VARIABLE_DRIVER_CONFIG, measured=None):
    raw = sb._efi_variable(name, data, uuid.UUID(str(guid)))
    return new(7, etype, raw, measured=measured)


def boot_events(**kwargs):
    """The events (Spec ID event excluded) of the default simulated boot."""
    return list(sb.measured_boot(**kwargs).events[1:])


def marshal(events):
    return el.marshal_eventlog(BANKS, events)


def _index(events, pcr, etype, contains=b''):
    for i, event in enumerate(events):
        if event.pcr_index == pcr and event.event_type == etype and contains in \
                event.event_data:
            return i
    raise LookupError((pcr, etype, contains))


def insert(events, after, *added):
    """``events`` with ``added`` right after the first event matching ``after``."""
    i = _index(events, *after) + 1
    return events[:i] + list(added) + events[i:]


def replace(events, which, *added):
    i = _index(events, *which)
    return events[:i] + list(added) + events[i + 1:]


INITRD = (9, el.EV_IPL, sb.INITRD_PATH.encode())
KERNEL_FILE = (9, el.EV_IPL, sb.KERNEL_PATH.encode())
GRUB_APP = (4, el.EV_EFI_BOOT_SERVICES_APPLICATION, 'grubx64'.encode('utf-16-le'))
KERNEL_APP = (4, el.EV_EFI_BOOT_SERVICES_APPLICATION, 'vmlinuz'.encode('utf-16-le'))
CMDLINE = (8, el.EV_IPL, b'kernel_cmdline')
SECURE_BOOT = (7, el.EV_EFI_VARIABLE_DRIVER_CONFIG, 'SecureBoot'.encode('utf-16-le'))
SEPARATOR_7 = (7, el.EV_SEPARATOR, b'')
FIRMWARE = (0, el.EV_EFI_PLATFORM_FIRMWARE_BLOB, b'')
EVIL = b'evil initrd: /bin/sh as init'


def _after_separator_7(events):
    """Index just after PCR 7's separator (where shim and later loaders measure)."""
    for i, event in enumerate(events):
        if event.pcr_index == 7 and event.event_type == el.EV_SEPARATOR:
            return i + 1
    raise LookupError('no PCR 7 separator')


def _late_pcr7(events, *added):
    i = _after_separator_7(events)
    return events[:i] + list(added) + events[i:]


def _first_then(events, name, first_data, guid):
    """``name`` measured twice: ``first_data``, then the good value again.

    The first where the firmware measures it, the second after the PCR 7 separator (what a
    later boot stage could log).
    """
    good = next(e for e in events if e.pcr_index == 7
                and e.event_type == el.EV_EFI_VARIABLE_DRIVER_CONFIG
                and name.encode('utf-16-le') in e.event_data)
    events = replace(events, (7, el.EV_EFI_VARIABLE_DRIVER_CONFIG, name.encode('utf-16-le')),
                     variable(name, first_data, guid))
    return _late_pcr7(events, good)


@dataclasses.dataclass(frozen=True)
class Case:
    """A crafted boot and its reference state.

    ``build`` changes the events of the boot ``boot`` (simulated_boot arguments); the
    reference state is that boot's, changed by ``refstate`` when given. ``needle``: text the
    appraisal's reasons must contain (the component it names).
    """
    needle: str
    build: object
    boot: dict = dataclasses.field(default_factory=dict)
    refstate: object = None
    unlogged: object = None     # events -> those measured into the TPM but left out of the log

    def events(self):
        return self.build(boot_events(**self.boot))

    def log(self):
        events = self.events()
        if self.unlogged:
            left_out = {id(e) for e in self.unlogged(events)}
            events = [e for e in events if id(e) not in left_out]
        return marshal(events)

    def measured(self):
        """[(pcr, {bank: digest})]: what the TPM extends, logged or not, in order."""
        return [(e.pcr_index, dict(e.digests)) for e in self.events()
                if e.event_type != el.EV_NO_ACTION]

    def reference(self):
        document = good_refstate(**self.boot)
        return self.refstate(document) if self.refstate else document


def _relabel(events, old, new_name):
    """The event named ``old`` (PCR 14) logged under ``new_name``, its digest unchanged."""
    i = _index(events, 14, el.EV_IPL, old + b'\0')
    event = events[i]
    return events[:i] + [el.Event(None, None, 14, el.EV_IPL, event.digests,
                                  new_name + b'\0')] + events[i + 1:]


def _unbound(events, which, data):
    """The event ``which`` with its data replaced and its digest kept.

    The log says ``data`` but the TPM measured the original.
    """
    i = _index(events, *which)
    event = events[i]
    return events[:i] + [el.Event(None, None, event.pcr_index, event.event_type,
                                  event.digests, data)] + events[i + 1:]


def _remove(events, which):
    i = _index(events, *which)
    return events[:i] + events[i + 1:]


def _grub_loads(events, command, path, contents):
    """grub runs ``command`` (PCR 8) and reads ``path`` (PCR 9) after the initrd."""
    return insert(events, INITRD, grub_cmd(command), grub_file(path, contents))


def _two_mok_digests(document):
    document['mokdig'] = document['mokdig'] + [
        {'sha256': '0x' + hashlib.sha256(OTHER_MOK_LIST).hexdigest()}]
    return document


OTHER_MOK_LIST = sb.x509_lists(b'second allowed MOK certificate')
MOK_LIST = (14, el.EV_IPL, b'MokList\0')

# Class 1: every measured component is accounted for by the reference state.
EXTRA_COMPONENTS = {
    'second initrd command and file': Case('/initrd-extra.img', lambda e: insert(
        e, INITRD, grub_cmd('initrd /initrd-extra.img'), grub_file('/initrd-extra.img', EVIL))),
    'two initrd files in one command': Case('/extra.img', lambda e: insert(
        replace(e, (8, el.EV_IPL, b'grub_cmd: initrd'),
                grub_cmd('initrd %s /extra.img' % sb.INITRD_PATH)),
        INITRD, grub_file('/extra.img', EVIL))),
    'initrd file under a grub directory': Case('/boot/grub/initrd-2.img', lambda e: insert(
        e, INITRD, grub_file('/boot/grub/initrd-2.img', EVIL))),
    'extra boot application': Case('evil.efi', lambda e: insert(
        e, GRUB_APP, application('\\EFI\\evil.efi', b'evil efi application'))),
    'second kernel application': Case('vmlinuz-evil', lambda e: insert(
        e, KERNEL_APP, application('\\vmlinuz-evil', b'rootkit kernel'))),
    'second kernel command and file': Case('/vmlinuz-evil', lambda e: insert(
        e, INITRD, grub_cmd('linux /vmlinuz-evil init=/bin/sh'),
        grub_file('/vmlinuz-evil', b'rootkit kernel'))),
    'second kernel command line': Case('init=/bin/sh', lambda e: insert(
        e, CMDLINE, kernel_cmdline('root=/dev/vda1 init=/bin/sh'))),
    'extra firmware blob': Case('EV_EFI_PLATFORM_FIRMWARE_BLOB', lambda e: insert(
        e, FIRMWARE, new(0, el.EV_EFI_PLATFORM_FIRMWARE_BLOB, struct.pack('<QQ', 0xFE000000, 9),
                         measured=b'implant 9'))),
    'boot services driver in PCR 4': Case('EV_EFI_BOOT_SERVICES_DRIVER', lambda e: insert(
        e, GRUB_APP, new(4, el.EV_EFI_BOOT_SERVICES_DRIVER,
                         sb._image_load_event(0x60000000, b'driver', '\\EFI\\drv.efi'),
                         measured=b'driver'))),
    'boot loader string in PCR 4': Case('EV_IPL', lambda e: insert(
        e, GRUB_APP, new(4, el.EV_IPL, b'/boot/evil\0', measured=b'evil'))),
    'measurement in PCR 12': Case('PCR 12', lambda e: insert(
        e, CMDLINE, new(12, el.EV_IPL, b'systemd-stub extra\0', measured=b'extra'))),
    'post code in PCR 0': Case('EV_POST_CODE', lambda e: insert(
        e, FIRMWARE, new(0, el.EV_POST_CODE, b'ACPI DATA', measured=b'acpi implant'))),
    # grub loaders other than linux/initrd: what they load is read from a grub directory,
    # so a file name never tells it apart from grub's own files; the measured command does
    'ACPI table loaded by grub from its directory': Case('"acpi"', lambda e: _grub_loads(
        e, 'acpi /boot/grub/dsdt.aml', '/boot/grub/dsdt.aml', b'evil AML')),
    'device tree loaded by grub': Case('"devicetree"', lambda e: _grub_loads(
        e, 'devicetree /boot/grub/board.dtb', '/boot/grub/board.dtb', b'evil dtb')),
    'hypervisor and dom0 booted through multiboot2': Case('"multiboot2"', lambda e: _grub_loads(
        _grub_loads(e, 'multiboot2 /boot/grub/xen.gz', '/boot/grub/xen.gz', b'xen'),
        'module2 /boot/grub/dom0', '/boot/grub/dom0', b'rootkit kernel')),
    'EFI image chainloaded by grub': Case('"chainloader"', lambda e: _grub_loads(
        e, 'chainloader /boot/grub/x86_64-efi/evil.mod', '/boot/grub/x86_64-efi/evil.mod',
        b'evil efi application')),
    'kernel patched in memory after it was measured': Case('"write_dword"', lambda e: insert(
        e, CMDLINE, grub_cmd('write_dword 0x1000000 0x90909090'))),
    'measurements switched off before a second kernel': Case('"rmmod"', lambda e: insert(
        e, CMDLINE, grub_cmd('rmmod tpm'))),
    'second separator in PCR 4': Case('already has its separator', lambda e: insert(
        e, GRUB_APP, new(4, el.EV_SEPARATOR, b'\0\0\0\0'))),
    'no separator in PCR 7': Case('no EV_SEPARATOR in PCR 7', lambda e: _remove(
        e, SEPARATOR_7)),
}


def _pcr14(events):
    return [e for e in events if e.pcr_index == 14]


def _no_mok_digests(document):
    document['mokdig'] = []
    document['mokxdig'] = []
    return document


# Measured into the TPM, left out of the log: a PCR the engine reads that the log never
# touches must be at its reset value (the log replays to every PCR it does touch).
UNLOGGED = {
    'MOK lists measured but not logged, reference without MOK digests': Case(
        'PCR 14', lambda e: e, refstate=_no_mok_digests, unlogged=_pcr14),
    'attacker MOK list measured but not logged': Case(
        'PCR 14', lambda e: replace(e, MOK_LIST, new(14, el.EV_IPL, b'MokList\0',
                                                     measured=sb.x509_lists(b'attacker MOK'))),
        refstate=_no_mok_digests, unlogged=_pcr14),
}

# Class 2: every measurement of a value the engine reads agrees (with the others and with
# the reference), and what the log says is what the TPM measured.
CONFLICTING_VALUES = {
    'SecureBoot=1 logged after the firmware\'s SecureBoot=0': Case('SecureBoot', lambda e: (
        _late_pcr7(replace(e, SECURE_BOOT, variable('SecureBoot', b'\x00')),
                   variable('SecureBoot', b'\x01')))),
    'SecureBoot=0 logged after SecureBoot=1': Case('SecureBoot', lambda e: _late_pcr7(
        e, variable('SecureBoot', b'\x00'))),
    'SecureBoot=1 under another GUID after SecureBoot=0': Case('SecureBoot', lambda e: (
        _late_pcr7(replace(e, SECURE_BOOT, variable('SecureBoot', b'\x00')),
                   variable('SecureBoot', b'\x01', guid=ATTACKER_GUID)))),
    'attacker PK, then the reference PK': Case('PK', lambda e: _first_then(
        e, 'PK', sb.x509_lists(b'attacker PK certificate'), el.EFI_GLOBAL_VARIABLE)),
    'attacker KEK, then the reference KEK': Case('KEK', lambda e: _first_then(
        e, 'KEK', sb.x509_lists(b'attacker KEK certificate'), el.EFI_GLOBAL_VARIABLE)),
    'attacker db, then the reference db': Case('db', lambda e: _first_then(
        e, 'db', sb.x509_lists(b'attacker db certificate'), el.EFI_IMAGE_SECURITY_DATABASE)),
    'empty dbx, then the reference dbx': Case('dbx', lambda e: _first_then(
        e, 'dbx', b'', el.EFI_IMAGE_SECURITY_DATABASE)),
    'MokList measured twice with different allowed digests': Case('MokList', lambda e: insert(
        e, MOK_LIST, new(14, el.EV_IPL, b'MokList\0', measured=OTHER_MOK_LIST)),
        refstate=_two_mok_digests),
    'SecureBoot data 1 over a measured 0': Case('SecureBoot', lambda e: replace(
        e, SECURE_BOOT, variable('SecureBoot', b'\x01',
                                 measured=sb._efi_variable('SecureBoot', b'\x00')))),
    'kernel command line text over another measured one': Case(
        'kernel_cmdline', lambda e: _unbound(
            replace(e, CMDLINE, kernel_cmdline('root=/dev/vda1 init=/bin/sh')), CMDLINE,
            b'kernel_cmdline: %s\0' % sb.DEFAULT_CMDLINE.encode())),
    'initrd command text hiding a second initrd': Case('grub_cmd', lambda e: insert(
        _unbound(replace(e, (8, el.EV_IPL, b'grub_cmd: initrd'),
                         grub_cmd('initrd %s /extra.img' % sb.INITRD_PATH)),
                 (8, el.EV_IPL, b'grub_cmd: initrd'),
                 b'grub_cmd: initrd %s\0' % sb.INITRD_PATH.encode()),
        INITRD, grub_file('/boot/grub/fonts/unicode.pf2', EVIL))),
    'enrolled MOK list logged as MokListTrusted (older shim)': Case('MokList', lambda e: (
        _relabel(replace(e, MOK_LIST, new(14, el.EV_IPL, b'MokList\0',
                                          measured=sb.x509_lists(b'attacker MOK'))),
                 b'MokList', b'MokListTrusted')), boot={'mok_list_trusted': False}),
    'dbx not measured': Case('dbx', lambda e: _remove(
        e, (7, el.EV_EFI_VARIABLE_DRIVER_CONFIG, 'dbx'.encode('utf-16-le')))),
}

# What real firmware, shim and grub also do: every engine accepts these.
ACCOUNTED_FOR = {
    'kernel measured twice': Case('', lambda e: insert(e, KERNEL_APP, next(
        x for x in e if x.pcr_index == 4 and 'vmlinuz'.encode('utf-16-le') in x.event_data))),
    'grub module read while loading the kernel': Case('', lambda e: insert(
        e, (8, el.EV_IPL, b'grub_cmd: linux'),
        grub_file('(hd0,gpt2)/grub2/x86_64-efi/linux.mod', b'module'))),
    'grub configuration read': Case('', lambda e: insert(
        e, (8, el.EV_IPL, b'grub_cmd: linux'), grub_cmd('configfile /boot/grub/grub.cfg'),
        grub_file('/boot/grub/grub.cfg', b'menuentry'))),
    'SecureBoot=1 measured again': Case('', lambda e: _late_pcr7(
        e, variable('SecureBoot', b'\x01'))),
    'dbx with revoked certificates beside the hashes': Case('', lambda e: replace(
        e, (7, el.EV_EFI_VARIABLE_DRIVER_CONFIG, 'dbx'.encode('utf-16-le')),
        variable('dbx', sb.DEFAULT_DBX + sb.x509_lists(b'revoked CA certificate'),
                 el.EFI_IMAGE_SECURITY_DATABASE))),
    'vendor event that is not a measurement': Case('', lambda e: insert(
        e, FIRMWARE, el.Event(None, None, 0, el.EV_NO_ACTION, {
            bank: bytes(len(d)) for bank, d in e[0].digests.items()},
            b'SP800-155 Event\0' + bytes(40)))),
}


def crafted(builder, **boot_kwargs):
    """The log bytes of the default boot changed by ``builder`` (events -> events)."""
    return marshal(builder(boot_events(**boot_kwargs)))


def good_refstate(**boot_kwargs):
    """The Keylime reference state of the unmodified boot (JSON dict)."""
    return measured_boot.create_refstate(el.parse_eventlog(sb.measured_boot(**boot_kwargs).log))
