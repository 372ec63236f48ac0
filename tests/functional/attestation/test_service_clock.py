"""The verifier service keeps the whole TPM clock of each host (issue 12, point 3).

A fleet host's swtpm is rolled back by restoring a copy of its state files (what an
attacker with the host's disk or a hypervisor snapshot can do) while its agent keeps
answering over RabbitMQ: within one boot the clock goes back, and the verifier, which
compares every quote with the last good one it stored, says so. It keeps saying so after
the agent registers a new AK of the same TPM. Policies created through the API carry their
measured-boot engine and clock policy to the verifier.
"""
import json
import os
import shutil
import subprocess

import pytest

from tclouds_openstack.attestation.agent import swtpm as swtpm_mod
from tclouds_openstack.attestation.agent import tpm_device
from tclouds_openstack.attestation.service import store as store_mod
from tests.functional.attestation import conftest as fx
from tests.watchdog import wait_for  # no time limit: see tests/watchdog.py

INTERVAL = 0.5


@pytest.fixture
def fleet(db_url, tmp_path, local_ca):  # noqa: F811
    conf = fx.make_conf(db_url, interval=INTERVAL, jitter=0.1, max_verdict_age=30,
                        rpc_timeout=5.0)
    fleet = fx.Fleet(conf, str(tmp_path), local_ca)
    try:
        yield fleet
    finally:
        fleet.close()


def _restart_tpm(fleet, host, snapshot, restore):
    """Hibernate the host's TPM (Shutdown(STATE)), copy or restore its state, start it again.

    The next start is a TPM Restart (same resetCount); the agent answers from the new swtpm
    and the boot is measured again, so the quote differs from a good one only in its clock.
    """
    with host.agent._lock:
        device, host.agent._device = host.agent._device, None
        if device is not None:
            device.close()
        host.tpm.stop(keep_state=True, shutdown='state')
        if restore:
            shutil.rmtree(host.tpm.state_dir)
            shutil.copytree(snapshot, host.tpm.state_dir)
        else:
            shutil.copytree(host.tpm.state_dir, snapshot)
        host.tpm = swtpm_mod.Swtpm(host.tpm.state_dir, ca=fleet.ca).start()
        host.agent.tcti = host.tpm.tcti
        with tpm_device.TPMDevice(host.tpm.tcti) as device:
            host._measure(device, None, {})


def _stored(fleet, name):
    return fleet.store.host_state(fleet.store.get_host(name))


def test_clock_rolled_back_within_a_boot_is_untrusted(fleet, local_ca, tmp_path):
    host = fleet.add_host('compute-0', register=False, serve=False)
    fleet.start_registrar(local_ca.ca_bundle_pem())
    host.agent.register()
    host.agent.start()
    snapshot = str(tmp_path / 'snapshot')
    _restart_tpm(fleet, host, snapshot, restore=False)
    fleet.store.create_policy('default', **{k: json.dumps(v) for k, v in
                                            fx.golden_policy_documents().items()})
    fleet.start_verifier()
    assert wait_for(lambda: fleet.status('compute-0') == 'trusted'
                    and _stored(fleet, 'compute-0').clock is not None, 60)
    first = _stored(fleet, 'compute-0')
    assert first.restart_count is not None and first.safe is True
    assert first.firmware_version is not None
    # the owner moves the clock forward (TPM2_ClockSet); the verifier stores the new clock
    forward = first.clock + 10 ** 7
    env = dict(os.environ, TPM2TOOLS_TCTI=host.tpm.tcti, TSS2_LOG='all+none')
    with host.agent._lock:
        device, host.agent._device = host.agent._device, None
        if device is not None:
            device.close()
        subprocess.run(['tpm2_setclock', str(forward)], env=env, check=True,
                       capture_output=True)
    assert wait_for(lambda: _stored(fleet, 'compute-0').clock >= forward, 60)
    assert fleet.status('compute-0') == 'trusted'
    good = _stored(fleet, 'compute-0')
    # the TPM state of before the clock was moved comes back
    _restart_tpm(fleet, host, snapshot, restore=True)
    assert wait_for(lambda: fleet.status('compute-0') == 'untrusted', 60)
    reasons = fleet.store.get_host('compute-0').reasons
    assert 'quote.clock' in reasons and 'within one boot' in reasons, reasons
    # the last good clock is kept: later rounds stay untrusted
    assert _stored(fleet, 'compute-0').clock == good.clock
    # a new AK of the same TPM does not make the verifier forget the clock
    old_ak = fleet.store.get_host('compute-0').ak_name
    os.remove(host.agent._ak_path())
    host.agent.ak = None
    host.agent.register()
    renewed = fleet.store.get_host('compute-0')
    assert renewed.ak_name != old_ak and renewed.registration == 'active'
    since = renewed.verified_at
    assert wait_for(lambda: fleet.store.get_host('compute-0').verified_at != since, 60)
    assert 'quote.clock' in fleet.store.get_host('compute-0').reasons
    assert fleet.status('compute-0') == 'untrusted'
    assert _stored(fleet, 'compute-0').clock == good.clock


def test_state_saved_before_the_host_went_wrong_and_put_back_is_untrusted(
        fleet, local_ca, tmp_path):
    """The clock of untrusted rounds counts too.

    A TPM state saved after the last trusted round, while the host was still good, is put
    back after the host ran something unknown (untrusted rounds followed): its clock is
    later than the last trusted round's, earlier than the untrusted rounds'.
    """
    host = fleet.add_host('compute-0', register=False, serve=False)
    fleet.start_registrar(local_ca.ca_bundle_pem())
    host.agent.register()
    host.agent.start()
    fleet.store.create_policy('default', **{k: json.dumps(v) for k, v in
                                            fx.golden_policy_documents().items()})
    verifier = fleet.start_verifier()
    assert wait_for(lambda: fleet.status('compute-0') == 'trusted'
                    and _stored(fleet, 'compute-0').clock is not None, 60)
    verifier.stop()
    trusted_clock = _stored(fleet, 'compute-0').clock
    snapshot = str(tmp_path / 'snapshot')
    _restart_tpm(fleet, host, snapshot, restore=False)     # a good state, saved
    host.run_file('/usr/bin/implant', b'evil')
    fleet.start_verifier('worker-2')
    assert wait_for(lambda: fleet.status('compute-0') == 'untrusted', 60)
    assert 'not_in_allowlist' in fleet.store.get_host('compute-0').reasons
    since = fleet.store.get_host('compute-0').verified_at
    assert wait_for(lambda: fleet.store.get_host('compute-0').verified_at != since, 60)
    untrusted_clock = _stored(fleet, 'compute-0').clock
    assert untrusted_clock > trusted_clock          # the untrusted rounds' clock is kept
    _restart_tpm(fleet, host, snapshot, restore=True)      # the good state put back
    assert wait_for(lambda: 'quote.clock' in fleet.store.get_host('compute-0').reasons, 60)
    assert fleet.status('compute-0') == 'untrusted'
    assert _stored(fleet, 'compute-0').clock == untrusted_clock


def test_unreadable_stored_clock_is_untrusted(fleet, local_ca):
    host = fleet.add_host('compute-0', register=False, serve=False)
    fleet.start_registrar(local_ca.ca_bundle_pem())
    host.agent.register()
    host.agent.start()
    fleet.store.create_policy('default', None, None, None)
    fleet.start_verifier()
    assert wait_for(lambda: fleet.status('compute-0') == 'trusted', 60)
    with fleet.store._writer() as session:
        session.query(store_mod.models.Host).update({'tpm_clock': '-1'})
    assert wait_for(lambda: fleet.status('compute-0') == 'untrusted', 60)
    assert 'stored TPM state of host compute-0 is unreadable' in \
        fleet.store.get_host('compute-0').reasons
