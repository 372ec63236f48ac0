"""The log operator's state machine, pure: seal records, grow the tree, sign checkpoints.

A store adapter feeds it the entries it has accepted and persists what it returns; it
never touches a record after it was sealed. An evolved log sealer key must be saved (and
the old one erased) before the records sealed with it are committed; within an epoch the
sealer's position is the log index, which the records themselves carry, so a crash leaves
a consistent pair either way.
"""
from tclouds_openstack.securelog import audit
from tclouds_openstack.securelog import checkpoint as cpmod
from tclouds_openstack.securelog import merkle
from tclouds_openstack.securelog import sealing


class LogWriter(object):
    def __init__(self, origin, sealer, signer, tree=None, cosigners=()):
        self.origin = origin
        self.sealer = sealer
        self.signer = signer
        self.cosigners = list(cosigners)
        self.tree = tree if tree is not None else merkle.MerkleTree()

    @property
    def size(self):
        return self.tree.size

    def seal(self, entries, now_ns):
        """Seal encoded entries as the next records; returns [(index, record bytes)].

        The tree is not touched until :meth:`commit` (the caller's transaction succeeded).
        """
        start = self.tree.size
        if self.sealer.version == 1:
            return [(start + i, self.sealer.seal_record(start + i, entry, now_ns))
                    for i, entry in enumerate(entries)]
        if not entries:
            return []
        # Format 2: the entries go in as they are (bare records) and the last one is
        # wrapped in a TSL2 record sealing the span from the previous sealed record (every
        # batch ends with one: the log's last record, or genesis) up to it.
        last = start + len(entries) - 1
        span_start = start - 1 if start else 0
        leaves = [self.tree.leaf_hash(span_start)] if start else []
        leaves.extend(sealing.entry_hash(e) for e in entries[:-1])
        out = [(start + i, bytes(e)) for i, e in enumerate(entries[:-1])]
        out.append((last, self.sealer.seal_span(last, span_start, leaves, entries[-1], now_ns,
                                                count=len(entries))))
        return out

    def commit(self, records):
        for _index, record in records:
            self.tree.append(record)

    def checkpoint(self, timestamp=None):
        """A signed C2SP checkpoint of the current tree, carrying the log epoch."""
        cp = cpmod.Checkpoint(self.origin, self.tree.size, self.tree.root(),
                              (audit.EPOCH_EXTENSION + str(self.sealer.epoch),))
        return cpmod.sign_checkpoint(cp, self.signer, self.cosigners, timestamp)


def decode_payload(entry_bytes):
    """The entry of a record's bytes, for display: (Entry, record index, record epoch).

    A bare format-2 record has no index or epoch of its own (None): the TSL2 record that
    ends its batch seals its position.
    """
    record = sealing.decode_record(entry_bytes)
    return sealing.decode_entry(record.entry), record.index, record.epoch
