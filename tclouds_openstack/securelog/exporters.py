"""Checkpoint exporters: independent places signed tree heads are published to (adapter).

A log operator who rolls the store back, or shows auditors different histories, is caught
by checkpoints it can no longer take back: each one is written to every exporter, and the
auditor verifies against the largest checkpoint found in any of them. The contract:
``publish(size, note)`` stores the note durably or raises :class:`ExportError`;
``notes()`` returns every note stored (bytes), or raises :class:`ExportError`.
"""
import abc
import os
import re

from tclouds_openstack.securelog import keyfiles

_NAME = re.compile(r'^checkpoint-(\d{20})$')


class ExportError(Exception):
    """An exporter could not store or list checkpoints; names the exporter."""


class Exporter(abc.ABC):
    name = 'exporter'

    @abc.abstractmethod
    def publish(self, size, note):
        """Store ``note`` (bytes) for tree size ``size``; raise ExportError on failure."""

    @abc.abstractmethod
    def notes(self):
        """All stored notes (bytes), oldest first."""


class DirectoryExporter(Exporter):
    """``checkpoint-<size, 20 digits>`` files plus ``checkpoint`` (the latest) in a directory."""

    def __init__(self, path):
        self.path = path
        self.name = 'dir:%s' % path

    def publish(self, size, note):
        try:
            os.makedirs(self.path, exist_ok=True)
            keyfiles._atomic_write(os.path.join(self.path, 'checkpoint-%020d' % size), note,
                                   mode=0o644)
            keyfiles._atomic_write(os.path.join(self.path, 'checkpoint'), note, mode=0o644)
        except OSError as exc:
            raise ExportError('%s: cannot write checkpoint %d: %s'
                              % (self.name, size, exc.strerror))

    def notes(self):
        try:
            names = sorted(n for n in os.listdir(self.path) if _NAME.match(n))
            out = []
            for n in names:
                with open(os.path.join(self.path, n), 'rb') as f:
                    out.append(f.read())
            return out
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ExportError('%s: cannot read checkpoints: %s' % (self.name, exc.strerror))


# A signed checkpoint note is a few hundred bytes; an object far larger under a checkpoint
# name is not one of ours, and reading it whole would let the store fill our memory.
NOTE_LIMIT = 64 * 1024


class SwiftExporter(Exporter):
    """Objects ``checkpoint-<size>`` in a Swift container (through cloudstore's client)."""

    def __init__(self, auth_url, user, key, container):
        from tclouds_openstack.cloudstore.backends import swift
        self.backend = swift.SwiftBackend('securelog-checkpoints', auth_url, user, key,
                                          container=container)
        self.name = 'swift:%s' % container
        self._container_ready = False

    def publish(self, size, note):
        from tclouds_openstack.cloudstore import errors
        try:
            if not self._container_ready:
                self.backend.ensure_container()
                self._container_ready = True
            self.backend.put('checkpoint-%020d' % size, note)
        except errors.CloudStoreError as exc:
            raise ExportError('%s: %s' % (self.name, exc))

    def notes(self):
        from tclouds_openstack.cloudstore import errors
        try:
            return [self.backend.get(k, NOTE_LIMIT)
                    for k in sorted(self.backend.list('checkpoint-')) if _NAME.match(k)]
        except errors.CloudStoreError as exc:
            raise ExportError('%s: %s' % (self.name, exc))


def from_conf(conf):
    exporters = [DirectoryExporter(d) for d in conf.securelog.checkpoint_dirs]
    if conf.securelog.swift_container:
        exporters.append(SwiftExporter(conf.securelog.swift_auth_url, conf.securelog.swift_user,
                                       conf.securelog.swift_key,
                                       conf.securelog.swift_container))
    return exporters
