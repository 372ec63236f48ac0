"""The scenarios' auditor step against the real offline verifier: a project's report built
by the secure log's own code from a sealed two-project log is verified with
``tclouds-securelog verify-report`` (exit 0), and the copies the step makes - a changed,
a deleted, two swapped lines - are each rejected with the check named; the step's
observations then make a report page that says so."""
import os
import shutil
import sys

import pytest

from tclouds_openstack.scenarios import browser
from tclouds_openstack.scenarios import cloud
from tclouds_openstack.scenarios import core
from tclouds_openstack.scenarios import report as page
from tclouds_openstack.scenarios import run as run_mod
from tests.unit.securelog import report_log as rl
from tests.unit.securelog import test_report as tr


def _verifier_command():
    here = os.path.join(os.path.dirname(sys.executable), 'tclouds-securelog')
    return here if os.path.exists(here) else shutil.which('tclouds-securelog')


@pytest.fixture(scope='module')
def sealed_report(tmp_path_factory):
    events, _marks = rl.events()
    log = tr.Log(events)
    out = tmp_path_factory.mktemp('audit')
    path = out / ('report-%s.jsonl' % rl.A)
    path.write_bytes(log.report(rl.A))
    vkey = out / 'log.vkey'
    vkey.write_text(log.signer.vkey() + '\n')
    return out, path, vkey


def test_auditor_step_verifies_and_catches_tampering(sealed_report):
    command = _verifier_command()
    assert command, 'tclouds-securelog is not installed next to this Python'
    out, path, vkey = sealed_report
    dep = cloud.Deployment(log_vkey=str(vkey))
    admin = cloud.Creds('http://127.0.0.1:1/v3', 'nobody', 'x', 'nothing')
    r = run_mod.Run('healthcare', dep, admin, str(out), echo=None, verify_command=command)
    r.obs.data['project'] = {'id': rl.A, 'name': 'hospital'}
    lines = run_mod._read_report(str(path))
    r.obs.data['report'] = {'file': path.name, 'lines': len(lines) - 1,
                            'tree_size': lines[0]['tree_size'],
                            'line_indexes': [(ln['index'], ln['kind']) for ln in lines[1:]]}
    detail = r.audit(str(path))
    assert detail['verify_exit'] == 0, r.obs['report']['verify']
    assert detail['tampered'] == [('line 2 changed (summary edited)', 1, 'changed'),
                                  ('line 2 deleted', 1, 'missing'),
                                  ('lines 2 and 3 swapped', 1, 'order')]
    assert [t['as'] for t in r.transcript.lines] == ['auditor'] * 4
    outcome = {o.id: o for o in core.evaluate(r.obs)}['auditor']
    assert outcome.ok, outcome.evidence
    # a report checked with another log's key does not verify
    other = out / 'other.vkey'
    other.write_text(tr.Log([]).signer.vkey() + '\n')
    r.dep.log_vkey = str(other)
    assert r._verify(str(path), rl.A)['exit'] == 1


@pytest.mark.usefixtures('chromium')
def test_report_page_of_the_audit(sealed_report, tmp_path):
    out, path, vkey = sealed_report
    dep = cloud.Deployment(log_vkey=str(vkey))
    admin = cloud.Creds('http://127.0.0.1:1/v3', 'nobody', 'x', 'nothing')
    r = run_mod.Run('healthcare', dep, admin, str(out), echo=None,
                    verify_command=_verifier_command())
    r.obs.data['project'] = {'id': rl.A, 'name': 'hospital'}
    lines = run_mod._read_report(str(path))
    r.obs.data['report'] = {'file': path.name, 'lines': len(lines) - 1,
                            'tree_size': lines[0]['tree_size'],
                            'line_indexes': [(ln['index'], ln['kind']) for ln in lines[1:]],
                            'summaries': [ln['summary'] for ln in lines[1:]]}
    r.audit(str(path))
    r.obs.checkpoint(lines[0]['tree_size'], lines[0]['root_hash'], True)
    outcomes = core.evaluate(r.obs)
    html = tmp_path / 'report.html'
    html.write_text(page.render(r.obs, outcomes))
    expected = page.expected_elements(r.obs, outcomes) + [
        ('verified badge', 'g', {'class': 'verification-badge', 'data-verified': 'true'}),
        ('tampered copy rejected', 'tr', {'class': 'tampered', 'data-exit': '1'})]
    result = browser.check_report(str(html), str(tmp_path / 'report.png'), expected)
    assert result['ok'], result['problems']
