"""The embedded key store: key material AES-256-GCM encrypted under a master key, in SQLite.

Also keeps, per Cinder volume, the blockstore freshness anchor (versioned, compare-and-set),
so a volume's Merkle root lives beside its key, outside the storage the volume is on, and
its format mark (claimed once: the volume was formatted, by which host, as which
blockstore volume and which block format), so a host never formats a volume that holds
data and never serves it in an older format than it was known in (a format downgrade).
"""
import json
import os
import sqlite3
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tclouds_openstack.common import fileutils

_SCHEMA = """
CREATE TABLE IF NOT EXISTS secrets (
    id TEXT PRIMARY KEY, project_id TEXT, kind TEXT NOT NULL, algorithm TEXT,
    bit_length INTEGER, name TEXT, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL,
    created REAL NOT NULL, consumers TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS anchors (
    volume TEXT PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS format_marks (
    volume TEXT PRIMARY KEY, blockstore_uuid TEXT NOT NULL, host TEXT,
    created REAL NOT NULL, format_version INTEGER);
"""


class KeyStoreError(Exception):
    """The store cannot be used (master key, file, corrupted entry); the message says why."""


class SecretNotFound(KeyStoreError):
    pass


class AnchorConflict(KeyStoreError):
    pass


def load_master_key(path):
    fileutils.warn_if_exposed(path, 'master key file')
    try:
        with open(path, 'rb') as f:
            raw = f.read().strip()
    except OSError as exc:
        raise KeyStoreError('cannot read master key file %s: %s' % (path, exc.strerror))
    try:
        key = bytes.fromhex(raw.decode('ascii'))
    except (UnicodeDecodeError, ValueError):
        key = b''
    if len(key) != 32:
        raise KeyStoreError('master key file %s must hold 64 hexadecimal characters' % path)
    return key


class LocalKeyStore:
    """Secrets by id, encrypted at rest; AAD binds each ciphertext to its id and kind."""

    def __init__(self, path, master_key):
        self.path = path
        self._aead = AESGCM(master_key)
        fileutils.private_file(path, 'key store')     # 0600 before SQLite creates it
        with self._db() as db:
            db.executescript(_SCHEMA)
            columns = [row['name'] for row in db.execute('PRAGMA table_info(format_marks)')]
            if 'format_version' not in columns:
                # a store from before formats were recorded: its marks' format is unknown
                # (NULL) until a host opens the volume (see record_format)
                db.execute('ALTER TABLE format_marks ADD COLUMN format_version INTEGER')

    def _db(self):
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return _Closing(db)

    def put(self, secret_id, kind, secret, project_id=None, algorithm=None, bit_length=None,
            name=None):
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, secret, ('%s|%s' % (secret_id, kind)).encode())
        with self._db() as db:
            db.execute('INSERT INTO secrets (id, project_id, kind, algorithm, bit_length, name,'
                       ' nonce, ciphertext, created) VALUES (?,?,?,?,?,?,?,?,?)',
                       (secret_id, project_id, kind, algorithm, bit_length, name, nonce, ct,
                        time.time()))

    def get(self, secret_id, metadata_only=False):
        with self._db() as db:
            row = db.execute('SELECT * FROM secrets WHERE id = ?', (secret_id,)).fetchone()
        if row is None:
            raise SecretNotFound('no secret with id %s' % secret_id)
        entry = dict(row)
        entry['consumers'] = json.loads(entry['consumers'])
        if not metadata_only:
            try:
                entry['secret'] = self._aead.decrypt(
                    entry['nonce'], entry['ciphertext'],
                    ('%s|%s' % (secret_id, entry['kind'])).encode())
            except InvalidTag:
                raise KeyStoreError('secret %s does not decrypt: wrong master key or the '
                                    'store was tampered with' % secret_id)
        del entry['nonce'], entry['ciphertext']
        return entry

    def list(self, project_id=None):
        with self._db() as db:
            rows = db.execute('SELECT id FROM secrets WHERE project_id IS ? ORDER BY created',
                              (project_id,)).fetchall()
        return [r['id'] for r in rows]

    def delete(self, secret_id):
        with self._db() as db:
            if db.execute('DELETE FROM secrets WHERE id = ?', (secret_id,)).rowcount == 0:
                raise SecretNotFound('no secret with id %s' % secret_id)

    def update_consumers(self, secret_id, change):
        with self._db() as db:
            db.execute('BEGIN IMMEDIATE')
            row = db.execute('SELECT consumers FROM secrets WHERE id = ?',
                             (secret_id,)).fetchone()
            if row is None:
                db.execute('ROLLBACK')
                raise SecretNotFound('no secret with id %s' % secret_id)
            consumers = change(json.loads(row['consumers']))
            db.execute('UPDATE secrets SET consumers = ? WHERE id = ?',
                       (json.dumps(consumers), secret_id))
            db.execute('COMMIT')

    # ---------------------------------------------------------------- anchors
    def anchor_load(self, volume):
        with self._db() as db:
            row = db.execute('SELECT state FROM anchors WHERE volume = ?',
                             (volume,)).fetchone()
        return None if row is None else json.loads(row['state'])

    def anchor_commit(self, volume, state, expected):
        """Compare-and-set the anchor state of ``volume``.

        Stores ``state`` if the stored version is ``expected`` (None: no state yet) and the
        new version is greater; else AnchorConflict.
        """
        with self._db() as db:
            db.execute('BEGIN IMMEDIATE')
            row = db.execute('SELECT version FROM anchors WHERE volume = ?',
                             (volume,)).fetchone()
            have = None if row is None else row['version']
            if have != expected or (have is not None and state['version'] <= have):
                db.execute('ROLLBACK')
                raise AnchorConflict('anchor of volume %s is at version %s; refusing version '
                                     '%s expected at %s' % (volume, have, state['version'],
                                                            expected))
            db.execute('INSERT OR REPLACE INTO anchors (volume, version, state) VALUES '
                       '(?, ?, ?)', (volume, state['version'], json.dumps(state)))
            db.execute('COMMIT')

    # ----------------------------------------------------------- format marks
    def format_mark(self, volume):
        """The format mark of ``volume`` or None.

        ``{blockstore_uuid, host, created_at, format_version}``; ``format_version`` is None
        for a mark claimed before formats were recorded.
        """
        with self._db() as db:
            row = db.execute('SELECT * FROM format_marks WHERE volume = ?',
                             (volume,)).fetchone()
        if row is None:
            return None
        return {'blockstore_uuid': row['blockstore_uuid'], 'host': row['host'],
                'created_at': row['created'], 'format_version': row['format_version']}

    def claim_format_mark(self, volume, blockstore_uuid, host, format_version=None):
        """Create the format mark of ``volume`` unless it exists: (claimed, the mark)."""
        with self._db() as db:
            claimed = db.execute('INSERT OR IGNORE INTO format_marks (volume, blockstore_uuid, '
                                 'host, created, format_version) VALUES (?, ?, ?, ?, ?)',
                                 (volume, blockstore_uuid, host, time.time(),
                                  format_version)).rowcount == 1
        return claimed, self.format_mark(volume)

    def record_format(self, volume, blockstore_uuid, host, format_version):
        """Record that ``volume`` (blockstore volume ``blockstore_uuid``) opened in a format.

        Creates the mark if there is none (a volume formatted before marks existed), and
        raises a mark's recorded format to ``format_version``: never lowers it, and never
        touches a mark naming another blockstore volume. Returns the mark as it is now (the
        caller compares its ``blockstore_uuid`` and ``format_version``).
        """
        with self._db() as db:
            db.execute('BEGIN IMMEDIATE')
            db.execute('INSERT OR IGNORE INTO format_marks (volume, blockstore_uuid, host, '
                       'created, format_version) VALUES (?, ?, ?, ?, ?)',
                       (volume, blockstore_uuid, host, time.time(), format_version))
            db.execute('UPDATE format_marks SET format_version = ? WHERE volume = ? AND '
                       'blockstore_uuid = ? AND (format_version IS NULL OR format_version < ?)',
                       (format_version, volume, blockstore_uuid, format_version))
            db.execute('COMMIT')
        return self.format_mark(volume)


class _Closing:
    def __init__(self, db):
        self.db = db

    def __enter__(self):
        return self.db

    def __exit__(self, *exc):
        self.db.close()
