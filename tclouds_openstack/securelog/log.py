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
        return [(start + i, self.sealer.seal_record(start + i, entry, now_ns))
                for i, entry in enumerate(entries)]

    def commit(self, records):
        for _index, record in records:
            self.tree.append(record)

    def checkpoint(self, timestamp=None):
        """A signed C2SP checkpoint of the current tree, carrying the log epoch."""
        cp = cpmod.Checkpoint(self.origin, self.tree.size, self.tree.root(),
                              (audit.EPOCH_EXTENSION + str(self.sealer.epoch),))
        return cpmod.sign_checkpoint(cp, self.signer, self.cosigners, timestamp)


def decode_payload(entry_bytes):
    """The entry of a record's bytes, for display: (Entry, record index, record epoch)."""
    record = sealing.decode_record(entry_bytes)
    return sealing.decode_entry(record.entry), record.index, record.epoch
