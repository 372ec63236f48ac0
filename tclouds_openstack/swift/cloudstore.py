"""Swift proxy middleware: objects of cloud-of-clouds containers live on n clouds (DepSky-CA).

For containers whose storage policy is named in ``policies``, object data never reaches
this cluster's object servers: a PUT body is encrypted, secret-shared and erasure-coded
by :mod:`tclouds_openstack.cloudstore.protocol` onto the configured clouds, and the local
cluster keeps only a zero-byte *stub* whose system metadata names the data unit, version,
size and ETag. Everything else stays Swift's own: authorization, listings (the stub's
container update carries the real size and ETag), user metadata and POST, conditional
requests, SLO/DLO manifests and segments, versioning, symlinks. GET reads the stub, then
the version it pins from the clouds, and serves ranges from the plaintext.

Place it right of ``slo dlo versioned_writes symlink`` and left of ``proxy-logging
proxy-server`` (where ``encryption`` would go; it replaces that middleware for these
containers). Options (paste section, validated at start-up):

``policies``            storage policy names served through the clouds (``cloudofclouds``)
``f``                   clouds that may be faulty (1); needs at least 3f + 1 ``clouds``
``clouds``              cloud names in a fixed order, e.g. ``aws, ovh, site2, site3``
``cloud_<name>_type``   ``swift`` or ``s3``, plus that driver's options with the same
                        prefix (``cloud_aws_endpoint_url``, ``cloud_site2_auth_url``, ...)
``writer_key_file``     PEM Ed25519 private key that signs metadata (readers verify with
                        its public key); without it, ``writer_public_key_file`` makes the
                        proxy read-only
``timeout``             seconds to wait for a cloud before counting it unavailable (10)
``workers``             parallel cloud calls per proxy worker (32)
``max_object_size``     largest object body in bytes (1 GiB); bigger objects must be
                        uploaded as SLO/DLO segments
``fault_log``           optional file; every cloud fault found is appended as a JSON line
"""
import concurrent.futures
import hashlib
import io
import json
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

from tclouds_openstack.cloudstore import backends
from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import metadata
from tclouds_openstack.cloudstore import protocol

SYSMETA_PREFIX = 'X-Object-Sysmeta-Cloudstore-'
SYSMETA_DATA_UNIT = SYSMETA_PREFIX + 'Data-Unit'
SYSMETA_VERSION = SYSMETA_PREFIX + 'Version'
SYSMETA_SIZE = SYSMETA_PREFIX + 'Size'
SYSMETA_ETAG = SYSMETA_PREFIX + 'Etag'
SWIFT_SOURCE = 'CLOUDSTORE'
_READ_CHUNK = 1024 * 1024


class Settings:
    """The middleware's validated options (shared with ``tclouds-cloudstore``)."""

    def __init__(self, conf):
        def fail(message):
            raise ValueError('cloudstore middleware: %s' % message)

        self.policies = utils.list_from_csv(conf.get('policies', 'cloudofclouds'))
        try:
            self.f = int(conf.get('f', 1))
            self.timeout = float(conf.get('timeout', 10))
            self.workers = int(conf.get('workers', 32))
            self.max_object_size = int(conf.get('max_object_size', 2 ** 30))
        except ValueError as exc:
            fail('f, timeout, workers and max_object_size must be numbers: %s' % exc)
        if self.f < 0 or self.timeout <= 0 or self.workers < 1 or self.max_object_size < 1:
            fail('need f >= 0, timeout > 0, workers >= 1 and max_object_size >= 1')
        names = utils.list_from_csv(conf.get('clouds', ''))
        if len(names) < 3 * self.f + 1:
            fail('clouds lists %d cloud(s); f=%d needs at least %d (n >= 3f + 1)'
                 % (len(names), self.f, 3 * self.f + 1))
        self.cloud_options = []
        for name in names:
            prefix = 'cloud_%s_' % name
            options = {key[len(prefix):]: value for key, value in conf.items()
                       if key.startswith(prefix)}
            self.cloud_options.append((name, options))
        self.private_key = None
        try:
            if conf.get('writer_key_file'):
                with open(conf['writer_key_file'], 'rb') as stream:
                    self.private_key = metadata.load_private_key(stream.read())
                self.public_key = self.private_key.public_key()
            elif conf.get('writer_public_key_file'):
                with open(conf['writer_public_key_file'], 'rb') as stream:
                    self.public_key = metadata.load_public_key(stream.read())
            else:
                fail('set writer_key_file (or writer_public_key_file for a read-only proxy)')
        except OSError as exc:
            fail('cannot read the writer key: %s' % exc)
        except errors.CloudStoreError as exc:
            fail(str(exc))
        self.fault_log = conf.get('fault_log') or None

    def build_clouds(self):
        try:
            return [backends.load(name, options) for name, options in self.cloud_options]
        except errors.CloudStoreError as exc:
            raise ValueError('cloudstore middleware: %s' % exc)


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
        self.settings = Settings(conf)
        self.clouds = self.settings.build_clouds()
        self.executor = concurrent.futures.ThreadPoolExecutor(self.settings.workers)
        self.depsky = protocol.DepSkyCA(
            self.clouds, self.settings.f, self.settings.public_key, self.settings.private_key,
            executor=self.executor, fault_listener=self._report_fault,
            timeout=self.settings.timeout, offload=tpool.execute)
        self._containers_ready = set()
        self._fault_lock = threading.Lock()

    # -- helpers --------------------------------------------------------------------------

    def _report_fault(self, data_unit, fault):
        level = self.logger.warning if fault.kind == protocol.FAULTY else self.logger.info
        level('cloudstore: cloud %s %s on data unit %s: %s', fault.cloud, fault.kind,
              data_unit, fault.reason)
        if self.settings.fault_log:
            line = json.dumps({'time': time.time(), 'cloud': fault.cloud, 'kind': fault.kind,
                               'data_unit': data_unit, 'reason': fault.reason})
            with self._fault_lock, open(self.settings.fault_log, 'a') as stream:
                stream.write(line + '\n')

    def _ensure_containers(self):
        for cloud in self.clouds:
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
        version = utils.Timestamp.now().raw
        data_unit = (old[SYSMETA_DATA_UNIT] if old is not None
                     else data_unit_name(req.path_info, version))
        self._ensure_containers()
        etag_hash = hashlib.md5(usedforsecurity=False)
        # A client's Content-Length is what wsgi.input delivers; internal requests may
        # carry a stale one (see _body_chunks), so only clients' lengths are announced.
        size = None
        if 'swift.source' not in req.environ and \
                'chunked' not in req.headers.get('Transfer-Encoding', ''):
            size = req.content_length
        try:
            result = self.depsky.write_stream(data_unit, self._body_chunks(req, etag_hash),
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
                            SYSMETA_SIZE: str(size), SYSMETA_ETAG: etag})
        for key, value in (('etag', etag), ('size', str(size))):
            override = request_helpers.get_container_update_override_key(key)
            if override not in req.headers:
                req.headers[override] = value
        resp = req.get_response(self.app)
        if resp.is_success:
            resp.headers['Etag'] = etag
            if old is not None and int(old[SYSMETA_VERSION]) != version:
                self.depsky.discard_version(old[SYSMETA_DATA_UNIT], int(old[SYSMETA_VERSION]))
        else:
            self.logger.info('cloudstore: stub PUT of %s answered %s; version %d stays on '
                             'the clouds until repair', req.path, resp.status, version)
        return resp

    def _fix_headers(self, resp):
        resp.headers['Etag'] = resp.headers[SYSMETA_ETAG]
        resp.headers['Content-Length'] = resp.headers[SYSMETA_SIZE]

    def _handle_head(self, req, info, obj):
        return self._handle_get(req, info, obj)

    def _handle_get(self, req, info, obj):
        stub_req = swob.Request(dict(req.environ))
        stub_req.headers.pop('Range', None)
        request_helpers.update_etag_is_at_header(stub_req, SYSMETA_ETAG)
        stub = stub_req.get_response(self.app)
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
        for _chunk in stub.app_iter or ():
            pass
        version = int(stub.headers[SYSMETA_VERSION])
        data_unit = stub.headers[SYSMETA_DATA_UNIT]
        try:
            opened = self.depsky.open(data_unit, min_version=version, expected_version=version)
            if opened.metadata.version != version:
                raise errors.StaleError(data_unit, version, opened.metadata.version)
            # Every value object used has matched its signed digest. Ranges need the
            # whole body here; otherwise segments are decrypted as they are sent.
            body = b''.join(opened.segments) if 'Range' in req.headers else None
        except errors.CloudStoreError as exc:
            return self._unavailable(req, 'read', exc)
        headers = dict(stub.headers)
        headers.pop('Content-Length', None)
        headers['Etag'] = stub.headers[SYSMETA_ETAG]
        # Ranges are applied here, on a copy: middlewares to the left share ``env`` and
        # must still see the client's Range (DLO, SLO and symlink re-read it).
        range_req = swob.Request(dict(req.environ))
        request_helpers.resolve_ignore_range_header(range_req, stub.headers)
        conditional_etag = request_helpers.resolve_etag_is_at_header(req, stub.headers)
        if body is not None:
            return swob.Response(request=range_req, body=body, headers=headers, status=200,
                                 conditional_response=True, conditional_etag=conditional_etag)
        return swob.Response(
            request=range_req, app_iter=self._segments(req, data_unit, opened),
            content_length=opened.metadata.size, headers=headers, status=200,
            conditional_response=True, conditional_etag=conditional_etag)

    def _segments(self, req, data_unit, opened):
        try:
            for segment in opened.segments:
                yield segment
        except errors.CloudStoreError as exc:
            # Digests matched, so only a faulty writer gets here; the client sees a
            # short body (the connection is closed), never wrong bytes.
            self.logger.error('cloudstore: read %s (data unit %s): %s', req.path, data_unit,
                              exc)
            raise

    def _handle_delete(self, req, info, obj):
        old = self._stub_headers(req)
        resp = req.get_response(self.app)
        if resp.is_success and old is not None:
            def delete_data_unit(data_unit, version):
                try:
                    self.depsky.delete(data_unit, versions=[version])
                except errors.CloudStoreError as exc:
                    self.logger.warning('cloudstore: delete of data unit %s: %s (repair '
                                        'removes the rest)', data_unit, exc)
            self.executor.submit(delete_data_unit, old[SYSMETA_DATA_UNIT],
                                 int(old[SYSMETA_VERSION]))
        return resp


def filter_factory(global_conf, **local_conf):
    conf = dict(global_conf, **local_conf)
    utils.register_swift_info('cloudstore', policies=utils.list_from_csv(
        conf.get('policies', 'cloudofclouds')), f=int(conf.get('f', 1)))

    def factory(app):
        return CloudStoreMiddleware(app, conf)
    return factory
