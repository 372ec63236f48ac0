"""The adapters' pure parts: the deployment read from a tempest.conf, bad input refused
with the option's name, polling, the CLI's environment (never another identity's)."""
import pytest

from tclouds_openstack.scenarios import cloud
from tclouds_openstack.scenarios import core
from tclouds_openstack.scenarios import run as run_mod

TEMPEST_CONF = """
[compute]
image_ref = 11111111-2222-3333-4444-555555555555
flavor_ref = 42

[tclouds]
compute_hosts = devstack1,devstack2
jurisdiction = DE
encrypted_volume_type = tclouds-encrypted
cloudstore_policy = cloudofclouds
tamper_command = /opt/stack/bin/python3 helper.py tamper {host}
restore_command = /opt/stack/bin/python3 helper.py restore {host}
host_passwords = devstack1:pw1,devstack2:pw:with:colons
cloudstore_backend_containers = cloudstore-0, cloudstore-1,cloudstore-2,cloudstore-3
cloudstore_backend_password = secret
attestation_interval = 5
securelog_vkey_file = /etc/tclouds/securelog-log.vkey
trust_instance_action = live-migrate
"""


def test_deployment_from_tempest_config(tmp_path):
    path = tmp_path / 'tempest.conf'
    path.write_text(TEMPEST_CONF)
    dep = cloud.Deployment.from_tempest_config(str(path), log_vkey='/x/log.vkey', flavor=None)
    assert dep.compute_hosts == ['devstack1', 'devstack2']
    assert dep.host_passwords == {'devstack1': 'pw1', 'devstack2': 'pw:with:colons'}
    assert dep.cloudstore_backend_containers == ['cloudstore-%d' % i for i in range(4)]
    assert (dep.image, dep.flavor, dep.attestation_interval) == (
        '11111111-2222-3333-4444-555555555555', '42', 5)
    assert dep.log_vkey == '/x/log.vkey'      # an explicit option wins
    assert dep.instance_action == 'live-migrate'
    assert cloud.Deployment.from_tempest_config(str(path)).log_vkey == \
        '/etc/tclouds/securelog-log.vkey'
    admin = cloud.Creds('http://k/v3', 'admin', 'a', 'admin', region='R')
    host = dep.host_creds(admin, 'devstack2')
    assert (host.username, host.password, host.project_name) == (
        'tclouds-host-devstack2', 'pw:with:colons', 'service')
    with pytest.raises(core.ScenarioError, match='no credential of compute host x'):
        dep.host_creds(admin, 'x')


def test_deployment_refusals(tmp_path):
    with pytest.raises(core.ScenarioError, match='cannot read'):
        cloud.Deployment.from_tempest_config(str(tmp_path / 'absent.conf'))
    (tmp_path / 'bare.conf').write_text('[compute]\n')
    with pytest.raises(core.ScenarioError, match=r'no \[tclouds\] section'):
        cloud.Deployment.from_tempest_config(str(tmp_path / 'bare.conf'))
    dep = cloud.Deployment()
    with pytest.raises(core.ScenarioError, match='encrypted_volume_type, cloudstore_policy'):
        dep.need('encrypted_volume_type', 'cloudstore_policy')
    with pytest.raises(core.ScenarioError, match='no tamper_command'):
        dep.run_host_command('tamper_command', 'h', cloud.Transcript())


def test_host_command_failure_names_the_host(tmp_path):
    dep = cloud.Deployment(tamper_command='sh -c "echo no TPM for {host} >&2; exit 3"')
    transcript = cloud.Transcript()
    with pytest.raises(core.ScenarioError, match='tamper_command h1: exit 3: no TPM for h1'):
        dep.run_host_command('tamper_command', 'h1', transcript)
    assert transcript.lines[0]['as'] == 'operator' and transcript.lines[0]['exit'] == 3


def test_wait_for():
    now = [0.0]

    def clock():
        return now[0]

    def sleep(s):
        now[0] += s
    values = iter([None, 0, {'status': 'trusted'}])
    assert cloud.wait_for('x', lambda: next(values), 10, 1, clock, sleep) == {
        'status': 'trusted'}
    with pytest.raises(core.ScenarioError, match='host up: not within 5 s'):
        cloud.wait_for('host up', lambda: None, 5, 1, clock, sleep)


def test_cli_environment_is_the_persona_only(monkeypatch):
    monkeypatch.setenv('OS_CLOUD', 'devstack-admin')
    monkeypatch.setenv('OS_PASSWORD', 'admin-secret')
    env = cloud.Creds('http://k/v3', 'u', 'p', 'proj', region='R',
                      user_domain_id='default').env()
    assert 'OS_CLOUD' not in env and env['OS_PASSWORD'] == 'p'
    assert env['OS_USER_DOMAIN_ID'] == 'default' and 'OS_USER_DOMAIN_NAME' not in env
    assert env['OS_PROJECT_DOMAIN_NAME'] == 'Default'


def test_transcript_keeps_commands_not_passwords():
    t = cloud.Transcript()
    t.add('admin', ['openstack', 'user', 'create', 'u', '--password', 'p w'], 0)
    assert t.lines[0]['command'] == "openstack user create u --password '***'"


@pytest.mark.parametrize('props,want', [
    ({'trust:jurisdiction': 'DE'}, 'DE'), ("trust:jurisdiction='FR', other='x'", 'FR'),
    ('', None), (None, None)])
def test_aggregate_jurisdiction(props, want):
    assert run_mod._jurisdiction_of(props) == want


def test_iso_times():
    assert run_mod._iso_seconds('2025-12-05T08:00:00Z') == 1764921600.0
    assert run_mod._iso_seconds('2025-12-05T08:00:00') == 1764921600.0
    assert run_mod._iso_seconds('yesterday') is None
