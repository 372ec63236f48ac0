"""EK certificates made by swtpm_setup with our LocalCA, verified by verify_ek_certificate."""
import datetime

from cryptography.hazmat.primitives import serialization
import pytest

from tclouds_openstack.attestation.agent import swtpm as swtpm_mod
from tclouds_openstack.attestation.agent import tpm_device
from tclouds_openstack.tpm import ekcert
from tclouds_openstack.tpm import errors
from tests import watchdog


@pytest.fixture(scope='module')
def ek_material(provisioned_swtpm):
    out = {}
    for ek_type in ('rsa', 'ecc'):
        with tpm_device.TPMDevice(provisioned_swtpm.tcti, ek_type=ek_type) as device:
            out[ek_type] = (device.ek_certificate(), device.ek_public())
    return out


@pytest.fixture(scope='module')
def other_ca_tpm(tmp_path_factory):
    """A second TPM manufactured by a second, unrelated LocalCA."""
    ca = swtpm_mod.LocalCA(str(tmp_path_factory.mktemp('other-ca')))
    with swtpm_mod.Swtpm(ca=ca) as tpm:
        with tpm_device.TPMDevice(tpm.tcti) as device:
            yield ca, device.ek_certificate(), device.ek_public()


@pytest.mark.parametrize('ek_type', ['rsa', 'ecc'])
def test_swtpm_ek_certificate_validates(ek_material, local_ca, ek_type):
    cert_der, ek_public = ek_material[ek_type]
    assert cert_der is not None
    cert = ekcert.verify_ek_certificate(cert_der, local_ca.ca_bundle_pem(), ek_public)
    # The TCG extensions (critical SAN directoryName, EKU 2.23.133.8.1) were there.
    assert any(ext.critical for ext in cert.extensions)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    assert ekcert.verify_ek_certificate(pem, local_ca.ca_bundle_pem()) == cert


def test_openssl_agrees(ek_material, local_ca, tmp_path):
    """Cross-check the chain with openssl verify (the note's oracle)."""
    cert = ekcert.load_certificate(ek_material['rsa'][0])
    (tmp_path / 'ek.pem').write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    result = watchdog.run(['openssl', 'verify', '-CAfile', local_ca.root_cert, '-untrusted',
                           local_ca.issuer_cert, str(tmp_path / 'ek.pem')],
                          capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize('ek_type', ['rsa', 'ecc'])
def test_other_ca_bundle_is_refused(ek_material, other_ca_tpm, ek_type):
    other_ca, _, _ = other_ca_tpm
    cert_der, ek_public = ek_material[ek_type]
    with pytest.raises(errors.VerificationError) as e:
        ekcert.verify_ek_certificate(cert_der, other_ca.ca_bundle_pem(), ek_public)
    assert e.value.check == 'ek_certificate'
    assert 'does not verify' in e.value.reason


def test_certificate_of_another_key_is_refused(ek_material, other_ca_tpm, local_ca):
    cert_der, _ = ek_material['rsa']
    _, _, other_ek = other_ca_tpm
    for wrong_ek in (other_ek, ek_material['ecc'][1]):
        with pytest.raises(errors.VerificationError) as e:
            ekcert.verify_ek_certificate(cert_der, local_ca.ca_bundle_pem(), wrong_ek)
        assert 'another key' in e.value.reason
    # And the other TPM's own, genuine certificate is not trusted here.
    _, other_cert, other_ek = other_ca_tpm
    with pytest.raises(errors.VerificationError):
        ekcert.verify_ek_certificate(other_cert, local_ca.ca_bundle_pem(), other_ek)


def test_bundle_without_root_and_validity_are_enforced(ek_material, local_ca):
    cert_der, ek_public = ek_material['rsa']
    with open(local_ca.issuer_cert, 'rb') as f:
        issuer_only = f.read()
    with pytest.raises(errors.VerificationError) as e:
        ekcert.verify_ek_certificate(cert_der, issuer_only, ek_public)
    assert 'issuer' in e.value.reason
    before = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    with pytest.raises(errors.VerificationError) as e:
        ekcert.verify_ek_certificate(cert_der, local_ca.ca_bundle_pem(), ek_public, at=before)
    assert 'not valid at' in e.value.reason


def test_unprovisioned_tpm_has_no_certificate(swtpm):
    with tpm_device.TPMDevice(swtpm.tcti) as device:
        assert device.ek_certificate() is None
