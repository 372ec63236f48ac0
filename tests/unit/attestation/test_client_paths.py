"""The attestation client names one object per path segment, and trusts no other answer."""
import pytest

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.attestation.backends import tclouds
from tclouds_openstack.attestation import client as client_mod


class Recording(client_mod.AttestationClient):
    """The client, its HTTP replaced by what an API (or a path confusion) answers."""

    def __init__(self, answers):
        self.answers, self.paths = answers, []

    def get(self, path, params=None):
        self.paths.append(path)
        return self.answers(path)


@pytest.mark.parametrize('credential_id, path', [
    ('u?x', '/v1/host-credentials/u%3Fx'),
    ('u#x', '/v1/host-credentials/u%23x'),
    ('a/../b', '/v1/host-credentials/a%2F..%2Fb'),
    ('u%3F', '/v1/host-credentials/u%253F'),
])
def test_a_credential_id_is_one_path_segment(credential_id, path):
    client = Recording(lambda p: {'credential_id': credential_id, 'host': 'compute-1'})
    assert client.host_for_credential(credential_id) == 'compute-1'
    assert client.paths == [path]


def test_an_answer_about_another_credential_decides_nothing():
    # an LDAP user whose ID is the enrolled host user's ID plus '?...' (unquoted, the API
    # saw only the enrolled ID and answered for it)
    client = Recording(lambda p: {'credential_id': 'host-user', 'host': 'compute-1'})
    backend = tclouds.TCloudsBackend(None, client=client)
    with pytest.raises(base.BackendUnavailable) as exc:
        backend.host_for_credential('host-user?x')
    assert "answered about credential 'host-user' when asked about 'host-user?x'" \
        in str(exc.value)


def test_host_names_and_policy_names_are_one_segment():
    client = Recording(lambda p: {'host': {}, 'policy': {}, 'enrolment': {}, 'history': []})
    client.show_host('a?b')
    client.show_policy('p/../x')
    client.history('h#1')
    assert client.paths == ['/v1/hosts/a%3Fb', '/v1/policies/p%2F..%2Fx',
                            '/v1/hosts/h%231/history']
