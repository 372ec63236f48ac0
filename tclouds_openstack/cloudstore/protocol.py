"""DepSky-CA Byzantine quorum protocol (Bessani et al., EuroSys 2011, section 3, Alg. 1-2).

n clouds, at most f of them faulty (crashed, slow, or arbitrarily malicious), n >= 3f + 1.

- **Write** (Algorithm 1 with the CA encoding of section 3.3): encode the version into n
  value objects (:mod:`.coding`), store value object i on cloud i and wait for n - f acks;
  only then store the signed metadata on every cloud and wait for n - f acks. A write that
  fails in the first phase leaves the previous version untouched. The value objects are
  streamed: segment by segment, as the caller's chunks arrive, each cloud's upload runs
  while the rest of the value is still being read and encoded.
- **Read** (Algorithm 2): fetch metadata until n - f clouds answered, keep the highest
  *valid* (signature-verified) version, then fetch value objects (f + 1 at first, one more
  per failure) until f + 1 match the digests in that metadata; decode and decrypt.
- Clouds that answer with unverifiable metadata, an older version, or a value object that
  does not match its signed digest are reported as faulty (``faults`` in the results and
  the ``fault_listener`` callback); unreachable ones as unavailable. A reader that already
  knows the version it wants (the Swift middleware's stub names it) fetches value objects
  while the metadata quorum is still being read, and verifies them against it after.
  No plaintext is released before f + 1 value objects matched their signed digests.

Parallelism comes from the ``executor`` the adapter passes in (a ``concurrent.futures``
executor); without one every call runs inline, in cloud order. Hashing of large buffers
(which releases the GIL) goes through ``offload``: the Swift proxy passes eventlet's
``tpool.execute`` so that it runs on a native thread while green threads keep sending.
Nothing here opens a socket or reads configuration.
"""
import concurrent.futures
import dataclasses
import hashlib
import queue
import typing

from tclouds_openstack.cloudstore import coding
from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import metadata as metadata_mod
from tclouds_openstack.cloudstore import shamir

FAULTY = 'faulty'
UNAVAILABLE = 'unavailable'


def metadata_key(data_unit):
    return '%s/meta' % data_unit


def value_key(data_unit, version):
    return '%s/v%020d' % (data_unit, version)


class InlineExecutor(concurrent.futures.Executor):
    """Runs each call at submit time; the default when the adapter gives no thread pool."""

    def submit(self, fn, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller through the future
            future.set_exception(exc)
        return future


@dataclasses.dataclass
class Fault:
    """What one cloud did wrong in one operation."""

    cloud: str
    kind: str      # FAULTY (evidence of a bad or stale answer) or UNAVAILABLE
    reason: str

    def __str__(self):
        return '%s (%s): %s' % (self.cloud, self.kind, self.reason)


def _inline(fn, *args):
    return fn(*args)


class _PieceStream:
    """One cloud's value object as it is produced: fed by the writer, read by the upload.

    Keeps the hash of what it was fed (the digest the metadata will list). Iterating
    yields the header, then each piece as it arrives, and raises when the writer aborts,
    so that an upload cut short never completes on the cloud.
    """

    _END = object()

    def __init__(self, header):
        self._queue = queue.SimpleQueue()
        self.hash = hashlib.sha256(header)
        self._queue.put(header)

    def feed(self, piece):
        """Queue ``piece`` for the upload (the caller has hashed it)."""
        self._queue.put(piece)

    def close(self):
        self._queue.put(self._END)

    def abort(self, reason):
        self._queue.put(errors.CloudStoreError('upload aborted by the writer: %s' % reason))

    def hexdigest(self):
        return self.hash.hexdigest()

    def __iter__(self):
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, Exception):
                raise item
            yield item


def _update_hashes(hashes, pieces):
    for hash_, piece in zip(hashes, pieces):
        hash_.update(piece)


def _exactly(chunks, size):
    """``chunks``, raising before their end unless they add up to ``size`` bytes."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > size:
            break
        yield chunk
    if total != size:
        raise errors.CloudStoreError('the body has %s bytes, %d were announced'
                                     % ('more than %d' % size if total > size else total,
                                        size))


def _segments(chunks, segment_size):
    """Yield ``(index, plaintext, last)`` segments of the bytes in ``chunks``.

    One segment is held back until the next byte (or the end) arrives: only then is it
    known whether it is the last one (the AEAD binds that).
    """
    buffer = bytearray()
    pending = None
    index = 0
    for chunk in chunks:
        if not buffer and len(chunk) == segment_size:
            ready = [bytes(chunk)]
        else:
            buffer += chunk
            ready = []
            while len(buffer) >= segment_size:
                ready.append(bytes(buffer[:segment_size]))
                del buffer[:segment_size]
        for segment in ready:
            if pending is not None:
                yield index, pending, False
                index += 1
            pending = segment
    if buffer:
        if pending is not None:
            yield index, pending, False
            index += 1
        yield index, bytes(buffer), True
    else:
        yield index, pending if pending is not None else b'', True


@dataclasses.dataclass
class WriteResult:
    metadata: metadata_mod.Metadata
    acked: typing.List[str]
    faults: typing.Dict[str, Fault]


@dataclasses.dataclass
class ReadResult:
    data: bytes
    metadata: metadata_mod.Metadata
    faults: typing.Dict[str, Fault]


@dataclasses.dataclass
class OpenResult:
    """A verified version, decoded lazily: iterate ``segments`` for the plaintext."""

    metadata: metadata_mod.Metadata
    faults: typing.Dict[str, Fault]
    segments: coding.Decoder


@dataclasses.dataclass
class RepairResult:
    data_unit: str
    version: int
    repaired: typing.Dict[str, str]
    failed: typing.Dict[str, str]


class DepSkyCA:
    """The protocol over ``clouds`` (backends in a fixed order: cloud i gets value i)."""

    def __init__(self, clouds, f, public_key, private_key=None, executor=None,
                 fault_listener=None, timeout=60.0, straggler_grace=0.05,
                 segment_size=coding.SEGMENT_BYTES, offload=None):
        if f < 0 or len(clouds) < 3 * f + 1:
            raise errors.CloudStoreError('need n >= 3f + 1 clouds: n=%d, f=%d'
                                         % (len(clouds), f))
        names = [cloud.name for cloud in clouds]
        if len(set(names)) != len(names):
            raise errors.CloudStoreError('cloud names must be unique: %s' % ', '.join(names))
        if private_key is not None and metadata_mod.key_id(
                private_key.public_key()) != metadata_mod.key_id(public_key):
            raise errors.CloudStoreError('writer private key does not match the public key')
        self.clouds = list(clouds)
        self.n = len(clouds)
        self.f = f
        self.public_key = public_key
        self.private_key = private_key
        self.executor = executor or InlineExecutor()
        self.fault_listener = fault_listener
        self.timeout = timeout
        self.straggler_grace = straggler_grace
        self.segment_size = segment_size
        self.offload = offload or _inline

    # -- plumbing -------------------------------------------------------------------------

    def _submit(self, fn, indexes):
        return {self.executor.submit(fn, index): index for index in indexes}

    def _wrap(self, index, operation, exc):
        if isinstance(exc, errors.CloudStoreError):
            return exc
        # A backend broke its contract (a raw library exception): still fail closed.
        return errors.BackendError(self.clouds[index].name, operation, repr(exc))

    def _collect(self, futures, operation, enough, grace=0.0, leftover=None):
        """Wait until ``enough(results)`` or every future finished (or the timeout).

        ``results`` maps cloud index to ``(ok, value_or_exception)``. Once enough answered,
        the others get ``grace`` seconds more; futures still running afterwards are left
        to finish in the background.
        """
        results = {}
        pending = set(futures)
        while pending and not enough(results):
            done, pending = concurrent.futures.wait(
                pending, timeout=self.timeout, return_when=concurrent.futures.FIRST_COMPLETED)
            if not done:
                break
            for future in done:
                self._harvest(futures, future, operation, results)
        if pending and grace and enough(results):
            done, pending = concurrent.futures.wait(pending, timeout=grace)
            for future in done:
                self._harvest(futures, future, operation, results)
        if leftover is not None:
            leftover.update({future: futures[future] for future in pending
                             if not future.done()})
        for future in [future for future in pending if future.done()]:
            self._harvest(futures, future, operation, results)
        if not enough(results):
            for future in pending:
                if not future.done():
                    index = futures[future]
                    results[index] = (False, errors.BackendError(
                        self.clouds[index].name, operation,
                        'no answer within %.1f s' % self.timeout))
        return results

    def _harvest(self, futures, future, operation, results):
        index = futures[future]
        try:
            results[index] = (True, future.result())
        except Exception as exc:
            results[index] = (False, self._wrap(index, operation, exc))

    def _fault(self, faults, index, kind, reason, data_unit):
        fault = Fault(self.clouds[index].name, kind, reason)
        # Evidence of misbehaviour outranks mere unavailability for the same cloud.
        if fault.cloud not in faults or kind == FAULTY:
            faults[fault.cloud] = fault
        if self.fault_listener is not None:
            self.fault_listener(data_unit, fault)

    @staticmethod
    def _count_ok(results):
        return sum(1 for ok, _ in results.values() if ok)

    # -- write ----------------------------------------------------------------------------

    def write(self, data_unit, data, version):
        """Store the bytes ``data`` as ``version`` of ``data_unit``; see :meth:`write_stream`."""
        return self.write_stream(data_unit, (data,), version)

    def write_stream(self, data_unit, chunks, version, size=None):
        """Store the bytes of the iterable ``chunks`` as ``version``; return :class:`WriteResult`.

        With a concurrent executor the uploads start at once and are fed segment by
        segment while ``chunks`` is read. ``size``, when known, is the total of
        ``chunks`` (the uploads then announce their length); a different total is an
        error. An exception raised by ``chunks`` aborts every upload (no cloud
        completes a value object, no metadata is written) and propagates. Raises
        :class:`~.errors.QuorumError` when fewer than n - f clouds acknowledged a phase;
        after a failed first phase the previous version stays the current one.
        """
        if self.private_key is None:
            raise errors.CloudStoreError('write of %s: no writer private key configured'
                                         % data_unit)
        encoder = coding.Encoder(data_unit, version, self.n, self.f, self.segment_size)
        streams = [_PieceStream(header) for header in encoder.headers]
        key = value_key(data_unit, version)

        length = None
        if size is not None:
            length = coding.value_object_bytes(size, self.segment_size, self.n, self.f)
            chunks = _exactly(chunks, size)

        def put_value(index):
            self.clouds[index].put_stream(key, iter(streams[index]), length)

        # Inline calls would wait for pieces not produced yet: encode first, then upload.
        streaming = not isinstance(self.executor, InlineExecutor)
        futures = self._submit(put_value, range(self.n)) if streaming else None
        size = 0
        try:
            for index, plaintext, last in _segments(chunks, self.segment_size):
                pieces = encoder.encode(index, plaintext, last)
                self.offload(_update_hashes, [stream.hash for stream in streams], pieces)
                for stream, piece in zip(streams, pieces):
                    stream.feed(piece)
                size += len(plaintext)
        except BaseException as exc:
            for stream in streams:
                stream.abort(exc)
            # Aborted uploads never complete; removing leftovers is best effort.
            self._discard_version(data_unit, version)
            raise
        for stream in streams:
            stream.close()
        if futures is None:
            futures = self._submit(put_value, range(self.n))
        meta = metadata_mod.Metadata(
            data_unit=data_unit, version=version, n=self.n, f=self.f, size=size,
            segment_size=self.segment_size, nonce=encoder.nonce,
            digests=tuple(stream.hexdigest() for stream in streams),
            writer=metadata_mod.key_id(self.public_key))
        signed = metadata_mod.sign(meta, self.private_key)
        quorum = self.n - self.f
        faults = {}

        results = self._collect(futures, 'put', lambda r: self._count_ok(r) >= quorum)
        for index, (ok, exc) in results.items():
            if not ok:
                self._fault(faults, index, UNAVAILABLE, str(exc), data_unit)
        if self._count_ok(results) < quorum:
            self._discard_version(data_unit, version)
            raise errors.QuorumError('write (value phase)', data_unit, quorum,
                                     {fault.cloud: fault.reason for fault in faults.values()})

        def put_metadata(index):
            self.clouds[index].put(metadata_key(data_unit), signed)

        results = self._collect(self._submit(put_metadata, range(self.n)), 'put',
                                lambda r: self._count_ok(r) >= quorum)
        acked = []
        for index, (ok, exc) in sorted(results.items()):
            if ok:
                acked.append(self.clouds[index].name)
            else:
                self._fault(faults, index, UNAVAILABLE, str(exc), data_unit)
        if len(acked) < quorum:
            raise errors.QuorumError('write (metadata phase)', data_unit, quorum,
                                     {fault.cloud: fault.reason for fault in faults.values()})
        return WriteResult(metadata=meta, acked=acked, faults=faults)

    def _discard_version(self, data_unit, version):
        """Best effort: remove value objects of a version that never became current."""
        def delete_value(index):
            self.clouds[index].delete(value_key(data_unit, version))
        self._submit(delete_value, range(self.n))

    def discard_version(self, data_unit, version):
        """Best-effort garbage collection of an old version's value objects (no waiting)."""
        self._discard_version(data_unit, version)

    # -- read -----------------------------------------------------------------------------

    def _get_metadata(self, data_unit, index):
        try:
            raw = self.clouds[index].get(metadata_key(data_unit))
        except errors.BackendNotFound:
            return None
        return metadata_mod.parse(raw, self.public_key, data_unit), raw

    def _judge_metadata(self, data_unit, index, answer, best_version, faults, wait_all):
        """Report a cloud whose metadata answer is missing or older than the newest."""
        if answer is None:
            self._fault(faults, index, UNAVAILABLE if wait_all else FAULTY,
                        'missing metadata of version %d' % best_version, data_unit)
        elif isinstance(answer, tuple) and answer[0].version < best_version:
            self._fault(faults, index, FAULTY, 'stale metadata: version %d, newest is %d'
                        % (answer[0].version, best_version), data_unit)

    def _read_metadata(self, data_unit, wait_all=False, late=None):
        """Return ``(best, answers, faults)``: the highest valid metadata (or None).

        With ``late`` (a dict), the clouds that had not answered when the quorum was
        reached are left running and put there, for the caller to judge afterwards.
        """
        quorum = self.n - self.f

        def get_metadata(index):
            return self._get_metadata(data_unit, index)

        def enough(results):
            answered = sum(1 for ok, value in results.values()
                           if ok or isinstance(value, errors.MetadataError))
            return answered >= (self.n if wait_all else quorum)

        # A quorum suffices (Algorithm 2); the rest are judged later (``late``) so that
        # a stale or corrupting cloud is still noticed and reported.
        results = self._collect(self._submit(get_metadata, range(self.n)), 'get', enough,
                                leftover=late)
        faults = {}
        answers = {}
        for index, (ok, value) in results.items():
            if ok:
                answers[index] = value
            elif isinstance(value, errors.MetadataError):
                answers[index] = value
                self._fault(faults, index, FAULTY, 'bad metadata: %s' % value, data_unit)
            else:
                self._fault(faults, index, UNAVAILABLE, str(value), data_unit)
        if len(answers) < quorum:
            raise errors.QuorumError('read', data_unit, quorum,
                                     {fault.cloud: fault.reason for fault in faults.values()})
        valid = [value for value in answers.values() if isinstance(value, tuple)]
        best = max(valid, key=lambda pair: pair[0].version, default=None)
        if best is not None:
            for index, value in answers.items():
                self._judge_metadata(data_unit, index, value, best[0].version, faults,
                                     wait_all)
        return best, answers, faults

    def _fetch_value(self, data_unit, version, index):
        """The value object of cloud ``index`` (verified by the caller)."""
        return self.clouds[index].get(value_key(data_unit, version))

    def _fetch_values(self, meta, order, faults, needed, prefetched=None):
        """Fetch and verify value objects in ``order`` until ``needed`` verify.

        ``prefetched`` maps futures of value objects of this version already requested
        (raw bytes, not yet verified) to their cloud index.
        """
        data_unit = meta.data_unit

        def check(index, data):
            # ``offload`` only from this thread: executor threads may be native ones
            # without the hub that eventlet's tpool answers on.
            if self.offload(coding.digest, data) != meta.digests[index]:
                raise errors.FragmentError('digest', 0, 'SHA-256 of the %d-byte value object '
                                           'does not match the signed metadata' % len(data))
            coding.parse_value_object(data, index, meta, pieces=False)
            return data

        verified = {}
        running = dict(prefetched or {})
        queue_ = [index for index in order if index not in running.values()]
        while len(verified) < needed and (queue_ or running):
            while queue_ and len(running) + len(verified) < needed:
                index = queue_.pop(0)
                running[self.executor.submit(self._fetch_value, data_unit, meta.version,
                                             index)] = index
            done, _ = concurrent.futures.wait(list(running), timeout=self.timeout,
                                              return_when=concurrent.futures.FIRST_COMPLETED)
            if not done:
                for index in running.values():
                    self._fault(faults, index, UNAVAILABLE, 'value object: no answer within '
                                '%.1f s' % self.timeout, data_unit)
                break
            for future in done:
                index = running.pop(future)
                try:
                    verified[index] = check(index, future.result())
                except errors.BackendNotFound:
                    self._fault(faults, index, FAULTY, 'missing value object of version %d'
                                % meta.version, data_unit)
                except errors.FragmentError as exc:
                    self._fault(faults, index, FAULTY, 'bad value object of version %d: %s'
                                % (meta.version, exc), data_unit)
                except Exception as exc:
                    self._fault(faults, index, UNAVAILABLE,
                                str(self._wrap(index, 'get', exc)), data_unit)
        return verified

    def open(self, data_unit, min_version=None, expected_version=None):
        """Verify the newest version and return :class:`OpenResult` (decoded lazily).

        ``expected_version`` (e.g. the version the Swift stub pins) lets value objects be
        fetched while the metadata is still being read; they are used only if the
        metadata quorum names that version, and only after they match its digests.
        Raises :class:`~.errors.NotFoundError` when a quorum holds no valid metadata,
        :class:`~.errors.StaleError` when the newest valid version is below
        ``min_version``, :class:`~.errors.QuorumError` when too few clouds answer or too
        few value objects verify.
        """
        prefetched = {}
        if expected_version is not None:
            prefetched = {self.executor.submit(self._fetch_value, data_unit,
                                               expected_version, index): index
                          for index in range(self.f + 1)}
        late = {}
        best, answers, faults = self._read_metadata(data_unit, late=late)
        if best is None:
            if min_version is not None:
                raise errors.StaleError(data_unit, None, min_version)
            raise errors.NotFoundError(data_unit)
        meta = best[0]
        if min_version is not None and meta.version < min_version:
            raise errors.StaleError(data_unit, meta.version, min_version)
        if meta.version != expected_version:
            prefetched = {}
        # Clouds that vouched for this version first, then the others.
        current = [index for index, value in sorted(answers.items())
                   if isinstance(value, tuple) and value[0].version == meta.version]
        order = current + [index for index in range(self.n) if index not in current]
        verified = self._fetch_values(meta, order, faults, self.f + 1, prefetched)
        if len(verified) < self.f + 1:
            raise errors.QuorumError('read', data_unit, self.f + 1,
                                     {fault.cloud: fault.reason for fault in faults.values()})
        decoder = coding.Decoder(verified, meta)
        # Clouds slower than the quorum have usually answered by now; judge them too.
        done, _ = concurrent.futures.wait(list(late), timeout=self.straggler_grace)
        for future in done:
            try:
                answer = future.result()
            except errors.MetadataError as exc:
                self._fault(faults, late[future], FAULTY, 'bad metadata: %s' % exc, data_unit)
                continue
            except Exception:  # unreachable clouds are not judged on a successful read
                continue
            self._judge_metadata(data_unit, late[future], answer, meta.version, faults, False)
        return OpenResult(metadata=meta, faults=faults, segments=decoder)

    def read(self, data_unit, min_version=None, expected_version=None):
        """Return :class:`ReadResult` with the newest version's plaintext (see :meth:`open`)."""
        opened = self.open(data_unit, min_version, expected_version)
        return ReadResult(data=b''.join(opened.segments), metadata=opened.metadata,
                          faults=opened.faults)

    def read_metadata(self, data_unit):
        """Newest valid :class:`~.metadata.Metadata` on a quorum (no value objects read)."""
        best, _, _ = self._read_metadata(data_unit)
        if best is None:
            raise errors.NotFoundError(data_unit)
        return best[0]

    # -- delete ---------------------------------------------------------------------------

    def delete(self, data_unit, versions=None):
        """Remove ``data_unit`` from every cloud; n - f must succeed.

        With ``versions`` only those versions' value objects are deleted (the caller
        knows them; older leftovers are ``repair``'s job), otherwise every object listed
        under the data unit. Returns the faults; raises :class:`~.errors.QuorumError`.
        """
        quorum = self.n - self.f
        prefix = data_unit + '/'

        def delete_all(index):
            cloud = self.clouds[index]
            # Metadata first: once it is gone no reader picks this unit's values.
            cloud.delete(metadata_key(data_unit))
            if versions is None:
                keys = cloud.list(prefix)
            else:
                keys = [value_key(data_unit, version) for version in versions]
            for key in keys:
                cloud.delete(key)

        results = self._collect(self._submit(delete_all, range(self.n)), 'delete',
                                lambda r: self._count_ok(r) >= quorum)
        faults = {}
        for index, (ok, exc) in results.items():
            if not ok:
                self._fault(faults, index, UNAVAILABLE, str(exc), data_unit)
        if self._count_ok(results) < quorum:
            raise errors.QuorumError('delete', data_unit, quorum,
                                     {fault.cloud: fault.reason for fault in faults.values()})
        return faults

    # -- repair ---------------------------------------------------------------------------

    def list_data_units(self):
        """Union of the data units any reachable cloud holds, with per-cloud failures."""
        units = set()
        failures = {}
        results = self._collect(self._submit(lambda i: self.clouds[i].list(''),
                                             range(self.n)), 'list', lambda r: False)
        for index, (ok, value) in results.items():
            if ok:
                units.update(key.split('/', 1)[0] for key in value if '/' in key)
            else:
                failures[self.clouds[index].name] = str(value)
        return sorted(units), failures

    def repair(self, data_unit, collect_garbage=True):
        """Rewrite missing, stale or bad value objects and metadata of ``data_unit``.

        Needs no writer key: a missing value object is rebuilt from f + 1 good ones (the
        erasure code reconstructs its fragment, Lagrange interpolation its key share) and
        must match the digest in the signed metadata before it is stored. With
        ``collect_garbage`` the value objects of older versions are deleted too.
        """
        best, answers, faults = self._read_metadata(data_unit, wait_all=True)
        if best is None:
            raise errors.NotFoundError(data_unit)
        meta, signed = best
        verified = self._fetch_values(meta, range(self.n), faults, self.n)
        if len(verified) < self.f + 1:
            raise errors.QuorumError('repair', data_unit, self.f + 1,
                                     {fault.cloud: fault.reason for fault in faults.values()})
        repaired = {}
        failed = {}
        rebuilt = {}
        missing = [index for index in range(self.n) if index not in verified]
        if missing:
            k = self.f + 1
            sources = sorted(verified.items())[:k]
            parsed = [coding.parse_value_object(data, index, meta) for index, data in sources]
            shares = [share for share, _ in parsed]
            parts = {index: [coding.value_header(index, (index + 1, shamir.interpolate(
                shares, index + 1)))] for index in missing}
            driver = coding.ec_driver(k, self.n - k)
            for segment, (_, _, offset) in enumerate(coding.layout(
                    meta.size, meta.segment_size, self.n, self.f)):
                try:
                    pieces = driver.reconstruct([pieces[segment] for _, pieces in parsed],
                                                missing)
                except Exception as exc:  # pyeclib's own error family
                    raise errors.FragmentError('fragment', offset, 'reconstruction of '
                                               'segment %d failed: %s' % (segment, exc))
                for index, piece in zip(missing, pieces):
                    parts[index].append(piece)
            for index in missing:
                value = b''.join(parts[index])
                if coding.digest(value) != meta.digests[index]:
                    failed[self.clouds[index].name] = ('rebuilt value object does not match '
                                                       'the signed digest')
                    continue
                rebuilt[index] = value
        metadata_targets = [index for index in range(self.n)
                            if not (isinstance(answers.get(index), tuple)
                                    and answers[index][1] == signed)]

        def fix(index):
            cloud = self.clouds[index]
            done = []
            if index in rebuilt:
                cloud.put(value_key(data_unit, meta.version), rebuilt[index])
                done.append('value object')
            if index in metadata_targets:
                cloud.put(metadata_key(data_unit), signed)
                done.append('metadata')
            if collect_garbage:
                keep = {metadata_key(data_unit), value_key(data_unit, meta.version)}
                for key in cloud.list(data_unit + '/'):
                    if key not in keep:
                        cloud.delete(key)
                        done.append('deleted %s' % key.split('/', 1)[1])
            return done

        targets = sorted(set(rebuilt) | set(metadata_targets)
                         | (set(range(self.n)) if collect_garbage else set()))
        results = self._collect(self._submit(fix, targets), 'repair', lambda r: False)
        for index, (ok, value) in results.items():
            name = self.clouds[index].name
            if ok and value:
                repaired[name] = ', '.join(value)
            elif not ok:
                failed[name] = str(value)
        return RepairResult(data_unit=data_unit, version=meta.version, repaired=repaired,
                            failed=failed)
