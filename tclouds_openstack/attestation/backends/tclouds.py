"""The ``tclouds`` backend: verdicts from this project's attestation API (one batched GET)."""
import datetime

from tclouds_openstack.attestation.backends import base
from tclouds_openstack.attestation import client as client_mod
from tclouds_openstack.common import client as common_client

# the attestation API's registration states (service/models.py)
REGISTRATION_STATES = ('pending', 'awaiting_approval', 'active')


def verdict_from_dict(host, data):
    """A Verdict from the API's JSON; anything malformed is ``unknown`` with the reason."""
    if not isinstance(data, dict) or data.get('status') not in base.STATUSES:
        return base.unknown(host, 'the attestation API returned no valid verdict')
    verified_at = data.get('verified_at')
    if verified_at is not None:
        try:
            verified_at = datetime.datetime.fromisoformat(verified_at)
        except (TypeError, ValueError):
            return base.unknown(host, 'the attestation API returned a bad verified_at')
        if verified_at.tzinfo is None:
            verified_at = verified_at.replace(tzinfo=datetime.timezone.utc)
    reasons = data.get('reasons') or []
    if not isinstance(reasons, list):
        reasons = [str(reasons)]
    # never appraised only by the service's own word: a registration it names, no verdict
    # time and no verdict (an agent that stopped answering has a time: an appraisal round
    # stored its "unknown")
    never_appraised = (data['status'] == base.UNKNOWN and verified_at is None
                       and data.get('registration') in REGISTRATION_STATES)
    return base.Verdict(host=host, status=data['status'],
                        reasons=tuple(str(r) for r in reasons), verified_at=verified_at,
                        never_appraised=never_appraised)


class TCloudsBackend(base.AttestationBackend):
    def __init__(self, conf, client=None):
        super().__init__(conf)
        self._client = client

    @property
    def client(self):
        if self._client is None:
            self._client = client_mod.from_conf(self.conf)
        return self._client

    def get_verdicts(self, hosts):
        hosts = list(hosts)
        if not hosts:
            return {}
        try:
            raw = self.client.verdicts(hosts)
        except (common_client.ServiceUnavailable, common_client.ClientError) as e:
            raise base.BackendUnavailable('attestation API: %s' % e)
        if not isinstance(raw, dict):
            raise base.BackendUnavailable('attestation API: malformed verdict list')
        return {host: verdict_from_dict(host, raw.get(host)) if host in raw
                else base.unknown(host, 'host %s is not registered for attestation' % host,
                                  never_appraised=True)
                for host in hosts}

    def host_for_credential(self, credential_id):
        """The enrolment's answer (GET /v1/host-credentials/{id}), or None."""
        try:
            host = self.client.host_for_credential(credential_id)
        except (common_client.ServiceUnavailable, common_client.ClientError) as e:
            raise base.BackendUnavailable('attestation API: %s' % e)
        if host is not None and (not isinstance(host, str) or not host):
            raise base.BackendUnavailable('attestation API: malformed host of credential %s'
                                          % credential_id)
        return host
