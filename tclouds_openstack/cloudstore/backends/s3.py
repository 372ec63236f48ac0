"""A cloud reached through the Amazon S3 API (boto3), e.g. AWS or Swift's s3api.

Options: ``endpoint_url``, ``access_key``, ``secret_key``, ``bucket`` (default
``cloudstore``), ``region`` (default ``us-east-1``), ``timeout`` in seconds (default 10).
Requests are SigV4 with path-style addressing; boto3 clients are thread-safe. SigV4 over
plain HTTP signs the SHA-256 of a payload before sending it, so a streamed upload goes
as a multipart upload of :data:`PART_BYTES` parts (one ``PutObject`` when it fits in one
part): the gateway holds one part per upload, never the object. An upload whose chunks
raise is aborted, so no object (and no part) stays behind.

Each call (a read with its whole body, a part, a listing with its pages) has the overall
deadline of :class:`base.Deadline`: this client's connections (botocore's, subclassed with
:class:`base.WatchedConnection`) register their sockets with it.
"""
import boto3
from botocore import awsrequest
from botocore import config as botocore_config
from botocore import exceptions as botocore_exceptions

from tclouds_openstack.cloudstore.backends import base
from tclouds_openstack.cloudstore import errors

_NOT_FOUND = ('404', 'NoSuchKey', 'NotFound')
#: Part size of streamed uploads (S3 wants at least 5 MiB for every part but the last).
PART_BYTES = 16 * 1024 * 1024
# botocore >= 1.36 adds checksums to every request and expects them in answers unless told
# 'when_required' (what S3-compatible gateways such as Swift's s3api expect); older releases
# (OpenStack's upper-constraints pins 1.35.99) behave so already and lack the options.
_CHECKSUMS = ({'request_checksum_calculation': 'when_required',
               'response_checksum_validation': 'when_required'}
              if 'request_checksum_calculation' in botocore_config.Config.OPTION_DEFAULTS else {})


class _BoundedRaw:
    """A urllib3 response whose ``stream`` (what botocore reads whole) stops at ``limit``."""

    def __init__(self, raw, limit, cloud, operation, what):
        self._raw, self._limit = raw, limit
        self._cloud, self._operation, self._what = cloud, operation, what

    def stream(self, amt=2 ** 16, decode_content=None):
        total = 0
        for chunk in self._raw.stream(amt, decode_content=decode_content):
            total += len(chunk)
            if total > self._limit:
                self._raw.close()       # the rest is never read, the connection dropped
                raise errors.BackendError(self._cloud, self._operation, '%s longer than %d '
                                          'bytes (reading stopped there)'
                                          % (self._what, self._limit))
            yield chunk

    def __getattr__(self, name):
        return getattr(self._raw, name)


def _watched_pool(pool):
    """``pool`` (a botocore connection pool class) making watched connections."""
    connection = type('Watched' + pool.ConnectionCls.__name__,
                      (base.WatchedConnection, pool.ConnectionCls), {})
    return type('Watched' + pool.__name__, (pool,), {'ConnectionCls': connection})


_WATCHED_POOLS = {'http': _watched_pool(awsrequest.AWSHTTPConnectionPool),
                  'https': _watched_pool(awsrequest.AWSHTTPSConnectionPool)}


class S3Backend(base.Backend):

    def __init__(self, name, endpoint_url, access_key, secret_key, bucket='cloudstore',
                 region='us-east-1', timeout=10.0):
        super().__init__(name)
        self.bucket = bucket
        self.client = boto3.session.Session().client(
            's3', endpoint_url=endpoint_url, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key, region_name=region,
            config=botocore_config.Config(
                signature_version='s3v4', s3={'addressing_style': 'path'},
                retries={'total_max_attempts': 1}, connect_timeout=timeout,
                read_timeout=timeout, max_pool_connections=32, **_CHECKSUMS))

        # botocore reads every answer but an object's bytes whole (error bodies included)
        # before parsing it: send each request here and bound what it may read
        self.client.meta.events.register('before-send.s3', self._bounded_send)
        # this client's connections: watched by the deadline of the call using them
        session = self.client._endpoint.http_session
        session._pool_classes_by_scheme = _WATCHED_POOLS
        session._manager.pool_classes_by_scheme = _WATCHED_POOLS

    def _bounded_send(self, request, event_name='', **kwargs):
        """Send ``request`` as botocore would; its answer reads at most its bound.

        An object's bytes (a successful GetObject) are bounded by :meth:`_read`; an error
        body by :data:`base.MAX_ERROR_BYTES`, any other answer (a listing page, an
        upload's answer) by :data:`base.MAX_ANSWER_BYTES`.
        """
        # the session reads a non-streaming answer whole before returning it; streamed,
        # botocore reads it afterwards through ``raw.stream`` (AWSResponse.content)
        request.stream_output = True
        response = self.client._endpoint.http_session.send(request)
        operation = event_name.rsplit('.', 1)[-1]
        if response.status_code >= 300:
            response.raw = _BoundedRaw(response.raw, base.MAX_ERROR_BYTES, self.name,
                                       operation, 'error answer (HTTP %d)'
                                       % response.status_code)
        elif operation != 'GetObject':
            response.raw = _BoundedRaw(response.raw, base.MAX_ANSWER_BYTES, self.name,
                                       operation, 'answer')
        return response

    @classmethod
    def from_options(cls, name, options):
        return cls(name, base.required_option(name, options, 'endpoint_url'),
                   base.required_option(name, options, 'access_key'),
                   base.required_option(name, options, 'secret_key'),
                   options.get('bucket') or 'cloudstore',
                   options.get('region') or 'us-east-1',
                   base.timeout_option(name, options))

    def _call(self, operation, key, fn, deadline=None, **kwargs):
        """``fn(**kwargs)`` under a deadline (``deadline``: the caller finishes it)."""
        own = deadline is None
        if own:
            deadline = self._deadline(operation)
        try:
            with deadline.active():
                result = fn(**kwargs)
            if deadline.passed:
                # the sockets were shut mid-answer: whatever botocore made of the part
                # before the cut (even a success) is not the cloud's answer
                raise deadline.error(key)
            return result
        except botocore_exceptions.ClientError as exc:
            if deadline.passed:     # botocore parsed what came before the cut
                raise deadline.error(key)
            code = str(exc.response.get('Error', {}).get('Code', ''))
            if code in _NOT_FOUND and operation == 'get':
                raise errors.BackendNotFound(self.name, key)
            if code in ('InvalidRange', '416') and operation == 'get':
                return None  # a ranged read starting beyond the object's end
            if code == 'NoSuchBucket' and operation == 'list':
                return []   # a bucket not created yet holds nothing
            raise errors.BackendError(self.name, operation, '%s: %s' % (key, exc))
        except errors.CloudStoreError:
            raise
        except Exception as exc:  # botocore connection/read errors, urllib3 errors
            if deadline.passed:
                raise deadline.error(key)
            raise errors.BackendError(self.name, operation, '%s: %s: %s'
                                      % (key, type(exc).__name__, exc))
        finally:
            if own:
                deadline.finish()

    def put(self, key, data):
        self._call('put', key, self.client.put_object, Bucket=self.bucket, Key=key, Body=data)

    def put_stream(self, key, chunks, length=None):
        pending = []        # chunks not sent yet (joined once per part: one copy)
        pending_bytes = 0
        upload = None
        parts = []

        def send_part(data):
            number = len(parts) + 1
            response = self._call('put', key, self.client.upload_part, Bucket=self.bucket,
                                  Key=key, UploadId=upload, PartNumber=number, Body=data)
            parts.append({'PartNumber': number, 'ETag': response['ETag']})

        try:
            for chunk in chunks:
                pending.append(chunk)
                pending_bytes += len(chunk)
                # A full part is sent once more bytes follow it (the last part may be
                # any size, every other one must be at least 5 MiB).
                while pending_bytes > PART_BYTES:
                    if upload is None:
                        upload = self._call('put', key, self.client.create_multipart_upload,
                                            Bucket=self.bucket, Key=key)['UploadId']
                    part, size = [], 0
                    while size < PART_BYTES:
                        head = pending.pop(0)
                        room = PART_BYTES - size
                        if len(head) > room:
                            view = memoryview(head)
                            head = view[:room]
                            pending.insert(0, view[room:])
                        part.append(head)
                        size += len(head)
                    pending_bytes -= PART_BYTES
                    send_part(b''.join(part))
            total = len(parts) * PART_BYTES + pending_bytes
            if length is not None and total != length:
                raise errors.BackendError(self.name, 'put', '%s: %d bytes received, %d '
                                          'announced' % (key, total, length))
            if upload is None:
                self.put(key, b''.join(pending))
                return
            send_part(b''.join(pending))
            self._call('put', key, self.client.complete_multipart_upload, Bucket=self.bucket,
                       Key=key, UploadId=upload, MultipartUpload={'Parts': parts})
        except BaseException:
            if upload is not None:
                try:
                    self._call('put', key, self.client.abort_multipart_upload,
                               Bucket=self.bucket, Key=key, UploadId=upload)
                except errors.CloudStoreError:  # best effort: the provider expires them
                    pass
            raise

    def _read(self, key, start, length):
        if length == 0:
            return
        kwargs = {'Bucket': self.bucket, 'Key': key}
        if start or length is not None:
            kwargs['Range'] = 'bytes=%d-%s' % (
                start, '' if length is None else start + length - 1)
        deadline = self._deadline('get')     # the answer and its whole body
        try:
            response = self._call('get', key, self.client.get_object, deadline, **kwargs)
            if response is None:
                return              # the object ends before ``start``
            body = response['Body']
            try:
                while True:
                    try:
                        # botocore's StreamingBody raises IncompleteReadError at the end of
                        # a transfer cut short of its Content-Length.
                        chunk = body.read(base.READ_CHUNK_BYTES)
                    except Exception as exc:
                        if deadline.passed:
                            raise deadline.error(key)
                        raise errors.BackendError(self.name, 'get', '%s: %s: %s'
                                                  % (key, type(exc).__name__, exc))
                    if not chunk:
                        deadline.check(key)
                        return
                    yield chunk
            finally:
                deadline.finish()       # before the connection can serve another request
                body.close()
        finally:
            deadline.finish()

    def delete(self, key):
        # S3 DELETE of an absent key is already a success (204).
        self._call('delete', key, self.client.delete_object, Bucket=self.bucket, Key=key)

    def list(self, prefix=''):
        def list_all(**kwargs):
            keys = []
            paginator = self.client.get_paginator('list_objects_v2')
            for page in paginator.paginate(**kwargs):
                keys.extend(item['Key'] for item in page.get('Contents', ()))
            return sorted(keys)
        return self._call('list', prefix, list_all, Bucket=self.bucket, Prefix=prefix)

    def ensure_container(self):
        deadline = self._deadline('put')
        try:
            with deadline.active():
                self.client.head_bucket(Bucket=self.bucket)
            return
        except botocore_exceptions.ClientError:
            pass
        except Exception as exc:
            if deadline.passed:
                raise deadline.error('bucket %s' % self.bucket)
            raise errors.BackendError(self.name, 'put', 'bucket %s: %s: %s'
                                      % (self.bucket, type(exc).__name__, exc))
        finally:
            deadline.finish()
        self._call('put', self.bucket, self.client.create_bucket, Bucket=self.bucket)
