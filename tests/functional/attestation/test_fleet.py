"""Issue 3 acceptance: a fleet of swtpm hosts attested over RabbitMQ, on sqlite and MariaDB."""
import json

import pytest

from tclouds_openstack.attestation.agent import swtpm as swtpm_mod
from tests.functional.attestation import conftest as fx
from tests.watchdog import wait_for  # no time limit: see tests/watchdog.py

N_HOSTS = 5
INTERVAL = 1.0
MAX_AGE = 4


@pytest.fixture
def fleet(db_url, tmp_path, local_ca):  # noqa: F811
    conf = fx.make_conf(db_url, interval=INTERVAL, jitter=0.2, max_verdict_age=MAX_AGE,
                        rpc_timeout=2.0, concurrency=4)
    conf.set_override('driver', ['messagingv2'], group='oslo_messaging_notifications')
    fleet = fx.Fleet(conf, str(tmp_path), local_ca)
    try:
        yield fleet
    finally:
        fleet.close()


def test_fleet_lifecycle(fleet, local_ca, tmp_path):
    # the first host manufactures the CA; then the registrar trusts exactly that CA
    hosts = [fleet.add_host('compute-0', register=False, serve=False)]
    fleet.start_registrar(local_ca.ca_bundle_pem())
    hosts[0].agent.register()
    hosts[0].agent.start()
    for i in range(1, N_HOSTS):
        hosts.append(fleet.add_host('compute-%d' % i))
    # a TPM whose EK certificate comes from another CA is refused
    rogue_ca = swtpm_mod.LocalCA(str(tmp_path / 'rogue-ca'))
    with pytest.raises(Exception) as err:
        fleet.add_host('rogue', ca=rogue_ca)
    assert 'EK certificate refused' in str(err.value)
    assert [h.name for h in fleet.store.list_hosts()] == ['compute-%d' % i
                                                          for i in range(N_HOSTS)]

    fleet.store.create_policy('default', **{k: json.dumps(v) for k, v in
                                            fx.golden_policy_documents().items()})
    fleet.listen_notifications()
    fleet.start_verifier()
    assert wait_for(lambda: all(fleet.status(h.name) == 'trusted' for h in hosts), 30), \
        [(h.name, fleet.store.get_host(h.name).reasons) for h in hosts]

    # an IMA entry not in the allowlist -> untrusted with that reason within two intervals
    hosts[1].run_file('/usr/local/bin/miner', b'not allowed')
    assert wait_for(lambda: fleet.status('compute-1') == 'untrusted', 2 * INTERVAL * 1.2 + 2)
    assert 'not_in_allowlist' in fleet.store.get_host('compute-1').reasons
    assert '/usr/local/bin/miner' in fleet.store.get_host('compute-1').reasons
    assert wait_for(lambda: any(e[1] == 'attestation.host.untrusted'
                                and e[2]['host'] == 'compute-1' for e in fleet.events), 10)
    event = [e for e in fleet.events if e[1] == 'attestation.host.untrusted'][0]
    assert event[0] == 'tclouds-attestation.worker-1'
    assert event[2]['previous_status'] == 'trusted'
    assert set(event[2]) == {'host', 'status', 'previous_status', 'reasons', 'verified_at',
                             'reset_count', 'ak_name'}

    # a PCR extended with an unknown measurement (no log event) -> untrusted
    hosts[2].agent.device().pcr_extend(4, {'sha256': b'\x42' * 32, 'sha1': b'\x42' * 20})
    assert wait_for(lambda: fleet.status('compute-2') == 'untrusted', 2 * INTERVAL * 1.2 + 2)
    assert 'measured_boot.invalid_pcr_4' in fleet.store.get_host('compute-2').reasons

    # reboot (swtpm reset): re-attested with the new boot
    before = fleet.store.get_host('compute-3').reset_count
    hosts[3].reboot()
    assert wait_for(lambda: fleet.store.get_host('compute-3').reset_count == before + 1, 10)
    assert fleet.status('compute-3') == 'trusted'

    # a reboot into an unknown kernel is caught by the reference state
    hosts[0].reboot(kernel=b'unknown kernel')
    assert wait_for(lambda: fleet.status('compute-0') == 'untrusted', 10)
    assert 'measured_boot.policy' in fleet.store.get_host('compute-0').reasons

    # agent stopped -> unknown after the freshness bound, never trusted meanwhile
    hosts[4].agent.stop()
    seen = set()

    def unknown():
        seen.add(fleet.status('compute-4'))
        return fleet.status('compute-4') == 'unknown'
    assert wait_for(unknown, MAX_AGE + 8)
    assert 'agent has not answered' in fleet.store.get_host('compute-4').reasons
    history = fleet.store.history('compute-1')
    assert [h.status for h in history][:2] == ['untrusted', 'trusted']
    assert wait_for(lambda: any(e[1] == 'attestation.host.unknown' for e in fleet.events), 10)
