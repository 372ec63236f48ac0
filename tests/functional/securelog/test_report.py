"""A tenant's data-protection report over HTTP with real Keystone tokens, written by the
OSC command and verified offline by ``tclouds-securelog verify-report``.

The secure log API runs behind keystonemiddleware (tests/functional/personas.py) over a
real store holding the events of two projects, A and B, as the emitters send them
(tests/unit/securelog/report_log.py). Checked: who may read which project's report; that
a report shows only its project; that the file verifies offline with the log's public key
alone and that a changed, deleted, reordered or spliced line, or another key, is named;
that a report of a longer log (a later checkpoint) is consistent with the earlier one.
"""
import json
import sys
import threading
import types

from keystoneauth1 import session as ks_session
from oslo_config import cfg
import pytest
import requests

from tclouds_openstack.common import policy
from tclouds_openstack.common import wsgi
from tclouds_openstack import conf as tconf
from tclouds_openstack.osc.v1 import securelog as osc
from tclouds_openstack.securelog import api
from tclouds_openstack.securelog import keyfiles
from tclouds_openstack.securelog import report
from tclouds_openstack.securelog import source as srcmod
from tclouds_openstack.securelog import store as storemod
from tests import hermetic
from tests.unit.securelog import report_log as rl
from tests import watchdog

PERSONAS = ('admin', 'system_reader', 'manager_a', 'member_a', 'reader_a', 'member_b',
            'service', 'host')
READERS = {'A': {'admin', 'system_reader', 'manager_a', 'member_a', 'reader_a'},
           'B': {'admin', 'system_reader', 'member_b'}}


class Service(object):
    """The secure log API (keystone auth) over a store with A's and B's events."""

    def __init__(self, personas, tmp):
        self.personas, self.tmp = personas, tmp
        conf_file = tmp / 'api.conf'
        conf_file.write_text('[api]\nauth_strategy = keystone\n' + personas.authtoken_conf())
        conf = cfg.ConfigOpts()
        tconf.register_opts(conf)
        hermetic.parse(conf, [conf_file], project='tclouds-test')
        self.project = {name: personas.project_id(name) for name in ('A', 'B')}
        self.store = storemod.SecureLogStore(
            'sqlite:///%s' % (tmp / 'securelog.sqlite'), str(tmp / 'state'),
            origin='report.example/log', checkpoint_interval=3600)
        self.source = srcmod.Source('nova@ctl', str(tmp / 'src'))
        events, self.marks = rl.events(self.project['A'], self.project['B'])
        self.events = events
        self.append(events[:20])
        policy.reset()
        self.server = wsgi.make_server(api.build_app(conf, self.store), '127.0.0.1', 0)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = 'http://127.0.0.1:%d' % self.server.server_port
        self.vkey_file = tmp / 'state' / 'auditor' / 'log.vkey'

    def append(self, events):
        sealed = self.source.seal(events)
        self.store.enroll_source(self.source.name, keyfiles.read_k0(self.source.k0_path()))
        self.store.append(sealed)
        self.store.checkpoint()

    def get(self, persona, project, **params):
        headers = {} if persona is None else self.personas.headers(persona)
        resp = requests.get('%s/v1/projects/%s/report' % (self.url, self.project[project]),
                            headers=headers, params=params, timeout=120)
        return resp.status_code, resp.json() if resp.content else None

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
        self.store.close()
        policy.reset()


@pytest.fixture(scope='module')
def service(personas, tmp_path_factory):
    running = Service(personas, tmp_path_factory.mktemp('report'))
    try:
        yield running
    finally:
        running.stop()


def _osc(service, persona, argv, monkeypatch):
    monkeypatch.setenv('OS_SECURE_LOG_ENDPOINT', service.url)
    session = ks_session.Session(auth=service.personas.auth_plugin(persona))
    app = types.SimpleNamespace(client_manager=types.SimpleNamespace(
        session=session, interface=None, region_name=None, auth_ref=None))
    cmd = osc.ShowReport(app, None)
    cols, data = cmd.take_action(cmd.get_parser('openstack').parse_args(argv))
    return dict(zip(cols, data))


def verify_report(path, key, *extra):
    """``tclouds-securelog verify-report`` in a process of its own: (exit code, stderr)."""
    result = watchdog.run([sys.executable, '-m', 'tclouds_openstack.cmd.securelog',
                           'verify-report', str(path), '--public-key', str(key)]
                          + list(extra), capture_output=True)
    return result.returncode, result.stderr.decode()


def test_who_reads_which_report(service):
    for project in ('A', 'B'):
        for persona in PERSONAS + (None,):
            status, body = service.get(persona, project)
            expected = 401 if persona is None else (
                200 if persona in READERS[project] else 403)
            assert status == expected, (persona, project, status, body)
            if status == 200:
                assert body['project_id'] == service.project[project]
            else:
                # a refusal carries no report and names the rule, never data
                assert 'report' not in (body or {})
                other = service.project['B' if project == 'A' else 'A']
                assert other not in json.dumps(body) and 'compute-' not in json.dumps(body)
    status, body = service.get('member_a', 'A', **{'from': 'yesterday'})
    assert status == 400 and 'from: ' in body['error']['message']
    status, body = service.get('member_a', 'A', **{'from': '2026-12-05T10:00:00Z',
                                                   'to': '2026-12-05T09:00:00Z'})
    assert status == 400 and 'to: must be later than from' in body['error']['message']


def test_a_report_shows_only_the_callers_project(service):
    status, body = service.get('member_a', 'A')
    assert status == 200
    text = body['report']
    lines = [json.loads(ln) for ln in text.splitlines()[1:]]
    assert body['lines'] == len(lines) > 0
    indexes = {ln['index'] for ln in lines}
    marks = service.marks
    assert {marks[n] for n in ('create-a', 'volume-a', 'key-a', 'refused-a', 'untrusted-1',
                               'migrate-a', 'moved-a', 'no-host-a2', 'object-a')} <= indexes
    assert not indexes & {marks[n] for n in ('create-b', 'volume-b', 'key-b', 'object-b',
                                             'untrusted-2')}
    for secret in rl.HOSTS + (service.project['B'], rl.SERVER_B, rl.VOLUME_B, 'lamps'):
        assert secret not in text
    report.verify(text.encode(), keyfiles.AuditorBundle.load(
        str(service.tmp / 'state' / 'auditor')).log_verifier, project=service.project['A'])


def _tampered(path, lines):
    path.write_text('\n'.join(lines) + '\n')
    return path


def test_the_report_file_verifies_offline_and_every_tampering_is_named(
        service, tmp_path, monkeypatch):
    out = tmp_path / 'report-a.jsonl'
    vkey = service.vkey_file.read_text().strip()
    shown = _osc(service, 'reader_a', ['--project', service.project['A'], '--output',
                                       str(out), '--vkey', vkey], monkeypatch)
    assert shown['verified'] is True and shown['lines'] > 5
    code, err = verify_report(out, service.vkey_file, '--project', service.project['A'])
    assert code == 0 and err.startswith('OK: report of project %s' % service.project['A'])
    lines = out.read_text().splitlines()

    changed = list(lines)
    obj = json.loads(changed[3])
    obj['summary'] += ' (all fine)'
    changed[3] = json.dumps(obj, sort_keys=True)
    deleted = lines[:5] + lines[6:]
    reordered = lines[:6] + [lines[7], lines[6]] + lines[8:]
    b_report = tmp_path / 'report-b.jsonl'
    _osc(service, 'member_b', ['--project', service.project['B'], '--output', str(b_report)],
         monkeypatch)
    b_line = b_report.read_text().splitlines()[2]
    spliced = sorted(lines[1:] + [b_line], key=lambda ln: json.loads(ln)['index'])
    spliced_at = spliced.index(b_line) + 2
    for name, variant, line, check in (
            ('changed', changed, 4, 'changed'), ('deleted', deleted, 6, 'missing'),
            ('reordered', reordered, 7, 'order'),
            ('spliced', [lines[0]] + spliced, spliced_at, 'not-in-manifest')):
        code, err = verify_report(_tampered(tmp_path / name, variant), service.vkey_file)
        assert code == 1, (name, err)
        assert err.startswith('DAMAGED: line %d (%s)' % (line, check)), (name, err)
    # another key: this log's report does not verify as another log's
    from tclouds_openstack.securelog import checkpoint as cpmod
    other = tmp_path / 'other.vkey'
    other.write_text(cpmod.NoteSigner.generate('report.example/log').vkey())
    code, err = verify_report(out, other)
    assert code == 1 and err.startswith('DAMAGED: line 1 (checkpoint-signature)'), err
    # unusable input is exit 2, one line, no traceback
    code, err = verify_report(out, 'not-a-key')
    assert code == 2 and 'Traceback' not in err and '--public-key' in err
    code, err = verify_report(tmp_path / 'absent', service.vkey_file)
    assert code == 2 and 'cannot read report' in err
    # the wrong project asked for
    code, err = verify_report(out, service.vkey_file, '--project', service.project['B'])
    assert code == 1 and '(project)' in err


def test_a_report_of_a_longer_log_is_consistent_with_the_earlier_one(
        service, tmp_path, monkeypatch):
    first = tmp_path / 'first.jsonl'
    _osc(service, 'member_a', ['--output', str(first), '--project', service.project['A']],
         monkeypatch)
    size = json.loads(first.read_text().splitlines()[0])['tree_size']
    service.append(service.events[20:])          # more records and a later checkpoint
    second = tmp_path / 'second.jsonl'
    vkey = service.vkey_file.read_text().strip()
    shown = _osc(service, 'member_a', ['--output', str(second), '--previous', str(first),
                                       '--project', service.project['A'], '--vkey', vkey],
                 monkeypatch)
    assert shown['tree_size'] > size and shown['verified'] is True
    code, err = verify_report(second, service.vkey_file, '--previous', str(first))
    assert code == 0, err
    # lines of records from before the first checkpoint, proved against the later one
    indexes = [json.loads(ln)['index'] for ln in second.read_text().splitlines()[1:]]
    assert min(indexes) < size <= max(indexes)
    # the earlier report is not a continuation of the later one
    code, err = verify_report(first, service.vkey_file, '--previous', str(second))
    assert code == 1 and '(consistency)' in err
