"""Client of the attestation API (service type ``attestation``): hosts and verdicts,
appraisal policies, enrolments, the tenant trust view and the trust requirements."""
from tclouds_openstack.tests.tempest.services import base


class AttestationClient(base.JSONClient):

    def list_hosts(self):
        return self._json('GET', 'v1/hosts', 200)

    def show_host(self, host):
        return self._json('GET', 'v1/hosts/%s' % host, 200)

    def host_history(self, host, limit=None):
        return self._json('GET', 'v1/hosts/%s/history' % host, 200, params={'limit': limit})

    def attest_host(self, host):
        return self._json('POST', 'v1/hosts/%s/attest' % host, 202)

    def verdicts(self, hosts):
        return self._json('GET', 'v1/verdicts', 200, params={'hosts': ','.join(hosts)})

    def show_enrolment(self, host):
        return self._json('GET', 'v1/hosts/%s/enrolment' % host, 200)

    def list_policies(self):
        return self._json('GET', 'v1/policies', 200)

    def show_policy(self, name):
        return self._json('GET', 'v1/policies/%s' % name, 200)

    def list_server_trust(self):
        return self._json('GET', 'v1/trust/servers', 200)

    def show_server_trust(self, server_id):
        return self._json('GET', 'v1/trust/servers/%s' % server_id, 200)

    def show_requirement(self, project_id):
        return self._json('GET', 'v1/requirements/%s' % project_id, 200)

    def set_requirement(self, project_id, trusted_host=None, jurisdictions=None):
        body = {}
        if trusted_host is not None:
            body['trusted_host'] = trusted_host
        if jurisdictions is not None:
            body['jurisdictions'] = jurisdictions
        return self._json('PUT', 'v1/requirements/%s' % project_id, 200,
                          body={'requirement': body})

    def unset_requirement(self, project_id):
        return self._json('DELETE', 'v1/requirements/%s' % project_id, 204)
