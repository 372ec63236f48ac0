"""A small JSON WSGI framework for the tclouds REST APIs.

- :class:`Router` maps URLs (routes syntax) to controller methods
  ``method(request, **url_args) -> (status, body)`` or ``body`` (200).
- Request bodies are JSON objects; a malformed body, or one nested deeper than
  :data:`MAX_JSON_DEPTH`, is a 400 that says why.
- :class:`~tclouds_openstack.common.exception.TCloudsException` becomes its HTTP status with
  a JSON body ``{"error": {"code", "title", "message"}}``; any other exception is a 500 that
  leaks nothing (and is logged with its traceback).
- :func:`build_app` puts keystonemiddleware ``auth_token`` in front (``[api]
  auth_strategy = keystone``, configured by ``[keystone_authtoken]``), then builds the
  request context. ``noauth`` takes the identity from X-* headers: demo and tests only.
"""
import json
import logging
import math

import routes
import routes.middleware
import webob
import webob.dec

from tclouds_openstack.common import context
from tclouds_openstack.common import exception

LOG = logging.getLogger(__name__)


# No API body nests deeper (Keylime's measured-boot reference states are the deepest, under
# ten levels); deeper JSON is an attack on the parsers and on every recursive walk after them.
MAX_JSON_DEPTH = 32


def _too_deep(value, limit):
    """Does ``value`` nest objects/arrays more than ``limit`` levels (iteratively)?"""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (item.values() if isinstance(item, dict) else
                    item if isinstance(item, list) else None)
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


# Every integer an API stores or compares in a database is a signed 64-bit column; a
# larger one in a body or a query parameter is refused here, not by the database driver.
INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)


def _json_int(text):
    # bounded before int(): a 100,000-digit literal costs no conversion
    if len(text.lstrip('-')) > 19 or not INT64_MIN <= int(text) <= INT64_MAX:
        raise ValueError('integer %s... out of the signed 64-bit range' % text[:20])
    return int(text)


def _json_float(text):
    value = float(text)
    if math.isinf(value):
        raise ValueError('number %s... is beyond a double\'s range' % text[:20])
    return value


def _json_constant(name):
    raise ValueError('%s is not JSON (RFC 8259 has no NaN or Infinity)' % name)


def json_body(request, required=True):
    """The request's JSON object body, or BadRequest naming what is wrong.

    Refused (400): malformed JSON, NaN and Infinity (also as 1e999), integers outside the
    signed 64-bit range, nesting deeper than MAX_JSON_DEPTH, anything but an object.
    """
    raw = request.body
    if not raw:
        if required:
            raise exception.BadRequest('a JSON object body is required', field='body')
        return {}
    too_deep = exception.BadRequest('nested deeper than %d levels' % MAX_JSON_DEPTH,
                                    field='body')
    try:
        body = json.loads(raw, parse_int=_json_int, parse_float=_json_float,
                          parse_constant=_json_constant)
    except RecursionError:
        raise too_deep
    except (ValueError, UnicodeDecodeError) as e:
        raise exception.BadRequest('malformed JSON: %s' % e, field='body')
    if not isinstance(body, dict):
        raise exception.BadRequest('must be a JSON object', field='body')
    # cheap test first: a body with few brackets cannot nest deeply
    if raw.count(b'[') + raw.count(b'{') > MAX_JSON_DEPTH and _too_deep(body, MAX_JSON_DEPTH):
        raise too_deep
    return body


def require(body, field, types, allow_none=False):
    """body[field] checked against ``types``; BadRequest names the field otherwise."""
    if field not in body:
        raise exception.BadRequest('is required', field=field)
    value = body[field]
    if value is None and allow_none:
        return None
    if not isinstance(value, types) or isinstance(value, bool) and bool not in _as_tuple(types):
        names = ', '.join(t.__name__ for t in _as_tuple(types))
        raise exception.BadRequest('must be of type %s' % names, field=field)
    return value


def int_param(request, name, default=None, minimum=0, maximum=INT64_MAX, required=False):
    """Query parameter ``name`` as an integer in [minimum, maximum], else BadRequest.

    ASCII decimal digits only (``int()`` would also take other scripts' digits, ``_`` and
    spaces); ``default`` when absent or empty.
    """
    raw = request.GET.get(name)
    if raw is None or raw == '':
        if required:
            raise exception.BadRequest('is required', field=name)
        return default
    digits = raw[1:] if raw.startswith('-') else raw
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        raise exception.BadRequest('must be an integer %d..%d, got %r'
                                   % (minimum, maximum, raw[:40]), field=name)
    value = int(raw)
    if not minimum <= value <= maximum:
        raise exception.BadRequest('must be an integer %d..%d' % (minimum, maximum),
                                   field=name)
    return value


def _as_tuple(types):
    return types if isinstance(types, tuple) else (types,)


def _error_response(exc):
    body = {'error': {'code': exc.code, 'title': exc.title, 'message': exc.message}}
    return webob.Response(status=exc.code, json_body=body, charset='utf-8')


class _TooLarge(exception.TCloudsException):
    code = 413
    title = 'Request Entity Too Large'


class Router(object):
    """URL dispatch to controller methods; every answer is JSON."""

    def __init__(self, max_body_size=1024 * 1024):
        self.mapper = routes.Mapper()
        self.max_body_size = max_body_size
        self._app = routes.middleware.RoutesMiddleware(self._dispatch, self.mapper)

    def connect(self, path, handler, methods):
        """Route ``methods`` on ``path`` (e.g. '/v1/hosts/{host}') to ``handler``."""
        self.mapper.connect(path, handler=handler, conditions={'method': list(methods)})

    @webob.dec.wsgify
    def __call__(self, request):
        if request.content_length and request.content_length > self.max_body_size:
            return _error_response(
                _TooLarge('request body larger than [api] max_request_body_size'))
        if request.content_length is None and (
                'chunked' in request.headers.get('Transfer-Encoding', '').lower()
                or request.environ.get('wsgi.input_terminated')):
            # a body without Content-Length (chunked, as uwsgi and mod_wsgi may pass it):
            # webob would read it whole; read at most one byte more than the limit
            stream = request.environ.get('wsgi.input')
            data = stream.read(self.max_body_size + 1) if stream is not None else b''
            if len(data) > self.max_body_size:
                return _error_response(
                    _TooLarge('request body larger than [api] max_request_body_size'))
            request.body = data
        try:
            # decoded once here: no handler, log line or error message meets bad bytes
            request.path_info
            list(request.GET.items())
        except UnicodeDecodeError:
            return _error_response(exception.BadRequest(
                'the URL\'s path or query string is not UTF-8 percent-encoded', field='url'))
        return request.get_response(self._app)

    @webob.dec.wsgify
    def _dispatch(self, request):
        match = request.environ['wsgiorg.routing_args'][1]
        if not match:
            return _error_response(exception.NotFound('no such resource: %s %s'
                                                      % (request.method, request.path)))
        args = {k: v for k, v in match.items() if k not in ('handler', 'controller', 'action')}
        request.context = context.from_environ(request.environ)
        try:
            result = match['handler'](request, **args)
        except exception.TCloudsException as e:
            if e.code >= 500:
                LOG.error('%s %s failed: %s', request.method, request.path, e)
            return _error_response(e)
        except Exception:
            LOG.exception('unexpected error in %s %s', request.method, request.path)
            return _error_response(exception.TCloudsException('internal error; see the '
                                                              'service log'))
        status, body = result if isinstance(result, tuple) else (200, result)
        if body is None:
            return webob.Response(status=status)
        return webob.Response(status=status, json_body=body, charset='utf-8')


class NoAuthMiddleware(object):
    """Identity from headers (X-User-Id, X-Project-Id, X-Roles): demo and tests only."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if 'HTTP_X_ROLES' not in environ and 'HTTP_X_USER_ID' not in environ:
            return _error_response(exception.NotAuthenticated(
                'authentication required'))(environ, start_response)
        environ['HTTP_X_IDENTITY_STATUS'] = 'Confirmed'
        return self.app(environ, start_response)


class _RejectUnauthenticated(object):
    """Answer 401 to any request whose identity keystonemiddleware did not confirm.

    auth_token with delay_auth_decision off already does; this guards against a
    configuration that turns it on and would let anonymous requests through.
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get('HTTP_X_IDENTITY_STATUS') != 'Confirmed':
            return _error_response(exception.NotAuthenticated(
                'authentication required'))(environ, start_response)
        return self.app(environ, start_response)


def build_app(conf, router):
    """The WSGI application of one API: authentication, then the router."""
    router.max_body_size = conf.api.max_request_body_size
    if conf.api.auth_strategy == 'noauth':
        return NoAuthMiddleware(router)
    from keystonemiddleware import auth_token
    return auth_token.AuthProtocol(_RejectUnauthenticated(router), {'oslo_config_config': conf})


def make_server(app, host, port, conf=None):
    """The standalone server (:mod:`.wsgi_server`): bounded workers, per-connection timeout.

    ``port`` 0 picks a free one (see ``server.server_port``); ``conf``: its ``[api]``
    workers, client_socket_timeout, max_connections and max_request_body_size.
    """
    from tclouds_openstack.common import wsgi_server
    kwargs = {}
    if conf is not None:
        kwargs = dict(workers=conf.api.workers, timeout=conf.api.client_socket_timeout,
                      max_connections=conf.api.max_connections,
                      max_body=conf.api.max_request_body_size)
    return wsgi_server.Server(app, host, port, **kwargs)


def serve(app, host, port, conf=None):
    server = make_server(app, host, port, conf)
    LOG.info('serving on http://%s:%d', host, server.server_port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
