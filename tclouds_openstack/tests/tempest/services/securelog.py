"""Client of the secure log API (service type ``secure-log``)."""
from tclouds_openstack.tests.tempest.services import base


class SecureLogClient(base.JSONClient):

    def show_checkpoint(self, size=None):
        return self._json('GET', 'v1/checkpoint', 200, params={'size': size})

    def list_records(self, **params):
        return self._json('GET', 'v1/records', 200, params=params)

    def show_record(self, index):
        return self._json('GET', 'v1/records/%d' % index, 200)

    def append_record(self, event_type, payload):
        return self._json('POST', 'v1/records', 202,
                          body={'event_type': event_type, 'payload': payload})

    def inclusion_proof(self, index, tree_size=None):
        return self._json('GET', 'v1/proofs/inclusion', 200,
                          params={'index': index, 'tree_size': tree_size})

    def consistency_proof(self, first, second=None):
        return self._json('GET', 'v1/proofs/consistency', 200,
                          params={'first': first, 'second': second})
