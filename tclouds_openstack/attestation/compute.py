"""Nova as the attestation API sees it: which compute host runs a server, and for whom.

The tenant view (``GET /v1/trust/servers``) must answer "is the host running my server
trusted?" without telling a tenant the host's name, nor anything about other projects'
servers. Only Nova knows the server -> host mapping, and only its admins may read it
(``OS-EXT-SRV-ATTR:host``), so the API asks Nova with the ``[attestation_compute]``
service credentials and itself checks that the server belongs to the caller's project.
"""
from keystoneauth1 import session as ks_session

from tclouds_openstack.common import client


class ComputeClient(client.ServiceClient):
    service_type = 'compute'

    def server(self, server_id):
        """The server's (project_id, host, hostId), or None when Nova has no such server."""
        try:
            server = self.get('/servers/%s' % server_id)['server']
        except client.ClientError as e:
            if e.status == 404:
                return None
            raise
        return _placement(server)

    def project_servers(self, project_id):
        """[(server id, name, host, hostId)] of ``project_id``'s servers (all pages)."""
        servers, marker = [], None
        while True:
            params = {'all_tenants': 1, 'project_id': project_id, 'limit': 1000}
            if marker:
                params['marker'] = marker
            page = self.get('/servers/detail', params=params)['servers']
            servers += [(s['id'], s.get('name'), *_placement(s)[1:]) for s in page
                        if s.get('tenant_id') == project_id]
            if len(page) < 1000:
                return servers
            marker = page[-1]['id']

    def migration_destinations(self, server_id, statuses):
        """Destination hosts of ``server_id``'s migrations whose status is in ``statuses``.

        ``GET /os-migrations?instance_uuid=`` (admin): live and cold migrations, resizes and
        evacuations alike. The key release API lets a destination connect the server's
        volumes while a migration to it is under way.
        """
        found = self.get('/os-migrations', params={'instance_uuid': server_id})
        return sorted({m.get('dest_compute') for m in found.get('migrations') or []
                       if m.get('instance_uuid') == server_id and m.get('status') in statuses
                       and m.get('dest_compute')})


def _placement(server):
    return (server.get('tenant_id'), server.get('OS-EXT-SRV-ATTR:host'), server.get('hostId'))


def from_conf(conf):
    """A client with the ``[attestation_compute]`` credentials, or None if not configured."""
    opts = conf.attestation_compute
    if opts.auth_type:
        session = client.session_from_conf(conf, 'attestation_compute')
    elif opts.endpoint_override:
        session = ks_session.Session()      # an unauthenticated endpoint: tests only
    else:
        return None
    return ComputeClient(session, endpoint_override=opts.endpoint_override,
                         interface=opts.interface, region_name=opts.region_name,
                         timeout=opts.timeout)
