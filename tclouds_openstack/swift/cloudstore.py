"""Swift proxy middleware: objects of cloud-of-clouds containers live on n clouds (DepSky-CA).

For containers whose storage policy is named in ``policies``, object data never reaches
this cluster's object servers: a PUT body is encrypted, secret-shared and erasure-coded
by :mod:`tclouds_openstack.cloudstore.protocol` onto the configured clouds, and the local
cluster keeps only a zero-byte *stub* whose system metadata names the data unit, version,
size, ETag, the clouds the version is on and its signed metadata. Everything else stays
Swift's own: authorization, listings (the stub's container update carries the real size
and ETag), user metadata and POST, conditional requests, SLO/DLO manifests and segments,
versioning, symlinks. GET reads the stub, then the version it pins from the clouds (no
metadata round: f + 1 value objects, verified piece by piece against the stub's signed
metadata), and serves ranges by fetching and decoding only their segments.

Place it right of ``slo dlo versioned_writes symlink`` and left of ``proxy-logging
proxy-server`` (where ``encryption`` would go; it replaces that middleware for these
containers). Options (paste section, validated at start-up):

``policies``            storage policy names served through the clouds (``cloudofclouds``)
``f``                   clouds that may be faulty (1); needs at least 3f + 1 ``clouds``
``clouds``              cloud names in a fixed order, e.g. ``aws, ovh, site2, site3``
``cloud_<name>_type``   ``swift``, ``s3`` or ``directory``, plus that driver's options with
                        the same prefix (``cloud_aws_endpoint_url``, ...)
``cloud_<name>_country`` the ISO 3166-1 alpha-2 country the cloud stores in (``DE``)
``tclouds_config_file`` tclouds configuration: ``[trust_scheduling]`` has the service
                        credential that reads projects' trust requirements, and
                        ``[oslo_messaging_notifications]`` where placements and faults are
                        sent (e.g. the ``securelog`` driver)
``project_requirements`` keep restricted projects' objects inside their jurisdictions
                        (true; false must be said explicitly)
``reseller_prefix``     account prefixes that precede a project id (``AUTH_``)
``notifications``       send placements and faults with the tclouds configuration's
                        notification drivers (true)
``window_segments``     segments a GET fetches per request and cloud (16)
``writer_key_file``     PEM Ed25519 private key that signs metadata (readers verify with
                        its public key); without it, ``writer_public_key_file`` makes the
                        proxy read-only
``timeout``             seconds to wait for a cloud before counting it unavailable (10)
``workers``             parallel cloud calls per proxy worker (32)
``max_object_size``     largest object body in bytes (1 GiB); bigger objects must be
                        uploaded as SLO/DLO segments
``fault_log``           optional file; every cloud fault found is appended as a JSON line

Objects by jurisdiction: a container's objects go to the clouds inside the account's
project's jurisdictions (its stored trust requirement, read with the service credential;
unreadable = the write is refused, 503). Fewer than 3f + 1 such clouds: 403 naming the
countries and clouds, nothing stored. The stub names the clouds of its version, so reads
go where the object is. Every placement is logged and notified
(``cloudstore.object.placed``: each fragment's cloud and country).
"""
import concurrent.futures
import hashlib
import io
import json
import socket
import threading
import time

import eventlet
from eventlet import tpool
from swift.common import constraints
from swift.common import http
from swift.common import request_helpers
from swift.common import storage_policy
from swift.common import swob
from swift.common import utils
from swift.common import wsgi
from swift.proxy.controllers import base as proxy_base

from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import placement
from tclouds_openstack.cloudstore import protocol
from tclouds_openstack.cloudstore import settings as settings_mod
from tclouds_openstack.common import context as request_context

SYSMETA_PREFIX = 'X-Object-Sysmeta-Cloudstore-'
SYSMETA_DATA_UNIT = SYSMETA_PREFIX + 'Data-Unit'
SYSMETA_VERSION = SYSMETA_PREFIX + 'Version'
SYSMETA_SIZE = SYSMETA_PREFIX + 'Size'
SYSMETA_ETAG = SYSMETA_PREFIX + 'Etag'
#: The clouds of the stub's version, in order (absent: every configured cloud).
SYSMETA_CLOUDS = SYSMETA_PREFIX + 'Clouds'
#: The version's signed metadata: a GET then reads no metadata from the clouds.
SYSMETA_SIGNED = SYSMETA_PREFIX + 'Signed'
#: Larger signed metadata (many clouds) stays on the clouds only (header size limits).
MAX_STUB_METADATA = 4096
SWIFT_SOURCE = 'CLOUDSTORE'
_READ_CHUNK = 1024 * 1024


def data_unit_name(path, created):
    """Name of the data unit of the object at ``path`` first written at ``created``.

    Clouds see a digest, never the account, container or object name. Overwrites keep
    the data unit (new versions of it); an object created again after a DELETE gets a
    fresh one, so the DELETE's clean-up on the clouds can never touch the new object.
    """
    return hashlib.sha256(('%s\n%d' % (path, created)).encode('utf-8')).hexdigest()


class CloudStoreMiddleware:
    """Serves objects of cloud-of-clouds containers through DepSky-CA."""

    def __init__(self, app, conf):
        self.app = app
        self.logger = utils.get_logger(conf, log_route='cloudstore')
        self.settings = settings_mod.Settings(conf)
        self.clouds = self.settings.build_clouds()
        self._by_name = {cloud.name: cloud for cloud in self.clouds}
        self.executor = concurrent.futures.ThreadPoolExecutor(self.settings.workers)
        self.depsky = protocol.DepSkyCA(
            self.clouds, self.settings.f, self.settings.public_key, self.settings.private_key,
            executor=self.executor, fault_listener=self._report_fault,
            timeout=self.settings.timeout, offload=tpool.execute,
            window_segments=self.settings.window_segments)
        self._subsets = {self.depsky.names: self.depsky}
        self._containers_ready = set()
        self._fault_lock = threading.Lock()
        self.requirements = None
        self.notifier = None
        if self.settings.tclouds_config_file:
            self.requirements, self.notifier = _tclouds_services(self.settings)
        if not self.settings.project_requirements:
            self.logger.warning('cloudstore: project_requirements = false: objects of every '
                                'project go to all clouds, whatever its jurisdictions')

    # -- helpers --------------------------------------------------------------------------

    def _notify(self, context, priority, event_type, payload):
        """Send a notification; a bus or sealing failure never fails the request."""
        if self.notifier is None:
            return
        try:
            getattr(self.notifier, priority)(context, event_type, payload)
        except Exception as exc:
            self.logger.error('cloudstore: %s notification not sent: %s', event_type, exc)

    def _report_fault(self, data_unit, fault):
        level = self.logger.warning if fault.kind == protocol.FAULTY else self.logger.info
        level('cloudstore: cloud %s %s on data unit %s: %s', fault.cloud, fault.kind,
              data_unit, fault.reason)
        record = {'cloud': fault.cloud, 'kind': fault.kind, 'data_unit': data_unit,
                  'reason': fault.reason}
        if self.settings.fault_log:
            line = json.dumps(dict(record, time=time.time()))
            with self._fault_lock, open(self.settings.fault_log, 'a') as stream:
                stream.write(line + '\n')
        if fault.kind == protocol.FAULTY:
            self._notify(request_context.RequestContext(), 'warn', 'cloudstore.fault', record)

    def _depsky_for(self, names):
        """The protocol over the clouds ``names`` (an object's placement), cached."""
        names = tuple(names)
        depsky = self._subsets.get(names)
        if depsky is None:
            unknown = [name for name in names if name not in self._by_name]
            if unknown:
                raise errors.CloudStoreError('the object is stored on cloud(s) %s, which this '
                                             'proxy has no configuration for'
                                             % ', '.join(unknown))
            depsky = self.depsky.subset([self._by_name[name] for name in names])
            self._subsets[names] = depsky
        return depsky

    def _stub_depsky(self, headers):
        """The protocol over the clouds a stub's version is stored on."""
        return self._depsky_for(settings_mod.list_from_csv(headers.get(SYSMETA_CLOUDS))
                                or self.depsky.names)

    def _project_of(self, req):
        """The project id of the request's account (None: not a project's account)."""
        account = req.split_path(4, 4, True)[1]
        for prefix in self.settings.reseller_prefixes:
            if account.startswith(prefix) and len(account) > len(prefix):
                return account[len(prefix):]
        return None

    def _placement(self, req):
        """``(project, requirement, cloud names)`` for a write, or a refusal response."""
        project = self._project_of(req)
        if not self.settings.project_requirements:
            return project, None, self.depsky.names
        if project is None:
            return self._refuse(req, swob.HTTPForbidden, 'account %s is not a project\'s '
                                'account (prefixes %s), so the jurisdictions its objects are '
                                'bound to cannot be read' % (
                                    req.split_path(4, 4, True)[1],
                                    ', '.join(self.settings.reseller_prefixes)))
        try:
            requirement = self.requirements.get(project)
        except Exception as exc:  # RequirementsUnavailable, or the client failing oddly
            return self._refuse(req, swob.HTTPServiceUnavailable, 'the trust requirements '
                                'of project %s cannot be read, so no object is stored until '
                                'they can: %s' % (project, exc))
        try:
            return project, requirement, self.settings.placement.clouds_for(requirement)
        except placement.PlacementRefused as exc:
            return self._refuse(req, swob.HTTPForbidden, str(exc))

    def _refuse(self, req, response, reason):
        self.logger.warning('cloudstore: write of %s refused: %s', req.path, reason)
        _version, account, container, obj = req.split_path(4, 4, True)
        project = self._project_of(req)
        # sealed under the project: its data-protection report lists every refusal
        context = request_context.RequestContext(
            project_id=project, user_id=req.environ.get('HTTP_X_USER_ID'),
            request_id=req.environ.get('swift.trans_id'))
        self._notify(context, 'warn', 'cloudstore.write.refused', {
            'account': account, 'container': container, 'object': obj,
            'project_id': project, 'reason': reason})
        return response(request=req, content_type='text/plain',
                        body=('cloud-of-clouds write refused: %s' % reason).encode('utf-8'))

    def _placed(self, req, project, requirement, depsky, result, etag):
        """Log and notify where every fragment of a new version went."""
        meta = result.metadata
        path = req.path
        fragments = [{'fragment': index, 'cloud': name,
                      'country': self.settings.placement.countries.get(name),
                      'acknowledged': name in result.acked}
                     for index, name in enumerate(depsky.names)]
        self.logger.info('cloudstore: %s version %d (data unit %s) placed: %s', path,
                         meta.version, meta.data_unit, '; '.join(
                             'fragment %d -> %s%s' % (item['fragment'],
                                                      self.settings.placement.describe(
                                                          item['cloud']),
                                                      '' if item['acknowledged'] else
                                                      ' (not acknowledged)')
                             for item in fragments))
        _version, account, container, obj = req.split_path(4, 4, True)
        # The project's secure log records (a data-protection report) key on it.
        context = request_context.RequestContext(
            project_id=project, user_id=req.environ.get('HTTP_X_USER_ID'),
            request_id=req.environ.get('swift.trans_id'))
        allowed = None
        if requirement is not None and requirement.jurisdictions is not None:
            allowed = sorted(requirement.jurisdictions)
        self._notify(context, 'info', 'cloudstore.object.placed', {
            'account': account, 'container': container, 'object': obj,
            'project_id': project, 'data_unit': meta.data_unit, 'version': meta.version,
            'size': meta.size, 'etag': etag, 'allowed_jurisdictions': allowed,
            'fragments': fragments})

    def _ensure_containers(self, clouds):
        for cloud in clouds:
            if cloud.name not in self._containers_ready:
                try:
                    cloud.ensure_container()
                    self._containers_ready.add(cloud.name)
                except errors.CloudStoreError as exc:
                    # The quorum write decides whether the remaining clouds suffice.
                    self.logger.info('cloudstore: %s', exc)

    def _is_cloud_container(self, req):
        info = proxy_base.get_container_info(req.environ, self.app, swift_source=SWIFT_SOURCE)
        if not http.is_success(info.get('status') or 0):
            return None
        policy = storage_policy.POLICIES.get_by_index(info.get('storage_policy'))
        if policy is None or policy.name not in self.settings.policies:
            return None
        return info

    def _stub_headers(self, req):
        """System metadata of the current stub (None if absent or not ours)."""
        sub = wsgi.make_pre_authed_request(req.environ, 'HEAD', req.path,
                                           swift_source=SWIFT_SOURCE)
        resp = sub.get_response(self.app)
        if resp.is_success and SYSMETA_VERSION in resp.headers:
            return resp.headers
        return None

    def _unavailable(self, req, what, exc):
        self.logger.error('cloudstore: %s %s: %s', what, req.path, exc)
        if isinstance(exc, errors.QuorumError):
            # Clients learn which clouds failed, not their endpoints or errors (those
            # are in the proxy log under the same transaction id).
            detail = '%s needs %d correct clouds; failed: %s' % (
                exc.operation, exc.needed, ', '.join(sorted(exc.reasons)) or 'all')
        else:
            detail = str(exc)
        return swob.HTTPServiceUnavailable(
            request=req, content_type='text/plain',
            body=('cloud-of-clouds %s failed: %s' % (what, detail)).encode('utf-8'))

    # -- requests -------------------------------------------------------------------------

    def __call__(self, env, start_response):
        req = swob.Request(env)
        try:
            _version, _account, _container, obj = req.split_path(4, 4, True)
        except ValueError:
            return self.app(env, start_response)
        if req.method not in ('GET', 'HEAD', 'PUT', 'DELETE') or not obj:
            return self.app(env, start_response)
        info = self._is_cloud_container(req)
        if info is None:
            return self.app(env, start_response)
        handler = getattr(self, '_handle_' + req.method.lower())
        return handler(req, info, obj)(env, start_response)

    def _body_chunks(self, req, etag_hash):
        """Yield the request body as the proxy reads it: until EOF of ``wsgi.input``.

        The WSGI server's input already stops at Content-Length or the last chunk;
        internal requests (object versioning) may carry a stale Content-Length over a
        longer input, which the proxy also reads to the end. Raises a swob error
        (aborting the write before its last segment is released) when the body is too
        large, shorter than announced, or does not match the client's ETag.
        """
        limit = min(constraints.MAX_FILE_SIZE, self.settings.max_object_size)
        too_large = swob.HTTPRequestEntityTooLarge(
            request=req, content_type='text/plain',
            body=b'Objects of this storage policy are limited to %d bytes; upload larger '
                 b'ones as segments (SLO or DLO).' % limit)
        if (req.content_length or 0) > limit:
            raise too_large
        try:
            expected = req.message_length()
        except ValueError as exc:
            raise swob.HTTPBadRequest(request=req, body=str(exc).encode('utf-8'))
        total = 0
        reader = req.environ['wsgi.input']
        while True:
            chunk = reader.read(self.depsky.segment_size)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise too_large
            # On a native thread (MD5 releases the GIL): the uploads to the clouds go on.
            tpool.execute(etag_hash.update, chunk)
            yield chunk
            eventlet.sleep(0)
        if expected is not None and total < expected:
            raise swob.HTTPClientDisconnect(request=req)
        if 'Etag' in req.headers and \
                swob.normalize_etag(req.headers['Etag']) != etag_hash.hexdigest():
            raise swob.HTTPUnprocessableEntity(request=req)

    def _handle_put(self, req, info, obj):
        req.acl = info.get('write_acl')
        if 'swift.authorize' in req.environ:
            denied = req.environ['swift.authorize'](req)
            if denied:
                return denied
        # Validate as the proxy will (it sets X-Timestamp and a default type first), so
        # that a request it would refuse never adds a version on the clouds.
        probe = swob.Request(dict(req.environ))
        probe.headers.setdefault('X-Timestamp', utils.Timestamp.now().internal)
        if not probe.headers.get('Content-Type'):
            probe.headers['Content-Type'] = 'application/octet-stream'
        invalid = constraints.check_object_creation(probe, obj)
        if invalid:
            return invalid
        if req.headers.get('Content-Length') is None and \
                'chunked' not in req.headers.get('Transfer-Encoding', ''):
            return swob.HTTPLengthRequired(request=req)
        old = self._stub_headers(req)
        if old is not None and req.headers.get('If-None-Match') == '*':
            # Decide before touching the clouds: a refused PUT must not add a version.
            return swob.HTTPPreconditionFailed(request=req)
        placed = self._placement(req)
        if isinstance(placed, swob.Response):
            return placed
        project, requirement, names = placed
        depsky = self._depsky_for(names)
        version = utils.Timestamp.now().raw
        old_depsky = None
        if old is not None:
            try:
                old_depsky = self._stub_depsky(old)
            except errors.CloudStoreError as exc:
                self.logger.warning('cloudstore: previous version of %s: %s', req.path, exc)
        if old_depsky is depsky:
            data_unit = old[SYSMETA_DATA_UNIT]
        else:
            # A new object, or one whose project's jurisdictions changed: a new data unit
            # on the new clouds; the old one is removed from its clouds afterwards.
            data_unit = data_unit_name(req.path_info, version)
        self._ensure_containers(depsky.clouds)
        etag_hash = hashlib.md5(usedforsecurity=False)
        # A client's Content-Length is what wsgi.input delivers; internal requests may
        # carry a stale one (see _body_chunks), so only clients' lengths are announced.
        size = None
        if 'swift.source' not in req.environ and \
                'chunked' not in req.headers.get('Transfer-Encoding', ''):
            size = req.content_length
        try:
            result = depsky.write_stream(data_unit, self._body_chunks(req, etag_hash),
                                         version, size)
        except swob.HTTPException as error:
            return error
        except errors.CloudStoreError as exc:
            return self._unavailable(req, 'write', exc)
        etag = etag_hash.hexdigest()
        size = result.metadata.size

        env = req.environ
        env['wsgi.input'] = io.BytesIO(b'')
        env['CONTENT_LENGTH'] = '0'
        env.pop('HTTP_TRANSFER_ENCODING', None)
        req.headers.pop('Etag', None)
        req.headers.update({SYSMETA_DATA_UNIT: data_unit, SYSMETA_VERSION: str(version),
                            SYSMETA_SIZE: str(size), SYSMETA_ETAG: etag,
                            SYSMETA_CLOUDS: ','.join(depsky.names)})
        if len(result.signed) <= MAX_STUB_METADATA:
            req.headers[SYSMETA_SIGNED] = result.signed.decode('ascii')
        else:
            req.headers.pop(SYSMETA_SIGNED, None)   # e.g. a copy's source's
        for key, value in (('etag', etag), ('size', str(size))):
            override = request_helpers.get_container_update_override_key(key)
            if override not in req.headers:
                req.headers[override] = value
        resp = req.get_response(self.app)
        if resp.is_success:
            resp.headers['Etag'] = etag
            self._placed(req, project, requirement, depsky, result, etag)
            if old_depsky is None:
                pass
            elif old[SYSMETA_DATA_UNIT] != data_unit:
                self.executor.submit(self._delete_data_unit, old_depsky,
                                     old[SYSMETA_DATA_UNIT], None)
            elif int(old[SYSMETA_VERSION]) != version:
                depsky.discard_version(data_unit, int(old[SYSMETA_VERSION]))
        else:
            self.logger.info('cloudstore: stub PUT of %s answered %s; version %d stays on '
                             'the clouds until repair', req.path, resp.status, version)
        return resp

    def _fix_headers(self, resp):
        resp.headers['Etag'] = resp.headers[SYSMETA_ETAG]
        resp.headers['Content-Length'] = resp.headers[SYSMETA_SIZE]

    def _handle_head(self, req, info, obj):
        return self._handle_get(req, info, obj)

    def _stub_request(self, req, method):
        stub_req = swob.Request(dict(req.environ))
        stub_req.method = method
        stub_req.headers.pop('Range', None)
        request_helpers.update_etag_is_at_header(stub_req, SYSMETA_ETAG)
        return stub_req.get_response(self.app)

    def _handle_get(self, req, info, obj):
        # The stub's headers are all a GET needs from this cluster: a HEAD (the proxy
        # sets up no body for it). An error or a condition not met is answered by the
        # stub's GET, so that its body is Swift's own.
        stub = self._stub_request(req, 'HEAD')
        if req.method == 'GET' and not stub.is_success:
            stub = self._stub_request(req, 'GET')
        if SYSMETA_VERSION not in stub.headers:
            if stub.is_success:
                # An object stored before the policy was served by this middleware.
                return req.get_response(self.app)
            return stub
        if not stub.is_success:
            stub.headers['Etag'] = stub.headers[SYSMETA_ETAG]
            return stub
        if req.method == 'HEAD':
            self._fix_headers(stub)
            return stub
        version = int(stub.headers[SYSMETA_VERSION])
        data_unit = stub.headers[SYSMETA_DATA_UNIT]
        size = int(stub.headers[SYSMETA_SIZE])
        # Ranges are applied by swob on a copy of the request: middlewares to the left
        # share ``env`` and must still see the client's Range (DLO, SLO and symlink
        # re-read it).
        range_req = swob.Request(dict(req.environ))
        request_helpers.resolve_ignore_range_header(range_req, stub.headers)
        # The first range swob will ask for (in the order the client gave them) is what
        # the clouds are asked for while the metadata is being read.
        start, stop = 0, None
        if range_req.range:
            ranges = range_req.range.ranges_for_length(size)
            if ranges:
                start, stop = ranges[0]
        try:
            opened = self._stub_depsky(stub.headers).open(
                data_unit, min_version=version, expected_version=version, expected_size=size,
                start=start, stop=stop,
                signed_metadata=(stub.headers[SYSMETA_SIGNED].encode('ascii')
                                 if SYSMETA_SIGNED in stub.headers else None))
            if opened.metadata.version != version:
                raise errors.StaleError(data_unit, version, opened.metadata.version)
        except errors.CloudStoreError as exc:
            return self._unavailable(req, 'read', exc)
        headers = dict(stub.headers)
        headers.pop('Content-Length', None)
        headers['Etag'] = stub.headers[SYSMETA_ETAG]
        conditional_etag = request_helpers.resolve_etag_is_at_header(req, stub.headers)
        return swob.Response(
            request=range_req, app_iter=_Plaintext(self, req, data_unit, opened.reader),
            content_length=opened.metadata.size, headers=headers, status=200,
            conditional_response=True, conditional_etag=conditional_etag)

    def _delete_data_unit(self, depsky, data_unit, versions):
        try:
            depsky.delete(data_unit, versions=versions)
        except errors.CloudStoreError as exc:
            self.logger.warning('cloudstore: delete of data unit %s: %s (repair removes the '
                                'rest)', data_unit, exc)

    def _handle_delete(self, req, info, obj):
        old = self._stub_headers(req)
        resp = req.get_response(self.app)
        if resp.is_success and old is not None:
            try:
                depsky = self._stub_depsky(old)
            except errors.CloudStoreError as exc:
                self.logger.warning('cloudstore: delete of %s: %s', req.path, exc)
                return resp
            self.executor.submit(self._delete_data_unit, depsky, old[SYSMETA_DATA_UNIT],
                                 [int(old[SYSMETA_VERSION])])
        return resp


class _Plaintext:
    """The app_iter of a GET: the whole object, or (swob asks) only the ranges' segments.

    Every piece was verified against the signed metadata before it is decoded. A fault
    found mid-body that no other cloud can make up for (only a faulty writer gets there)
    ends the body early: the client sees a short body (the connection is closed), never
    wrong bytes.
    """

    def __init__(self, middleware, req, data_unit, reader):
        self._logger = middleware.logger
        self._path = req.path
        self._data_unit = data_unit
        self._reader = reader

    def _guarded(self, chunks):
        try:
            yield from chunks
        except errors.CloudStoreError as exc:
            self._logger.error('cloudstore: read %s (data unit %s): %s', self._path,
                               self._data_unit, exc)
            raise

    def __iter__(self):
        return self._guarded(iter(self._reader))

    def app_iter_range(self, start, stop):
        return self._guarded(self._reader.read(start, stop))

    def app_iter_ranges(self, ranges, content_type, boundary, size):
        return swob.multi_range_iterator(ranges, content_type, boundary, size,
                                         self.app_iter_range)

    def close(self):
        self._reader.close()


def _tclouds_services(settings):
    """``(project requirements, notifier)`` from the tclouds configuration file.

    The requirements come through the client the schedulers use (cached for
    ``[trust_scheduling] requirements_cache_ttl``; unreachable raises, the write is then
    refused); the notifier sends with ``[oslo_messaging_notifications]`` drivers (None
    when it names none).
    """
    from oslo_config import cfg
    import oslo_messaging

    from tclouds_openstack.common import messaging
    from tclouds_openstack import conf as tclouds_conf
    from tclouds_openstack.requirements import client as requirements_client

    conf = cfg.ConfigOpts()
    tclouds_conf.register_opts(conf)
    messaging.register_opts(conf)
    try:
        conf([], project='tclouds', default_config_files=[settings.tclouds_config_file],
             default_config_dirs=[])
    except (cfg.Error, OSError) as exc:
        raise ValueError('cloudstore middleware: tclouds_config_file %s: %s'
                         % (settings.tclouds_config_file, exc))
    requirements = None
    if settings.project_requirements:
        # This filter's project_requirements decides, not the schedulers' switch.
        conf.set_override('project_requirements', True, group='trust_scheduling')
        requirements = requirements_client.ProjectRequirements(conf)
    notifier = None
    if settings.notifications and conf.oslo_messaging_notifications.driver:
        notifier = oslo_messaging.Notifier(
            messaging.get_notification_transport(conf),
            publisher_id='cloudstore.%s' % socket.gethostname())
    return requirements, notifier


def filter_factory(global_conf, **local_conf):
    conf = dict(global_conf, **local_conf)
    utils.register_swift_info('cloudstore', policies=utils.list_from_csv(
        conf.get('policies', 'cloudofclouds')), f=int(conf.get('f', 1)))

    def factory(app):
        return CloudStoreMiddleware(app, conf)
    return factory
