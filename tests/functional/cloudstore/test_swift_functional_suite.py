"""Swift's own functional test suite against a proxy with the cloudstore middleware.

The suite ships in the Swift sdist (``test/functional``), not in the wheel. It is fetched
once with ``pip download --no-binary :all: swift==<installed version>`` into
``$TCLOUDS_SWIFT_SDIST_DIR`` (default ``~/.cache/tclouds-openstack/swift-sdist``) and
run in a subprocess with ``SWIFT_TEST_IN_PROCESS=1``: Swift builds its in-process cluster
from our ``proxy-server.conf`` (Swift's sample with ``cloudstore`` added before the last
``proxy-logging``) and a ``swift.conf`` whose only, default, policy is the cloud-of-clouds
policy, so every object the suite writes goes through DepSky-CA to the four backend
clusters. The s3api tests are left out (they test the S3 front end, not object storage).

The suite runs without a time limit (it takes minutes, three times as many with both cores
busy); it is stopped only when stuck (tests/watchdog.py). Swift is imported without reading
/etc/swift/swift.conf and the suite's own settings file is none (tests/hermetic.py).
"""
import configparser
import importlib.metadata
import os
import pathlib
import sys
import tarfile
import xml.etree.ElementTree as ElementTree

import pytest

from tests.functional.cloudstore import cluster as cluster_mod
from tests import hermetic
from tests import watchdog

REPO = pathlib.Path(__file__).resolve().parents[3]
SWIFT_VERSION = importlib.metadata.version('swift')
# python -c RUN_SUITE <repo> <pytest arguments>
RUN_SUITE = ('import sys; sys.path.insert(0, sys.argv.pop(1)); from tests import hermetic; '
             'hermetic.import_swift(); import pytest; sys.exit(pytest.main(sys.argv[1:]))')
SDIST_DIR = pathlib.Path(os.environ.get(
    'TCLOUDS_SWIFT_SDIST_DIR', pathlib.Path.home() / '.cache' / 'tclouds-openstack' /
    'swift-sdist'))


def _sdist():
    path = SDIST_DIR / ('swift-%s.tar.gz' % SWIFT_VERSION)
    if not path.exists():
        SDIST_DIR.mkdir(parents=True, exist_ok=True)
        result = watchdog.run(
            [sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--no-binary',
             ':all:', 'swift==%s' % SWIFT_VERSION, '-d', str(SDIST_DIR)],
            capture_output=True, text=True)
        if result.returncode != 0 or not path.exists():
            pytest.fail('cannot fetch the Swift %s sdist (its test/functional is the suite '
                        'this test runs) into %s; pip said: %s' % (
                            SWIFT_VERSION, SDIST_DIR, result.stderr[-2000:]))
    return path


def _extract(sdist, target):
    prefix = 'swift-%s/' % SWIFT_VERSION
    with tarfile.open(sdist) as archive:
        members = []
        for member in archive.getmembers():
            # Only test/ and etc/: the swift package itself must come from the venv.
            if member.name.startswith((prefix + 'test/', prefix + 'etc/')) and \
                    (member.isfile() or member.isdir()) and '..' not in member.name:
                member.name = member.name[len(prefix):]
                members.append(member)
        archive.extractall(target, members=members)


def _write_conf(conf_dir, source_dir, backend_clusters, writer_key_file):
    conf_dir.mkdir()
    proxy = configparser.ConfigParser(interpolation=None)
    proxy.read(source_dir / 'etc' / 'proxy-server.conf-sample')
    pipeline = proxy.get('pipeline:main', 'pipeline').split()
    assert pipeline[-2:] == ['proxy-logging', 'proxy-server']
    proxy.set('pipeline:main', 'pipeline', ' '.join(pipeline[:-2] + [
        'cloudstore', 'proxy-logging', 'proxy-server']))
    section = configparser.ConfigParser(interpolation=None)
    section.read_string(cluster_mod.cloudstore_section(backend_clusters, writer_key_file,
                                                       timeout=10))
    proxy['filter:cloudstore'] = dict(section['filter:cloudstore'])
    with open(conf_dir / 'proxy-server.conf', 'w') as stream:
        proxy.write(stream)
    (conf_dir / 'swift.conf').write_text(
        '[swift-hash]\nswift_hash_path_prefix = p\nswift_hash_path_suffix = s\n\n'
        '[swift-constraints]\n\n[storage-policy:0]\nname = cloudofclouds\ndefault = yes\n')


def _failures(junit_xml):
    failures = []
    counts = {'tests': 0, 'failures': 0, 'errors': 0, 'skipped': 0}
    root = ElementTree.parse(junit_xml).getroot()
    for suite in root.iter('testsuite'):
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    for case in root.iter('testcase'):
        for kind in ('failure', 'error'):
            for element in case.findall(kind):
                failures.append('%s::%s %s: %s' % (
                    case.get('classname'), case.get('name'), kind,
                    (element.get('message') or '')[:300]))
    return counts, failures


def test_swift_functional_suite_passes_through_cloudstore(tmp_path_factory, backend_clusters,
                                                          writer_key_file, cloud_root):
    run_dir = pathlib.Path(cloud_root) / 'swift-ftests'
    run_dir.mkdir()
    _extract(_sdist(), run_dir)
    _write_conf(run_dir / 'conf', run_dir, backend_clusters, writer_key_file)
    tmp = run_dir / 'tmp'
    tmp.mkdir()
    junit = run_dir / 'junit.xml'
    env = dict(os.environ, SWIFT_TEST_IN_PROCESS='1',
               SWIFT_TEST_IN_PROCESS_CONF_DIR=str(run_dir / 'conf'),
               SWIFT_TEST_CONFIG_FILE=hermetic.SWIFT_TEST_CONFIG, TMPDIR=str(tmp),
               PYTHONPATH=os.pathsep.join([str(run_dir)] + [
                   p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    env.pop('SWIFT_TEST_POLICY', None)
    # TCLOUDS_SWIFT_FTESTS narrows the run while debugging (pytest node ids, space separated).
    selection = os.environ.get('TCLOUDS_SWIFT_FTESTS', 'test/functional').split()
    result = watchdog.run(
        [sys.executable, '-c', RUN_SUITE, str(REPO)] + selection + [
            '--ignore=test/functional/s3api', '-p', 'no:cacheprovider', '-p',
            'no:requests_mock', '-q', '-o', 'addopts=', '--junitxml=%s' % junit],
        cwd=str(run_dir), env=env, capture_output=True, text=True)
    if os.environ.get('TCLOUDS_SWIFT_FTESTS_OUTPUT'):
        pathlib.Path(os.environ['TCLOUDS_SWIFT_FTESTS_OUTPUT']).write_text(
            result.stdout + result.stderr)
    assert junit.exists(), 'the suite did not run:\n%s\n%s' % (
        result.stdout[-3000:], result.stderr[-3000:])
    counts, failures = _failures(junit)
    assert not failures, '%d of %d Swift functional tests failed:\n%s\n%s' % (
        len(failures), counts['tests'], '\n'.join(failures), result.stdout[-2000:])
    assert result.returncode == 0, result.stdout[-3000:]
    # A suite that silently skipped everything would prove nothing.
    if 'TCLOUDS_SWIFT_FTESTS' not in os.environ:
        assert counts['tests'] - counts['skipped'] > 400, counts
