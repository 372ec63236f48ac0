"""RFC 9162 Merkle tree: shared transparency-dev vectors and proofs checked against the
RFC's recursive definitions (written again here, independently of the module)."""
import base64
import hashlib
import json

import pytest

from tclouds_openstack.securelog import merkle


def _b64(value):
    return base64.b64decode(value) if value else b''


def _cases(shared_data, kind):
    files = sorted((shared_data / 'merkle-vectors' / kind).rglob('*.json'))
    assert files, 'no %s vectors found' % kind
    return [(f.relative_to(shared_data), json.loads(f.read_text())) for f in files]


def test_inclusion_vectors(shared_data):
    cases = _cases(shared_data, 'inclusion')
    valid = 0
    for name, case in cases:
        args = (_b64(case['leafHash']), case['leafIdx'], case['treeSize'],
                [_b64(p) for p in case['proof'] or []], _b64(case['root']))
        if case['wantErr']:
            with pytest.raises(merkle.ProofError):
                merkle.verify_inclusion(*args)
        else:
            merkle.verify_inclusion(*args)
            valid += 1
    assert valid >= 5 and len(cases) - valid >= 50


def test_consistency_vectors(shared_data):
    cases = _cases(shared_data, 'consistency')
    valid = 0
    for name, case in cases:
        args = (case['size1'], case['size2'], [_b64(p) for p in case['proof'] or []],
                _b64(case['root1']), _b64(case['root2']))
        if case['wantErr']:
            with pytest.raises(merkle.ProofError):
                merkle.verify_consistency(*args)
        else:
            merkle.verify_consistency(*args)
            valid += 1
    assert valid >= 5 and len(cases) - valid >= 50


# ---- independent reference: RFC 9162 2.1.1, 2.1.3.1, 2.1.4.1 as written ----

def _h(data):
    return hashlib.sha256(data).digest()


def _mth(leaves):
    n = len(leaves)
    if n == 0:
        return _h(b'')
    if n == 1:
        return _h(b'\x00' + leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return _h(b'\x01' + _mth(leaves[:k]) + _mth(leaves[k:]))


def _path(m, leaves):
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return _path(m, leaves[:k]) + [_mth(leaves[k:])]
    return _path(m - k, leaves[k:]) + [_mth(leaves[:k])]


def _subproof(m, leaves, b):
    n = len(leaves)
    if m == n:
        return [] if b else [_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return _subproof(m, leaves[:k], b) + [_mth(leaves[k:])]
    return _subproof(m - k, leaves[k:], False) + [_mth(leaves[:k])]


LEAVES = [b'leaf-%d' % i for i in range(40)]


def test_tree_matches_rfc_definitions_for_every_size():
    tree = merkle.MerkleTree()
    assert tree.root() == _h(b'')
    for n in range(1, len(LEAVES) + 1):
        tree.append(LEAVES[n - 1])
        assert tree.root() == _mth(LEAVES[:n])
        assert merkle.root_from_leaf_hashes(
            [merkle.hash_leaf(x) for x in LEAVES[:n]]) == _mth(LEAVES[:n])
    for n in range(1, len(LEAVES) + 1):
        root = _mth(LEAVES[:n])
        for m in range(n):
            proof = tree.inclusion_proof(m, n)
            assert proof == _path(m, LEAVES[:n])
            merkle.verify_inclusion(merkle.hash_leaf(LEAVES[m]), m, n, proof, root)
        for m in range(1, n + 1):
            proof = tree.consistency_proof(m, n)
            assert proof == (_subproof(m, LEAVES[:n], True) if m < n else [])
            merkle.verify_consistency(m, n, proof, _mth(LEAVES[:m]), root)


def test_flipped_bits_in_proofs_are_rejected():
    tree = merkle.MerkleTree(merkle.hash_leaf(x) for x in LEAVES[:13])
    root = tree.root()
    proof = tree.inclusion_proof(5)
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
        with pytest.raises(merkle.ProofError, match='root mismatch'):
            merkle.verify_inclusion(merkle.hash_leaf(LEAVES[5]), 5, 13, bad, root)
    cproof = tree.consistency_proof(6)
    for i in range(len(cproof)):
        bad = list(cproof)
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
        with pytest.raises(merkle.ProofError, match='root1 mismatch|root2 mismatch'):
            merkle.verify_consistency(6, 13, bad, tree.root(6), root)


@pytest.mark.parametrize('args, message', [
    ((b'x' * 32, -1, 3, [], b'r' * 32), 'index must be a non-negative integer'),
    ((b'x' * 32, 0, 'three', [], b'r' * 32), 'tree_size must be'),
    ((b'x' * 31, 0, 1, [], b'r' * 32), 'leaf hash has unexpected size 31'),
    ((b'x' * 32, 0, 2, [b'short'], b'r' * 32), r'proof\[0\] is not a 32-byte hash'),
    ((b'x' * 32, 0, 2, 'notalist', b'r' * 32), 'proof must be a list'),
    ((b'x' * 32, 0, 2, [], b'r' * 32), 'wrong inclusion proof size 0, want 1'),
])
def test_inclusion_bad_input_names_the_check(args, message):
    with pytest.raises(merkle.ProofError, match=message):
        merkle.verify_inclusion(*args)


def test_tree_argument_errors():
    tree = merkle.MerkleTree([merkle.hash_leaf(b'a')])
    with pytest.raises(ValueError):
        tree.inclusion_proof(1)
    with pytest.raises(ValueError):
        tree.consistency_proof(2)
    with pytest.raises(ValueError):
        tree.append_hash(b'short')
