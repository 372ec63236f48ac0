"""The test runner's isolation rule and its total line."""
from tests import isolation


def test_modules_importing_openstack_services_are_isolated(tmp_path):
    direct = tmp_path / 'test_direct.py'
    direct.write_text('from nova.tests.functional import integrated_helpers\n')
    helper = tmp_path / 'helper.py'
    helper.write_text('import cinder.test\n')
    plain = tmp_path / 'test_plain.py'
    plain.write_text('import json\nfrom tclouds_openstack.tpm import quote\n')
    broken = tmp_path / 'test_broken.py'
    broken.write_bytes(b'def (:\n')
    assert isolation.needs_isolation(direct)
    assert not isolation.needs_isolation(plain)
    assert not isolation.needs_isolation(broken)


def test_indirect_import_through_tests_package_is_isolated(monkeypatch, tmp_path):
    package = tmp_path / 'tests' / 'functional'
    package.mkdir(parents=True)
    (package / 'base.py').write_text('from placement.tests.functional import fixtures\n')
    user = package / 'test_user.py'
    user.write_text('from tests.functional import base\n')
    monkeypatch.setattr(isolation, 'REPO', tmp_path)
    assert isolation.needs_isolation(user)
    assert isolation.isolated_modules(tmp_path / 'tests') == [user.relative_to(tmp_path)]


def test_summarize_adds_up_reports(tmp_path):
    one = tmp_path / 'a.xml'
    one.write_text('<testsuites><testsuite tests="5" failures="1" errors="0" skipped="1"/>'
                   '</testsuites>')
    two = tmp_path / 'b.xml'
    two.write_text('<testsuite tests="3" failures="0" errors="1" skipped="0"/>')
    bad = tmp_path / 'c.xml'
    bad.write_text('<testsuite')
    assert isolation.summarize([one, two]) == (5, 2, 1)
    assert isolation.summarize([bad]) == (0, 1, 0)
    assert isolation.main(['summarize', str(one)]) == 1


def test_summary_names_each_failed_or_erroring_test(tmp_path, capsys):
    report = tmp_path / 'a.xml'
    report.write_text(
        '<testsuite tests="3" failures="1" errors="1" skipped="0">'
        '<testcase classname="tests.m" name="test_ok"/>'
        '<testcase classname="tests.m" name="test_bad">'
        '<failure message="assert 403 == 200&#10;second line">trace</failure></testcase>'
        '<testcase classname="tests.n" name="test_boom"><error>RuntimeError: x</error>'
        '</testcase></testsuite>')
    assert isolation.main(['summarize', str(report)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == ['FAILURE tests.m::test_bad: assert 403 == 200',
                   'ERROR tests.n::test_boom: RuntimeError: x',
                   'total: 1 passed, 2 failed, 0 skipped']


def test_plan_gives_areas_shared_runs_and_isolated_modules_their_own(monkeypatch, tmp_path):
    unit = tmp_path / 'tests' / 'unit'
    (unit / 'tpm').mkdir(parents=True)
    (unit / 'tpm' / 'test_quote.py').write_text('import json\n')
    (unit / 'test_loose.py').write_text('import json\n')
    nova = tmp_path / 'tests' / 'functional' / 'nova'
    nova.mkdir(parents=True)
    (nova / 'test_boot.py').write_text('import nova.test\n')
    monkeypatch.setattr(isolation, 'REPO', tmp_path)
    shared, isolated = isolation.plan(tmp_path / 'tests')
    assert shared == [['tests/unit/test_loose.py'], ['tests/unit/tpm']]
    assert isolated == ['tests/functional/nova/test_boot.py']


def test_compare_names_tests_whose_outcome_differs(tmp_path):
    def report(directory, cases):
        directory.mkdir()
        body = ''.join('<testcase classname="m" name="%s">%s</testcase>' % (name, inner)
                       for name, inner in cases)
        (directory / 'run-1.xml').write_text('<testsuites><testsuite>%s</testsuite></testsuites>'
                                             % body)
        return directory

    first = report(tmp_path / 'a', [('t1', ''), ('t2', '<skipped/>'), ('t3', '')])
    second = report(tmp_path / 'b', [('t1', ''), ('t2', '<skipped/>'), ('t3', '<failure/>'),
                                     ('t3', '<error/>')])
    assert isolation.compare(first, first) == []
    assert isolation.compare(first, second) == ['m::t3: passed -> failed']
