"""The audit of logs whose batches are long runs of one source's entries (as a store's
appended batches are), and its tree hashed a perfect subtree at a time
(audit._append_leaves) from a chunk's leaves.

Every record of such a batch is checked on the fast path: tampering inside a batch is
found and named at the record; entries that break exactly one of the fast path's rules
while carrying a genuine seal and chain (made with the source's key: only that rule can
find them) are named at their own index; the tree of chunks of any alignment (checkpoints
and resumed audits at any size) has the signed root.
"""
import pytest

from tclouds_openstack.securelog import audit
from tclouds_openstack.securelog import checkpoint as cpmod
from tclouds_openstack.securelog import log as logmod
from tclouds_openstack.securelog import merkle
from tclouds_openstack.securelog import sealing

NOW = 1000


class RunLog(object):
    """Batches of one source each (two sources of names of one length), format 2."""

    def __init__(self, epoch_entries=250):
        self.a, ka = sealing.Sealer.create('nova@c1', 0, epoch_entries=epoch_entries)
        self.b, kb = sealing.Sealer.create('nova@c2', 0, epoch_entries=epoch_entries)
        self.logs, self.k_log = sealing.Sealer.create('log', 0, epoch_entries=10 ** 6)
        self.keys = {'nova@c1': ka, 'nova@c2': kb}
        self.signer = cpmod.NoteSigner.generate('test/runs')
        self.writer = logmod.LogWriter('test/runs', self.logs, self.signer)
        self.records = []
        self.checkpoints = []

    def batch(self, src, n, odd=None, checkpoint=True):
        """``n`` entries of ``src``; ``odd``: {position in the batch: _odd_entry kwargs}."""
        entries = []
        for k in range(n):
            if odd and k in odd:
                entries.append(_odd_entry(src, **odd[k]))
            else:
                i = len(self.records) + k
                entries.append(src.seal_entry(b'{"n": %d, "pad": "%s"}' % (i, b'x' * (i % 40)),
                                              NOW + i, tenant='p%d' % (i % 3)))
        sealed = self.writer.seal(entries, NOW)
        self.writer.commit(sealed)
        self.records.extend(r for _i, r in sealed)
        if checkpoint:
            self.checkpoint()
        return self

    def checkpoint(self):
        note = self.writer.checkpoint(1)
        self.checkpoints.append(cpmod.open_checkpoint(
            note, cpmod.NoteVerifier.from_vkey(self.signer.vkey()))[0])

    def audit(self, records=None, resume=None):
        records = self.records[resume.size if resume else 0:] if records is None else records
        return audit.audit(records, self.k_log, self.keys, self.checkpoints, resume=resume)


def _odd_entry(src, flags=0, skip=0, extra=b'', longer_name=0, sealer=None):
    """The source's next entry, sealed and chained with its key, with one field odd.

    ``flags``: flag bits no format knows; ``skip``: sequence numbers left out (the entry
    still names the previous one); ``extra``: bytes after the payload the lengths do not
    count; ``longer_name``: a source name length this much longer than the name;
    ``sealer``: the entry is another source's (its name, sealed with its key) though its
    sequence number, epoch and ``prev`` continue ``src``'s chain (``src`` goes on after
    it: both keys' holders collude).
    """
    src._maybe_advance(NOW)
    seq = src.next_seq + skip
    body = sealing.encode_entry_body(flags, src.epoch, seq, NOW, (sealer or src).name, '',
                                     b'{"odd": 1}', 2, src._prev[1]) + extra
    if longer_name:
        (slen,) = sealing._U16.unpack_from(body, _SLEN - 1)
        body = body[:_SLEN - 1] + sealing._U16.pack(slen + longer_name) + body[_SLEN + 1:]
    entry = (sealer or src)._sealed(body)
    src.next_seq = seq + 1
    src._prev = (seq, sealing.entry_hash(entry))
    return entry


def _log(batches=((300, 'a'), (500, 'b'), (4200, 'a'), (9, 'b'), (700, 'a'), (300, 'b'))):
    log = RunLog()
    for n, who in batches:
        log.batch(getattr(log, who), n, checkpoint=False)
    log.checkpoint()
    return log


@pytest.fixture(scope='module')
def big():
    return _log()


def test_batches_of_one_source_verify():
    log = _log()
    report = log.audit()
    assert report.ok, report.summary()
    assert report.size == 6009 and report.root == log.writer.tree.root()
    assert report.checkpoints_checked == 1
    # the sources' epochs change inside the batches (every 250 entries)
    assert report.state.sources['nova@c1'][1] >= 20


def _flip(data, offset):
    data = bytearray(data)
    data[offset] ^= 1
    return bytes(data)


def _set(index, change):
    """A tampering: record ``index`` replaced by ``change(record)``."""
    return lambda records: records.__setitem__(index, change(records[index]))


# Offsets in a format-2 entry (sealing._ENTRY2_HEAD, 69 bytes; then the source's name):
# the last byte of the epoch, sequence, source, tenant and payload lengths, one in prev.
_EPOCH, _SEQ, _PREV, _SLEN, _TLEN, _PLEN, _NAME = 12, 20, 40, 62, 64, 68, 69
assert sealing._ENTRY2_HEAD.size == _NAME

# (tamper name, function of the records list, the record index it changes)
TAMPER = [
    ('payload', _set(1000, lambda d: _flip(d, -40)), 1000),
    ('first-of-run', _set(800, lambda d: _flip(d, -40)), 800),
    ('last-bare-of-run', _set(798, lambda d: _flip(d, -40)), 798),
    ('across-chunks', _set(4096, lambda d: _flip(d, -40)), 4096),
    ('tag', _set(2000, lambda d: _flip(d, -1)), 2000),
    ('seq', _set(1500, lambda d: _flip(d, _SEQ)), 1500),
    ('epoch', _set(1500, lambda d: _flip(d, _EPOCH)), 1500),
    ('prev', _set(1500, lambda d: _flip(d, _PREV)), 1500),
    ('flags', _set(1500, lambda d: d[:4] + b'\x02' + d[5:]), 1500),
    ('source-length', _set(1500, lambda d: _flip(d, _SLEN)), 1500),
    ('tenant-length', _set(1500, lambda d: _flip(d, _TLEN)), 1500),
    ('payload-length', _set(1500, lambda d: _flip(d, _PLEN)), 1500),
    # the other source's name (names of one length)
    ('source-name', _set(1500, lambda d: d[:_NAME + 6] + b'2' + d[_NAME + 7:]), 1500),
    ('truncated-record', _set(1500, lambda d: d[:60]), 1500),
    ('deleted', lambda r: r.__delitem__(1500), 1500),
    ('swapped', lambda r: r.__setitem__(slice(1500, 1502), [r[1501], r[1500]]), 1500),
    ('duplicated', lambda r: r.insert(1501, r[1500]), 1501),
    ('other-source', lambda r: r.__setitem__(1500, r[400]), 1500),
]


@pytest.mark.parametrize('name, tamper, index', TAMPER, ids=[t[0] for t in TAMPER])
def test_tampering_inside_a_batch_is_found_at_the_record(big, name, tamper, index):
    records = list(big.records)
    tamper(records)
    report = big.audit(records)
    assert not report.ok and report.state is None, name
    first = report.first_damage
    assert first.index == index and first.end is None, (name, report.damages[:5])


@pytest.mark.parametrize('odd, kind', [
    ({'flags': 0x02}, 'malformed'),         # a flag bit no format knows
    ({'extra': b'xx'}, 'malformed'),        # lengths that do not add up to the size
    ({'skip': 3}, 'missing'),               # three sequence numbers left out
    ({'longer_name': 1}, 'malformed'),      # a source name that runs into the tenant
    ({'sealer': 'b'}, {'missing', 'moved', 'forged', 'modified'}),  # the other source's
])
def test_an_entry_sealed_and_chained_by_its_source_but_odd_is_found(odd, kind):
    """Only the fast path's checks of the entry's fields find these (seal and chain hold)."""
    log = RunLog(epoch_entries=10 ** 6)
    if 'sealer' in odd:
        odd = dict(odd, sealer=getattr(log, odd['sealer']))
    log.batch(log.a, 300).batch(log.b, 100).batch(log.a, 300, odd={150: odd})
    index = 400 + 150
    report = log.audit()
    assert not report.ok, report.summary()
    first = report.first_damage
    assert first.index == index and first.kind in (
        kind if isinstance(kind, set) else {kind}), report.damages


@pytest.mark.parametrize('size', [0, 1, 5, 4095, 4096, 4097, 6000, 8191, 12289])
def test_leaves_appended_a_subtree_at_a_time(size):
    leaves = [merkle.hash_leaf(b'%d' % i) for i in range(size + 9000)]
    for step in (1, 3, 4096, 5000):
        compact = merkle.CompactRange()
        for h in leaves[:size]:
            compact.append(h)
        nodes = list(compact._nodes)
        for at in range(size, len(leaves), step):
            audit._append_leaves(nodes, at, leaves[at:at + step])
        compact = merkle.CompactRange()
        compact.size, compact._nodes = len(leaves), nodes
        assert compact.root() == merkle.root_from_leaf_hashes(leaves), (size, step)


def test_checkpoints_and_resumes_at_sizes_of_any_alignment():
    log = RunLog()
    for n in (4093, 3, 1, 5000, 2, 4096, 31):
        log.batch(log.a, n)
    full = log.audit()
    assert full.ok and full.checkpoints_checked == 7, full.summary()
    state = None
    size = 0
    for done, n in enumerate((4093, 3, 1, 5000, 2, 4096, 31), 1):
        size += n
        again = audit.audit(log.records[state.size if state else 0:size], log.k_log,
                            log.keys, log.checkpoints[:done], resume=state)
        assert again.ok and again.size == size, again.summary()
        state = again.state
    assert state.root == full.root == log.writer.tree.root()
