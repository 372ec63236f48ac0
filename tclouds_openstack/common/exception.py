"""Exceptions of the services, each with the HTTP status the REST APIs answer with.

A message must let the caller act: which field, which host, which check. The WSGI layer
(:mod:`tclouds_openstack.common.wsgi`) renders them as JSON; anything else is a 500 with
no internals leaked.
"""


class TCloudsException(Exception):
    code = 500
    title = 'Internal Server Error'

    def __init__(self, message=None):
        super().__init__(message or self.title)
        self.message = message or self.title


class BadRequest(TCloudsException):
    code = 400
    title = 'Bad Request'

    def __init__(self, message, field=None):
        self.field = field
        if field:
            message = '%s: %s' % (field, message)
        super().__init__(message)


class NotAuthenticated(TCloudsException):
    code = 401
    title = 'Unauthorized'


class Forbidden(TCloudsException):
    code = 403
    title = 'Forbidden'


class NotFound(TCloudsException):
    code = 404
    title = 'Not Found'


class Conflict(TCloudsException):
    code = 409
    title = 'Conflict'


class ServiceUnavailable(TCloudsException):
    code = 503
    title = 'Service Unavailable'
