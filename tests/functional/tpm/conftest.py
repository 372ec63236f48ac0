"""swtpm fixtures for the TPM functional tests (real swtpm processes, real tpm2-tools).

- ``swtpm``: a fresh, unprovisioned software TPM (temporary state, stopped afterwards).
- ``swtpm_factory(provision=False, state_dir=None)``: start more of them; all are stopped
  at teardown.
- ``local_ca``: a session-wide swtpm_localca CA in a temporary directory.
- ``provisioned_swtpm``: a session-wide TPM manufactured by ``swtpm_setup`` with
  ``local_ca`` (persistent RSA + ECC EKs, EK certificates in NV). Do not reboot it.
- ``tpm_device``: a :class:`TPMDevice` on ``swtpm`` (closed afterwards).
- ``tpm2_tools``: ``run(tcti, *argv, cwd=None, check=True)`` runs one tpm2-tools command
  against a TPM and flushes transient objects and sessions afterwards (swtpm has no
  resource manager); returns the CompletedProcess.
"""
import os

import pytest

from tclouds_openstack.attestation.agent import swtpm as swtpm_mod
from tclouds_openstack.attestation.agent import tpm_device as tpm_device_mod
from tests import watchdog


@pytest.fixture(scope='session')
def local_ca(tmp_path_factory):
    return swtpm_mod.LocalCA(str(tmp_path_factory.mktemp('swtpm-localca')))


@pytest.fixture
def swtpm_factory(local_ca):
    started = []

    def make(provision=False, state_dir=None, ca=None):
        tpm = swtpm_mod.Swtpm(state_dir, ca=(ca or local_ca) if provision else None)
        started.append(tpm)
        return tpm.start()
    try:
        yield make
    finally:
        for tpm in started:
            tpm.stop()


@pytest.fixture
def swtpm(swtpm_factory):
    return swtpm_factory()


@pytest.fixture(scope='session')
def provisioned_swtpm(local_ca):
    tpm = swtpm_mod.Swtpm(ca=local_ca)
    try:
        yield tpm.start()
    finally:
        tpm.stop()


@pytest.fixture
def tpm_device(swtpm):
    device = tpm_device_mod.TPMDevice(swtpm.tcti)
    try:
        yield device
    finally:
        device.close()


def _run_tools(tcti, *argv, cwd=None, check=True):
    env = dict(os.environ, TPM2TOOLS_TCTI=tcti, TSS2_LOG='all+none')
    result = watchdog.run(list(argv), cwd=cwd, env=env, capture_output=True)
    if tcti != 'none':
        for flag in ('-t', '-s'):
            watchdog.run(['tpm2_flushcontext', flag], env=env, capture_output=True)
    if check and result.returncode != 0:
        raise AssertionError('%s failed (rc %d): %s' % (' '.join(argv), result.returncode,
                                                        result.stderr.decode(errors='replace')))
    return result


@pytest.fixture(scope='session')
def tpm2_tools():
    return _run_tools
