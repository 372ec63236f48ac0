"""Python MakeCredential against swtpm's TPM2_ActivateCredential (TPMDevice and tpm2-tools)."""
import os

from cryptography.hazmat.primitives import serialization
import pytest

from tclouds_openstack.attestation.agent import tpm_device
from tclouds_openstack.tpm import credential
from tclouds_openstack.tpm import structures

ACTIVATE_SCRIPT = """
tpm2_startauthsession --policy-session -S s.ctx
tpm2_policysecret -S s.ctx -c e >/dev/null
tpm2_activatecredential -c ak.ctx -C ek.ctx -i {cred} -o {out} -P session:s.ctx
"""


def _round_trip(device, ak_type):
    ak = device.create_ak(ak_type)
    other = device.create_ak('ecc')
    secret = os.urandom(32)
    id_object, encrypted = credential.make_credential(device.ek_public(), ak.name, secret)
    assert device.activate_credential(ak, id_object, encrypted) == secret
    # Bound to the AK's Name: the TPM refuses it for another key.
    with pytest.raises(tpm_device.TPMDeviceError) as e:
        device.activate_credential(other, id_object, encrypted)
    assert 'integrity' in str(e.value)


@pytest.mark.parametrize('ek_type,ak_type', [('rsa', 'ecc'), ('rsa', 'rsa'), ('ecc', 'ecc')])
def test_activate_with_template_ek(swtpm, ek_type, ak_type):
    with tpm_device.TPMDevice(swtpm.tcti, ek_type=ek_type) as device:
        _round_trip(device, ak_type)


@pytest.mark.parametrize('ek_type', ['rsa', 'ecc'])
def test_activate_with_swtpm_setup_persistent_ek(provisioned_swtpm, ek_type):
    """swtpm_setup's persistent EKs: RSA-2048 and NIST P-384 with a sha384 nameAlg."""
    with tpm_device.TPMDevice(provisioned_swtpm.tcti, ek_type=ek_type) as device:
        ek = structures.parse_tpm2b_public(device.ek_public())
        assert ek.type == (0x0001 if ek_type == 'rsa' else 0x0023)
        _round_trip(device, 'ecc')


@pytest.fixture
def tools_keys(swtpm, tpm2_tools, tmp_path):
    run = tpm2_tools
    run(swtpm.tcti, 'tpm2_createek', '-c', 'ek.ctx', '-G', 'rsa', '-u', 'ek.pub', cwd=tmp_path)
    run(swtpm.tcti, 'tpm2_createak', '-C', 'ek.ctx', '-c', 'ak.ctx', '-G', 'ecc', '-s', 'ecdsa',
        '-g', 'sha256', '-u', 'ak.pub', '-n', 'ak.name', cwd=tmp_path)
    return tmp_path


def test_tools_file_activates_with_tpm2_activatecredential(swtpm, tpm2_tools, tools_keys):
    d = tools_keys
    secret = os.urandom(24)
    ak_name = (d / 'ak.name').read_bytes()
    blob = credential.marshal_tools_credential(
        *credential.make_credential((d / 'ek.pub').read_bytes(), ak_name, secret))
    (d / 'cred.bin').write_bytes(blob)
    tpm2_tools(swtpm.tcti, 'bash', '-ec', ACTIVATE_SCRIPT.format(cred='cred.bin', out='out.bin'),
               cwd=d)
    assert (d / 'out.bin').read_bytes() == secret

    # Made for a different AK Name: tpm2_activatecredential fails.
    wrong_name = ak_name[:2] + bytes(32)
    (d / 'wrong.bin').write_bytes(credential.marshal_tools_credential(
        *credential.make_credential((d / 'ek.pub').read_bytes(), wrong_name, secret)))
    result = tpm2_tools(swtpm.tcti, 'bash', '-ec',
                        ACTIVATE_SCRIPT.format(cred='wrong.bin', out='wrong.out'),
                        cwd=d, check=False)
    assert result.returncode != 0
    assert not (d / 'wrong.out').exists() or (d / 'wrong.out').read_bytes() != secret


def test_tpm2_makecredential_file_parses_and_activates(swtpm, tpm2_tools, tmp_path):
    """The reverse direction: tpm2-tools' own file through our parser and TPMDevice."""
    with tpm_device.TPMDevice(swtpm.tcti) as device:
        ak = device.create_ak('ecc')
        ek = structures.parse_tpm2b_public(device.ek_public())
        (tmp_path / 'ek.pem').write_bytes(ek.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        secret = os.urandom(32)
        (tmp_path / 'secret.bin').write_bytes(secret)
        tpm2_tools('none', 'tpm2_makecredential', '-T', 'none', '-u', 'ek.pem', '-G', 'rsa',
                   '-s', 'secret.bin', '-n', ak.name.hex(), '-o', 'cred.bin', cwd=tmp_path)
        data = (tmp_path / 'cred.bin').read_bytes()
        id_object, encrypted = credential.parse_tools_credential(data)
        assert credential.marshal_tools_credential(id_object, encrypted) == data
        assert device.activate_credential(ak, id_object, encrypted) == secret
