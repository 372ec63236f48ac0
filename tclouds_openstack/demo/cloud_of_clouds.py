"""Demo chapter: data flow 4, a hospital object on a cloud of clouds (DepSky-CA).

Four independent clouds (``directory`` backends under the scratch directory, as a
gateway would reach four providers) hold the object with DepSky-CA, n = 4, f = 1: each
version is encrypted under a fresh AES-256 key, the key is Shamir-shared with threshold
f + 1 = 2, the ciphertext erasure-coded so that any 2 of the 4 value objects rebuild it,
and the metadata listing every value object's digest is signed with the writer's Ed25519
key. The chapter shows that no cloud holds the plaintext or can decode its part alone,
that a value object corrupted on one provider's disk is detected and worked around (the
cloud is reported faulty and the fault sealed into the demo's secure log), that with two
clouds offline (more than f) a write is refused instead of half-committed, and that
``repair`` rebuilds the corrupted value object without the writer key.
"""
import concurrent.futures
import hashlib
import os
import shutil

from cryptography.hazmat.primitives.asymmetric import ed25519

from tclouds_openstack.cloudstore import backends
from tclouds_openstack.cloudstore import coding
from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import metadata as metadata_mod
from tclouds_openstack.cloudstore import protocol

TITLE = 'Cloud of clouds: a hospital object on four providers (DepSky-CA, n = 4, f = 1)'
CLOUDS = ('provider_a', 'provider_b', 'provider_c', 'provider_d')
F = 1
#: The Swift object the gateway stores (its name stays in the local stub, never on a cloud).
OBJECT = '/v1/AUTH_hospital/records/patient-0042.txt'
CREATED = 1767225600
#: Recognizable plaintext searched for on every provider's disk.
SECRETS = (b'Jane Roe', b'PATIENT RECORD', b'metformin', OBJECT.encode())
CORRUPTED = 1           # provider_b: bit rot or a malicious provider
OFFLINE = (2, 3)        # provider_c and provider_d: an outage beyond f
#: The most the demo accepts when it looks at what a provider holds (reads are bounded).
INSPECT_LIMIT = 16 * 1024 * 1024


def patient_record(visits=2400, extra=b''):
    """A few hundred KiB of a recognizable (fictitious) patient record."""
    lines = [b'ST. EXAMPLE HOSPITAL - PATIENT RECORD',
             b'Patient: Jane Roe, born 1961-04-12, MRN 0042-7731',
             b'Diagnosis: type 2 diabetes mellitus (E11.9), essential hypertension (I10)']
    for visit in range(1, visits + 1):
        lines.append(b'visit %04d, Jane Roe: HbA1c %.1f %%, blood pressure %d/%d mmHg, '
                     b'metformin 1000 mg twice daily, ramipril 5 mg'
                     % (visit, 6.5 + (visit % 17) / 10, 128 + visit % 23, 78 + visit % 13))
    return b'\n'.join(lines) + b'\n' + extra


class Clouds(object):
    """The four directory clouds, the writer key, and what happened to each cloud."""

    def __init__(self, demo, root):
        self.demo = demo
        self.clouds = []
        for name in CLOUDS:
            cloud = backends.load(name, {'type': 'directory', 'path': os.path.join(root, name)})
            cloud.ensure_container()
            self.clouds.append(cloud)
        self.key = ed25519.Ed25519PrivateKey.generate()
        self.history = {name: [] for name in CLOUDS}
        self.sealed = 0

    def run(self, operation, *args, writer=True, **kwargs):
        """One protocol operation on a fresh thread pool: ``(result, faults)``.

        Returns only once every cloud's call ended (those slower than the quorum and the
        writer's background clean-up included), so the disks can be inspected after.
        Every fault reported is sealed into the demo's secure log.
        """
        faults = []
        try:
            with concurrent.futures.ThreadPoolExecutor(2 * len(self.clouds)) as pool:
                depsky = protocol.DepSkyCA(
                    self.clouds, F, self.key.public_key(), self.key if writer else None,
                    executor=pool, fault_listener=lambda unit, fault: faults.append(
                        (unit, fault)))
                return getattr(depsky, operation)(*args, **kwargs), faults
        finally:
            seen = set()
            for unit, fault in faults:
                if (fault.cloud, fault.kind, fault.reason) in seen:
                    continue
                seen.add((fault.cloud, fault.kind, fault.reason))
                self.demo.record('cloudstore.fault', {
                    'operation': operation, 'data_unit': unit, 'cloud': fault.cloud,
                    'kind': fault.kind, 'reason': fault.reason})
                self.sealed += 1

    def files(self, index):
        """``{file name: bytes}`` of what cloud ``index`` holds on its disk."""
        path = self.clouds[index].path
        contents = {}
        for name in sorted(os.listdir(path)):
            with open(os.path.join(path, name), 'rb') as stream:
                contents[name] = stream.read()
        return contents

    def take_offline(self, index):
        """Replace the cloud's directory with a file: every call to it fails."""
        path = self.clouds[index].path
        os.rename(path, path + '.offline')
        with open(path, 'w') as stream:
            stream.write('provider unreachable\n')

    def bring_back(self, index):
        path = self.clouds[index].path
        os.unlink(path)
        os.rename(path + '.offline', path)


def _size(number):
    return '{:,}'.format(number)


def run(demo):
    report = demo.report
    root = os.path.join(demo.workdir, 'clouds')
    shutil.rmtree(root, ignore_errors=True)   # a --workdir reused from an earlier run
    clouds = Clouds(demo, demo.path('clouds'))
    names = CLOUDS
    unit = hashlib.sha256(('%s\n%d' % (OBJECT, CREATED)).encode()).hexdigest()
    record = patient_record()
    value_key = protocol.value_key(unit, 1)
    report.note('4 clouds %s, each a directory under %s (n = 4, f = 1: any one may be '
                'offline, lose, replay or corrupt data)' % (', '.join(names), root))
    report.note('writer key: Ed25519 %s... generated at the gateway (signs every version\'s '
                'metadata; no cloud holds it)'
                % metadata_mod.key_id(clouds.key.public_key())[:16])
    report.note('object %s (%s bytes) is data unit %s... on the clouds'
                % (OBJECT, _size(len(record)), unit[:16]))

    # -- write and what each cloud holds ---------------------------------------------------
    written, _ = clouds.run('write', unit, record, 1)
    meta = written.metadata
    report.step('version 1 written in parallel: value objects to the 4 clouds, then the '
                'signed metadata (each phase needs n - f = 3 acknowledgements)',
                ok=len(written.acked) >= 3 and not written.faults)
    total = 0
    for index, name in enumerate(names):
        files = clouds.files(index)
        held = sum(len(data) for data in files.values())
        total += held
        found = [secret.decode() for secret in SECRETS
                 if any(secret in data for data in files.values())]
        complete = sorted(clouds.clouds[index].list()) == sorted(
            [protocol.metadata_key(unit), value_key])
        report.step('%s holds %d objects, %s bytes (value object %s, metadata %s); '
                    'plaintext on its disk: %s'
                    % (name, len(files), _size(held),
                       _size(len(clouds.clouds[index].get(value_key, INSPECT_LIMIT))),
                       _size(len(clouds.clouds[index].get(protocol.metadata_key(unit),
                                                          INSPECT_LIMIT))),
                       'FOUND %s' % ', '.join(found) if found else
                       'none (searched "Jane Roe", "PATIENT RECORD", "metformin", the '
                       'object name)'),
                    ok=complete and not found)
    report.note('stored on all clouds together: %s bytes, %.2fx the record (each cloud '
                'half of the ciphertext, one key share, signed metadata)'
                % (_size(total), total / len(record)))
    alone = clouds.clouds[0].get(value_key, INSPECT_LIMIT)
    try:
        coding.decode({0: alone}, meta)
        report.step('%s\'s value object alone DECODED (must be impossible)' % names[0],
                    ok=False)
    except errors.FragmentError as exc:
        report.step('%s\'s value object alone cannot be decoded: %s (one key share of '
                    'threshold f + 1 = 2, half of the erasure-coded ciphertext)'
                    % (names[0], exc))
    read, _ = clouds.run('read', unit)
    report.step('read back: version %d, %s bytes, identical to what was written, from '
                'value objects verified against the signed digests'
                % (read.metadata.version, _size(len(read.data))),
                ok=read.data == record and not read.faults)

    # -- one provider corrupts its value object ---------------------------------------------
    bad = names[CORRUPTED]
    path = clouds.clouds[CORRUPTED].path_of(value_key)
    with open(path, 'r+b') as stream:
        data = bytearray(stream.read())
        offset = len(data) // 2
        data[offset] ^= 0x20
        stream.seek(0)
        stream.write(data)
    report.note('%s: one bit flipped at offset %s of its value object, on its disk (bit rot '
                'or a malicious provider)' % (bad, _size(offset)))
    # As the Swift middleware reads: the stub pins version 1 and its size, so the value
    # objects of the first f + 1 clouds are fetched at once, provider_b's among them
    # (which makes it judged on every run, whichever cloud answers first).
    sealed = clouds.sealed
    read, _ = clouds.run('read', unit, expected_version=1, expected_size=len(record))
    report.step('read with %s corrupt: still the right %s bytes (the next cloud\'s value '
                'object was fetched instead)' % (bad, _size(len(read.data))),
                ok=read.data == record)
    fault = read.faults.get(bad)
    report.step('%s reported FAULTY: %s' % (bad, fault.reason if fault else 'NOT reported'),
                ok=fault is not None and fault.kind == protocol.FAULTY
                and sorted(read.faults) == [bad])
    report.step('%d fault(s) sealed into the demo\'s secure log as cloudstore.fault'
                % (clouds.sealed - sealed), ok=clouds.sealed > sealed)
    clouds.history[bad].append('value object corrupted on disk, reported faulty')

    # -- two clouds offline: more than f ---------------------------------------------------
    for index in OFFLINE:
        clouds.take_offline(index)
        clouds.history[names[index]].append('offline during the write of version 2')
    offline = [names[index] for index in OFFLINE]
    report.note('%s go offline at once (each directory replaced by a file, so every call '
                'fails): two clouds down, more than f = 1' % ' and '.join(offline))
    update = patient_record(extra=b'discharge note, Jane Roe: stable, follow-up in 3 months\n')
    try:
        clouds.run('write', unit, update, 2)
        report.step('write of version 2 ACCEPTED with %s offline (must be refused)'
                    % ' and '.join(offline), ok=False)
    except errors.QuorumError as exc:
        report.step('write of version 2 refused: QuorumError in the value phase, needs %d '
                    'correct clouds, failed: %s' % (exc.needed, ', '.join(sorted(exc.reasons))),
                    ok=sorted(exc.reasons) == offline,
                    detail='\n'.join(exc.reasons[name] for name in sorted(exc.reasons)))
    reachable = [clouds.clouds[index] for index in range(len(names)) if index not in OFFLINE]
    leftovers = ['%s: %s' % (cloud.name, key) for cloud in reachable
                 for key in cloud.list(unit + '/')
                 if key not in (protocol.metadata_key(unit), value_key)]
    current = {cloud.name: metadata_mod.parse(cloud.get(protocol.metadata_key(unit),
                                                        INSPECT_LIMIT),
                                              clouds.key.public_key(), unit).version
               for cloud in reachable}
    report.step('nothing half-committed: the signed metadata on %s still names version %s, '
                'and the writer deleted the version-2 value objects they had taken'
                % (' and '.join(sorted(current)), ' and '.join(
                    str(version) for version in sorted(set(current.values())))),
                ok=not leftovers and set(current.values()) == {1},
                detail='left over: %s' % ', '.join(leftovers) if leftovers else None)
    for index in OFFLINE:
        clouds.bring_back(index)
    report.note('%s back online' % ' and '.join(offline))
    read, _ = clouds.run('read', unit)
    report.step('a reader gets version %d, unchanged (%s bytes)'
                % (read.metadata.version, _size(len(read.data))),
                ok=read.metadata.version == 1 and read.data == record)

    # -- repair ------------------------------------------------------------------------------
    repaired, _ = clouds.run('repair', unit, writer=False)
    report.step('repair (no writer key): %s'
                % '; '.join('%s: %s rebuilt' % item for item in sorted(repaired.repaired.items()))
                if repaired.repaired else 'repair: nothing rebuilt',
                ok=repaired.repaired == {bad: 'value object'} and not repaired.failed,
                detail='\n'.join('%s: %s' % item for item in sorted(repaired.failed.items()))
                or None)
    report.note('%s\'s value object was rebuilt from f + 1 = 2 good clouds (erasure code for '
                'its fragment, Lagrange interpolation for its key share) and matched the '
                'signed digest before it was stored' % bad)
    clouds.history[bad].append('value object rebuilt by repair')
    neighbour = CORRUPTED + 1
    pair = {index: clouds.clouds[index].get(value_key, INSPECT_LIMIT)
            for index in (CORRUPTED, neighbour)}
    trailer = coding.layout_of(meta).pieces_end
    matches = all(coding.digest(pair[index][trailer:]) == meta.digests[index]
                  for index in pair)
    try:
        decoded = coding.decode(pair, meta) if matches else None
        detail = None if matches else 'a value object does not match its signed digest'
    except errors.FragmentError as exc:
        decoded, detail = None, str(exc)
    report.step('decoded from %s and %s alone: %s' % (bad, names[neighbour],
                'the right %s bytes' % _size(len(record)) if decoded == record else 'FAILED'),
                ok=decoded == record, detail=detail)
    read, _ = clouds.run('read', unit)
    report.step('full read after repair: the right bytes, no cloud reported',
                ok=read.data == record and not read.faults,
                detail='\n'.join(str(fault) for fault in read.faults.values()) or None)
    for index in OFFLINE:
        if names[index] not in repaired.repaired:
            clouds.history[names[index]].append('back online, nothing to repair')
    rows = []
    for index, name in enumerate(names):
        files = clouds.files(index)
        events = clouds.history[name] or ['healthy throughout']
        rows.append((name, len(files), _size(sum(len(data) for data in files.values())),
                     '; '.join(events)))
    report.table(['cloud', 'objects', 'bytes', 'what happened'], rows)
    report.note('%d cloud fault(s) sealed into the demo\'s secure log (cloudstore.fault)'
                % clouds.sealed)
