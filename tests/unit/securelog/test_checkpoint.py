"""C2SP signed-note / tlog-checkpoint / tlog-cosignature: published vectors, and our notes
checked by a second, independent verifier written here from the specs."""
import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric import ed25519
import pytest

from tclouds_openstack.securelog import checkpoint as cpmod
from tclouds_openstack.securelog import merkle

EM = '\u2014'
# golang.org/x/mod/sumdb/note note_test.go (the signed-note reference vector).
PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'
PETER_SKEY_B64 = 'AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz'
PETER_TEXT = ("If you think cryptography is the answer to your problem,\n"
              "then you don't know what your problem is.\n")
PETER_NOTE = PETER_TEXT + '\n' + EM + (' PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcEl'
                                       'ZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n')
# c2sp.org/signed-note example.
FOO_VKEY = 'example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k'
FOO_NOTE = ('This is an example message.\n\n' + EM + ' example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnag'
            'v1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n')
# A real CT log checkpoint cosigned (cosignature/v1, alg 0x04) by the witness remora.n621.de.
REMORA_VKEY = 'remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2'
REMORA_NOTE = ('arche2025h1.staging.ct.transparency.dev\n1432088532\n'
               'U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n\n' + EM + ' remora.n621.de '
               '2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXT'
               'ynk5XeU/zZ0WBxtqB0DrAWfBw==\n')


def test_published_signed_note_vectors():
    for vkey, note in ((PETER_VKEY, PETER_NOTE), (FOO_VKEY, FOO_NOTE)):
        verifier = cpmod.NoteVerifier.from_vkey(vkey)
        text, names = cpmod.open_note(note, [verifier])
        assert text == note.split('\n\n')[0].encode() + b'\n'
        assert names == {verifier.name: None}
        with pytest.raises(cpmod.CheckpointError, match='does not verify'):
            cpmod.open_note(note.replace('example', 'Example', 1).replace('cryptography',
                                                                          'cryptographY', 1),
                            [verifier])


def test_signing_reproduces_the_go_vector():
    # Ed25519 is deterministic: our signer must produce the published signature byte for byte.
    seed = base64.b64decode(PETER_SKEY_B64)[1:]
    signer = cpmod.NoteSigner.from_seed('PeterNeumann', seed)
    assert signer.vkey() == PETER_VKEY
    assert PETER_TEXT + '\n' + signer.signature_line(PETER_TEXT.encode()) == PETER_NOTE


def test_published_cosignature_vector():
    witness = cpmod.NoteVerifier.from_vkey(REMORA_VKEY)
    assert witness.alg == cpmod.ALG_COSIGNATURE_V1
    text, names = cpmod.open_note(REMORA_NOTE, [witness])
    assert names['remora.n621.de'] > 1700000000
    cp = cpmod.parse_checkpoint(text)
    assert (cp.origin, cp.size) == ('arche2025h1.staging.ct.transparency.dev', 1432088532)
    with pytest.raises(cpmod.CheckpointError):
        cpmod.open_note(REMORA_NOTE.replace('1432088532', '1432088533'), [witness])


# ---- an independent verifier, written from c2sp.org/signed-note and tlog-checkpoint ----

def _independent_verify(note_bytes, name, pubkey, witnesses=()):
    """Return (origin, size, root, {witness: timestamp}) or raise AssertionError."""
    s = note_bytes.decode('utf-8')
    body, _, sigs = s.rpartition('\n\n')
    body += '\n'
    assert sigs.endswith('\n')
    found = {}
    for line in sigs[:-1].split('\n'):
        assert line.startswith('\u2014 ')
        sname, b64 = line[2:].split(' ')
        blob = base64.b64decode(b64)
        found.setdefault(sname, []).append(blob)

    def kid(n, alg, key):
        return hashlib.sha256(n.encode() + b'\n' + bytes([alg]) + key).digest()[:4]

    ok = False
    for blob in found.get(name, []):
        if blob[:4] == kid(name, 1, pubkey):
            ed25519.Ed25519PublicKey.from_public_bytes(pubkey).verify(blob[4:], body.encode())
            ok = True
    assert ok, 'log signature missing'
    cosigned = {}
    for wname, wkey in witnesses:
        for blob in found.get(wname, []):
            if blob[:4] == kid(wname, 4, wkey):
                ts = int.from_bytes(blob[4:12], 'big')
                msg = b'cosignature/v1\ntime ' + str(ts).encode() + b'\n' + body.encode()
                ed25519.Ed25519PublicKey.from_public_bytes(wkey).verify(blob[12:], msg)
                cosigned[wname] = ts
    lines = body.split('\n')
    return lines[0], int(lines[1]), base64.b64decode(lines[2]), cosigned


def test_our_checkpoints_verify_with_the_independent_verifier():
    tree = merkle.MerkleTree(merkle.hash_leaf(b'%d' % i) for i in range(1000))
    log = cpmod.NoteSigner.generate('tclouds.example/securelog')
    w1 = cpmod.NoteSigner.generate('witness.example/w1', cpmod.ALG_COSIGNATURE_V1)
    w2 = cpmod.NoteSigner.generate('witness.example/w2', cpmod.ALG_COSIGNATURE_V1)
    cp = cpmod.Checkpoint('tclouds.example/securelog', tree.size, tree.root(),
                          ('tclouds-securelog-epoch 7',))
    note = cpmod.sign_checkpoint(cp, log, [w1], timestamp=1764300000)
    note = cpmod.add_cosignature(note, w2, 1764300001)
    origin, size, root, cosigned = _independent_verify(
        note, log.name, log.public_key,
        [(w1.name, w1.public_key), (w2.name, w2.public_key)])
    assert (origin, size, root) == (cp.origin, 1000, tree.root())
    assert cosigned == {w1.name: 1764300000, w2.name: 1764300001}
    # And our own verifier, with a witness quorum.
    parsed, wit = cpmod.open_checkpoint(note, log.verifier(), origin=cp.origin,
                                        witnesses=[w1.verifier(), w2.verifier()], quorum=2)
    assert parsed == cp and set(wit) == {w1.name, w2.name}
    with pytest.raises(cpmod.CheckpointError, match='1 valid witness cosignature'):
        cpmod.open_checkpoint(cpmod.sign_checkpoint(cp, log, [w1], 5), log.verifier(),
                              witnesses=[w1.verifier(), w2.verifier()], quorum=2)


@pytest.mark.parametrize('mutate, message', [
    (lambda n: n.replace(b'\n\n', b'\n'), 'no blank line'),
    (lambda n: n[:-1], 'end with a newline'),
    (lambda n: n.replace('\u2014 '.encode(), b'- ', 1), 'does not start with'),
    (lambda n: n.replace(b'1000\n', b'01000\n'), 'does not verify'),
    (lambda n: n + b'\xff', 'not UTF-8'),
    (lambda n: n.replace(b'1000', b'10\x0700'), 'control character'),
])
def test_malformed_notes_are_rejected_with_a_reason(mutate, message):
    log = cpmod.NoteSigner.generate('log')
    note = cpmod.sign_checkpoint(cpmod.Checkpoint('o', 1000, b'\x01' * 32, ()), log)
    with pytest.raises(cpmod.CheckpointError, match=message):
        cpmod.open_checkpoint(mutate(note), log.verifier())


@pytest.mark.parametrize('text, message', [
    (b'o\n1\n', 'origin, size and root'),
    (b'\n1\n' + base64.b64encode(b'r' * 32) + b'\n', 'origin'),
    (b'o\n01\n' + base64.b64encode(b'r' * 32) + b'\n', 'tree size'),
    (b'o\n-1\n' + base64.b64encode(b'r' * 32) + b'\n', 'tree size'),
    (b'o\n1\n' + base64.b64encode(b'r' * 31) + b'\n', '31 bytes'),
    (b'o\n1\n!!!!\n', 'not base64'),
    (b'o\n1\n' + base64.b64encode(b'r' * 32) + b'\n\n', 'extension'),
])
def test_checkpoint_body_errors(text, message):
    with pytest.raises(cpmod.CheckpointError, match=message):
        cpmod.parse_checkpoint(text)


def test_vkey_errors():
    with pytest.raises(cpmod.CheckpointError, match='key ID'):
        cpmod.NoteVerifier.from_vkey(PETER_VKEY.replace('c74f20a3', 'c74f20a4'))
    with pytest.raises(cpmod.CheckpointError, match='name\\+keyid\\+key'):
        cpmod.NoteVerifier.from_vkey('justaname')
