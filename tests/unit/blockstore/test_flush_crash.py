"""A crash at any point of a flush: the volume opens with the old or the new state, never a
third, and freshness still holds (issue 14 point 6).

A flush makes two durable points in order: the volume (records and tree written to their
free copies, then ``fdatasync``), then the anchor (the new root). Two crash models:

* the process killed (``SIGKILL``, a real child process) before each write and sync of a
  flush, down to the system calls inside the anchor's commit: what it wrote is in the
  page cache, so the new state must come back whole (by the anchor, or by the journal);
* the power cut (a file layer that keeps, of the 4 KiB blocks written since the last
  sync, any subset: a disk with a volatile cache; ``sync_metadata`` on, as power-loss
  ordering of the writes themselves needs) before each write, sync and the anchor commit
  (and the start of the volume's writeback, which the flush begins before it writes the
  tree: no durable point, so a cut after it may keep any subset as before):
  every sector reads its content at the last flush or one a write since put there, never
  an integrity failure, and the new state everywhere once the volume's sync returned.

After either, an older image of the volume put back beside the anchor is refused.
"""
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys

import pytest

from tclouds_openstack.blockstore import errors
from tclouds_openstack.blockstore import format as fmt
from tclouds_openstack.blockstore import storage

SECTOR = fmt.SECTOR_SIZE
SIZE = 2 * fmt.SEG_SECTORS + 200          # three segments: several level 1 nodes
# (first sector, count, salt): the old state, then the writes of the flush under test
# (overwrites, new sectors in another segment, single-sector hot-path writes).
OLD = [(0, 40, 1), (3000, 1, 1), (4100, 8, 1)]
NEW = [(0, 20, 2), (3000, 1, 2), (2100, 3, 2), (4103, 1, 2), (4250, 2, 2), (7, 1, 3)]


def pattern(sector, n=1, salt=0):
    return b''.join(hashlib.sha256(b'%d-%d' % (s, salt)).digest() * (SECTOR // 32)
                    for s in range(sector, sector + n))


def image(writes):
    """{sector: content} after ``writes`` in order."""
    sectors = {}
    for first, n, salt in writes:
        for s in range(first, first + n):
            sectors[s] = pattern(s, 1, salt)
    return sectors


OLD_IMAGE = image(OLD)
NEW_IMAGE = image(OLD + NEW)
TOUCHED = sorted(set(OLD_IMAGE) | set(NEW_IMAGE))
# What a disk may hold for each sector after a crash before the flush completed: its
# content at the last flush or what any write since put there (a later write may be lost).
VERSIONS = {s: [OLD_IMAGE.get(s, bytes(SECTOR))] for s in TOUCHED}
for _first, _n, _salt in NEW:
    for _s in range(_first, _first + _n):
        VERSIONS[_s].append(pattern(_s, 1, _salt))


def _read_all(vol):
    return {s: vol.read(s * SECTOR, SECTOR) for s in TOUCHED}


def _old_state(tmp, kek, sync_metadata=False):
    path, anchor_path = str(tmp / 'vol'), str(tmp / 'anchor')
    st = storage.FileStorage(path)
    vol = fmt.Volume.create(st, kek, storage.FileAnchor(anchor_path), SIZE * SECTOR)
    vol.sync_metadata = sync_metadata
    for first, n, salt in OLD:
        vol.write(first * SECTOR, pattern(first, n, salt))
    vol.flush()
    return vol, st, path, anchor_path


# ---------------------------------------------------------------------------- SIGKILL
CHILD = r'''
import hashlib, os, signal, sys
from tclouds_openstack.blockstore import format as fmt, storage
path, anchor_path = sys.argv[1], sys.argv[2]
kek, kill_at = bytes.fromhex(sys.argv[3]), int(sys.argv[4])
NEW = %r
def pattern(sector, n, salt):
    return b''.join(hashlib.sha256(b'%%d-%%d' %% (s, salt)).digest() * (4096 // 32)
                    for s in range(sector, sector + n))
vol = fmt.Volume.open(storage.FileStorage(path), kek, storage.FileAnchor(anchor_path))
for first, n, salt in NEW:
    vol.write(first * 4096, pattern(first, n, salt))
calls = []
def point(name, real):
    def call(*args):
        calls.append(name)
        if len(calls) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args)
    return call
# Every write and sync of the flush, the volume's and the anchor's (system calls), and
# the start of the volume's writeback (sync_file_range: no durable point).
for name in ('pwrite', 'pwritev', 'fdatasync', 'fsync', 'replace'):
    setattr(os, name, point(name, getattr(os, name)))
storage.FileStorage.start_writeback = point('writeback',
                                            storage.FileStorage.start_writeback)
vol.flush()
print(' '.join(calls))
''' % (NEW,)


def _child(path, anchor_path, kek, kill_at):
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(fmt.__file__))))
    env = dict(os.environ, PYTHONPATH=top)
    return subprocess.run([sys.executable, '-c', CHILD, path, anchor_path, kek.hex(),
                           str(kill_at)], capture_output=True, text=True, env=env)


def test_a_flush_killed_before_any_write_or_sync_comes_back_new(tmp_path):
    kek = os.urandom(32)
    vol, st, path, anchor_path = _old_state(tmp_path, kek)
    st.close()
    pristine = tmp_path / 'pristine'
    pristine.mkdir()
    shutil.copy(path, str(pristine / 'vol'))
    shutil.copy(anchor_path, str(pristine / 'anchor'))
    version = storage.FileAnchor(anchor_path).load(vol.uuid)['version']
    dry = _child(path, anchor_path, kek, 0)
    assert dry.returncode == 0, dry.stderr
    calls = dry.stdout.split()
    for kill_at in range(1, len(calls) + 1):
        case = tmp_path / ('kill%d' % kill_at)
        case.mkdir()
        vpath, apath = str(case / 'vol'), str(case / 'anchor')
        shutil.copy(str(pristine / 'vol'), vpath)
        shutil.copy(str(pristine / 'anchor'), apath)
        res = _child(vpath, apath, kek, kill_at)
        assert res.returncode == -signal.SIGKILL, (kill_at, res.stderr)
        anchor = storage.FileAnchor(apath)
        committed = anchor.load(vol.uuid)['version'] == version + 2
        # Killed at the last call (the anchor's fdatasync): its write is in the page
        # cache, so the anchor holds the new root; before it, the old one.
        assert committed == (kill_at == len(calls)), kill_at
        st2 = storage.FileStorage(vpath)
        reopened = fmt.Volume.open(st2, kek, anchor)
        assert reopened.recovered == (not committed), kill_at
        assert _read_all(reopened) == NEW_IMAGE, kill_at
        assert reopened.scrub() == []
        assert anchor.load(vol.uuid)['version'] == version + 2
        st2.close()
        # The volume as it was before the flush, beside the anchor that has moved on.
        shutil.copy(str(pristine / 'vol'), vpath)
        st2 = storage.FileStorage(vpath)
        rolled = fmt.Volume.open(st2, kek, anchor)
        with pytest.raises(errors.IntegrityError) as exc:
            rolled.read(0, SECTOR)
        assert 'rolled back' in str(exc.value)
        st2.close()
    # The volume's writeback started, its writes, its sync, then the anchor's write and
    # sync: in that order.
    assert calls[0] == 'writeback' and calls.count('writeback') == 1
    assert calls[-2:] == ['pwrite', 'fdatasync'] and 'fdatasync' in calls[:-2]
    assert calls.index('fdatasync') == len(calls) - 3


# ---------------------------------------------------------------------------- power cut
class Crash(BaseException):
    """The power went at this point."""


class PowerCutStorage:
    """A FileStorage whose unsynced writes may be lost, block by block, at a power cut.

    ``before`` keeps, for every 4 KiB block written since the last ``sync``, what the disk
    held at that sync; :meth:`cut` puts back the blocks ``keep`` does not choose.
    """

    BLOCK = 4096

    def __init__(self, real, crash_at):
        self.real = real
        self.crash_at = crash_at
        self.calls = []
        self.before = {}

    def _point(self, name):
        self.calls.append(name)
        if len(self.calls) == self.crash_at:
            raise Crash(name)

    def pwrite(self, data, offset):
        self._point('pwrite')
        first, last = offset // self.BLOCK, (offset + len(data) - 1) // self.BLOCK
        for block in range(first, last + 1):
            if block not in self.before:
                size = self.real.size()
                start = block * self.BLOCK
                self.before[block] = os.pread(self.real.fd, self.BLOCK, start) \
                    if start < size else b''
        self.real.pwrite(data, offset)

    def start_writeback(self):
        """Writeback started: a cut may keep any of the blocks, as before (no durable point)."""
        self._point('writeback')
        self.real.start_writeback()

    def sync(self):
        self._point('sync')
        self.real.sync()
        self.before = {}

    def cut(self, keep):
        for block, old in sorted(self.before.items()):
            if not keep(block):
                new = os.pread(self.real.fd, self.BLOCK, block * self.BLOCK)
                self.real.pwrite(old + new[len(old):] if old else bytes(len(new)),
                                 block * self.BLOCK)
        self.real.close()

    def __getattr__(self, name):
        return getattr(self.real, name)


KEEP = {
    'none': lambda block: False,
    'all': lambda block: True,
    'even': lambda block: block % 2 == 0,
    'odd': lambda block: block % 2 == 1,
    'random 1': lambda block, r=random.Random(1): r.random() < 0.5,
    'random 2': lambda block, r=random.Random(2): r.random() < 0.5,
}


def _flush_with_cut(tmp, kek, crash_at, keep):
    """Old state, the new writes, a flush cut at call ``crash_at``: (reopened, committed)."""
    vol, st, path, anchor_path = _old_state(tmp, kek, sync_metadata=True)
    cut = PowerCutStorage(st, 0)
    vol.storage = cut
    anchor = vol.anchor
    real_commit = anchor.commit

    def commit(*args):
        cut._point('commit')
        return real_commit(*args)
    anchor.commit = commit
    for first, n, salt in NEW:
        vol.write(first * SECTOR, pattern(first, n, salt))
    cut.calls = []            # crash points: the flush's own calls
    cut.crash_at = crash_at
    try:
        vol.flush()
        crashed = False
    except Crash:
        crashed = True
    calls = list(cut.calls)
    if crashed:
        cut.cut(keep)
    else:
        st.close()
    anchor = storage.FileAnchor(anchor_path)
    st2 = storage.FileStorage(path)
    return fmt.Volume.open(st2, kek, anchor), st2, calls, crashed


def test_a_power_cut_anywhere_in_a_flush_leaves_old_or_new_per_sector(tmp_path):
    kek = os.urandom(32)
    case = tmp_path / 'dry'
    case.mkdir()
    vol, st2, calls, crashed = _flush_with_cut(case, kek, 0, KEEP['all'])
    assert not crashed and _read_all(vol) == NEW_IMAGE
    st2.close()
    n = 0
    for crash_at in range(1, len(calls) + 1):
        for name, keep in KEEP.items():
            n += 1
            case = tmp_path / ('cut%d' % n)
            case.mkdir()
            vol, st2, _, crashed = _flush_with_cut(case, kek, crash_at, keep)
            assert crashed
            got = _read_all(vol)
            for sector in TOUCHED:
                assert got[sector] in VERSIONS[sector], (crash_at, name, sector)
            if calls[crash_at - 1] == 'commit':
                # Cut right before the anchor commit: the volume's sync returned, the
                # anchor still names the old root; the journal brings back every write.
                assert got == NEW_IMAGE, (crash_at, name)
            assert vol.scrub() == []
            st2.close()
    # Cut after the anchor commit returned: the new state, whatever the cache held.
    case = tmp_path / 'after'
    case.mkdir()
    vol, st2, _, crashed = _flush_with_cut(case, kek, len(calls) + 1, KEEP['none'])
    assert not crashed and _read_all(vol) == NEW_IMAGE and vol.scrub() == []
    st2.close()
    assert calls[-2:] == ['sync', 'commit'] and calls.count('sync') == 1
    assert calls[0] == 'writeback' and calls.count('writeback') == 1
