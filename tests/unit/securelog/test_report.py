"""A tenant's data-protection report (securelog/report.py): what it shows, and that its
offline verification names the first changed, deleted, reordered, inserted or spliced
line, a forged key and a header that does not match."""
import base64
import json
import random

import pytest

from tclouds_openstack.securelog import checkpoint as cpmod
from tclouds_openstack.securelog import confidential
from tclouds_openstack.securelog import log as logmod
from tclouds_openstack.securelog import merkle
from tclouds_openstack.securelog import report
from tclouds_openstack.securelog import sealing
from tclouds_openstack.securelog import source
from tests.unit.securelog import report_log as rl

ORIGIN = 'test.example/log'
T0 = 1790000000 * 10 ** 9
SECOND = 10 ** 9


class Log(object):
    """Sealed records of ``events`` ([(event, tenant)]), one second apart from T0."""

    def __init__(self, events, tenant_keys=None):
        self.source, _k0 = sealing.Sealer.create('nova@ctl', T0)
        sealer, _k0 = sealing.Sealer.create('log', T0)
        self.signer = cpmod.NoteSigner.generate(ORIGIN)
        self.writer = logmod.LogWriter(ORIGIN, sealer, self.signer)
        self.rows = []
        self.tenant_keys = tenant_keys or {}
        self.extend(events)

    def extend(self, events):
        entries, meta = [], []
        for event, tenant in events:
            now = T0 + len(self.rows) * SECOND + len(entries) * SECOND
            payload, flags = source.canonical_json(event), 0
            if tenant in self.tenant_keys:
                payload = confidential.encrypt_payload(self.tenant_keys[tenant], tenant,
                                                       payload)
                flags = sealing.FLAG_ENCRYPTED
            entries.append(self.source.seal_entry(payload, now, tenant=tenant, flags=flags))
            meta.append((tenant, now))
        records = self.writer.seal(entries, T0)
        self.writer.commit(records)
        for (index, data), (tenant, now) in zip(records, meta):
            self.rows.append(report.Row(index, merkle.hash_leaf(data), tenant, now, data))
        self.note = self.writer.checkpoint(1790000000 + len(self.rows))
        self.checkpoint, _w = cpmod.open_checkpoint(self.note, self.signer.verifier())

    def report(self, project, from_ns=None, to_ns=None, previous=None):
        size = self.checkpoint.size
        consistency = None
        if previous is not None:
            consistency = (previous, self.writer.tree.consistency_proof(previous, size))
        return report.build(self.rows, project, self.note, self.checkpoint,
                            lambda i: self.writer.tree.inclusion_proof(i, size),
                            self.signer, T0 + 10 ** 12, from_ns, to_ns, consistency)


@pytest.fixture(scope='module')
def two_projects():
    events, marks = rl.events()
    log = Log(events)
    return log, marks


def lines_of(text):
    return [json.loads(line) for line in text.decode('utf-8').splitlines()[1:]]


def finding(text, log, **kwargs):
    with pytest.raises(report.Finding) as info:
        report.verify(text, log.signer.verifier(), **kwargs)
    return info.value


def test_report_shows_the_projects_resources_and_no_other_project(two_projects):
    log, marks = two_projects
    text = log.report(rl.A)
    lines = lines_of(text)
    by_index = {ln['index']: ln for ln in lines}
    expected = {'trusted-compute-1', 'trusted-compute-3', 'jurisdiction-1', 'create-a',
                'volume-a', 'key-a', 'refused-a', 'untrusted-1', 'disabled-1', 'migrate-a',
                'moved-a', 'no-host-a2', 'no-backend-a', 'object-a', 'fault-a',
                'write-refused-a', 'integrity-a', 'note-a'}
    assert set(by_index) == {marks[name] for name in expected}
    # where it lived: compute-1 (DE, trusted then untrusted), then compute-3
    one, three = (report.host_pseudonym(rl.A, h) for h in ('compute-1', 'compute-3'))
    assert by_index[marks['create-a']]['host'] == one
    assert by_index[marks['moved-a']]['host'] == three
    assert by_index[marks['jurisdiction-1']]['details']['jurisdiction'] == 'DE'
    assert [by_index[marks[n]]['details']['status'] for n in
            ('trusted-compute-1', 'untrusted-1')] == ['trusted', 'untrusted']
    assert by_index[marks['key-a']]['kind'] == 'key'
    assert by_index[marks['refused-a']]['details']['refused'] == 'key release'
    assert by_index[marks['no-host-a2']]['details']['refused'] == 'scheduling'
    assert by_index[marks['no-backend-a']]['resource'] == {'type': 'volume',
                                                           'id': 'volume-a-2'}
    assert by_index[marks['write-refused-a']]['details']['refused'] == 'object write'
    frags = by_index[marks['object-a']]['details']['fragments']
    assert [(f['cloud'], f['country'], f['acknowledged']) for f in frags] == [
        ('cloud-0', 'DE', True), ('cloud-1', 'DE', True), ('cloud-2', 'DE', True),
        ('cloud-3', 'DE', False)]
    assert by_index[marks['fault-a']]['resource'] == {'type': 'object',
                                                      'id': 'docs/patient.pdf'}
    # no host name anywhere (reasons included), nothing of project B
    raw = text.decode('utf-8')
    for secret in rl.HOSTS + ('storage-1', rl.B, rl.SERVER_B, rl.VOLUME_B, rl.UNIT_B,
                              'lamps', 'PCR 4'):
        assert secret not in raw
    assert report.host_pseudonym(rl.A, 'compute-2') in by_index[marks['refused-a']][
        'details']['reason']


def test_b_sees_its_own_report(two_projects):
    log, marks = two_projects
    lines = lines_of(log.report(rl.B))
    assert {ln['index'] for ln in lines} == {marks[n] for n in (
        'trusted-compute-2', 'create-b', 'volume-b', 'key-b', 'untrusted-2', 'object-b',
        'fault-b', 'integrity-b', 'deleted-b')}
    assert lines[0]['host'] == report.host_pseudonym(rl.B, 'compute-2') != \
        report.host_pseudonym(rl.A, 'compute-2')


def test_the_genuine_report_verifies(two_projects):
    log, _marks = two_projects
    text = log.report(rl.A)
    verified = report.verify(text, log.signer.verifier(), project=rl.A)
    assert len(verified.lines) == 18 and verified.summary().startswith('OK: report of')
    assert finding(text, log, project=rl.B).check == 'project'


def _tamper(text, edit):
    lines = text.decode('utf-8').splitlines()
    edit(lines)
    return ('\n'.join(lines) + '\n').encode('utf-8')


def _change_summary(lines, n):
    obj = json.loads(lines[n - 1])
    obj['summary'] = obj['summary'].replace('untrusted', 'trusted')
    obj['details']['status'] = 'trusted'
    lines[n - 1] = json.dumps(obj, sort_keys=True)


def test_changed_deleted_reordered_lines_are_named(two_projects):
    log, marks = two_projects
    text = log.report(rl.A)
    index_line = {ln['index']: n for n, ln in enumerate(lines_of(text), 2)}
    untrusted = index_line[marks['untrusted-1']]
    found = finding(_tamper(text, lambda ls: _change_summary(ls, untrusted)), log)
    assert (found.line, found.check) == (untrusted, 'changed')
    refused = index_line[marks['refused-a']]
    found = finding(_tamper(text, lambda ls: ls.pop(refused - 1)), log)
    assert (found.line, found.check) == (refused, 'missing')
    assert 'leaf index %d' % marks['refused-a'] in found.detail
    found = finding(_tamper(text, lambda ls: ls.pop()), log)
    assert (found.line, found.check) == (len(text.splitlines()), 'missing')

    def swap(ls):
        ls[4], ls[5] = ls[5], ls[4]
    found = finding(_tamper(text, swap), log)
    assert (found.line, found.check) == (5, 'order')
    found = finding(_tamper(text, lambda ls: ls.insert(3, ls[2])), log)
    assert (found.line, found.check) == (4, 'order')


def test_a_line_spliced_from_another_projects_report_is_named(two_projects):
    log, marks = two_projects
    text_a, text_b = log.report(rl.A), log.report(rl.B)
    b_lines = text_b.decode().splitlines()
    key_b = [ln for ln in b_lines[1:] if json.loads(ln)['index'] == marks['key-b']][0]
    # inserted in index order between two lines of A's report
    a_lines = text_a.decode().splitlines()
    at = [n for n, ln in enumerate(a_lines[1:], 1)
          if json.loads(ln)['index'] > marks['key-b']][0]
    found = finding(_tamper(text_a, lambda ls: ls.insert(at, key_b)), log)
    assert (found.line, found.check) == (at + 1, 'not-in-manifest')
    # or in place of one of A's lines
    found = finding(_tamper(text_a, lambda ls: ls.__setitem__(at, key_b)), log)
    assert (found.line, found.check) == (at + 1, 'not-in-manifest')
    # a line of the same record as another project's report renders it (its pseudonym)
    shared = marks['trusted-compute-1']
    line_a = [n for n, ln in enumerate(a_lines[1:], 1) if json.loads(ln)['index'] == shared][0]
    relabelled = json.loads(a_lines[line_a])
    relabelled['host'] = report.host_pseudonym(rl.B, 'compute-1')
    found = finding(_tamper(text_a, lambda ls: ls.__setitem__(
        line_a, json.dumps(relabelled, sort_keys=True))), log)
    assert (found.line, found.check) == (line_a + 1, 'changed')


def test_a_report_checked_with_another_key_or_with_a_forged_signature_fails(two_projects):
    log, _marks = two_projects
    text = log.report(rl.A)
    other = cpmod.NoteSigner.generate(ORIGIN)
    with pytest.raises(report.Finding) as info:
        report.verify(text, other.verifier())
    assert (info.value.line, info.value.check) == (1, 'checkpoint-signature')
    # a report re-signed by someone else's key with the log's name
    forged = report.build(log.rows, rl.A, log.note, log.checkpoint,
                          lambda i: log.writer.tree.inclusion_proof(i, log.checkpoint.size),
                          other, T0)
    found = finding(forged, log)
    assert (found.line, found.check) == (1, 'manifest-signature')


def test_header_and_proofs_are_bound(two_projects):
    log, marks = two_projects
    text = log.report(rl.A)

    def header(field, value):
        def edit(lines):
            obj = json.loads(lines[0])
            obj[field] = value
            lines[0] = json.dumps(obj, sort_keys=True)
        return edit
    found = finding(_tamper(text, header('project_id', rl.B)), log)
    assert (found.line, found.check) == (1, 'header') and 'project_id' in found.detail
    found = finding(_tamper(text, header('manifest', 'garbage')), log)
    assert found.check == 'manifest-signature'
    # the log's own checkpoint note is no manifest (the same key signs both)
    found = finding(_tamper(text, header('manifest', log.note.decode())), log)
    assert found.check == 'manifest' and 'not \'tclouds-securelog report v1\'' in found.detail

    def bad_proof(lines):
        obj = json.loads(lines[3])
        obj['proof'][0] = base64.b64encode(b'\x00' * 32).decode()
        lines[3] = json.dumps(obj, sort_keys=True)
    found = finding(_tamper(text, bad_proof), log)
    assert (found.line, found.check) == (4, 'inclusion')


def test_manifest_is_never_a_checkpoint(two_projects):
    log, _marks = two_projects
    header = json.loads(log.report(rl.A).decode().splitlines()[0])
    with pytest.raises(cpmod.CheckpointError):
        cpmod.open_checkpoint(header['manifest'], log.signer.verifier())


def test_window_with_context_lines(two_projects):
    log, marks = two_projects
    start = log.rows[marks['refused-a']].time_ns
    end = log.rows[marks['moved-a']].time_ns
    lines = lines_of(log.report(rl.A, from_ns=start, to_ns=end))
    by_index = {ln['index']: ln for ln in lines}
    context = {i for i, ln in by_index.items() if ln['context']}
    # at the window's start: the server on compute-1, the volume and who held its key,
    # compute-1's verdict and jurisdiction
    assert context == {marks[n] for n in ('create-a', 'volume-a', 'key-a',
                                          'trusted-compute-1', 'jurisdiction-1')}
    assert {i for i in by_index if not by_index[i]['context']} == {
        marks[n] for n in ('refused-a', 'untrusted-1', 'disabled-1', 'migrate-a')}
    assert marks['moved-a'] not in by_index          # the window ends before it


def test_sealed_records_of_a_confidential_tenant_carry_their_ciphertext():
    key = bytes(range(32))
    events, _marks = rl.events()
    log = Log(events, tenant_keys={rl.A: key})
    lines = lines_of(log.report(rl.A))
    sealed = [ln for ln in lines if ln['kind'] == 'sealed']
    assert sealed
    plain = confidential.decrypt_payload(key, rl.A, base64.b64decode(
        sealed[0]['details']['ciphertext']))
    assert json.loads(plain)['event_type']
    report.verify(log.report(rl.A), log.signer.verifier())


def test_ingestion_alarms_concerning_the_projects_records():
    events, marks = rl.events()
    log = Log(events + [rl.conflict_alarm(marks['create-a'], rl.A),
                        rl.conflict_alarm(marks['create-b'], rl.B)])
    mine = [ln for ln in lines_of(log.report(rl.A))
            if ln['details'].get('fault') == 'secure log entry refused']
    assert [ln['details']['stored_index'] for ln in mine] == [marks['create-a']]
    assert 'compute-1' not in json.dumps(mine)


def test_a_report_of_a_longer_log_is_consistent_with_the_earlier_one():
    events, marks = rl.events()
    log = Log(events[:10])
    first = log.report(rl.A)
    earlier = report.read_checkpoint(first, log.signer.verifier())
    log.extend(events[10:])
    second = log.report(rl.A, previous=earlier.size)
    verified = report.verify(second, log.signer.verifier(), previous=earlier)
    assert verified.checkpoint.size == len(events) > earlier.size
    # lines from before the first checkpoint are proved against the later one too
    assert any(ln['index'] < earlier.size for ln in verified.lines)
    # without the proof, or against a checkpoint of another (forked) log: refused
    found = finding(log.report(rl.A), log, previous=earlier)
    assert found.check == 'consistency' and 'no consistency proof' in found.detail
    forked = Log(events[:9] + [rl.verdict('compute-9', 'trusted')])
    forked.signer = log.signer
    fork_cp = cpmod.open_checkpoint(cpmod.sign_checkpoint(
        forked.checkpoint, log.signer), log.signer.verifier())[0]
    found = finding(second, log, previous=fork_cp)
    assert found.check == 'consistency' and 'does not extend' in found.detail


def test_unusable_reports_are_findings_never_tracebacks(two_projects):
    log, _marks = two_projects
    text = log.report(rl.A)
    for bad in (b'', b'\xff\xfe', b'[1]\n', b'{"format": "x"}\n', b'not json\n',
                text.replace(b'"proof":[', b'"proof":7,"x":[', 1)):
        assert finding(bad, log).check in ('format', 'header', 'checkpoint-signature')
    rng = random.Random(7)
    for _ in range(300):
        data = bytearray(text)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            report.verify(bytes(data), log.signer.verifier())
        except report.Finding:
            pass


@pytest.mark.parametrize('value, field', [
    ('yesterday', 'from'), ('2026-13-01T00:00:00Z', 'from')])
def test_times_are_iso_8601(value, field):
    with pytest.raises(report.ReportError, match='from: .* is not an ISO 8601 time'):
        report.parse_time(value, field)
    assert report.parse_time('2026-12-05T10:00:00Z', 'from') == \
        report.parse_time('2026-12-05T11:00:00+01:00', 'from') == 1796464800 * 10 ** 9


def test_project_ids_are_checked():
    for bad in ('', 'a/b', 'x' * 65, 'a\nb', None):
        with pytest.raises(report.ReportError, match='project_id'):
            report.check_project(bad)


def test_classify_ignores_what_is_not_a_report_matter():
    assert report.classify({'event_type': 'identity.authenticate', 'payload': {},
                            'context': {}}) is None
    assert report.classify('not an event') is None
    assert report.classify({'event_type': 'instance.create.end', 'payload': 'x',
                            'context': {}}) is None
    # appended through the API: a claim of its submitter, never a fact
    fact = report.classify({'event_type': 'keymgr.key.refused', 'publisher_id': 'user:u',
                            'payload': {'volume_id': 'v', 'project_id': 'p'},
                            'context': {}}, 'p')
    assert fact.kind == 'note' and fact.rid is None
