"""The demo's ``keys`` chapter (data flows 1 and 2), run as a user would, and its cleanup."""
import threading

from tclouds_openstack.attestation.agent import swtpm
from tclouds_openstack.demo import main
from tests.functional import demo as demo_tests


def test_keys_chapter(tmp_path):
    result = demo_tests.run_demo('--chapter', 'keys', '--workdir', str(tmp_path))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert 'Traceback' not in out + result.stderr
    assert '1. Attested hosts and attestation-gated volume keys' in out
    # flow 1: the operator enrols, registration over the bus, verdicts with reasons, read
    # back through the API
    assert '[ok  ] the operator enrolled compute1, compute2, compute3: each name bound to ' \
           'its TPM\'s EK' in out
    for host in ('compute1', 'compute2', 'compute3'):
        assert '[ok  ] %s: registered over the bus: EK certificate chains' % host in out
    assert 'rogue1 (TPM certified by another CA): registration refused (host rogue1: EK ' \
           'certificate refused' in out
    assert '[ok  ] compute2\'s certified TPM registering as compute1: refused (host ' \
           'compute1: host compute1 is enrolled with the EK sha256:' in out
    assert 'against policy "default"): trusted' in out
    assert 'compute3: attested by the verifier' in out
    assert 'read back through the attestation API (GET /v1/verdicts, the "tclouds" backend ' \
           'of the Nova filter and the key service): compute1 trusted, compute2 trusted, ' \
           'compute3 untrusted, compute4 unknown' in out
    # flow 2: the key goes to the enrolled, attested host the volume is attached to only,
    # every refusal says why
    assert '[ok  ] compute1: got the volume key (identical to the one Cinder stored): host ' \
           'compute1 trusted' in out
    assert 'volume volume-demo is attached to host compute1 (attachment ' \
           'attachment-compute1: Cinder shows it attached)' in out
    assert '[ok  ] compute3: key refused: host compute3 is untrusted: measured_boot.policy: ' \
           in out
    assert '[ok  ] a user named tclouds-host-compute4 with the host role, not enrolled: key ' \
           'refused: credential id-tclouds-host-compute4 stands for no enrolled compute ' \
           'host' in out
    assert 'key refused: caller id-demo-user is not a compute host credential: policy does ' \
           'not allow keymgr:volume:key:release' in out
    assert '[ok  ] compute1, volume attached to compute2: key refused: volume volume-demo ' \
           'is not attached to host compute1 (Cinder: attached to compute2)' in out
    assert 'key refused: attestation verdict of host compute2 is stale:' in out
    assert '[ok  ] compute1, attested again meanwhile: got the volume key' in out
    assert 'sealed into the demo\'s secure log: attestation.host.trusted x2, ' \
           'attestation.host.untrusted x1, keymgr.key.refused x5, keymgr.key.released x3' in out
    assert 'Every step had its expected outcome.' in out
    assert not demo_tests.processes('swtpm', str(tmp_path))


def test_keys_chapter_stops_what_it_starts(tmp_path, capsys):
    """In-process with two hosts: no thread, server or swtpm outlives the chapter.

    (A subprocess cannot show it: swtpm's atexit hook would stop a forgotten swtpm.)
    """
    threads = set(threading.enumerate())
    assert main.main(['--chapter', 'keys', '--hosts', '2', '--workdir', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert 'compute2: key refused: host compute2 is untrusted' in out
    assert 'key refused: attestation verdict of host compute1 is stale:' in out
    assert [t.name for t in threading.enumerate() if t not in threads] == []
    assert not swtpm._running
    assert not demo_tests.processes('swtpm', str(tmp_path))
