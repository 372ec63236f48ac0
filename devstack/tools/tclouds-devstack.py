"""Steps of the DevStack plugin that need Python: software TPMs of the compute hosts, their
reference boot, the appraisal policy made from it, and host enrolment.

Run with DevStack's Python (where tclouds-openstack is installed); the API steps use the
``devstack-admin`` cloud of /etc/openstack/clouds.yaml (OS_CLOUD). Every failure exits 1
with one line that says why.

    provision <swtpm dir> <host>    manufacture <host>'s TPM (EK + certificate) with the
                                    local CA of <swtpm dir>; writes <swtpm dir>/ek-ca-bundle.pem
    boot <host dir> <tcti>          measure the reference boot into the running TPM (UEFI event
                                    log and IMA list written into <host dir>)
    ek-sha256 <tcti>                the hash an operator enrols the host's EK under
    create-policy <name>            the appraisal policy of the reference boot (idempotent)
    enrol <host> <ek sha256> <credential id>   bind the host name to its EK and credential
    wait-trusted <timeout> <host>...  until every host is trusted (exit 1 with the verdicts)
    tamper <host>                   a rogue boot component: extend PCR 4 of <host>'s software
                                    TPM with a digest its event log does not hold (the host
                                    turns untrusted at its next attestation)
    restore <host>                  reboot <host>'s software TPM the way a host reboots
                                    (TPM2_Shutdown, power cycle, TPM2_Startup: PCRs back to
                                    zero, resetCount up, the clock kept and safe) and measure
                                    the reference boot again (trusted again)

tamper/restore read the host's agent configuration (/etc/tclouds/agent-<host>.conf); they
are what the Tempest plugin's scenario tests run to turn a host untrusted and back.
"""
import json
import os
import sys
import time


def _attestation():
    import openstack.config

    from tclouds_openstack.attestation import client
    cloud = openstack.config.OpenStackConfig().get_one(os.environ.get('OS_CLOUD',
                                                                      'devstack-admin'))
    return client.AttestationClient(cloud.get_session(), interface='public',
                                    region_name=cloud.get_region_name())


def provision(swtpm_dir, host):
    from tclouds_openstack.attestation.agent import swtpm
    ca = swtpm.LocalCA(os.path.join(swtpm_dir, 'ca'))
    state = os.path.join(swtpm_dir, host, 'tpm')
    os.makedirs(state, exist_ok=True)
    marker = os.path.join(state, '.tclouds-provisioned')
    if not os.path.exists(marker):
        ca.provision(state, os.path.join(swtpm_dir, host, 'swtpm_setup.log'))
        open(marker, 'w').close()
    with open(os.path.join(swtpm_dir, 'ek-ca-bundle.pem'), 'wb') as f:
        f.write(ca.ca_bundle_pem())


def boot(host_dir, tcti):
    """Measure the reference boot into the TPM: firmware (PCRs 0-7) and IMA (PCR 10).

    Needed after each start of a swtpm: its PCRs start from zero.
    """
    from tclouds_openstack.attestation.agent import simulated_boot
    from tclouds_openstack.attestation.agent import tpm_device
    from tclouds_openstack.attestation import simfleet
    mb = simfleet.simulated()
    measured = simulated_boot.ima_measurements(mb.pcrs)
    with open(os.path.join(host_dir, 'binary_bios_measurements'), 'wb') as f:
        f.write(mb.log)
    with open(os.path.join(host_dir, 'ascii_runtime_measurements'), 'w') as f:
        f.write(measured.text)
    device = _device(tpm_device, tcti)
    try:
        for pcr, digests in mb.extends + measured.extends:
            device.pcr_extend(pcr, digests)
    finally:
        device.close()


def _device(tpm_device, tcti, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return tpm_device.TPMDevice(tcti)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def ek_sha256(tcti):
    from tclouds_openstack.attestation.agent import tpm_device
    from tclouds_openstack.attestation.service import registrar
    from tclouds_openstack.tpm import structures
    device = _device(tpm_device, tcti)
    try:
        ek = structures.parse_tpm2b_public(device.ek_public())
    finally:
        device.close()
    print(registrar.key_sha256(ek.public_key()))


def create_policy(name):
    from tclouds_openstack.attestation import simfleet
    from tclouds_openstack.common import client as common_client
    api = _attestation()
    try:
        api.show_policy(name)
        return
    except common_client.ClientError as e:
        if e.status != 404:
            raise
    api.create_policy(name, **simfleet.golden_policy_documents())


def enrol(host, ek, credential):
    _attestation().enrol(host, ek, [credential])


def wait_trusted(timeout, *hosts):
    api = _attestation()
    deadline = time.monotonic() + float(timeout)
    while True:
        verdicts = {h: api.show_host(h) for h in hosts}
        if all(v.get('status') == 'trusted' for v in verdicts.values()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError('not trusted after %s s: %s' % (timeout, json.dumps(
                {h: {k: v.get(k) for k in ('status', 'reasons', 'registration')}
                 for h, v in verdicts.items()}, sort_keys=True)))
        time.sleep(2)


def _agent_conf(host):
    import configparser
    parser = configparser.ConfigParser(interpolation=None)
    path = os.path.join(os.environ.get('TCLOUDS_CONF_DIR', '/etc/tclouds'), 'agent-%s.conf' % host)
    if not parser.read(path):
        raise RuntimeError('no agent configuration %s' % path)
    return parser.get('tpm', 'tcti'), os.path.dirname(parser.get('attestation', 'uefi_eventlog'))


def tamper(host):
    from tclouds_openstack.attestation.agent import tpm_device
    tcti, _ = _agent_conf(host)
    device = _device(tpm_device, tcti)
    try:
        device.pcr_extend(4, {'sha256': os.urandom(32), 'sha1': os.urandom(20)})
    finally:
        device.close()


def restore(host):
    # Not a restart of the swtpm process: killed without TPM2_Shutdown, it comes back
    # with the clock it last saved, which the verifier rightly takes for a rolled-back
    # TPM. The swtpm unit's control channel is on the next port (lib/attestation).
    from tclouds_openstack.attestation.agent import swtpm
    tcti, host_dir = _agent_conf(host)
    params = dict(kv.split('=', 1) for kv in tcti.split(':', 1)[1].split(','))
    tpm = swtpm.Swtpm()
    tpm.port = int(params['port'])
    tpm.ctrl_port = tpm.port + 1
    tpm.reboot(orderly=True)
    boot(host_dir, tcti)


COMMANDS = {'provision': provision, 'boot': boot, 'ek-sha256': ek_sha256,
            'create-policy': create_policy, 'enrol': enrol, 'wait-trusted': wait_trusted,
            'tamper': tamper, 'restore': restore}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        COMMANDS[argv[1]](*argv[2:])
    except Exception as e:  # one line for the stack.sh log, no traceback
        print('tclouds-devstack %s: %s: %s' % (argv[1], type(e).__name__, e), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
