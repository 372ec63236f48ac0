"""Signed tree heads as C2SP ``tlog-checkpoint`` notes in the C2SP ``signed-note`` format.

Existing transparency-log tooling (witnesses, verifiers) reads these. Sections refer to
c2sp.org/signed-note, c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature:

- note: UTF-8 text ending in a newline, no control characters but newline; a blank line;
  then signature lines ``— <name> <base64(key ID[4] || signature)>`` (U+2014, space).
- key ID = SHA-256(name || 0x0A || alg || public key)[:4]; alg 0x01 = Ed25519 over the
  note text (signed-note "Signatures"), alg 0x04 = Ed25519 cosignature/v1 over
  ``cosignature/v1\\ntime <t>\\n`` || note text with signature = timestamp u64 || sig
  (tlog-cosignature "Format").
- checkpoint body: origin line, tree size in decimal, base64 root hash, optional
  non-empty extension lines (tlog-checkpoint "Note text").
- verifier keys (vkeys): ``<name>+<hex key ID>+<base64(alg || public key)>``.

Everything raises :class:`CheckpointError` with a message naming the line or field.
"""
import base64
import binascii
import collections
import hashlib
import re
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives import serialization

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
SIG_PREFIX = '\u2014 '
MAX_SIGNATURES = 100
_DECIMAL = re.compile(r'^(0|[1-9][0-9]{0,19})$')

Checkpoint = collections.namedtuple('Checkpoint', 'origin size root extensions')


class CheckpointError(Exception):
    """A malformed or unverifiable note or checkpoint; the message names what is wrong."""


def _check_name(name):
    if not name or any(c.isspace() for c in name) or '+' in name:
        raise CheckpointError('key name %r must be non-empty, without spaces or "+"' % name)


def key_id(name, alg, public_key):
    """signed-note: SHA-256(name || "\\n" || alg || key)[:4]."""
    return hashlib.sha256(name.encode('utf-8') + b'\n' + bytes([alg]) + public_key).digest()[:4]


def _raw_public(public_key):
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class NoteSigner(object):
    """Signs notes with an Ed25519 key as log (alg 0x01) or as witness (alg 0x04)."""

    def __init__(self, name, private_key, alg=ALG_ED25519):
        _check_name(name)
        if alg not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise CheckpointError('unsupported signature algorithm 0x%02x' % alg)
        self.name = name
        self.alg = alg
        self._key = private_key
        self.public_key = _raw_public(private_key.public_key())
        self.key_id = key_id(name, alg, self.public_key)

    @classmethod
    def generate(cls, name, alg=ALG_ED25519):
        return cls(name, ed25519.Ed25519PrivateKey.generate(), alg)

    @classmethod
    def from_seed(cls, name, seed, alg=ALG_ED25519):
        try:
            key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        except ValueError as exc:
            raise CheckpointError('bad Ed25519 private key for %s: %s' % (name, exc))
        return cls(name, key, alg)

    def seed(self):
        return self._key.private_bytes(serialization.Encoding.Raw,
                                       serialization.PrivateFormat.Raw,
                                       serialization.NoEncryption())

    def verifier(self):
        return NoteVerifier(self.name, self.public_key, self.alg)

    def vkey(self):
        return self.verifier().vkey()

    def signature_line(self, text, timestamp=None):
        if self.alg == ALG_COSIGNATURE_V1:
            if timestamp is None or not 0 <= timestamp < 2 ** 63:
                raise CheckpointError('a cosignature needs a timestamp in 0..2^63-1')
            message = ('cosignature/v1\ntime %d\n' % timestamp).encode('ascii') + text
            sig = struct.pack('>Q', timestamp) + self._key.sign(message)
        else:
            sig = self._key.sign(text)
        return '%s%s %s\n' % (SIG_PREFIX, self.name,
                              base64.b64encode(self.key_id + sig).decode('ascii'))


class NoteVerifier(object):
    """A trusted (name, Ed25519 public key, alg) tuple."""

    def __init__(self, name, public_key, alg=ALG_ED25519):
        _check_name(name)
        if alg not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise CheckpointError('unsupported signature algorithm 0x%02x for %s' % (alg, name))
        if len(public_key) != 32:
            raise CheckpointError('Ed25519 public key of %s must be 32 bytes' % name)
        self.name = name
        self.alg = alg
        self.public_key = bytes(public_key)
        self.key_id = key_id(name, alg, self.public_key)
        self._key = ed25519.Ed25519PublicKey.from_public_bytes(self.public_key)

    @classmethod
    def from_vkey(cls, vkey):
        """Parse ``<name>+<hex key ID>+<base64(alg || key)>`` and check the key ID."""
        parts = vkey.strip().split('+', 2)
        if len(parts) != 3:
            raise CheckpointError('verifier key must be name+keyid+key, got %d fields'
                                  % len(parts))
        name, hexid, b64 = parts
        try:
            raw = base64.b64decode(b64, validate=True)
            kid = bytes.fromhex(hexid)
        except (binascii.Error, ValueError) as exc:
            raise CheckpointError('verifier key for %s is not valid hex/base64: %s'
                                  % (name, exc))
        if len(raw) != 33:
            raise CheckpointError('verifier key for %s: expected alg byte + 32-byte key' % name)
        verifier = cls(name, raw[1:], raw[0])
        if verifier.key_id != kid:
            raise CheckpointError('verifier key for %s: key ID %s does not match the key (%s)'
                                  % (name, hexid, verifier.key_id.hex()))
        return verifier

    def vkey(self):
        return '%s+%s+%s' % (self.name, self.key_id.hex(), base64.b64encode(
            bytes([self.alg]) + self.public_key).decode('ascii'))

    def verify(self, text, sig):
        """Raise CheckpointError unless ``sig`` (without key ID) signs ``text``."""
        try:
            if self.alg == ALG_COSIGNATURE_V1:
                if len(sig) != 72:
                    raise CheckpointError('cosignature of %s must be 72 bytes, got %d'
                                          % (self.name, len(sig)))
                (timestamp,) = struct.unpack('>Q', sig[:8])
                message = ('cosignature/v1\ntime %d\n' % timestamp).encode('ascii') + text
                self._key.verify(sig[8:], message)
                return timestamp
            self._key.verify(sig, text)
            return None
        except InvalidSignature:
            raise CheckpointError('signature of %s does not verify' % self.name)


def split_note(note):
    """Split note bytes/str into (text bytes, [(name, key ID, signature bytes)])."""
    if isinstance(note, str):
        note = note.encode('utf-8')
    try:
        decoded = note.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise CheckpointError('note is not UTF-8 (byte %d)' % exc.start)
    for i, c in enumerate(decoded):
        if (ord(c) < 0x20 and c != '\n') or ord(c) == 0x7f:
            raise CheckpointError('note contains control character U+%04X at character %d'
                                  % (ord(c), i))
    sep = decoded.rfind('\n\n')
    if sep < 0:
        raise CheckpointError('note has no blank line before its signatures')
    text = decoded[:sep + 1]
    sig_block = decoded[sep + 2:]
    if not sig_block.endswith('\n'):
        raise CheckpointError('note does not end with a newline')
    lines = sig_block[:-1].split('\n')
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError('note has %d signatures, at most %d allowed'
                              % (len(lines), MAX_SIGNATURES))
    sigs = []
    for n, line in enumerate(lines, 1):
        if not line.startswith(SIG_PREFIX):
            raise CheckpointError('signature line %d does not start with "\u2014 "' % n)
        fields = line[len(SIG_PREFIX):].split(' ')
        if len(fields) != 2 or not fields[0]:
            raise CheckpointError('signature line %d must be "\u2014 <name> <base64>"' % n)
        try:
            raw = base64.b64decode(fields[1], validate=True)
        except binascii.Error:
            raise CheckpointError('signature line %d: signature is not base64' % n)
        if len(raw) < 5:
            raise CheckpointError('signature line %d: signature too short' % n)
        sigs.append((fields[0], raw[:4], raw[4:]))
    return text.encode('utf-8'), sigs


def open_note(note, verifiers):
    """Verify a note against trusted verifiers; return (text, {name: timestamp or None}).

    Unknown signatures are ignored (signed-note "Verifying"); a known name and key ID whose
    signature fails is an error; at least one known signature must verify.
    """
    text, sigs = split_note(note)
    by_id = {(v.name, v.key_id): v for v in verifiers}
    verified = {}
    for name, kid, sig in sigs:
        verifier = by_id.get((name, kid))
        if verifier is not None:
            verified[name] = verifier.verify(text, sig)
    if not verified:
        names = ', '.join(sorted(v.name for v in verifiers)) or 'none given'
        raise CheckpointError('no signature by a trusted key (%s) on the note' % names)
    return text, verified


def format_checkpoint(origin, size, root, extensions=()):
    """tlog-checkpoint note text (with its final newline), as bytes."""
    if not origin or '\n' in origin:
        raise CheckpointError('origin must be one non-empty line')
    for ext in extensions:
        if not ext or '\n' in ext:
            raise CheckpointError('extension lines must be non-empty single lines')
    lines = [origin, str(size), base64.b64encode(root).decode('ascii')] + list(extensions)
    return ('\n'.join(lines) + '\n').encode('utf-8')


def parse_checkpoint(text):
    """Parse checkpoint note text (bytes or str) into a :class:`Checkpoint`."""
    if isinstance(text, bytes):
        try:
            text = text.decode('utf-8')
        except UnicodeDecodeError as exc:
            raise CheckpointError('checkpoint is not UTF-8 (byte %d)' % exc.start)
    if not text.endswith('\n'):
        raise CheckpointError('checkpoint text must end with a newline')
    lines = text[:-1].split('\n')
    if len(lines) < 3:
        raise CheckpointError('checkpoint needs origin, size and root lines, got %d line(s)'
                              % len(lines))
    origin, size, root = lines[:3]
    if not origin:
        raise CheckpointError('checkpoint line 1 (origin) is empty')
    if not _DECIMAL.match(size) or int(size) >= 2 ** 64:
        raise CheckpointError('checkpoint line 2 (tree size) %r is not a decimal number'
                              % size[:40])
    try:
        root_hash = base64.b64decode(root, validate=True)
    except binascii.Error:
        raise CheckpointError('checkpoint line 3 (root hash) is not base64')
    if len(root_hash) != 32:
        raise CheckpointError('checkpoint line 3 (root hash) is %d bytes, want 32'
                              % len(root_hash))
    for n, ext in enumerate(lines[3:], 4):
        if not ext:
            raise CheckpointError('checkpoint line %d (extension) is empty' % n)
    return Checkpoint(origin, int(size), root_hash, tuple(lines[3:]))


def sign_note(text, signer):
    """A signed note of ``text`` (UTF-8 bytes ending in a newline) with one signature.

    For notes other than checkpoints signed with a log's key (a tenant's report manifest):
    their text must never parse as a checkpoint (see :mod:`.report`).
    """
    if not text.endswith(b'\n'):
        raise CheckpointError('note text must end with a newline')
    return text + b'\n' + signer.signature_line(text).encode('utf-8')


def sign_checkpoint(checkpoint, signer, cosigners=(), timestamp=None):
    """A complete signed note: body, blank line, the log's and witnesses' signatures."""
    text = format_checkpoint(*checkpoint)
    lines = [signer.signature_line(text)]
    for cosigner in cosigners:
        lines.append(cosigner.signature_line(text, timestamp))
    return text + b'\n' + ''.join(lines).encode('utf-8')


def add_cosignature(note, cosigner, timestamp):
    """A witness cosigns an existing signed note (appends its signature line)."""
    text, _sigs = split_note(note)
    if isinstance(note, str):
        note = note.encode('utf-8')
    return note + cosigner.signature_line(text, timestamp).encode('utf-8')


def open_checkpoint(note, log_verifier, origin=None, witnesses=(), quorum=0):
    """Verify a signed checkpoint; return (Checkpoint, {witness name: timestamp}).

    The log's own signature must verify; with ``quorum`` > 0, that many distinct trusted
    witnesses must have cosigned (so the log cannot show different heads to different
    auditors).
    """
    text, verified = open_note(note, [log_verifier] + list(witnesses))
    if log_verifier.name not in verified or verified[log_verifier.name] is not None:
        raise CheckpointError('checkpoint lacks a valid signature of the log key %s'
                              % log_verifier.name)
    checkpoint = parse_checkpoint(text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError('checkpoint origin %r is not the expected %r'
                              % (checkpoint.origin, origin))
    cosigned = {name: ts for name, ts in verified.items() if name != log_verifier.name}
    if len(cosigned) < quorum:
        raise CheckpointError('checkpoint has %d valid witness cosignature(s), %d required'
                              % (len(cosigned), quorum))
    return checkpoint, cosigned
