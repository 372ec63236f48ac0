"""Demo chapter: the auditor's view of the demo's own secure log.

Every earlier chapter sealed its security-relevant outcomes into the log (forward-secure
source MAC, log MAC, RFC 9162 Merkle tree). Here the log signs a C2SP tlog-checkpoint,
an auditor verifies the whole log from genesis against it with only the auditor bundle
(initial keys and the checkpoint verifier key), checks an inclusion proof, and then finds
three kinds of tampering on copies of the database: a changed entry, a deleted entry and
two swapped entries, each at its index.
"""
import os
import sqlite3

from tclouds_openstack.common import fileutils
from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import merkle
from tclouds_openstack.securelog import store as store_mod

TITLE = 'Secure log: what happened in this demo, verified by an auditor'


def _audit(store, log_dir):
    bundle = keyfiles.AuditorBundle.load(os.path.join(log_dir, 'auditor'))
    return store.audit(bundle)


def _tampered_copy(demo, name, change):
    """A copy of the log's database (sqlite's backup API: consistent under WAL), changed."""
    path = os.path.join(demo.path('securelog-tampered'), '%s.sqlite' % name)
    fileutils.private_file(path, 'tampered log copy')   # a log database is private (0600)
    source = sqlite3.connect(os.path.join(demo.log_dir, 'log.sqlite'))
    target = sqlite3.connect(path)
    source.backup(target)
    source.close()
    change(target)
    target.commit()
    target.close()
    return store_mod.SecureLogStore('sqlite:///%s' % path, demo.log_dir,
                                    origin=demo.log.origin, migrate=False)


def _edit_records(conn, change):
    """Apply ``change`` to the records of a log database, in either storage layout.

    ``change`` gets {index: record bytes} and returns {index: new bytes, or None to delete}
    for the records it changes; each is written back where the log holds it (its own row
    in layout 1, its batch row in layout 2).
    """
    (boundary,) = conn.execute('SELECT MIN(first_index) FROM securelog_batches').fetchone()
    records = {index: bytes(data) for index, data in conn.execute(
        'SELECT log_index, data FROM securelog_records WHERE log_index < ?',
        (boundary if boundary is not None else 1 << 62,))}
    batches = {}
    for first, data in conn.execute('SELECT first_index, data FROM securelog_batches'):
        batch, _why = store_mod.unpack_batch(data)
        batches[first] = range(first, first + len(batch))
        records.update(zip(batches[first], batch))
    changes = change(records)
    records.update(changes)
    for index, data in changes.items():
        if data is None:
            conn.execute('DELETE FROM securelog_records WHERE log_index=?', (index,))
        elif boundary is None or index < boundary:
            conn.execute('UPDATE securelog_records SET data=? WHERE log_index=?',
                         (data, index))
    for first, indexes in batches.items():
        if any(i in changes for i in indexes):
            conn.execute('UPDATE securelog_batches SET data=? WHERE first_index=?',
                         (store_mod.pack_batch(records[i] for i in indexes
                                               if records[i] is not None), first))


def _change_entry(index):
    def change(records):
        data = bytearray(records[index])
        data[-20] ^= 0x01
        return {index: bytes(data)}
    return lambda conn: _edit_records(conn, change)


def _delete_entry(index):
    return lambda conn: _edit_records(conn, lambda records: {index: None})


def _swap_entries(first, second):
    return lambda conn: _edit_records(
        conn, lambda records: {first: records[second], second: records[first]})


def run(demo):
    report, log = demo.report, demo.log
    if len(demo.recorded) < 3:
        # Run alone: seal a few events so that there is something to audit.
        for number in range(3):
            demo.record('demo.audit.sample', {'n': number})
    size = log.size()
    note = log.checkpoint()
    report.note('%d events sealed (%s); checkpoint signed for tree size %d'
                % (size, ', '.join(sorted(set(demo.recorded))), size))
    for line in note.decode('utf-8').splitlines()[:3]:
        report.note('  %s' % line)
    audit, problems = _audit(log, demo.log_dir)
    report.step('auditor: %d entries verified from genesis against the signed checkpoint '
                '(both seals of every entry, Merkle root %s...)'
                % (audit.size, audit.root.hex()[:16]),
                ok=audit.ok and not problems and audit.size == size,
                detail='; '.join(problems) or None)
    leaf, proof, root = log.inclusion_proof(0, size)
    try:
        merkle.verify_inclusion(leaf, 0, size, proof, root)
        report.step('inclusion proof of entry 0 in the tree of %d: %d hashes, verified'
                    % (size, len(proof)))
    except merkle.ProofError as exc:
        report.step('inclusion proof of entry 0 refused: %s' % exc, ok=False)
    last = size - 1
    cases = [('an entry changed', 'changed', _change_entry(1), 1, 'modified'),
             ('an entry deleted', 'deleted', _delete_entry(last - 1), last - 1, 'missing'),
             ('two entries swapped', 'swapped', _swap_entries(0, last), 0, 'moved')]
    for label, name, change, index, kind in cases:
        copy = _tampered_copy(demo, name, change)
        try:
            audit, _problems = _audit(copy, demo.log_dir)
        finally:
            copy.close()
        found = audit.first_damage
        if found is None:
            report.step('%s: NOT detected' % label, ok=False)
            continue
        report.step('%s at index %d: detected at index %d (%s)'
                    % (label, index, found.index, found.kind),
                    ok=(found.index, found.kind) == (index, kind))
