"""Measured boot: a parsed UEFI event log against a measured-boot policy engine.

The engines are Keylime's (``keylime/mba/elchecking``), chosen per policy
(:attr:`~.policy.Policy.mb_engine`): ``accept-all`` accepts every log, ``reject-all``
refuses every log, and ``example`` checks the log against the reference state that
``keylime-policy create measured-boot`` writes, as Keylime's ``example.py`` does:

- **every event is accounted for**: each (PCR, event type) has a rule, and an event no
  rule accounts for is untrusted (Keylime's dispatcher). Firmware, boot loader and kernel
  measurements are matched against the reference state *as sequences*: exactly one S-CRTM
  version and the listed platform firmware blobs in order (PCR 0); exactly shim, grub and
  the kernel (the kernel may be measured twice) as PCR 4 boot applications (shim and grub
  without Secure Boot); exactly one kernel and one initrd read by grub (PCR 9) and one
  kernel command line (PCR 8). An extra boot application, kernel or initrd is named;
- **every measurement of a value the engine reads agrees**: SecureBoot, PK, KEK, db, dbx,
  vendor_db (PCR 7) and the MOK lists (PCR 14) are checked at each measurement, never
  "the last one" (a SecureBoot=1 logged after the firmware's SecureBoot=0 is untrusted);
  the signature databases may be measured once (Keylime's rule);
- **one separator per PCR 0-7** (PFP 3.3.4: 00000000 or FFFFFFFF, the error value
  00000001 is refused as not what the event says): a missing or repeated separator is an
  event the engine cannot account for (Keylime accepts any number);
- **what is read is what was measured**: the data of every event whose content the engine
  reads (variables, separators, EFI actions, grub's commands and kernel command line, the
  MokListTrusted flag) must hash to the event's digest in the appraised bank; other bytes
  in an event (a file path, a device path) are not covered by the TPM, so nothing is
  decided on them alone. Which files grub loaded as kernel and initrd is read from grub's
  own measured commands (``grub_cmd: linux|initrd ...``, PCR 8) as well as from the file
  names, so a second initrd is found under any name. A grub command that loads anything
  else (chainloader, multiboot and its modules, ACPI tables, a device tree, ...) or
  patches memory, MSRs or ports is an unaccounted component by its measured text, whatever
  name the PCR 9 event of the file it read carries;
- **a PCR the engine reads and the log never touches** is at its reset value (checked in
  :mod:`.core`: otherwise the log hides what was measured there).

Pure; returns a list of (check, message) and never raises on log content.
"""
import collections
import dataclasses
import functools
import hashlib
import re
import struct
import uuid

from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import eventlog as el

CHECK = 'measured_boot.policy'
# PCRs a quote must cover for each engine (Keylime Policy.get_relevant_pcrs): the example
# engine reads events of PCRs 0-9 and 14, which are only evidence when the TPM quoted them
ENGINE_PCRS = {'example': tuple(range(10)) + (14,), 'accept-all': (), 'reject-all': ()}

GLOBAL = str(el.EFI_GLOBAL_VARIABLE)
SECURITY_DB = str(el.EFI_IMAGE_SECURITY_DATABASE)
SHIM_LOCK = '605dab50-e046-4300-abb6-3dd810dd8b23'
# EV_EFI_VARIABLE_DRIVER_CONFIG (PCR 7) the example engine reads: Secure Boot state and
# databases (UEFI 2.x 32.4), vendor_db as newer shims log it.
SECURE_BOOT_VARIABLES = {(GLOBAL, 'SecureBoot'), (GLOBAL, 'PK'), (GLOBAL, 'KEK'),
                         (SECURITY_DB, 'db'), (SECURITY_DB, 'dbx'),
                         (SECURITY_DB, 'vendor_db')}
# EV_EFI_VARIABLE_AUTHORITY (PCR 7): the firmware's db entry that verified shim, and shim's.
AUTHORITIES = {(SECURITY_DB, 'db'), (SECURITY_DB, 'vendor_db'), (SHIM_LOCK, 'SbatLevel'),
               (SHIM_LOCK, 'Shim'), (SHIM_LOCK, 'MokListTrusted'), (SHIM_LOCK, 'MokListRT')}
# EV_EFI_ACTION strings by PCR (PFP 10.4.4, Keylime tests.EvEfiActionTest).
EFI_ACTIONS = {
    1: (b'Entering ROM Based Setup',),
    4: (b'Calling EFI Application from Boot Option',
        b'Returning from EFI Application from Boot Option'),
    5: (b'Exit Boot Services Invocation', b'Exit Boot Services Returned with Failure',
        b'Exit Boot Services Returned with Success'),
}
SEPARATORS = (b'\x00' * 4, b'\xff' * 4)
SEPARATOR_PCRS = tuple(range(8))
# events Keylime's engine accepts at most once (OnceTest), and EV_PLATFORM_CONFIG_FLAGS,
# which edk2 measures up to four times
ONCE = {(1, el.EV_CPU_MICROCODE): 1, (1, el.EV_EFI_HANDOFF_TABLES): 1,
        (1, el.EV_EFI_HANDOFF_TABLES2): 1, (5, el.EV_EFI_GPT_EVENT): 1,
        (1, el.EV_PLATFORM_CONFIG_FLAGS): 4}
BOOT_VARIABLE = re.compile(r'BootOrder|Boot[0-9a-fA-F]+')
# grub 2 commands that load a kernel or initrds (grub-core/loader)
KERNEL_COMMANDS = frozenset(['linux', 'linuxefi', 'linux16'])
INITRD_COMMANDS = frozenset(['initrd', 'initrdefi', 'initrd16'])
# grub 2 commands that load something else to run or hand over (grub-core/loader,
# commands/acpi.c, efi/fdt.c, legacycfg.c, efiemu, loadbios) or that change memory, MSRs,
# I/O ports or PCI configuration after the kernel was measured (commands/memrw.c,
# i386/wrmsr.c, iorw.c, setpci.c), or that unload a module (``rmmod tpm`` ends grub's
# measurements: what it loads next is in no log): no reference state accounts for what
# they load or change. Refused by the measured command (its text is bound to the TPM), never by the
# name of the file read in PCR 9, which the digest does not cover.
UNACCOUNTED_COMMANDS = frozenset([
    'chainloader', 'pxechainloader', 'multiboot', 'module', 'multiboot2', 'module2',
    'acpi', 'devicetree', 'xnu_kernel', 'xnu_kernel64', 'xnu_mkext', 'xnu_kext',
    'xnu_kextdir', 'xnu_ramdisk', 'xnu_resume', 'xnu_splash', 'xnu_devprop_load',
    'kfreebsd', 'kfreebsd_loadenv', 'kfreebsd_module', 'kfreebsd_module_elf', 'knetbsd',
    'knetbsd_module', 'knetbsd_module_elf', 'kopenbsd', 'kopenbsd_ramdisk', 'legacy_kernel',
    'legacy_initrd', 'legacy_initrd_nounzip', 'plan9', 'ntldr', 'freedos', 'truecrypt',
    'appleloader', 'loadbios', 'fakebios', 'efiemu_loadcore', 'efiemu_prepare',
    'write_byte', 'write_word', 'write_dword', 'wrmsr', 'outb', 'outw', 'outl', 'setpci',
    'rmmod',
])
GRUB_CMD = b'grub_cmd: '
KERNEL_CMDLINE = b'kernel_cmdline: '
MOK_LISTS = ('MokList', 'MokListX')
ENABLED_VALUES = (b'\x00', b'\x01')
# what the example engine reads from a signature database: X.509 certificates and SHA-256
# image hashes are compared by (owner, data), as Keylime's KeySubset/KeySuperset do
EFI_CERT_X509_GUID = uuid.UUID('a5c059a1-94e4-4aa7-87b5-ab155c2bf072')


@functools.lru_cache(maxsize=256)
def parse_signature_lists(data, field):
    """EFI_SIGNATURE_LIST array (UEFI 2.x, 32.4.1) -> set of (owner GUID, data hex).

    Raises ValueError naming the field and offset. Cached: a fleet shares a few db/dbx
    contents, and a dbx holds hundreds of entries.
    """
    out = set()
    pos = 0
    while pos < len(data):
        if pos + 28 > len(data):
            raise ValueError('%s: EFI_SIGNATURE_LIST header truncated at offset %d' % (field, pos))
        list_size, header_size, sig_size = struct.unpack_from('<III', data, pos + 16)
        end = pos + list_size
        if list_size < 28 or end > len(data) or sig_size < 16 or header_size > list_size - 28:
            raise ValueError('%s: EFI_SIGNATURE_LIST at offset %d has SignatureListSize %d, '
                             'SignatureHeaderSize %d, SignatureSize %d'
                             % (field, pos, list_size, header_size, sig_size))
        entry = pos + 28 + header_size
        if (end - entry) % sig_size:
            raise ValueError('%s: EFI_SIGNATURE_LIST at offset %d is not a whole number of '
                             'signatures' % (field, pos))
        while entry < end:
            owner = str(uuid.UUID(bytes_le=data[entry:entry + 16]))
            out.add((owner, data[entry + 16:entry + sig_size].hex()))
            entry += sig_size
        pos = end
    return frozenset(out)


def _signature_data(data):
    """EFI_SIGNATURE_DATA (UEFI 2.x, 32.4.1): owner GUID, then the signature."""
    if len(data) < 16:
        return None
    return (str(uuid.UUID(bytes_le=data[:16])), data[16:].hex())


def _authority_signatures(data, name):
    """An authority event's EFI_SIGNATURE_DATA (PFP 10.4.3) as a set.

    Some firmware logs a whole signature list instead; an empty set when neither parses.
    """
    try:
        found = parse_signature_lists(data, name)
    except ValueError:
        found = frozenset()
    if not found:
        single = _signature_data(data)
        found = frozenset([single]) if single else frozenset()
    return found


def _text(event):
    """The raw string of an EV_IPL/EV_EFI_ACTION event without its NUL terminator."""
    data = event.event_data
    return data[:-1] if data.endswith(b'\0') else data


@dataclasses.dataclass
class BootRecord:
    """What one log says was booted, gathered once for the engine and for refstate creation.

    Lists hold events in log order; ``problems`` are events the example engine cannot
    account for (unexpected, undecodable, or data that is not what was measured).
    """
    bank: str
    s_crtms: list = dataclasses.field(default_factory=list)
    firmware: list = dataclasses.field(default_factory=list)
    apps: list = dataclasses.field(default_factory=list)
    kernel_files: list = dataclasses.field(default_factory=list)   # PCR 9, as grub read them
    initrds: list = dataclasses.field(default_factory=list)        # PCR 9
    cmdlines: list = dataclasses.field(default_factory=list)       # (event, text), PCR 8
    kernel_loads: list = dataclasses.field(default_factory=list)   # grub_cmd: linux ...
    initrd_loads: list = dataclasses.field(default_factory=list)   # (event, file argument)
    variables: dict = dataclasses.field(
        default_factory=lambda: collections.defaultdict(list))     # name -> [(event, data)]
    authorities: dict = dataclasses.field(
        default_factory=lambda: collections.defaultdict(list))
    mok: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(list))
    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    separators: dict = dataclasses.field(
        default_factory=lambda: collections.defaultdict(list))     # PCR -> [event]
    problems: list = dataclasses.field(default_factory=list)
    command: str = None     # the verb of grub's last measured command, in log order

    def digest(self, event):
        value = event.digests.get(self.bank)
        return value.hex() if value is not None else None

    def __post_init__(self):
        self._new_hash = _hasher(self.bank)

    def measures(self, event, data):
        """Whether ``event``'s digest in the appraised bank is the hash of ``data``."""
        digest = event.digests.get(self.bank)
        return digest is not None and self._new_hash(data).digest() == digest


@functools.lru_cache(maxsize=None)
def _hasher(bank):
    """hashlib's own constructor for ``bank`` (hashlib.new looks it up on every call)."""
    if bank in hashlib.algorithms_guaranteed and hasattr(hashlib, bank):
        return getattr(hashlib, bank)
    return functools.partial(hashlib.new, bank)


# GUIDs repeat across events and boots: one UUID -> str conversion per distinct GUID
_guid_text = functools.lru_cache(maxsize=1024)(str)


def describe(event, bank='sha256'):
    """'event 57 (PCR 9 EV_IPL "/initrd.img", sha256 2142e370...)' for messages."""
    label = ''
    try:
        decoded = el.decode_event(event)
    except errors.EventLogError:
        decoded = None
    if isinstance(decoded, str):
        label = ' ' + _quote(decoded)
    elif isinstance(decoded, el.UefiVariableData):
        label = ' ' + decoded.unicode_name
    elif isinstance(decoded, el.UefiImageLoadEvent) and decoded.file_paths:
        label = ' ' + _quote(decoded.file_paths[-1])
    digest = event.digests.get(bank)
    return 'event %s (PCR %d %s%s, %s %s)' % (
        event.index, event.pcr_index, event.type_name, label, bank,
        digest.hex()[:16] + '...' if digest is not None else 'missing')


def _quote(text, limit=80):
    text = text if len(text) <= limit else text[:limit] + '...'
    return '"%s"' % text.replace('"', '\\"')


_GRUB_OWN_FILE = re.compile(r'/grub[^/]*/.*\.(?:mod|lst)$')


def _pcr9_kind(record, path):
    """kernel, initrd or grub (its own files: config, environment, BLS entries, modules)."""
    if _GRUB_OWN_FILE.search(path):
        return 'grub'
    if record.command in KERNEL_COMMANDS:
        return 'kernel'
    if record.command in INITRD_COMMANDS:
        return 'initrd'
    if '/initrd' in path or '/initramfs' in path:
        return 'initrd'
    if '/vmlinuz' in path:
        return 'kernel'
    if '/loader/entries' in path or '/grub' in path:
        return 'grub'
    return None


def gather(log, bank='sha256'):
    """Walk ``log`` once: a :class:`BootRecord` of the example engine's view of the boot."""
    record = BootRecord(bank)
    for event in log.events[1:]:
        if event.event_type == el.EV_NO_ACTION:
            continue        # never extended (PFP 10.4.5): not a measurement
        try:
            _gather_event(record, event)
        except errors.EventLogError as exc:
            record.problems.append('%s cannot be decoded: %s' % (describe(event, bank), exc))
    missing = [pcr for pcr in SEPARATOR_PCRS if not record.separators.get(pcr)]
    if missing:
        record.problems.append('no EV_SEPARATOR in PCR %s: the firmware ends the pre-OS '
                               'measurements of PCRs 0-7 with one separator each'
                               % ', '.join(str(p) for p in missing))
    return record


def _unexpected(record, event, why='the engine accounts for no such measurement'):
    record.problems.append('unexpected %s: %s' % (describe(event, record.bank), why))


def _unbound(record, event, what):
    record.problems.append('%s: the logged %s is not what was measured (its %s digest '
                           'differs)' % (describe(event, record.bank), what, record.bank))


def _gather_event(record, event):
    pcr, etype = event.pcr_index, event.event_type
    key = (pcr, etype)
    once = ONCE.get(key)
    if once is not None:
        record.counts[key] += 1
        if record.counts[key] > once:
            _unexpected(record, event, 'measured %d times, the engine accepts %d'
                        % (record.counts[key], once))
        return
    if pcr == 8 and etype == el.EV_IPL:     # grub's commands: most of a log's events
        _grub_string(record, event)
        return
    if etype == el.EV_SEPARATOR and pcr <= 7:
        record.separators[pcr].append(event)
        if len(record.separators[pcr]) > 1:
            _unexpected(record, event, 'PCR %d already has its separator (%s): the firmware '
                        'separates the pre-OS measurements of each PCR once'
                        % (pcr, describe(record.separators[pcr][0], record.bank)))
        elif event.event_data not in SEPARATORS:
            _unexpected(record, event, 'a separator holds 00000000 or FFFFFFFF')
        elif not record.measures(event, event.event_data):
            _unbound(record, event, 'separator')
        return
    if etype == el.EV_EFI_ACTION and pcr in EFI_ACTIONS:
        if event.event_data not in EFI_ACTIONS[pcr]:
            _unexpected(record, event, 'no such action is measured in PCR %d' % pcr)
        elif not record.measures(event, event.event_data):
            _unbound(record, event, 'action')
        return
    if pcr == 0 and etype == el.EV_S_CRTM_VERSION:
        record.s_crtms.append(event)
    elif pcr == 0 and etype in (el.EV_EFI_PLATFORM_FIRMWARE_BLOB,
                                el.EV_EFI_PLATFORM_FIRMWARE_BLOB2):
        record.firmware.append(event)
    elif pcr == 1 and etype == el.EV_EFI_VARIABLE_BOOT:
        var = el.decode_efi_variable(event)
        if _guid_text(var.variable_name) != GLOBAL or \
                not BOOT_VARIABLE.fullmatch(var.unicode_name):
            _unexpected(record, event, 'PCR 1 boot variables are BootOrder and Boot####')
    elif pcr == 2 and etype == el.EV_EFI_BOOT_SERVICES_DRIVER:
        pass        # option ROM drivers: Keylime's engine accepts them all
    elif pcr == 4 and etype == el.EV_EFI_BOOT_SERVICES_APPLICATION:
        record.apps.append(event)
    elif pcr == 7 and etype in (el.EV_EFI_VARIABLE_DRIVER_CONFIG,
                                el.EV_EFI_VARIABLE_AUTHORITY):
        var = el.decode_efi_variable(event)
        name = (_guid_text(var.variable_name), var.unicode_name)
        table = (SECURE_BOOT_VARIABLES if etype == el.EV_EFI_VARIABLE_DRIVER_CONFIG
                 else AUTHORITIES)
        if name not in table:
            _unexpected(record, event, 'variable %s %r is not one the engine reads' % name)
        elif not record.measures(event, event.event_data):
            _unbound(record, event, 'variable')
        elif etype == el.EV_EFI_VARIABLE_DRIVER_CONFIG:
            record.variables[name[1]].append((event, var.variable_data))
        else:
            record.authorities[name[1]].append((event, var.variable_data))
    elif pcr == 9 and etype == el.EV_IPL:
        kind = _pcr9_kind(record, el.decode_string(event))
        if kind == 'kernel':
            record.kernel_files.append(event)
        elif kind == 'initrd':
            record.initrds.append(event)
        elif kind is None:
            _unexpected(record, event, 'grub reads its own files, a kernel and an initrd in '
                        'PCR 9')
    elif pcr == 14 and etype == el.EV_IPL:
        name = el.decode_string(event)
        if name == 'MokListTrusted':
            if not any(record.measures(event, v) for v in ENABLED_VALUES):
                _unbound(record, event, 'MokListTrusted flag')
            record.mok[name].append(event)
        elif name in MOK_LISTS:
            record.mok[name].append(event)
        else:
            _unexpected(record, event, 'shim measures MokList, MokListX and MokListTrusted in '
                        'PCR 14')
    else:
        _unexpected(record, event)


def _grub_string(record, event):
    """PCR 8: grub's commands and the kernel command line (grub-core/commands/tpm.c)."""
    text = _text(event)
    if text.startswith(GRUB_CMD):
        prefix = GRUB_CMD
    elif text.startswith(KERNEL_CMDLINE):
        prefix = KERNEL_CMDLINE
    else:
        _unexpected(record, event, 'PCR 8 holds grub_cmd: and kernel_cmdline: strings')
        return
    body = text[len(prefix):]
    # grub hashes the string without its prefix and NUL
    if not record.measures(event, body):
        _unbound(record, event, 'grub string')
        return
    value = body.decode('utf-8', 'backslashreplace')
    if prefix == KERNEL_CMDLINE:
        record.cmdlines.append((event, value))
        return
    words = value.split()
    record.command = words[0] if words else None
    if record.command in UNACCOUNTED_COMMANDS:
        _unexpected(record, event, 'grub ran %s, which loads or changes what runs beyond the '
                    'kernel and initrd the reference state accounts for'
                    % _quote(record.command))
    elif record.command in KERNEL_COMMANDS:
        record.kernel_loads.append(event)
    elif record.command in INITRD_COMMANDS:
        # grub's initrd takes no options: every word is a file it loads (grub-core/loader/
        # linux.c grub_initrd_init; a word it cannot open fails the command)
        record.initrd_loads.extend((event, word) for word in words[1:])


# ------------------------------------------------------------------ the engines
def appraise(log, refstate, engine='example', bank='sha256'):
    """Every failed check of ``log`` (an EventLog) by ``engine`` as [(check, message)].

    ``refstate`` is what :func:`~.policy.parse_mb_refstate` returned for ``engine``;
    ``bank`` the PCR bank the quote covers (the only digests the TPM vouches for).
    """
    if engine == 'accept-all':
        return []
    if engine == 'reject-all':
        return [(CHECK, 'the reject-all engine refuses every boot')]
    if engine != 'example':
        return [(CHECK, 'unknown measured-boot engine %r' % (engine,))]
    if bank != 'sha256':
        return [(CHECK, 'the example engine compares the SHA-256 digests of the reference '
                 'state; appraisal reads the %s bank' % bank)]
    return _Example(gather(log, bank), refstate).failures()


class _Example(object):
    """Keylime's example engine over a gathered boot (see the module docstring)."""

    def __init__(self, record, refstate):
        self.record = record
        self.ref = refstate
        self.out = []

    def fail(self, message):
        self.out.append((CHECK, message))

    def describe(self, event):
        return describe(event, self.record.bank)

    def failures(self):
        for problem in self.record.problems:
            self.fail(problem)
        self.firmware()
        self.secure_boot()
        self.databases()
        self.authorities()
        self.mok_lists()
        self.kernels()
        return self.out

    # PCR 0
    def firmware(self):
        r = self.record
        scrtm = tuple(r.digest(e) for e in r.s_crtms)
        blobs = tuple(r.digest(e) for e in r.firmware)
        if any(scrtm == (ref_scrtm,) and blobs == ref_blobs
               for ref_scrtm, ref_blobs in self.ref.scrtm_and_bios):
            return
        self.fail('S-CRTM version %s and platform firmware %s match no scrtm_and_bios entry '
                  '(one S-CRTM version and the listed firmware blobs, in order)'
                  % (self._events(r.s_crtms), self._events(r.firmware)))

    def _events(self, events):
        return '[%s]' % ', '.join(self.describe(e) for e in events) if events else 'none'

    # PCR 7
    def secure_boot(self):
        expected = self.ref.has_secureboot
        measured = self.record.variables.get('SecureBoot', [])
        states = []
        for event, data in measured:
            if data not in ENABLED_VALUES:
                self.fail('%s: SecureBoot value %s is neither 0 nor 1'
                          % (self.describe(event), data.hex()[:16] or 'empty'))
                continue
            state = data == b'\x01'
            states.append((event, state))
            if state != expected:
                self.fail('%s: SecureBoot is %s, the reference state expects it %s'
                          % (self.describe(event), _on(state), _on(expected)))
        if len({s for _, s in states}) > 1:
            self.fail('SecureBoot measured %d times with conflicting values (%s): every '
                      'measurement must agree' % (len(states), ', '.join(
                          'event %s: %s' % (e.index, _on(s)) for e, s in states)))
        if not measured and expected:
            self.fail('SecureBoot was not measured; the reference state expects it on')

    def databases(self):
        for name in ('PK', 'KEK', 'db', 'dbx', 'vendor_db'):
            expected = getattr(self.ref, name.lower())
            measured = self.record.variables.get(name, [])
            if len(measured) > 1:
                self.fail('Secure Boot variable %s measured %d times (%s): the engine '
                          'accepts one measurement' % (name, len(measured), ', '.join(
                              'event %s' % e.index for e, _ in measured)))
            if not measured:
                if self.ref.has_secureboot and name != 'vendor_db':
                    self.fail('Secure Boot variable %s was not measured' % name)
                continue
            if not self.ref.has_secureboot and not expected:
                continue    # Keylime: without Secure Boot an empty reference accepts any
            for event, data in measured:
                try:
                    found = parse_signature_lists(data, name)
                except ValueError as exc:
                    self.fail('%s: %s' % (self.describe(event), exc))
                    continue
                if name == 'dbx':
                    missing = expected - found
                    if missing:
                        self.fail('%s: dbx lacks %d revocation(s) of the reference state'
                                  % (self.describe(event), len(missing)))
                elif not found <= expected:
                    self.fail('%s: %s holds %d entr%s not in the reference state'
                              % (self.describe(event), name, len(found - expected),
                                 'y' if len(found - expected) == 1 else 'ies'))

    def authorities(self):
        for name, measured in sorted(self.record.authorities.items()):
            if len(measured) > 1:
                events = ', '.join('event %s' % e.index for e, _ in measured)
                self.fail('authority %s measured %d times (%s): the engine accepts one'
                          % (name, len(measured), events))
            for event, data in measured:
                if name == 'MokListTrusted' and data not in ENABLED_VALUES:
                    self.fail('%s: MokListTrusted is neither 0 nor 1' % self.describe(event))
                if name not in ('db', 'vendor_db'):
                    continue
                expected = getattr(self.ref, name)
                if name == 'db' and not self.ref.has_secureboot:
                    continue
                if name == 'vendor_db' and not self.ref.has_secureboot and not expected:
                    continue
                found = _authority_signatures(data, name)
                if not found or not found <= expected:
                    self.fail('%s: boot application verified by a %s certificate not in '
                              'the reference state' % (self.describe(event), name))

    # PCR 14
    def mok_lists(self):
        r = self.record
        for name, key in (('MokList', 'mokdig'), ('MokListX', 'mokxdig'),
                          ('MokListTrusted', None)):
            measured = r.mok.get(name, [])
            digests = {r.digest(e) for e in measured}
            if len(digests) > 1 or (key is None and len(measured) > 1):
                self.fail('%s measured %d times with %s (%s): every measurement must agree'
                          % (name, len(measured), 'conflicting digests' if len(digests) > 1
                             else 'the same digest', ', '.join('event %s' % e.index
                                                               for e in measured)))
            if key is None:
                continue
            expected = getattr(self.ref, key)
            if expected and not measured:
                # the reference says shim measured it: an absent (or renamed) list is not
                # accounted for (Keylime only checks the MokList events it finds)
                self.fail('%s was not measured in PCR 14; the reference state lists its '
                          'digest (%s)' % (name, key))
            for event in measured:
                if r.digest(event) not in expected:
                    self.fail('%s: %s digest is not in %s' % (self.describe(event), name, key))

    # PCR 4, 8, 9
    def kernels(self):
        r = self.record
        if len(r.kernel_loads) > 1:
            self.fail('grub ran %d kernel-loading commands (%s): the reference state '
                      'accounts for one kernel' % (len(r.kernel_loads), ', '.join(
                          self.describe(e) for e in r.kernel_loads)))
        if len(r.initrd_loads) > 1:
            self.fail('grub was told to load %d initrd files (%s): the reference state '
                      'accounts for one initrd' % (len(r.initrd_loads), ', '.join(
                          '%s in event %s' % (_quote(path), e.index)
                          for e, path in r.initrd_loads)))
        candidates = [self._kernel_mismatches(k) for k in self.ref.kernels]
        if any(not c for c in candidates):
            return
        best = min(range(len(candidates)), key=lambda i: len(candidates[i]))
        prefix = ('' if len(candidates) == 1 else
                  'no kernels entry matches; closest kernels[%d]: ' % best)
        for message in candidates[best]:
            self.fail(prefix + message)

    def _kernel_mismatches(self, kernel):
        r = self.record
        out = []
        secure = self.ref.has_secureboot
        roles = [('shim', kernel.shim_authcode_sha256), ('grub', kernel.grub_authcode_sha256)]
        if secure:
            roles.append(('kernel', kernel.kernel_authcode_sha256))
        for i, event in enumerate(r.apps):
            if i < len(roles):
                role, digest = roles[i]
                if r.digest(event) != digest:
                    out.append('PCR 4 boot application %d is %s, the reference %s has sha256 '
                               '%s' % (i + 1, self.describe(event), role, digest[:16] + '...'))
            elif secure and i == len(roles) and r.digest(event) == roles[-1][1]:
                continue    # some firmware measures the kernel twice (Keylime accepts it)
            else:
                out.append('extra boot application %s beyond the reference %s'
                           % (self.describe(event), ', '.join(role for role, _ in roles)))
        for role, digest in roles[len(r.apps):]:
            out.append('no %s was measured as a PCR 4 boot application (reference sha256 %s)'
                       % (role, digest[:16] + '...'))
        out += self._one('initrd', r.initrds, kernel.initrd_plain_sha256)
        out += self._one('kernel', r.kernel_files,
                         None if secure else kernel.vmlinuz_plain_sha256)
        if len(r.cmdlines) != 1:
            out.append('%d kernel command lines measured in PCR 8 (%s): the reference state '
                       'accounts for one' % (len(r.cmdlines), ', '.join(
                           self.describe(e) for e, _ in r.cmdlines) or 'none'))
        elif not kernel.kernel_cmdline.fullmatch(r.cmdlines[0][1]):
            event, text = r.cmdlines[0]
            out.append('%s: kernel command line %s does not match the reference %s'
                       % (self.describe(event), _quote(text, 200),
                          _quote(kernel.kernel_cmdline.pattern, 200)))
        return out

    def _one(self, role, events, digest):
        """Exactly one ``role`` file read by grub in PCR 9, with ``digest`` when given."""
        r = self.record
        if len(events) > 1:
            extra = [e for e in events if r.digest(e) != digest] if digest else events[1:]
            return ['extra %s %s: the reference state accounts for one %s%s'
                    % (role, self.describe(e), role,
                       ' (sha256 %s...)' % digest[:16] if digest else '') for e in extra]
        if not events:
            return ['no %s was measured in PCR 9%s'
                    % (role, ' (reference sha256 %s...)' % digest[:16] if digest else '')]
        if digest and r.digest(events[0]) != digest:
            return ['%s %s is not the reference %s (sha256 %s...)'
                    % (role, self.describe(events[0]), role, digest[:16])]
        return []


def _on(state):
    return 'on' if state else 'off'


# ------------------------------------------------------------------ reference state creation
def signature_list(entries, signature_type=EFI_CERT_X509_GUID):
    """One EFI_SIGNATURE_LIST (UEFI 2.x, 32.4.1) of ``entries``.

    ``entries`` is [(owner GUID str, bytes)], all the same size (UEFI requires it).
    """
    if not entries:
        return b''
    size = 16 + len(entries[0][1])
    body = b''.join(uuid.UUID(owner).bytes_le + data for owner, data in entries)
    return signature_type.bytes_le + struct.pack('<III', 28 + len(body), 0, size) + body


def create_refstate(log, bank='sha256'):
    """A Keylime measured-boot reference state for the boot recorded in ``log``.

    The JSON dict ``keylime-policy create measured-boot`` writes, from an EventLog, for
    the example engine: with Secure Boot the shim, grub and kernel boot applications, without
    it shim and grub plus the kernel file grub read (``vmlinuz_plain_sha256``). A boot it
    cannot describe (no kernel, no initrd ...) gives a reference state the engine refuses as
    incomplete, naming what is missing.

    Raises ValueError when a Secure Boot variable is not a valid signature list.
    """
    record = gather(log, bank)
    digest = record.digest

    def first(name):
        values = record.variables.get(name)
        return values[0][1] if values else None

    secureboot = first('SecureBoot') == b'\x01'

    def sigs(name):
        data = first(name)
        if not secureboot or data is None:
            return []
        return [{'SignatureOwner': owner, 'SignatureData': '0x' + value}
                for owner, value in sorted(parse_signature_lists(data, name))]

    vendor_db = set()
    for _, data in record.authorities.get('vendor_db', []):
        vendor_db |= _authority_signatures(data, 'vendor_db')
    apps = ['0x' + digest(e) for e in record.apps]
    kernel = {'shim_authcode_sha256': apps[0] if apps else None,
              'grub_authcode_sha256': apps[1] if len(apps) > 1 else None,
              'initrd_plain_sha256': '0x' + digest(record.initrds[0]) if record.initrds
              else None,
              'kernel_cmdline': re.escape(record.cmdlines[0][1]) if record.cmdlines
              else None}
    if secureboot:
        kernel['kernel_authcode_sha256'] = apps[2] if len(apps) > 2 else None
    else:
        kernel['vmlinuz_plain_sha256'] = ('0x' + digest(record.kernel_files[0])
                                          if record.kernel_files else None)
    mok = {name: ['0x' + digest(e) for e in events] for name, events in record.mok.items()}
    return {
        'has_secureboot': secureboot,
        'scrtm_and_bios': [{'scrtm': {'sha256': '0x' + digest(e)},
                            'platform_firmware': [{'sha256': '0x' + digest(f)}
                                                  for f in record.firmware]}
                           for e in record.s_crtms[:1]],
        'pk': sigs('PK'), 'kek': sigs('KEK'), 'db': sigs('db'), 'dbx': sigs('dbx'),
        'vendor_db': [{'SignatureOwner': owner, 'SignatureData': '0x' + data}
                      for owner, data in sorted(vendor_db)],
        'mokdig': [{'sha256': d} for d in mok.get('MokList', [])[:1]],
        'mokxdig': [{'sha256': d} for d in mok.get('MokListX', [])[:1]],
        'kernels': [kernel],
    }
