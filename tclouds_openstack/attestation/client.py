"""The one client of the attestation API (keystoneauth1), used by backends, OSC and tools."""
import urllib.parse

from keystoneauth1 import session as ks_session

from tclouds_openstack.common import client


def _seg(value):
    """``value`` as one URL path segment.

    '?', '#', '/' and '%' in a name or ID (an LDAP user ID can hold them) must not turn
    into a query, a fragment or another path.
    """
    return urllib.parse.quote(str(value), safe='')


class AttestationClient(client.ServiceClient):
    service_type = 'attestation'

    def list_hosts(self):
        return self.get('/v1/hosts')['hosts']

    def show_host(self, host):
        return self.get('/v1/hosts/%s' % _seg(host))['host']

    def update_host(self, host, policy):
        return self.request('PATCH', '/v1/hosts/%s' % _seg(host),
                            body={'policy': policy})['host']

    def delete_host(self, host):
        return self.delete('/v1/hosts/%s' % _seg(host))

    def history(self, host, limit=None):
        params = {'limit': limit} if limit else None
        return self.get('/v1/hosts/%s/history' % _seg(host), params=params)['history']

    def attest(self, host):
        return self.post('/v1/hosts/%s/attest' % _seg(host))

    def enrol(self, host, ek_sha256, credentials=()):
        return self.request('PUT', '/v1/hosts/%s/enrolment' % _seg(host), body={
            'ek_sha256': ek_sha256, 'credentials': list(credentials)})['enrolment']

    def show_enrolment(self, host):
        return self.get('/v1/hosts/%s/enrolment' % _seg(host))['enrolment']

    def list_enrolments(self):
        return self.get('/v1/enrolments')['enrolments']

    def approve(self, host, ek_sha256=None, credentials=None):
        body = {}
        if ek_sha256 is not None:
            body['ek_sha256'] = ek_sha256
        if credentials is not None:
            body['credentials'] = list(credentials)
        return self.post('/v1/hosts/%s/approve' % _seg(host), body)

    def host_for_credential(self, credential_id):
        """The enrolled host a Keystone user/application credential ID stands for, or None."""
        try:
            answer = self.get('/v1/host-credentials/%s' % _seg(credential_id))
        except client.ClientError as e:
            if e.status == 404:
                return None
            raise
        if not isinstance(answer, dict) or answer.get('credential_id') != credential_id:
            # an answer about another credential decides nothing
            raise client.ServiceUnavailable(
                'the attestation API answered about credential %r when asked about %r'
                % (answer.get('credential_id') if isinstance(answer, dict) else None,
                   credential_id))
        return answer.get('host')

    def verdicts(self, hosts):
        """{host: verdict dict} for ``hosts`` in one call."""
        return self.get('/v1/verdicts', params={'hosts': ','.join(hosts)})['verdicts']

    def list_policies(self):
        return self.get('/v1/policies')['policies']

    def show_policy(self, name):
        return self.get('/v1/policies/%s' % _seg(name))['policy']

    def create_policy(self, name, tpm_policy=None, runtime_policy=None, mb_refstate=None,
                      mb_engine=None, allow_unorderly_shutdown=False):
        """Create a policy; ``mb_engine`` and ``allow_unorderly_shutdown`` as in the API.

        ``mb_engine``: example, accept-all or reject-all (None: example when a reference
        state is given); ``allow_unorderly_shutdown``: accept clockInfo.safe = NO.
        """
        body = {'name': name, 'tpm_policy': tpm_policy, 'runtime_policy': runtime_policy,
                'mb_refstate': mb_refstate}
        if mb_engine is not None:
            body['mb_engine'] = mb_engine
        if allow_unorderly_shutdown:
            body['allow_unorderly_shutdown'] = True
        return self.post('/v1/policies', body)['policy']

    def delete_policy(self, name):
        return self.delete('/v1/policies/%s' % _seg(name))


def from_conf(conf):
    """A client with the ``[attestation_client]`` service credentials."""
    if conf.attestation_client.auth_type:
        session = client.session_from_conf(conf, 'attestation_client')
    else:
        session = ks_session.Session()
    return AttestationClient(session, endpoint_override=conf.attestation.endpoint_override,
                             timeout=conf.attestation.rpc_timeout)
