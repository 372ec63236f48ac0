"""The measurements a simulated compute host makes while it boots, for swtpm-backed hosts.

A real host's firmware, boot loader and kernel extend PCRs and write the TCG2 event log and
the IMA list; a simulated host (swtpm) has no firmware, so this module computes what they
would have recorded. It is pure (no I/O, no TPM): it returns the log bytes and the ordered
extends ``[(pcr, {bank: digest})]``; the caller applies the extends to the TPM (helper
``tpm_device``/tpm2-tools) and serves the log. Changing the kernel, initrd, command line or
a file's contents gives a "tampered" host whose PCRs and logs differ accordingly.

What is recorded follows the TCG PC Client Platform Firmware Profile (PFP) 3.1 section
3.3.4 PCR usage and grub 2's TPM conventions:

- PCR 0: (StartupLocality), S-CRTM version, the platform firmware blob;
- PCR 1: BootOrder and Boot0000 (an EFI_LOAD_OPTION, UEFI 2.x 3.1.3) variables;
- PCR 7: SecureBoot, then PK, KEK, db (EFI_SIGNATURE_LISTs of X.509 entries, one list per
  certificate) and dbx (one list of SHA-256 entries), UEFI 2.x 32.4.1; with Secure Boot
  also the authority that verified the boot loader: the one db EFI_SIGNATURE_DATA, not the
  whole db (PFP 10.4.3);
- PCR 4: "Calling EFI Application from Boot Option", then shim, grub and (with Secure Boot,
  verified through shim) kernel images;
- PCR 0-7: EV_SEPARATOR;
- PCR 14: shim's MokList, MokListX and MokListTrusted (EV_IPL named by the variable, the
  digest of its contents);
- PCR 8: grub's commands and the kernel command line as EV_IPL, hashed *without* the
  ``grub_cmd: ``/``kernel_cmdline: `` prefix and NUL (what grub extends);
- PCR 9: the kernel and initrd files grub read, as EV_IPL.

Certificates are opaque bytes (a simulation does not sign anything); image digests are
plain hashes of the bytes given (a real firmware hashes the PE
Authenticode image); a simulation only needs them to be deterministic and sensitive to
change. The IMA list starts with ``boot_aggregate``: SHA-256 over PCR 0-9 of the SHA-256
bank (ima-ng, Linux >= 5.8), then one entry per file.
"""
import dataclasses
import hashlib
import struct
import uuid

from tclouds_openstack.attestation.appraisal import measured_boot as mb
from tclouds_openstack.tpm import eventlog
from tclouds_openstack.tpm import ima

DEFAULT_BANKS = ('sha1', 'sha256')
DEFAULT_FIRMWARE = b'simulated UEFI firmware volume (tclouds-openstack)'
DEFAULT_SHIM = b'simulated shimx64.efi'
DEFAULT_GRUB = b'simulated grubx64.efi'
DEFAULT_KERNEL = b'simulated vmlinuz-6.1.0-tclouds'
DEFAULT_INITRD = b'simulated initrd.img-6.1.0-tclouds'
DEFAULT_CMDLINE = 'BOOT_IMAGE=/vmlinuz-6.1.0-tclouds root=/dev/vda1 ro ima_policy=tcb'
KERNEL_PATH = '/vmlinuz-6.1.0-tclouds'
INITRD_PATH = '/initrd.img-6.1.0-tclouds'
DEFAULT_FILES = {
    '/usr/bin/nova-compute': b'#!/usr/bin/python3\n# nova-compute\n',
    '/usr/bin/qemu-system-x86_64': b'\x7fELF qemu',
    '/usr/lib/x86_64-linux-gnu/libvirt.so.0': b'\x7fELF libvirt',
    '/etc/nova/nova.conf': b'[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n',
}

# SignatureOwner of the simulated keys (any GUID; real ones name the vendor)
SIGNATURE_OWNER = '6f1e2b0c-7d4a-4c1e-9e53-7463c6f0e0a1'
EFI_CERT_SHA256_GUID = uuid.UUID('c1c41626-504c-4092-aca9-41f936934328')

_SEPARATOR = b'\x00\x00\x00\x00'
_CALLING_BOOT_OPTION = b'Calling EFI Application from Boot Option'


@dataclasses.dataclass(frozen=True)
class MeasuredBoot:
    """What the firmware and boot loader of one boot recorded.

    ``log`` is binary_bios_measurements; ``events`` its parsed events (Spec ID event
    included); ``extends`` the PCR_Extend calls in order; ``pcrs`` the values they give
    (``{bank: {pcr: bytes}}``, from a TPM started at ``startup_locality``).
    """

    log: bytes
    events: list
    extends: list
    pcrs: dict
    startup_locality: int


@dataclasses.dataclass(frozen=True)
class ImaMeasurements:
    """An IMA list: ``text`` (ascii_runtime_measurements), ``entries``, ``extends``."""

    text: str
    entries: list
    extends: list


def _efi_variable(name, data, guid=eventlog.EFI_GLOBAL_VARIABLE):
    """UEFI_VARIABLE_DATA (PFP 10.4.3)."""
    unicode_name = name.encode('utf-16-le')
    return (guid.bytes_le + struct.pack('<QQ', len(name), len(data)) + unicode_name + data)


def _device_path(file_path):
    """A Media File Path node (UEFI 2.x 10.3.5.4) and the End of Hardware Device Path node."""
    path = (file_path + '\0').encode('utf-16-le')
    return struct.pack('<BBH', 0x04, 0x04, 4 + len(path)) + path + b'\x7f\xff\x04\x00'


def _load_option(description, file_path, active=True):
    """EFI_LOAD_OPTION (UEFI 2.x 3.1.3): Attributes, FilePathListLength, Description, path."""
    device_path = _device_path(file_path)
    return (struct.pack('<IH', 1 if active else 0, len(device_path))
            + (description + '\0').encode('utf-16-le') + device_path)


def x509_lists(*certificates):
    """PK/KEK/db contents: one EFI_SIGNATURE_LIST per certificate (their sizes differ)."""
    return b''.join(mb.signature_list([(SIGNATURE_OWNER, c)]) for c in certificates)


def sha256_list(*digests):
    """dbx contents: one EFI_SIGNATURE_LIST of SHA-256 image digests."""
    return mb.signature_list([(SIGNATURE_OWNER, d) for d in digests], EFI_CERT_SHA256_GUID)


def _first_signature(signature_lists):
    """The first EFI_SIGNATURE_DATA (owner GUID + data) of an EFI_SIGNATURE_LIST array."""
    if len(signature_lists) < 28:
        raise ValueError('db: %d bytes hold no EFI_SIGNATURE_LIST (UEFI 2.x 32.4.1)'
                         % len(signature_lists))
    list_size, header_size, size = struct.unpack_from('<III', signature_lists, 16)
    start = 28 + header_size
    if size < 16 or start + size > min(list_size, len(signature_lists)):
        raise ValueError('db: the first EFI_SIGNATURE_LIST holds no signature')
    return signature_lists[start:start + size]


def _image_load_event(location, image, file_path):
    """UEFI_IMAGE_LOAD_EVENT (PFP 10.4.2) for an image loaded at ``location``."""
    device_path = _device_path(file_path)
    return struct.pack('<QQQQ', location, len(image), 0, len(device_path)) + device_path


# valid EFI_SIGNATURE_LIST contents, so tpm2_eventlog and Keylime decode them
DEFAULT_PK = x509_lists(b'simulated PK certificate')
DEFAULT_KEK = x509_lists(b'simulated KEK certificate')
DEFAULT_DB = x509_lists(b'simulated db certificate (signs shim)', b'simulated db certificate 2')
DEFAULT_DBX = sha256_list(hashlib.sha256(b'simulated revoked boot loader').digest())
# shim's Machine Owner Key lists (MokList: keys the owner enrolled; MokListX: revoked)
DEFAULT_MOK_LIST = x509_lists(b'simulated MOK certificate')
DEFAULT_MOK_LIST_X = sha256_list(hashlib.sha256(b'simulated revoked module').digest())


def measured_boot(kernel=DEFAULT_KERNEL, initrd=DEFAULT_INITRD, cmdline=DEFAULT_CMDLINE,
                  firmware=DEFAULT_FIRMWARE, grub=DEFAULT_GRUB, shim=DEFAULT_SHIM,
                  secure_boot=True, pk=DEFAULT_PK, kek=DEFAULT_KEK,
                  db=DEFAULT_DB, dbx=DEFAULT_DBX, banks=DEFAULT_BANKS, startup_locality=None,
                  crtm_version='1.0', mok_list=DEFAULT_MOK_LIST, mok_list_x=DEFAULT_MOK_LIST_X,
                  mok_list_trusted=True):
    """The UEFI event log and PCR extends of one measured boot.

    ``startup_locality`` None omits the StartupLocality event; 0 or 3 records it (3 means
    the TPM must be started from locality 3 for its PCR 0 to match ``pcrs``). ``pk``,
    ``kek``, ``db`` and ``dbx`` are the variables' contents, EFI_SIGNATURE_LIST arrays (see
    :func:`x509_lists`, :func:`sha256_list`); with Secure Boot the first db entry is the
    one that verified the boot loader. shim (unless ``shim`` is None) measures ``mok_list``
    and ``mok_list_x`` to PCR 14 and, like shim 15.3 and later, MokListTrusted (``False``
    leaves it out, as older shims do).
    """
    new = eventlog.new_event
    efi_db = eventlog.EFI_IMAGE_SECURITY_DATABASE
    boot_option = _load_option('debian', '\\EFI\\debian\\shimx64.efi')
    events = []
    if startup_locality is not None:
        events.append(eventlog.startup_locality_event(startup_locality, banks))
    events += [
        new(0, eventlog.EV_S_CRTM_VERSION, (crtm_version + '\0').encode('utf-16-le'), banks),
        new(0, eventlog.EV_EFI_PLATFORM_FIRMWARE_BLOB,
            struct.pack('<QQ', 0xFF000000, len(firmware)), banks, measured=firmware),
        new(1, eventlog.EV_EFI_VARIABLE_BOOT, _efi_variable('BootOrder', b'\x00\x00'), banks),
        new(1, eventlog.EV_EFI_VARIABLE_BOOT, _efi_variable('Boot0000', boot_option), banks),
        new(7, eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG,
            _efi_variable('SecureBoot', bytes([1 if secure_boot else 0])), banks),
        new(7, eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG, _efi_variable('PK', pk), banks),
        new(7, eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG, _efi_variable('KEK', kek), banks),
        new(7, eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG, _efi_variable('db', db, efi_db), banks),
        new(7, eventlog.EV_EFI_VARIABLE_DRIVER_CONFIG, _efi_variable('dbx', dbx, efi_db), banks),
        new(4, eventlog.EV_EFI_ACTION, _CALLING_BOOT_OPTION, banks),
    ]
    events += [new(pcr, eventlog.EV_SEPARATOR, _SEPARATOR, banks) for pcr in range(8)]
    if secure_boot:
        # the db entry that verified the first boot application: one EFI_SIGNATURE_DATA
        # (owner GUID + certificate), PFP 10.4.3, PCR 7
        events.append(new(7, eventlog.EV_EFI_VARIABLE_AUTHORITY,
                          _efi_variable('db', _first_signature(db), efi_db), banks))
    location = 0x7E000000
    if shim is not None:
        events.append(new(4, eventlog.EV_EFI_BOOT_SERVICES_APPLICATION,
                          _image_load_event(location, shim, '\\EFI\\debian\\shimx64.efi'),
                          banks, measured=shim))
        location -= 0x1000000
        # shim measures the MOK lists' contents under their names (shim mok.c)
        events += [new(14, eventlog.EV_IPL, b'MokList\0', banks, measured=mok_list),
                   new(14, eventlog.EV_IPL, b'MokListX\0', banks, measured=mok_list_x)]
        if mok_list_trusted:
            events.append(new(14, eventlog.EV_IPL, b'MokListTrusted\0', banks,
                              measured=b'\x01'))
    events.append(new(4, eventlog.EV_EFI_BOOT_SERVICES_APPLICATION,
                      _image_load_event(location, grub, '\\EFI\\debian\\grubx64.efi'),
                      banks, measured=grub))
    # grub 2 (grub-core/commands/tpm.c): each command line to PCR 8, each file read to 9.
    linux_cmd = 'linux %s %s' % (KERNEL_PATH, cmdline)
    events += [
        new(8, eventlog.EV_IPL, ('grub_cmd: %s\0' % linux_cmd).encode(), banks,
            measured=linux_cmd.encode()),
        new(9, eventlog.EV_IPL, (KERNEL_PATH + '\0').encode(), banks, measured=kernel),
        new(8, eventlog.EV_IPL, ('grub_cmd: initrd %s\0' % INITRD_PATH).encode(), banks,
            measured=('initrd %s' % INITRD_PATH).encode()),
        new(9, eventlog.EV_IPL, (INITRD_PATH + '\0').encode(), banks, measured=initrd),
        new(8, eventlog.EV_IPL, ('kernel_cmdline: %s\0' % cmdline).encode(), banks,
            measured=cmdline.encode()),
    ]
    if secure_boot:
        # shim verifies the kernel for grub (shim_lock) and measures it as an application;
        # without Secure Boot grub loads it itself and only PCR 9 records it
        events.append(new(4, eventlog.EV_EFI_BOOT_SERVICES_APPLICATION,
                          _image_load_event(location - 0x1000000, kernel,
                                            KERNEL_PATH.replace('/', '\\')),
                          banks, measured=kernel))
    log = eventlog.marshal_eventlog(banks, events)
    parsed = eventlog.parse_eventlog(log)
    extends = [(e.pcr_index, dict(e.digests)) for e in parsed.events[1:]
               if e.event_type != eventlog.EV_NO_ACTION]
    return MeasuredBoot(log, parsed.events, extends, eventlog.replay(parsed),
                        startup_locality or 0)


def ima_measurements(boot_pcrs=None, files=None, template='ima-ng', signatures=None,
                     hash_algorithm='sha256', banks=DEFAULT_BANKS, pcr=ima.IMA_PCR):
    """The IMA list the kernel writes for ``files`` ({path: contents}, in order).

    With ``boot_pcrs`` ({bank: {pcr: bytes}}, e.g. ``measured_boot().pcrs``) the list starts
    with the boot_aggregate; without it the entries continue an existing list (what a host
    appends after its first attestation). ``signatures`` maps a path to its ima-sig
    signature bytes (template ``ima-sig``).
    """
    files = DEFAULT_FILES if files is None else files
    signatures = signatures or {}
    entries = []
    if boot_pcrs is not None:
        entries.append(ima.make_entry(ima.BOOT_AGGREGATE_NAME, ima.boot_aggregate(boot_pcrs),
                                      'sha256', template, pcr=pcr))
    for path, contents in files.items():
        entries.append(ima.make_entry(path, hashlib.new(hash_algorithm, contents).digest(),
                                      hash_algorithm, template,
                                      signature=signatures.get(path), pcr=pcr))
    extends = [(e.pcr, ima.template_hashes(e, banks)) for e in entries]
    return ImaMeasurements(ima.marshal(entries), entries, extends)
