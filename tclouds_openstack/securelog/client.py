"""The one client of the secure log API (keystoneauth1), used by OSC and tools."""
import urllib.parse

from tclouds_openstack.common import client


class SecureLogClient(client.ServiceClient):
    service_type = 'secure-log'

    def checkpoint(self, size=None):
        return self.get('/v1/checkpoint', params={'size': size} if size is not None else None)

    def list_records(self, marker=None, limit=None, source=None, event_type=None,
                     project=None):
        params = {k: v for k, v in (('marker', marker), ('limit', limit), ('source', source),
                                    ('event_type', event_type), ('project_id', project))
                  if v is not None}
        return self.get('/v1/records', params=params)['records']

    def show_record(self, index):
        return self.get('/v1/records/%d' % index)['record']

    def append(self, event_type, payload):
        return self.post('/v1/records', {'event_type': event_type, 'payload': payload})

    def inclusion_proof(self, index, tree_size=None):
        params = {'index': index}
        if tree_size is not None:
            params['tree_size'] = tree_size
        return self.get('/v1/proofs/inclusion', params=params)

    def consistency_proof(self, first, second=None):
        params = {'first': first}
        if second is not None:
            params['second'] = second
        return self.get('/v1/proofs/consistency', params=params)

    def report(self, project_id, start=None, end=None, previous_size=None):
        """A project's data-protection report: {"report": JSON Lines text, ...}."""
        params = {k: v for k, v in (('from', start), ('to', end),
                                    ('previous_size', previous_size)) if v is not None}
        return self.get('/v1/projects/%s/report' % urllib.parse.quote(project_id, safe=''),
                        params=params)
