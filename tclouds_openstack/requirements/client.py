"""REST client of the trust requirements API (``/v1/requirements``), used by the Nova and
Cinder scheduler plugins and by ``openstack trust requirement ...``.

The routes are served by the attestation API process (service type ``attestation``).
:class:`ProjectRequirements` caches a project's stored requirement for the schedulers; the
API being unreachable raises :class:`RequirementsUnavailable` so callers fail closed.
"""
import threading
import time

from keystoneauth1 import session as ks_session

from tclouds_openstack.common import client
from tclouds_openstack.requirements import model


class RequirementsUnavailable(Exception):
    """The stored requirement could not be read: schedule nothing that might need it."""


class RequirementsClient(client.ServiceClient):
    service_type = 'attestation'

    def show(self, project_id):
        """The stored record of ``project_id`` (a dict), or None when it has none."""
        try:
            return self.get('/v1/requirements/%s' % project_id)['requirement']
        except client.ClientError as e:
            if e.status == 404:
                return None
            raise

    def set(self, project_id, trusted_host=None, jurisdictions=None):
        body = {}
        if trusted_host is not None:
            body['trusted_host'] = trusted_host
        if jurisdictions is not None:
            body['jurisdictions'] = jurisdictions
        return self.put('/v1/requirements/%s' % project_id, {'requirement': body})

    def unset(self, project_id):
        return self.delete('/v1/requirements/%s' % project_id)


def record_to_requirement(record, project_id):
    """A stored/API record -> model.Requirement with source ``project <id>``."""
    if not record:
        return model.Requirement(source='project %s' % project_id)
    return model.from_specs(
        {model.SPEC_TRUSTED_HOST: record.get('trusted_host'),
         model.SPEC_JURISDICTION: record.get('jurisdictions')},
        'project %s' % project_id)


def scheduler_session(conf):
    """Session for the scheduler plugins and the reactor.

    ``[trust_scheduling]`` service credentials when configured, else an unauthenticated
    session (endpoint overrides to noauth test APIs).
    """
    if conf.trust_scheduling.auth_type:
        return client.session_from_conf(conf, 'trust_scheduling')
    return ks_session.Session()


class ProjectRequirements(object):
    """Per-process cache of stored project requirements (TTL ``requirements_cache_ttl``)."""

    def __init__(self, conf, requirements_client=None):
        self.conf = conf
        self._client = requirements_client
        self._lock = threading.Lock()
        self._cache = {}

    def _get_client(self):
        if self._client is None:
            opts = self.conf.trust_scheduling
            self._client = RequirementsClient(
                scheduler_session(self.conf),
                endpoint_override=(opts.requirements_endpoint_override
                                   or self.conf.attestation.endpoint_override),
                timeout=10)
        return self._client

    def get(self, project_id):
        """model.Requirement of ``project_id`` (empty when none is stored)."""
        if not self.conf.trust_scheduling.project_requirements or not project_id:
            return model.Requirement(source='project %s' % project_id)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(project_id)
        if hit and now - hit[0] < self.conf.trust_scheduling.requirements_cache_ttl:
            return hit[1]
        try:
            record = self._get_client().show(project_id)
        except (client.ServiceUnavailable, client.ClientError) as e:
            raise RequirementsUnavailable(
                'cannot read the trust requirements of project %s: %s' % (project_id, e))
        requirement = record_to_requirement(record, project_id)
        with self._lock:
            self._cache[project_id] = (now, requirement)
        return requirement

    def clear(self):
        with self._lock:
            self._cache.clear()
