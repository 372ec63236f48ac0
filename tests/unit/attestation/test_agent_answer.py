"""The verifier reads an agent's answer strictly: every malformed field is BadMessage."""
import base64

import pytest

from tclouds_openstack.attestation import rpcapi
from tclouds_openstack.attestation.service import verifier


def answer(pcrs, **extra):
    body = {'pcr_values': pcrs, 'attest': base64.b64encode(b'a').decode(),
            'signature': base64.b64encode(b's').decode()}
    body.update(extra)
    return body


def test_a_well_formed_answer():
    evidence = verifier.decode_answer(answer({'sha256': {'0': '00' * 32, '23': 'ff' * 32}}),
                                      b'ak')
    assert sorted(evidence.pcr_values['sha256']) == [0, 23]


@pytest.mark.parametrize('key', ['١', ' 1', '+1', '1_0', '01', '24', '-1', '', '0x1', 1])
def test_pcr_keys_are_ascii_digits_0_to_23(key):
    with pytest.raises(rpcapi.BadMessage) as exc:
        verifier.decode_answer(answer({'sha256': {key: '00' * 32}}), b'ak')
    assert 'pcr_values' in str(exc.value)


@pytest.mark.parametrize('offset', [True, -1, 1.0, '3', None])
def test_ima_offset_is_a_non_negative_integer(offset):
    with pytest.raises(rpcapi.BadMessage):
        verifier.decode_answer(answer({'sha256': {}}, ima_offset=offset), b'ak')
