"""The one JSON REST client base of the project, over a keystoneauth1 session.

Every client of a tclouds API (attestation, secure log, ...) derives from
:class:`ServiceClient`, so authentication, endpoint discovery from the Keystone catalog,
timeouts and error mapping are written once. A connection failure or timeout raises
:class:`ServiceUnavailable`, so callers can fail closed with a reason.
"""
from keystoneauth1 import adapter
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import loading as ks_loading


class ClientError(Exception):
    """The service answered with an error status."""

    def __init__(self, status, message):
        self.status = status
        self.message = message
        super().__init__('HTTP %s: %s' % (status, message))


class ServiceUnavailable(Exception):
    """The service could not be reached or did not answer in time."""


def session_from_conf(conf, group):
    """A keystoneauth1 session from the ``[group]`` auth options (auth_type, auth_url, ...)."""
    auth = ks_loading.load_auth_from_conf_options(conf, group)
    return ks_loading.load_session_from_conf_options(conf, group, auth=auth)


def register_auth_opts(conf, group):
    """Register keystoneauth1's session and auth options in ``[group]``."""
    ks_loading.register_session_conf_options(conf, group)
    ks_loading.register_auth_conf_options(conf, group)
    ks_loading.register_adapter_conf_options(conf, group)


class ServiceClient(object):
    service_type = None

    def __init__(self, session, endpoint_override=None, interface=None, region_name=None,
                 timeout=None):
        self.http = adapter.Adapter(session, service_type=self.service_type,
                                    endpoint_override=endpoint_override,
                                    interface=interface, region_name=region_name)
        self.timeout = timeout

    def request(self, method, url, body=None, params=None):
        """JSON in, JSON (or None) out; ClientError or ServiceUnavailable on failure."""
        kwargs = {'raise_exc': False, 'params': params}
        if self.timeout:
            kwargs['timeout'] = self.timeout
        if body is not None:
            kwargs['json'] = body
        try:
            resp = self.http.request(url, method, **kwargs)
        except (ks_exceptions.ConnectionError, ks_exceptions.ConnectTimeout,
                ks_exceptions.RetriableConnectionFailure,
                ks_exceptions.EndpointNotFound, ks_exceptions.EmptyCatalog) as e:
            raise ServiceUnavailable('%s service unreachable: %s' % (self.service_type, e))
        if resp.status_code >= 400:
            raise ClientError(resp.status_code, _error_message(resp))
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise ClientError(resp.status_code, 'response is not JSON')

    def get(self, url, params=None):
        return self.request('GET', url, params=params)

    def post(self, url, body=None):
        return self.request('POST', url, body=body)

    def put(self, url, body=None):
        return self.request('PUT', url, body=body)

    def delete(self, url):
        return self.request('DELETE', url)


def _error_message(resp):
    try:
        return resp.json()['error']['message']
    except (ValueError, KeyError, TypeError):
        return resp.text[:200] or resp.reason
