"""Measured boot: a parsed UEFI event log against a Keylime measured-boot reference state.

Implements the checks of Keylime's ``example`` measured-boot policy
(``keylime/mba/elchecking/example.py``) over the refstate that ``keylime-policy create
measured-boot`` writes, on the log as parsed by :mod:`tclouds_openstack.tpm.eventlog`:

- ``scrtm_and_bios``: the S-CRTM version event (PCR 0) and every platform firmware blob
  (PCR 0) match one listed firmware;
- Secure Boot: the ``SecureBoot`` variable (PCR 7) equals ``has_secureboot``; when on, the
  ``PK``/``KEK``/``db`` signature lists equal the refstate's and ``dbx`` holds at least the
  refstate's revocations (a grown dbx is accepted, a shrunk one is not);
- ``mokdig`` / ``mokxdig``: the shim ``MokList`` / ``MokListX`` measurements (PCR 14);
- ``kernels``: the boot applications of PCR 4 are a shim, grub and kernel of one listed
  kernel (authenticode SHA-256), the initrd (PCR 9) and the kernel command line (PCR 8,
  grub's ``kernel_cmdline:`` event, matched in full by the regular expression) too.

Pure; returns a list of (check, message) and never raises on log content (the log was
already parsed; event data decoding failures are reported as failures).
"""
import functools
import re
import struct
import uuid

from tclouds_openstack.tpm import errors
from tclouds_openstack.tpm import eventlog as el

CHECK = 'measured_boot.policy'
_SIGNATURE_VARIABLES = ('PK', 'KEK', 'db', 'dbx')


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
        if list_size < 28 or end > len(data) or sig_size < 16:
            raise ValueError('%s: EFI_SIGNATURE_LIST at offset %d has SignatureListSize %d, '
                             'SignatureSize %d' % (field, pos, list_size, sig_size))
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


def _sha256(event):
    digest = event.digests.get('sha256')
    return digest.hex() if digest is not None else None


def appraise(log, refstate):
    """Every failed refstate check of ``log`` (an EventLog) as [(check, message)]."""
    failures = []

    def fail(message):
        failures.append((CHECK, message))

    events = [e for e in log.events[1:] if e.event_type != el.EV_NO_ACTION]
    variables = {}
    authorities = []
    mok = {}
    scrtm = None
    firmware = []
    apps = []
    initrd = []
    cmdlines = []
    for event in events:
        try:
            if event.event_type == el.EV_S_CRTM_VERSION and event.pcr_index == 0:
                scrtm = _sha256(event)
            elif event.event_type == el.EV_EFI_PLATFORM_FIRMWARE_BLOB and event.pcr_index == 0:
                firmware.append(_sha256(event))
            elif (event.event_type == el.EV_EFI_VARIABLE_DRIVER_CONFIG
                  and event.pcr_index == 7):
                var = el.decode_efi_variable(event)
                variables[var.unicode_name] = var.variable_data
            elif event.event_type == el.EV_EFI_VARIABLE_AUTHORITY and event.pcr_index == 7:
                var = el.decode_efi_variable(event)
                authorities.append((event.index, var.unicode_name, var.variable_data))
            elif event.event_type == el.EV_EFI_BOOT_SERVICES_APPLICATION and event.pcr_index == 4:
                apps.append(_sha256(event))
            elif event.event_type == el.EV_IPL and event.pcr_index == 14:
                mok[el.decode_string(event)] = _sha256(event)
            elif event.event_type == el.EV_IPL and event.pcr_index == 9:
                initrd.append(_sha256(event))
            elif event.event_type == el.EV_IPL and event.pcr_index == 8:
                text = el.decode_string(event)
                if text.startswith('kernel_cmdline: '):
                    cmdlines.append(text[len('kernel_cmdline: '):])
        except errors.EventLogError as exc:
            fail('event %s cannot be decoded: %s' % (event.index, exc))

    if refstate.scrtm_and_bios:
        if not any(scrtm == ref_scrtm and all(f in ref_fw for f in firmware)
                   for ref_scrtm, ref_fw in refstate.scrtm_and_bios):
            fail('S-CRTM %s / platform firmware %s match no scrtm_and_bios entry'
                 % (scrtm, ','.join(str(f) for f in firmware)))

    secureboot = variables.get('SecureBoot')
    enabled = bool(secureboot) and secureboot[:1] == b'\x01'
    if enabled != refstate.has_secureboot:
        fail('SecureBoot is %s, the reference state expects it %s'
             % ('on' if enabled else 'off', 'on' if refstate.has_secureboot else 'off'))
    if refstate.has_secureboot:
        for name in _SIGNATURE_VARIABLES:
            expected = getattr(refstate, name.lower())
            if name not in variables:
                fail('Secure Boot variable %s was not measured' % name)
                continue
            try:
                found = parse_signature_lists(variables[name], name)
            except ValueError as exc:
                fail(str(exc))
                continue
            if name == 'dbx':
                missing = expected - found
                if missing:
                    fail('dbx lacks %d revocation(s) of the reference state' % len(missing))
            elif found != expected:
                fail('%s differs from the reference state (%d entries added, %d missing)'
                     % (name, len(found - expected), len(expected - found)))
        # The certificate that verified each boot application (PFP 10.4.3: one
        # EFI_SIGNATURE_DATA per EV_EFI_VARIABLE_AUTHORITY event) must be a trusted one.
        for index, name, data in authorities:
            if name not in ('db', 'vendor_db'):
                continue
            try:
                # some firmware logs the whole db list instead of the one entry
                found = parse_signature_lists(data, name)
            except ValueError:
                found = {_signature_data(data)}
            if not found or not found <= getattr(refstate, name):
                fail('event %s: boot application verified by a %s certificate not in the '
                     'reference state' % (index, name))
    for name, key in (('MokList', 'mokdig'), ('MokListX', 'mokxdig')):
        expected = getattr(refstate, key)
        if expected and mok.get(name) not in expected:
            fail('%s digest %s is not in %s' % (name, mok.get(name), key))

    if refstate.kernels:
        if not any(_kernel_matches(kernel, apps, initrd, cmdlines)
                   for kernel in refstate.kernels):
            fail('boot chain (PCR 4 applications %s, initrd %s, command line %r) matches no '
                 'kernels entry' % (','.join(str(a) for a in apps),
                                    ','.join(str(i) for i in initrd),
                                    cmdlines[-1] if cmdlines else None))
    return failures


def _kernel_matches(kernel, apps, initrd, cmdlines):
    chain = [d for d in (kernel.shim_authcode_sha256, kernel.grub_authcode_sha256,
                         kernel.kernel_authcode_sha256) if d]
    if not set(apps) <= set(chain) or (kernel.kernel_authcode_sha256
                                       and kernel.kernel_authcode_sha256 not in apps):
        return False
    if kernel.initrd_plain_sha256 and initrd and kernel.initrd_plain_sha256 not in initrd:
        return False
    if kernel.kernel_cmdline is not None:
        if not cmdlines or not all(kernel.kernel_cmdline.fullmatch(c) for c in cmdlines):
            return False
    return True


# ------------------------------------------------------------------ reference state creation
EFI_CERT_X509_GUID = uuid.UUID('a5c059a1-94e4-4aa7-87b5-ab155c2bf072')


def signature_list(entries, signature_type=EFI_CERT_X509_GUID):
    """One EFI_SIGNATURE_LIST (UEFI 2.x, 32.4.1) of ``entries``.

    ``entries`` is [(owner GUID str, bytes)], all the same size (UEFI requires it).
    """
    if not entries:
        return b''
    size = 16 + len(entries[0][1])
    body = b''.join(uuid.UUID(owner).bytes_le + data for owner, data in entries)
    return signature_type.bytes_le + struct.pack('<III', 28 + len(body), 0, size) + body


def create_refstate(log):
    """A Keylime measured-boot reference state for the boot recorded in ``log``.

    The JSON dict ``keylime-policy create measured-boot`` writes, from an EventLog.

    Raises ValueError when a Secure Boot variable is not a valid signature list.
    """
    events = [e for e in log.events[1:] if e.event_type != el.EV_NO_ACTION]
    scrtm, firmware, variables, apps, initrd, cmdline, mok = None, [], {}, [], [], None, {}
    vendor_db = set()
    for event in events:
        if event.event_type == el.EV_S_CRTM_VERSION and event.pcr_index == 0:
            scrtm = _sha256(event)
        elif event.event_type == el.EV_EFI_PLATFORM_FIRMWARE_BLOB and event.pcr_index == 0:
            firmware.append(_sha256(event))
        elif event.event_type == el.EV_EFI_VARIABLE_DRIVER_CONFIG and event.pcr_index == 7:
            var = el.decode_efi_variable(event)
            variables[var.unicode_name] = var.variable_data
        elif event.event_type == el.EV_EFI_VARIABLE_AUTHORITY and event.pcr_index == 7:
            var = el.decode_efi_variable(event)
            if var.unicode_name == 'vendor_db' and _signature_data(var.variable_data):
                vendor_db.add(_signature_data(var.variable_data))
        elif event.event_type == el.EV_EFI_BOOT_SERVICES_APPLICATION and event.pcr_index == 4:
            apps.append(_sha256(event))
        elif event.event_type == el.EV_IPL and event.pcr_index == 9:
            initrd.append(_sha256(event))
        elif event.event_type == el.EV_IPL and event.pcr_index == 8:
            text = el.decode_string(event)
            if text.startswith('kernel_cmdline: '):
                cmdline = text[len('kernel_cmdline: '):]
        elif event.event_type == el.EV_IPL and event.pcr_index == 14:
            mok[el.decode_string(event)] = _sha256(event)
    secureboot = variables.get('SecureBoot', b'')[:1] == b'\x01'

    def sigs(name):
        if not secureboot or name not in variables:
            return []
        return [{'SignatureOwner': owner, 'SignatureData': '0x' + data}
                for owner, data in sorted(parse_signature_lists(variables[name], name))]

    chain = (['0x' + a for a in apps] + [None, None, None])[:3] if len(apps) >= 3 else (
        [None] + ['0x' + a for a in apps] + [None, None])[:3]
    kernel = {'shim_authcode_sha256': chain[0], 'grub_authcode_sha256': chain[1],
              'kernel_authcode_sha256': chain[2],
              'initrd_plain_sha256': '0x' + initrd[-1] if initrd else None,
              'kernel_cmdline': re.escape(cmdline) if cmdline is not None else None}
    return {
        'has_secureboot': secureboot,
        'scrtm_and_bios': [{'scrtm': {'sha256': '0x%s' % scrtm},
                            'platform_firmware': [{'sha256': '0x' + f} for f in firmware]}]
        if scrtm else [],
        'pk': sigs('PK'), 'kek': sigs('KEK'), 'db': sigs('db'), 'dbx': sigs('dbx'),
        'vendor_db': [{'SignatureOwner': owner, 'SignatureData': '0x' + data}
                      for owner, data in sorted(vendor_db)],
        'mokdig': [{'sha256': '0x' + mok['MokList']}] if 'MokList' in mok else [],
        'mokxdig': [{'sha256': '0x' + mok['MokListX']}] if 'MokListX' in mok else [],
        'kernels': [kernel] if apps else [],
    }
