"""Checkpoint exporters: the Swift exporter reads back what it published, bounded."""
import pytest

from tclouds_openstack.cloudstore.backends import directory
from tclouds_openstack.securelog import exporters


def _exporter(tmp_path):
    exporter = exporters.SwiftExporter('http://127.0.0.1:9/auth/v1.0', 'u', 'k', 'checkpoints')
    # the same driver interface over a real directory: no Swift cluster in a unit test
    exporter.backend = directory.DirectoryBackend('checkpoints', str(tmp_path))
    return exporter


def test_swift_exporter_reads_back_its_notes_oldest_first(tmp_path):
    exporter = _exporter(tmp_path)
    exporter.publish(12, b'note at 12')
    exporter.publish(3, b'note at 3')
    assert exporter.notes() == [b'note at 3', b'note at 12']


def test_swift_exporter_refuses_an_oversized_note_naming_itself(tmp_path):
    exporter = _exporter(tmp_path)
    exporter.publish(1, b'x' * (exporters.NOTE_LIMIT + 1))
    with pytest.raises(exporters.ExportError) as err:
        exporter.notes()
    assert 'swift:checkpoints' in str(err.value)
