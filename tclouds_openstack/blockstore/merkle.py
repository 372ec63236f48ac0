"""Merkle hash tree over sector leaves (RFC 9162 section 2.1.1 hashing), kept in memory.

Used by the format 1 reader (``format_v1``); format 2 keeps its tree on disk (``format``).

Leaves and interior nodes use RFC 9162's domain separation (0x00 leaf, 0x01 node); an
odd node at the end of a level is promoted unchanged, which yields the same MTH as the
RFC's recursive split. Levels are flat ``bytearray`` s (32 bytes per node) so a tree of a
million sectors costs 64 MiB, and updating k leaves rehashes only their paths.
"""
import hashlib

HASH_SIZE = 32


def hash_leaf(data):
    """RFC 9162 2.1.1: MTH({d}) = SHA-256(0x00 || d)."""
    return hashlib.sha256(b'\x00' + data).digest()


def hash_children(left, right):
    """RFC 9162 2.1.1: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b'\x01' + left + right).digest()


class Tree:
    """A Merkle tree over ``n`` leaf hashes with in-place updates."""

    def __init__(self, leaf_hashes):
        """``leaf_hashes`` is a bytes-like of n * 32 bytes (already hashed leaves)."""
        level = bytearray(leaf_hashes)
        if not level or len(level) % HASH_SIZE:
            raise ValueError('a tree needs at least one 32-byte leaf hash')
        self.levels = [level]
        while len(level) > HASH_SIZE:
            level = self._parent_level(level)
            self.levels.append(level)

    @staticmethod
    def _parent_level(level):
        count = len(level) // HASH_SIZE
        out = bytearray()
        sha = hashlib.sha256
        for i in range(0, count - 1, 2):
            o = i * HASH_SIZE
            out += sha(b'\x01' + level[o:o + 2 * HASH_SIZE]).digest()
        if count % 2:
            out += level[(count - 1) * HASH_SIZE:]
        return out

    @property
    def size(self):
        return len(self.levels[0]) // HASH_SIZE

    def root(self):
        return bytes(self.levels[-1])

    def leaf(self, index):
        return bytes(self.levels[0][index * HASH_SIZE:(index + 1) * HASH_SIZE])

    def update(self, changes):
        """Set leaves {index: leaf_hash} and rehash the affected paths; return the root."""
        if not changes:
            return self.root()
        dirty = set()
        level = self.levels[0]
        for index, value in changes.items():
            level[index * HASH_SIZE:(index + 1) * HASH_SIZE] = value
            dirty.add(index)
        sha = hashlib.sha256
        for depth in range(1, len(self.levels)):
            below = self.levels[depth - 1]
            here = self.levels[depth]
            count = len(below) // HASH_SIZE
            parents = set()
            for index in dirty:
                p = index // 2
                if p in parents:
                    continue
                parents.add(p)
                left = 2 * p
                if left + 1 < count:
                    node = sha(b'\x01' + below[left * HASH_SIZE:(left + 2) * HASH_SIZE]).digest()
                else:
                    node = below[left * HASH_SIZE:(left + 1) * HASH_SIZE]
                here[p * HASH_SIZE:(p + 1) * HASH_SIZE] = node
            dirty = parents
        return self.root()
