"""Test modules that run OpenStack services in-process get a pytest process of their own.

Nova, Cinder, Placement and Keystone keep process-wide state (oslo.config's global CONF,
eventlet monkey patching, SQLAlchemy and RPC globals): one module importing them must not
leak it into the rest of the suite, nor Nova into Cinder. A module needs isolation when it
imports one of them, directly or through another module of ``tests``.

``tools/run-tests.sh`` runs the suite once with ``TCLOUDS_SKIP_ISOLATED=1`` (the
conftest then ignores these modules) and then each isolated module in its own process, and
prints one total from the JUnit reports::

    python -m tests.isolation list                  # the isolated modules, one per line
    python -m tests.isolation plan                  # the pytest processes of the suite
    python -m tests.isolation summarize A.xml ...   # total; exit 1 on any failure/error
    python -m tests.isolation compare DIR_A DIR_B   # tests whose outcome differs; exit 1 if any
"""
import ast
import pathlib
import sys
import xml.etree.ElementTree as ElementTree

REPO = pathlib.Path(__file__).resolve().parent.parent
IN_PROCESS_SERVICES = frozenset(['nova', 'cinder', 'placement', 'keystone'])


def _imported_modules(path):
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except (SyntaxError, ValueError, OSError):
        return []      # the main run reports the broken module itself
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += ['%s.%s' % (node.module, alias.name) for alias in node.names]
    return names


def _module_file(name):
    base = REPO.joinpath(*name.split('.'))
    for candidate in (base.with_suffix('.py'), base / '__init__.py'):
        if candidate.is_file():
            return candidate
    return None


def needs_isolation(path, _seen=None):
    """True when the module at ``path`` imports an in-process OpenStack service."""
    seen = _seen if _seen is not None else set()
    path = pathlib.Path(path).resolve()
    if path in seen:
        return False
    seen.add(path)
    for name in _imported_modules(path):
        top = name.split('.')[0]
        if top in IN_PROCESS_SERVICES:
            return True
        if top == 'tests':
            target = _module_file(name)
            if target is not None and needs_isolation(target, seen):
                return True
    return False


def isolated_modules(root=REPO / 'tests'):
    return sorted(p.relative_to(REPO) for p in pathlib.Path(root).rglob('test_*.py')
                  if needs_isolation(p))


def plan(root=REPO / 'tests'):
    """The pytest runs of the whole suite, one list of paths per process.

    One run per area directory (``tests/unit/<area>``, ``tests/functional/<area>``) and one
    for the loose modules of each suite, leaving out the isolated modules (the conftest
    skips them when TCLOUDS_SKIP_ISOLATED=1); then one run per isolated module.
    """
    shared, isolated = [], []
    for suite in sorted(p for p in pathlib.Path(root).iterdir() if p.is_dir()):
        groups = [[m] for m in sorted(suite.glob('test_*.py'))]
        groups = [sum(groups, [])] if groups else []
        groups += [[area] for area in sorted(suite.iterdir())
                   if area.is_dir() and area.name != '__pycache__']
        for group in groups:
            modules = [m for path in group
                       for m in ([path] if path.is_file() else sorted(path.rglob('test_*.py')))]
            if any(not needs_isolation(m) for m in modules):
                shared.append(group)
            isolated += [m for m in modules if needs_isolation(m)]
    rel = [[str(p.relative_to(REPO)) for p in group] for group in shared]
    return rel, [str(m.relative_to(REPO)) for m in sorted(isolated)]


def summarize(reports):
    """Add up JUnit XML reports: (passed, failed, skipped)."""
    passed = failed = skipped = 0
    for report in reports:
        try:
            root = ElementTree.parse(report).getroot()
        except (ElementTree.ParseError, OSError) as e:
            print('unreadable test report %s: %s' % (report, e), file=sys.stderr)
            failed += 1
            continue
        for suite in root.iter('testsuite'):
            tests = int(suite.get('tests', 0))
            bad = int(suite.get('failures', 0)) + int(suite.get('errors', 0))
            skip = int(suite.get('skipped', 0))
            passed += tests - bad - skip
            failed += bad
            skipped += skip
    return passed, failed, skipped


def failures(reports):
    """Lines naming each failed or erroring test with its message's first line.

    The suite's progress output is long and CI logs show only part of it: the summary
    must name what failed.
    """
    lines = []
    for report in reports:
        try:
            root = ElementTree.parse(report).getroot()
        except (ElementTree.ParseError, OSError):
            continue  # summarize() already counts and names it
        for case in root.iter('testcase'):
            for kind in ('failure', 'error'):
                found = case.find(kind)
                if found is None:
                    continue
                message = (found.get('message') or found.text or '').strip()
                lines.append('%s %s::%s: %s' % (
                    kind.upper(), case.get('classname'), case.get('name'),
                    message.splitlines()[0][:300] if message else '(no message)'))
    return lines


def outcomes(directory):
    """{test id: 'passed'|'failed'|'error'|'skipped'} over the JUnit reports in a directory."""
    found = {}
    for report in sorted(pathlib.Path(directory).rglob('*.xml')):
        for case in ElementTree.parse(report).getroot().iter('testcase'):
            outcome = 'passed'
            for kind in ('failure', 'error', 'skipped'):
                if case.find(kind) is not None:
                    outcome = {'failure': 'failed'}.get(kind, kind)
            key = '%s::%s' % (case.get('classname'), case.get('name'))
            # a test failing in teardown has a second entry for the same id: keep the worst
            if found.get(key) not in ('failed', 'error'):
                found[key] = outcome
    return found


def compare(first, second):
    """Lines naming each test whose outcome differs between two report directories."""
    a, b = outcomes(first), outcomes(second)
    return ['%s: %s -> %s' % (key, a.get(key, 'absent'), b.get(key, 'absent'))
            for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def main(argv):
    if argv[:1] == ['list']:
        for module in isolated_modules():
            print(module)
        return 0
    if argv[:1] == ['plan']:
        shared, isolated = plan()
        for group in shared:
            print('shared ' + ' '.join(group))
        for module in isolated:
            print('isolated ' + module)
        return 0
    if argv[:1] == ['compare'] and len(argv) == 3:
        differences = compare(argv[1], argv[2])
        print('\n'.join(differences))
        print('%d tests, %d with a different outcome'
              % (len(outcomes(argv[1])), len(differences)))
        return 1 if differences else 0
    if argv[:1] == ['summarize']:
        passed, failed, skipped = summarize(argv[1:])
        for line in failures(argv[1:]):
            print(line)
        print('total: %d passed, %d failed, %d skipped' % (passed, failed, skipped))
        return 1 if failed or not passed else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
