"""Sealing at the source (adapter): what a notification driver, a log handler or the CLI
uses to turn events into sealed entries with its own persistent per-source sealer."""
import json
import os
import socket
import sys
import time
import urllib.parse

from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import sealing

# json.dumps builds an encoder per call when given options; one shared encoder is stateless.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(',', ':'), default=str,
                              ensure_ascii=False).encode


def canonical_json(obj):
    """One byte string per event: sorted keys, no spaces, non-JSON values as strings."""
    return _CANONICAL(obj).encode('utf-8')


def default_source_name(component):
    return '%s@%s' % (component, socket.gethostname())


def process_component():
    """What this process is, for its default source name.

    The program name, except in a generic WSGI server hosting a service (uwsgi, mod_wsgi),
    where every API would otherwise be "uwsgi": there the name the deployment gave the
    process (uwsgi's ``procname-prefix``, DevStack's ``--procname-prefix nova-api``, else
    the basename of its ini file; mod_wsgi's process group).
    """
    program = os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else 'python') \
        or 'python'
    hosted = _wsgi_server_name()
    return hosted or program


def _wsgi_server_name():
    uwsgi = sys.modules.get('uwsgi')
    if uwsgi is not None and isinstance(getattr(uwsgi, 'opt', None), dict):
        for option in ('procname-prefix', 'procname-prefix-spaced', 'ini'):
            value = uwsgi.opt.get(option)
            if isinstance(value, list):
                value = value[-1] if value else None
            if isinstance(value, bytes):
                value = value.decode('utf-8', 'replace')
            if isinstance(value, str) and value.strip():
                value = value.strip()
                if option == 'ini':
                    value = os.path.splitext(os.path.basename(value))[0]
                return value
    mod_wsgi = sys.modules.get('mod_wsgi')
    group = getattr(mod_wsgi, 'process_group', '') if mod_wsgi is not None else ''
    return group or None


class Source(object):
    """A named event source with its own forward-secure sealer under ``state_dir``.

    ``encryptor``: optional callable (tenant, plaintext) -> ciphertext or None, for
    per-tenant confidentiality (see :mod:`.confidential`).
    """

    def __init__(self, name, state_dir, epoch_seconds=60.0, epoch_entries=100000,
                 encryptor=None, auditor_dir=None):
        self.name = name
        self.state_dir = state_dir
        # where a new sealer's K0 goes: the auditor bundle of this source's state, or the
        # store's own bundle for a source that lives with the store (the CLI)
        self.auditor_dir = auditor_dir or os.path.join(state_dir, 'auditor')
        self.encryptor = encryptor
        self._file_args = dict(epoch_seconds=epoch_seconds, epoch_entries=epoch_entries)
        self._store_file = None

    def _file(self, **kwargs):
        fname = 'sealer-%s.json' % urllib.parse.quote(self.name, safe='@.-_:')
        kwargs.setdefault('journaled', not kwargs.get('sequence_in_store'))
        return keyfiles.SealerFile(os.path.join(self.state_dir, fname), self.name,
                                   self.auditor_dir, **self._file_args, **kwargs)

    def k0_path(self):
        """Where this source's K0 was written when its sealer was created."""
        return os.path.join(self.auditor_dir, keyfiles.source_key_filename(self.name))

    def store_file(self):
        """The sealer file as :meth:`.SecureLogStore.append_events` uses it (kept open).

        Its sequence numbers live in the store; the file changes only with the epoch key.
        """
        if self._store_file is None:
            self._store_file = self._file(sequence_in_store=True)
        return self._store_file

    def open(self):
        """The sealer file, journaled (a context manager yielding the sealer, locked).

        Seal with :meth:`seal_one` inside it, then ``.append(entries)`` before the entries
        leave the process (their one durable point), as :meth:`seal` does.
        """
        return self._file()

    def seal_one(self, sealer, event, tenant, now_ns=None):
        """Seal one event with ``sealer`` (held open by the caller).

        A tenant no project ID can be (longer than the store's 255 characters; taken from
        a notification's payload) makes the record the operator's: it is sealed with no
        tenant, the event keeps what it said.
        """
        payload = canonical_json(event)
        flags = 0
        if tenant and len(tenant) > sealing.MAX_NAME_CHARS:
            tenant = ''
        if self.encryptor is not None and tenant:
            sealed = self.encryptor(tenant, payload)
            if sealed is not None:
                payload, flags = sealed, sealing.FLAG_ENCRYPTED
        now = now_ns if now_ns is not None else time.time_ns()
        return sealer.seal_entry(payload, now, tenant=tenant or '', flags=flags)

    def seal(self, events, now_ns=None):
        """Seal [(event object, tenant)] in order; returns the encoded entries.

        The batch is journaled (one ``fdatasync``; the state file is replaced only when the
        key evolved) before returning, so entries handed out are never sealed twice under
        the same sequence number. The caller hands them out: the journal counts them as
        published.
        """
        f = self._file()
        with f as sealer:
            out = [self.seal_one(sealer, event, tenant, now_ns) for event, tenant in events]
            f.append(out)
            f.journal.mark_published(f.journal.end())
            f.compact()
        return out
