"""RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing, proofs and verifiers.

Pure functions named after the RFC's terms, in the shape of transparency-dev/merkle
(``rfc6962/rfc6962.go``, ``proof/verify.go``). Section numbers refer to RFC 9162:

- 2.1.1 hashing: ``hash_leaf`` = SHA-256(0x00 || leaf), ``hash_children`` =
  SHA-256(0x01 || left || right); the empty tree hashes to SHA-256("").
- 2.1.3 inclusion proofs, 2.1.4 consistency proofs: generated from a :class:`MerkleTree`
  and checked with :func:`verify_inclusion` / :func:`verify_consistency`.

Verifiers raise :class:`ProofError` naming the failed check; they never raise anything else
for any input (wrong lengths, wrong types of size, garbage proofs).
"""
import hashlib

HASH_SIZE = 32
_sha256 = hashlib.sha256
EMPTY_ROOT = _sha256(b'').digest()


class ProofError(Exception):
    """A Merkle proof or root did not verify; the message names the failed check."""


def hash_leaf(leaf):
    """RFC 9162 2.1.1: MTH({d(0)}) = SHA-256(0x00 || d(0))."""
    return _sha256(b'\x00' + leaf).digest()


def hash_children(left, right):
    """RFC 9162 2.1.1: SHA-256(0x01 || MTH(left) || MTH(right))."""
    return _sha256(b'\x01' + left + right).digest()


def _largest_power_of_two_below(n):
    """The k of RFC 9162 2.1.1: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(leaf_hashes):
    """MTH over a list of leaf hashes (RFC 9162 2.1.1), iteratively with a compact stack."""
    stack = CompactRange()
    for h in leaf_hashes:
        stack.append(h)
    return stack.root()


class CompactRange(object):
    """The right frontier of a growing tree: O(log n) perfect-subtree hashes.

    Used by the auditor to recompute roots while streaming entries from genesis without
    keeping every node (the "compact range" of transparency-dev/merkle).
    """

    __slots__ = ('size', '_nodes')

    def __init__(self):
        self.size = 0
        self._nodes = []

    def append(self, leaf_hash):
        nodes = self._nodes
        nodes.append(leaf_hash)
        size = self.size
        # Each trailing 1 bit of the old size closes one perfect subtree.
        while size & 1:
            right = nodes.pop()
            nodes[-1] = _sha256(b'\x01' + nodes[-1] + right).digest()
            size >>= 1
        self.size += 1

    def root(self):
        if not self._nodes:
            return EMPTY_ROOT
        nodes = self._nodes
        h = nodes[-1]
        for left in reversed(nodes[:-1]):
            h = _sha256(b'\x01' + left + h).digest()
        return h


class MerkleTree(object):
    """An append-only tree keeping every perfect subtree hash, for O(log n) proofs.

    ``levels[0]`` holds the leaf hashes, ``levels[h][i]`` the hash of the perfect subtree of
    2**h leaves starting at leaf i * 2**h. Hashes are kept in one bytearray per level
    (32 bytes each) so a million-entry tree costs about 64 MB, not a Python object per node.
    """

    def __init__(self, leaf_hashes=()):
        self._levels = [bytearray()]
        self.size = 0
        for h in leaf_hashes:
            self.append_hash(h)

    def append(self, leaf):
        self.append_hash(hash_leaf(leaf))

    def append_hash(self, leaf_hash):
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError('leaf hash must be %d bytes, got %d' % (HASH_SIZE, len(leaf_hash)))
        levels = self._levels
        levels[0] += leaf_hash
        index = self.size
        level = 0
        while index & 1:
            row = levels[level]
            off = (index - 1) * HASH_SIZE
            parent = _sha256(b'\x01' + bytes(row[off:off + 2 * HASH_SIZE])).digest()
            level += 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += parent
            index >>= 1
        self.size += 1

    def leaf_hash(self, index):
        if not 0 <= index < self.size:
            raise IndexError('leaf index %d outside tree of size %d' % (index, self.size))
        return self._node(0, index)

    def _node(self, level, index):
        off = index * HASH_SIZE
        return bytes(self._levels[level][off:off + HASH_SIZE])

    def _subtree(self, start, n):
        """MTH(D[start:start+n]); start is a multiple of the largest power of two <= n."""
        if n & (n - 1) == 0:
            level = n.bit_length() - 1
            return self._node(level, start >> level)
        k = _largest_power_of_two_below(n)
        return hash_children(self._subtree(start, k), self._subtree(start + k, n - k))

    def root(self, size=None):
        """MTH of the first ``size`` leaves (default: the whole tree)."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError('size %d outside tree of size %d' % (size, self.size))
        if size == 0:
            return EMPTY_ROOT
        return self._subtree(0, size)

    def inclusion_proof(self, index, size=None):
        """RFC 9162 2.1.3.1 PATH(index, D[0:size]), leaf-to-root order."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError('tree size %d outside tree of size %d' % (size, self.size))
        if not 0 <= index < size:
            raise ValueError('leaf index %d outside tree of size %d' % (index, size))
        proof = []
        start = 0
        n = size
        while n > 1:
            k = _largest_power_of_two_below(n)
            if index - start < k:
                proof.append(self._subtree(start + k, n - k))
                n = k
            else:
                proof.append(self._subtree(start, k))
                start += k
                n -= k
        proof.reverse()
        return proof

    def consistency_proof(self, size1, size2=None):
        """RFC 9162 2.1.4.1 PROOF(size1, D[0:size2]), in the RFC's order."""
        size2 = self.size if size2 is None else size2
        if not 0 <= size2 <= self.size:
            raise ValueError('size2 %d outside tree of size %d' % (size2, self.size))
        if not 0 <= size1 <= size2:
            raise ValueError('size1 %d outside 0..size2 (%d)' % (size1, size2))
        if size1 == 0 or size1 == size2:
            return []
        return self._subproof(size1, 0, size2, True)

    def _subproof(self, m, start, n, complete):
        # SUBPROOF(m, D[start:start+n], b) of RFC 9162 2.1.4.1.
        if m == n:
            return [] if complete else [self._subtree(start, n)]
        k = _largest_power_of_two_below(n)
        if m <= k:
            return self._subproof(m, start, k, complete) + [self._subtree(start + k, n - k)]
        return self._subproof(m - k, start + k, n - k, False) + [self._subtree(start, k)]


# ---- verifiers (RFC 9162 2.1.3.2 and 2.1.4.2, in transparency-dev/merkle's form) ----

def _check_size(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProofError('%s must be a non-negative integer, got %r' % (name, value))


def _check_hashes(name, hashes):
    if hashes is None:
        return []
    if not isinstance(hashes, (list, tuple)):
        raise ProofError('%s must be a list of hashes' % name)
    for i, h in enumerate(hashes):
        if not isinstance(h, (bytes, bytearray)) or len(h) != HASH_SIZE:
            raise ProofError('%s[%d] is not a %d-byte hash' % (name, i, HASH_SIZE))
    return list(hashes)


def _decomp_incl_proof(index, size):
    """Split an inclusion proof length into (inner, border) parts."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count('1')
    return inner, border


def _chain_inner(seed, proof, index):
    for i, h in enumerate(proof):
        if (index >> i) & 1 == 0:
            seed = hash_children(seed, h)
        else:
            seed = hash_children(h, seed)
    return seed


def _chain_inner_right(seed, proof, index):
    for i, h in enumerate(proof):
        if (index >> i) & 1 == 1:
            seed = hash_children(h, seed)
    return seed


def _chain_border_right(seed, proof):
    for h in proof:
        seed = hash_children(h, seed)
    return seed


def _verify_match(name, calculated, expected):
    if bytes(calculated) != bytes(expected):
        raise ProofError('%s mismatch: calculated %s, expected %s'
                         % (name, bytes(calculated).hex(), bytes(expected).hex()))


def root_from_inclusion_proof(leaf_hash, index, tree_size, proof):
    """The root implied by an inclusion proof (RFC 9162 2.1.3.2)."""
    _check_size('index', index)
    _check_size('tree_size', tree_size)
    if index >= tree_size:
        raise ProofError('index is beyond tree size: %d >= %d' % (index, tree_size))
    if not isinstance(leaf_hash, (bytes, bytearray)) or len(leaf_hash) != HASH_SIZE:
        raise ProofError('leaf hash has unexpected size %s, want %d'
                         % (len(leaf_hash) if isinstance(leaf_hash, (bytes, bytearray))
                            else type(leaf_hash).__name__, HASH_SIZE))
    proof = _check_hashes('proof', proof)
    inner, border = _decomp_incl_proof(index, tree_size)
    if len(proof) != inner + border:
        raise ProofError('wrong inclusion proof size %d, want %d' % (len(proof), inner + border))
    res = _chain_inner(bytes(leaf_hash), proof[:inner], index)
    return _chain_border_right(res, proof[inner:])


def verify_inclusion(leaf_hash, index, tree_size, proof, root):
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``tree_size`` with ``root``.

    Raises :class:`ProofError` naming the failed check.
    """
    calculated = root_from_inclusion_proof(leaf_hash, index, tree_size, proof)
    if not isinstance(root, (bytes, bytearray)):
        raise ProofError('root must be bytes')
    _verify_match('root', calculated, root)


def verify_consistency(size1, size2, proof, root1, root2):
    """Check that the tree of ``size2``/``root2`` extends the tree of ``size1``/``root1``.

    RFC 9162 2.1.4.2. Raises :class:`ProofError` naming the failed check.
    """
    _check_size('size1', size1)
    _check_size('size2', size2)
    for name, root in (('root1', root1), ('root2', root2)):
        if not isinstance(root, (bytes, bytearray)):
            raise ProofError('%s must be bytes' % name)
    if proof is not None and not isinstance(proof, (list, tuple)):
        raise ProofError('proof must be a list of hashes')
    proof = list(proof or [])
    if size2 < size1:
        raise ProofError('size2 (%d) < size1 (%d)' % (size2, size1))
    if size1 == size2:
        if proof:
            raise ProofError('size1 == size2 (%d) but the proof is not empty' % size1)
        _verify_match('root', root1, root2)
        if size1 == 0:
            # RFC 9162 2.1.1: the empty tree has exactly one root, SHA-256 of nothing.
            _verify_match('empty tree root', root1, EMPTY_ROOT)
        return
    if size1 == 0:
        raise ProofError('consistency proof from an empty tree (size1 = 0) proves nothing')
    if not proof:
        raise ProofError('empty consistency proof for size1 %d < size2 %d' % (size1, size2))
    proof = _check_hashes('proof', proof)
    inner, border = _decomp_incl_proof(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift
    # The proof starts with the root of the size1 subtree unless size1 is a power of two.
    if size1 == 1 << shift:
        seed, start = bytes(root1), 0
    else:
        seed, start = proof[0], 1
    if len(proof) != start + inner + border:
        raise ProofError('wrong consistency proof size %d, want %d'
                         % (len(proof), start + inner + border))
    proof = proof[start:]
    mask = (size1 - 1) >> shift
    hash1 = _chain_inner_right(seed, proof[:inner], mask)
    hash1 = _chain_border_right(hash1, proof[inner:])
    _verify_match('root1', hash1, root1)
    hash2 = _chain_inner(seed, proof[:inner], mask)
    hash2 = _chain_border_right(hash2, proof[inner:])
    _verify_match('root2', hash2, root2)
