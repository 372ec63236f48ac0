"""The ``keylime`` backend: verdicts read from an existing Keylime verifier's REST API.

Sites that already run Keylime keep it and use this project's scheduling and key-release
features on top: each Nova host name maps to a Keylime agent UUID (``[keylime]
host_agents``), and ``GET /v<api>/agents/<uuid>`` (mutual TLS) gives its operational state.

Mapping (Keylime ``common/states.py``): GET_QUOTE (3) with a last successful attestation
is ``trusted`` as of that time; FAILED (7), INVALID_QUOTE (9) and TENANT_FAILED (10) are
``untrusted``; every other state (registered, starting, retrying, terminated) is
``unknown``. Keylime has no batched read, so one request per host is made; any transport
or format error makes the whole call raise BackendUnavailable (fail closed).

Keylime has no enrolment of Keystone credentials: which compute host a key release caller
stands for comes from ``[keylime] host_credentials`` (Keystone user or application
credential ID -> Nova host name), written by the operator. A credential not listed there
stands for no host (refused).
"""
import datetime

import requests

from tclouds_openstack.attestation.backends import base

GET_QUOTE = 3
FAILED_STATES = {7: 'FAILED', 9: 'INVALID_QUOTE', 10: 'TENANT_FAILED'}


def verdict_from_agent(host, results):
    """A Verdict from Keylime's agent ``results`` object."""
    if not isinstance(results, dict) or not isinstance(results.get('operational_state'), int):
        return base.unknown(host, 'Keylime returned no operational_state')
    state = results['operational_state']
    if state in FAILED_STATES:
        event = results.get('last_event_id') or 'no event id'
        return base.Verdict(host=host, status=base.UNTRUSTED,
                            reasons=('keylime: %s (%s)' % (FAILED_STATES[state], event),))
    if state != GET_QUOTE:
        return base.unknown(host, 'keylime operational_state %d is not attesting' % state)
    last = results.get('last_successful_attestation') or results.get('last_received_quote')
    if not isinstance(last, (int, float)) or last <= 0:
        return base.unknown(host, 'keylime reports no successful attestation yet')
    return base.Verdict(host=host, status=base.TRUSTED, verified_at=datetime.datetime.fromtimestamp(
        last, datetime.timezone.utc))


class KeylimeBackend(base.AttestationBackend):
    def __init__(self, conf, session=None):
        super().__init__(conf)
        opts = conf.keylime
        self.base_url = '%s/v%s' % (opts.verifier_url.rstrip('/'), opts.api_version)
        self.agents = dict(opts.host_agents or {})
        self.credentials = dict(opts.host_credentials or {})
        self.timeout = opts.timeout
        self.session = session or requests.Session()
        if opts.ca_file:
            self.session.verify = opts.ca_file
        if opts.client_cert:
            self.session.cert = (opts.client_cert, opts.client_key)

    def get_verdicts(self, hosts):
        out = {}
        for host in hosts:
            agent = self.agents.get(host)
            if agent is None:
                # the operator's mapping leaves it out of the attested pool; every other
                # "unknown" (agent unknown to the verifier, retrying, terminated) may be
                # an attested host's agent gone quiet, and is no such statement
                out[host] = base.unknown(host, 'host %s has no Keylime agent in [keylime] '
                                               'host_agents' % host, never_appraised=True)
                continue
            try:
                resp = self.session.get('%s/agents/%s' % (self.base_url, agent),
                                        timeout=self.timeout)
            except requests.RequestException as e:
                raise base.BackendUnavailable('Keylime verifier unreachable: %s' % e)
            if resp.status_code == 404:
                out[host] = base.unknown(host, 'Keylime does not know agent %s' % agent)
                continue
            if resp.status_code != 200:
                raise base.BackendUnavailable('Keylime verifier answered HTTP %d'
                                              % resp.status_code)
            try:
                results = resp.json().get('results')
            except (ValueError, AttributeError):
                raise base.BackendUnavailable('Keylime verifier answered non-JSON')
            out[host] = verdict_from_agent(host, results)
        return out

    def host_for_credential(self, credential_id):
        """The host ``[keylime] host_credentials`` maps ``credential_id`` to, or None."""
        return self.credentials.get(credential_id) or None
