"""DepSky-CA Byzantine quorum protocol (Bessani et al., EuroSys 2011, section 3, Alg. 1-2).

n clouds, at most f of them faulty (crashed, slow, or arbitrarily malicious), n >= 3f + 1.

- **Write** (Algorithm 1 with the CA encoding of section 3.3): encode the version into n
  value objects (:mod:`.coding`), store value object i on cloud i and wait for n - f acks;
  only then store the signed metadata on every cloud and wait for n - f acks. A write that
  fails in the first phase leaves the previous version untouched. The value objects are
  streamed: segment by segment, as the caller's chunks arrive, each cloud's upload runs
  while the rest of the value is still being read and encoded; a cloud that falls more
  than a window behind for longer than the timeout is dropped from the write (n - f
  must still take it), so a slow cloud cannot make the writer buffer the object.
- **Read** (Algorithm 2): fetch metadata until n - f clouds answered, keep the highest
  *valid* (signature-verified) version, then take f + 1 clouds whose value objects verify
  against that metadata (one more per failure) and decode (:mod:`.reading`: a window of
  segments at a time, only those a range needs, each piece checked against its signed
  hash; memory bounded by the window, not the object). A caller that holds the signed
  metadata of the version it wants in a trusted place (the Swift middleware keeps it in
  the object's stub) skips the metadata round: there is no newer version to look for.
- Every read from a cloud is bounded: metadata by :data:`.metadata.MAX_METADATA_BYTES`,
  value objects and their parts by the exact length the signed metadata implies; a cloud
  serving more is faulty, and costs the reader at most one byte past the bound.
- Clouds that answer with unverifiable or oversized metadata, an older version, or a
  value object that does not match its signed digests are reported as faulty
  (``faults`` in the results and the ``fault_listener`` callback); unreachable ones as
  unavailable. A cloud this writer is still uploading the data unit to is not judged:
  being behind the quorum it was never waited for is not a fault. A reader that already
  knows the version and size it wants (the Swift middleware's stub names them) fetches
  from clouds 0 .. f while the metadata quorum is still being read, and verifies against
  the metadata after: those clouds are always judged. :meth:`DepSkyCA.check` judges every
  cloud. No plaintext is released before the pieces it comes from matched their digests.

Parallelism comes from the ``executor`` the adapter passes in (a ``concurrent.futures``
executor); without one every call runs inline, in cloud order. Hashing of large buffers
goes through ``offload``: the Swift proxy passes eventlet's ``tpool.execute`` so
that it runs on a native thread while green threads keep sending. Nothing here opens
a socket or reads configuration.
"""
import concurrent.futures
import dataclasses
import queue
import threading
import typing

from tclouds_openstack.cloudstore import coding
from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import metadata as metadata_mod
from tclouds_openstack.cloudstore import reading

FAULTY = reading.FAULTY
UNAVAILABLE = reading.UNAVAILABLE
#: Segments a reader fetches per request and holds per cloud (plus one window ahead).
WINDOW_SEGMENTS = 16


def metadata_key(data_unit):
    return '%s/meta' % data_unit


value_key = reading.value_key


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

    Keeps the hash of every piece it was fed (the trailer lists them). Iterating yields
    each piece as it arrives, then the trailer, and raises when the writer aborts or
    drops this cloud, so that an upload cut short never completes on the cloud. At most
    ``window`` pieces wait (0: no bound, for inline uploads that start after encoding).
    """

    _END = object()

    def __init__(self, window=0):
        self._queue = queue.Queue(window)
        self.hashes = []
        self.trailer = None
        self.dropped = None

    def feed(self, piece, timeout):
        """Queue ``piece``; False (and the cloud is dropped) if it waits beyond ``timeout``."""
        if self.dropped is not None:
            return False
        try:
            self._queue.put(piece, timeout=timeout)
            return True
        except queue.Full:
            self.drop('more than %d pieces behind the writer for %.1f s'
                      % (self._queue.maxsize, timeout))
            return False

    def drop(self, reason):
        """Stop feeding this cloud; its upload fails before the end (nothing is stored)."""
        self.dropped = reason
        while True:  # free the queued pieces; the upload sees the error next
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(errors.CloudStoreError('upload dropped by the writer: %s' % reason))

    def close(self, trailer):
        self.trailer = trailer
        if self.dropped is None:
            self._queue.put(trailer)
            self._queue.put(self._END)

    def abort(self, reason):
        if self.dropped is None:
            self.drop('aborted: %s' % reason)

    def hexdigest(self):
        return coding.digest(self.trailer)

    def __iter__(self):
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, Exception):
                raise item
            yield item


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
    #: The clouds that acknowledged both the value object and the metadata.
    acked: typing.List[str]
    faults: typing.Dict[str, Fault]
    #: The signed metadata as stored on the clouds (a caller may keep it: see open()).
    signed: bytes = b''


@dataclasses.dataclass
class ReadResult:
    data: bytes
    metadata: metadata_mod.Metadata
    faults: typing.Dict[str, Fault]


@dataclasses.dataclass
class OpenResult:
    """A verified version, decoded lazily through ``reader`` (iterate ``segments``)."""

    metadata: metadata_mod.Metadata
    faults: typing.Dict[str, Fault]
    reader: reading.VersionReader

    @property
    def segments(self):
        return iter(self.reader)


@dataclasses.dataclass
class CheckResult:
    data_unit: str
    version: int
    faults: typing.Dict[str, Fault]


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
                 segment_size=coding.SEGMENT_BYTES, offload=None,
                 window_segments=WINDOW_SEGMENTS):
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
        self.names = tuple(names)
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
        self.window_segments = max(1, window_segments)
        #: The stubs' signed metadata documents already verified (shared by subsets).
        self.verified = metadata_mod.Verified(public_key)
        self._writing = {}
        self._writing_lock = threading.Lock()

    def subset(self, clouds):
        """The same protocol (keys, executor, listener, limits) over other ``clouds``."""
        subset = DepSkyCA(clouds, self.f, self.public_key, self.private_key, self.executor,
                          self.fault_listener, self.timeout, self.straggler_grace,
                          self.segment_size, self.offload, self.window_segments)
        subset.verified = self.verified
        return subset

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
        # Evidence of misbehaviour outranks mere unavailability for the same cloud; the
        # first evidence (e.g. stale metadata before the missing value object it implies)
        # is the one kept.
        if fault.cloud not in faults or (kind == FAULTY and faults[fault.cloud].kind != FAULTY):
            faults[fault.cloud] = fault
        if self.fault_listener is not None:
            self.fault_listener(data_unit, fault)

    @staticmethod
    def _count_ok(results):
        return sum(1 for ok, _ in results.values() if ok)

    def _track(self, data_unit, index, future):
        """Remember that this writer is uploading ``data_unit`` to cloud ``index``."""
        key = (data_unit, self.names[index])
        with self._writing_lock:
            self._writing[key] = self._writing.get(key, 0) + 1

        def finished(_future):
            with self._writing_lock:
                left = self._writing[key] - 1
                if left:
                    self._writing[key] = left
                else:
                    del self._writing[key]
        future.add_done_callback(finished)
        return future

    def _writing_now(self, data_unit):
        """The clouds this writer is still uploading ``data_unit`` to, right now.

        A reader takes this before its first request and does not judge those clouds
        on a missing or older version: they are behind because the write's quorum did not
        wait for them, not because they lost or replay anything. Every other cloud had
        acknowledged its uploads before the reader asked it.
        """
        with self._writing_lock:
            return frozenset(index for index, name in enumerate(self.names)
                             if (data_unit, name) in self._writing)

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
        # Inline calls would wait for pieces not produced yet: encode first, then upload.
        streaming = not isinstance(self.executor, InlineExecutor)
        streams = [_PieceStream(2 * self.window_segments if streaming else 0)
                   for _ in range(self.n)]
        key = value_key(data_unit, version)

        length = None
        if size is not None:
            length = coding.value_object_bytes(size, self.segment_size, self.n, self.f)
            chunks = _exactly(chunks, size)

        def put_value(index):
            self.clouds[index].put_stream(key, iter(streams[index]), length)

        def submit_values():
            return {self._track(data_unit, index, self.executor.submit(put_value, index)):
                    index for index in range(self.n)}

        futures = submit_values() if streaming else None
        size = 0
        quorum = self.n - self.f
        try:
            for index, plaintext, last in _segments(chunks, self.segment_size):
                pieces = encoder.encode(index, plaintext, last)
                hashes = self.offload(reading.piece_hashes, pieces)
                for stream, piece, digest in zip(streams, pieces, hashes):
                    stream.hashes.append(digest)
                    stream.feed(piece, self.timeout)
                if sum(1 for stream in streams if stream.dropped is None) < quorum:
                    raise errors.QuorumError('write (value phase)', data_unit, quorum, {
                        self.clouds[i].name: stream.dropped
                        for i, stream in enumerate(streams) if stream.dropped})
                size += len(plaintext)
        except BaseException as exc:
            for stream in streams:
                stream.abort(exc)
            # Aborted uploads never complete; they end at their next piece (a provider's
            # pending multipart upload is aborted then). Wait for that, so the refusal
            # leaves nothing behind when it is answered; removing leftovers is best effort.
            if futures:
                concurrent.futures.wait(futures, timeout=self.timeout)
            self._discard_version(data_unit, version)
            raise
        for index, stream in enumerate(streams):
            stream.close(encoder.trailer(index, stream.hashes))
        if futures is None:
            futures = submit_values()
        meta = metadata_mod.Metadata(
            data_unit=data_unit, version=version, n=self.n, f=self.f, size=size,
            segment_size=self.segment_size, nonce=encoder.nonce,
            digests=tuple(stream.hexdigest() for stream in streams),
            writer=metadata_mod.key_id(self.public_key), clouds=self.names)
        signed = metadata_mod.sign(meta, self.private_key)
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

        results = self._collect(
            {self._track(data_unit, index, self.executor.submit(put_metadata, index)): index
             for index in range(self.n)},
            'put', lambda r: self._count_ok(r) >= quorum)
        for index, (ok, exc) in sorted(results.items()):
            if not ok:
                self._fault(faults, index, UNAVAILABLE, str(exc), data_unit)
        if self._count_ok(results) < quorum:
            raise errors.QuorumError('write (metadata phase)', data_unit, quorum,
                                     {fault.cloud: fault.reason for fault in faults.values()})
        # Acknowledged: both the value object and the metadata (a cloud dropped from the
        # value phase may still take the metadata; one still uploading is not counted).
        stored = {index for future, index in futures.items()
                  if future.done() and not future.cancelled() and future.exception() is None}
        acked = [self.clouds[index].name for index, (ok, _) in sorted(results.items())
                 if ok and index in stored]
        return WriteResult(metadata=meta, acked=acked, faults=faults, signed=signed)

    def _discard_version(self, data_unit, version):
        """Best effort: remove value objects of a version that never became current."""
        def delete_value(index):
            self.clouds[index].delete(value_key(data_unit, version))
        self._submit(delete_value, range(self.n))

    def discard_version(self, data_unit, version):
        """Best-effort garbage collection of an old version's value objects (no waiting)."""
        self._discard_version(data_unit, version)

    # -- read -----------------------------------------------------------------------------

    def _get_metadata(self, data_unit, index, own_clouds=True):
        try:
            raw = self.clouds[index].get(metadata_key(data_unit),
                                         metadata_mod.MAX_METADATA_BYTES)
        except errors.BackendNotFound:
            return None
        except errors.ObjectTooLarge:
            raise errors.MetadataError('(document)', 'longer than %d bytes (reading stopped '
                                       'there)' % metadata_mod.MAX_METADATA_BYTES)
        meta = metadata_mod.parse(raw, self.public_key, data_unit)
        if own_clouds:
            self._check_placement(meta)
        return meta, raw

    def _check_placement(self, meta):
        """MetadataError unless ``meta`` is a version stored on these clouds."""
        if meta.clouds is not None and meta.clouds != self.names:
            raise errors.MetadataError('clouds', 'the version is stored on %s, read from %s'
                                       % (', '.join(meta.clouds), ', '.join(self.names)))
        if meta.n != self.n or meta.f != self.f:
            raise errors.MetadataError('n', 'n=%d, f=%d; read with n=%d, f=%d'
                                       % (meta.n, meta.f, self.n, self.f))

    def _judge_metadata(self, data_unit, index, answer, best_version, faults, wait_all,
                        writing, faults_dict=True):
        """Report a cloud whose metadata answer is missing or older than the newest.

        Clouds in ``writing`` (see :meth:`_writing_now`) are not judged.
        """
        if index in writing:
            return
        target = faults if faults_dict else {}
        if answer is None:
            self._fault(target, index, UNAVAILABLE if wait_all else FAULTY,
                        'missing metadata of version %d' % best_version, data_unit)
        elif isinstance(answer, tuple) and answer[0].version < best_version:
            self._fault(target, index, FAULTY, 'stale metadata: version %d, newest is %d'
                        % (answer[0].version, best_version), data_unit)

    def _read_metadata(self, data_unit, wait_all=False, late=None, writing=None):
        """Return ``(best, answers, faults)``: the highest valid metadata (or None).

        With ``late`` (a dict), the clouds that had not answered when the quorum was
        reached are left running and put there, for the caller to judge afterwards.
        ``writing``: the caller's :meth:`_writing_now`, taken before its first request.
        """
        quorum = self.n - self.f
        if writing is None:
            writing = self._writing_now(data_unit)

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
                                     wait_all, writing)
        return best, answers, faults

    def _judge_late(self, data_unit, late, version, faults, writing):
        """Judge the metadata answers that came after the quorum.

        Those in within ``straggler_grace`` go into ``faults``; the others are reported
        to the fault listener whenever they arrive, so a stale or corrupting cloud is
        reported however slowly it answers.
        """
        done, pending = concurrent.futures.wait(list(late), timeout=self.straggler_grace)

        def judge(future, into_faults):
            index = late[future]
            try:
                answer = future.result()
            except errors.MetadataError as exc:
                self._fault(faults if into_faults else {}, index, FAULTY,
                            'bad metadata: %s' % exc, data_unit)
                return
            except Exception:  # unreachable clouds are not judged on a successful read
                return
            self._judge_metadata(data_unit, index, answer, version, faults, False,
                                 writing, into_faults)

        for future in done:
            judge(future, True)
        for future in pending:
            future.add_done_callback(lambda future: judge(future, False))

    def _prefetch(self, data_unit, version, size, start, stop):
        """Start fetching from clouds 0 .. f what a read of ``version`` will need."""
        guess = metadata_mod.Metadata(
            data_unit=data_unit, version=version, n=self.n, f=self.f, size=size,
            segment_size=self.segment_size, nonce=b'\0' * coding.NONCE_BYTES,
            digests=('0' * 64,) * self.n, writer='0' * 64, clouds=self.names)
        reader = reading.VersionReader(self, guess, [], {}, direct=True)
        window = reader.first_window(start, stop)
        for index in range(self.f + 1):
            reader.open_source(index, window)
        return guess, reader._opening, reader._early, (reader._slots, reader._slots_lock)

    def open(self, data_unit, min_version=None, expected_version=None, expected_size=None,
             start=0, stop=None, signed_metadata=None):
        """Verify the newest version and return :class:`OpenResult` (decoded lazily).

        ``signed_metadata``: the version's signed metadata from a trusted place (the
        Swift stub keeps :attr:`WriteResult.signed`). Its signature is still checked (once
        per distinct document: :class:`~.metadata.Verified`); the
        clouds' metadata is then not read at all (a version the caller pins needs no
        quorum to find it): only f + 1 value objects are fetched, from clouds 0 .. f
        first. ``check`` judges the metadata every cloud holds.

        ``expected_version`` and ``expected_size`` (the Swift stub pins both) let value
        objects of clouds 0 .. f be fetched while the metadata is still being read, for a
        read of plaintext bytes ``start`` .. ``stop - 1`` (the caller's first range); they
        are used only if the metadata quorum names that version and size, and only after
        they match its digests. Raises :class:`~.errors.NotFoundError` when a quorum
        holds no valid metadata, :class:`~.errors.StaleError` when the newest valid
        version is below ``min_version``, :class:`~.errors.QuorumError` when too few
        clouds answer or too few value objects verify.
        """
        writing = self._writing_now(data_unit)
        if signed_metadata is not None:
            try:
                meta = self.verified.parse(signed_metadata, data_unit)
                self._check_placement(meta)
            except errors.MetadataError:
                meta = None     # then the clouds' metadata decides, as without it
            if meta is not None:
                if min_version is not None and meta.version < min_version:
                    raise errors.StaleError(data_unit, meta.version, min_version)
                reader = reading.VersionReader(self, meta, list(range(self.n)), {}, writing,
                                               direct=True)
                reader.ensure_sources(reader.first_window(start, stop))
                return OpenResult(metadata=meta, faults=reader.faults, reader=reader)
        prefetched = None
        if expected_version is not None and expected_size is not None:
            prefetched = self._prefetch(data_unit, expected_version, expected_size, start,
                                        stop)
        late = {}
        best, answers, faults = self._read_metadata(data_unit, late=late, writing=writing)
        if best is None:
            if min_version is not None:
                raise errors.StaleError(data_unit, None, min_version)
            raise errors.NotFoundError(data_unit)
        meta = best[0]
        if min_version is not None and meta.version < min_version:
            raise errors.StaleError(data_unit, meta.version, min_version)
        # Clouds that vouched for this version first, then the others.
        current = [index for index, value in sorted(answers.items())
                   if isinstance(value, tuple) and value[0].version == meta.version]
        order = current + [index for index in range(self.n) if index not in current]
        reader = reading.VersionReader(self, meta, order, faults, writing, direct=True)
        if prefetched is not None:
            guess, opening, early, slots = prefetched
            if coding.layout_of(guess) == reader.layout and guess.version == meta.version \
                    and meta.value_format == coding.VALUE_FORMAT:
                reader.adopt(opening, early, slots)
            else:
                for future in list(opening) + [future for fetches in early.values()
                                               for future in fetches.values()]:
                    future.cancel()
        reader.ensure_sources(reader.first_window(start, stop))
        # Clouds slower than the quorum have usually answered by now; judge them too.
        self._judge_late(data_unit, late, meta.version, faults, writing)
        return OpenResult(metadata=meta, faults=faults, reader=reader)

    def read(self, data_unit, min_version=None, expected_version=None, expected_size=None):
        """Return :class:`ReadResult` with the newest version's plaintext (see :meth:`open`)."""
        opened = self.open(data_unit, min_version, expected_version, expected_size)
        return ReadResult(data=b''.join(opened.segments), metadata=opened.metadata,
                          faults=opened.faults)

    def read_metadata(self, data_unit):
        """Newest valid :class:`~.metadata.Metadata` on a quorum (no value objects read)."""
        best, _, _ = self._read_metadata(data_unit)
        if best is None:
            raise errors.NotFoundError(data_unit)
        return best[0]

    # -- check and repair -----------------------------------------------------------------

    def _check_all(self, data_unit):
        """``(meta, signed, answers, faults, verified)`` with every cloud judged."""
        writing = self._writing_now(data_unit)
        best, answers, faults = self._read_metadata(data_unit, wait_all=True, writing=writing)
        if best is None:
            raise errors.NotFoundError(data_unit)
        meta, signed = best
        verified = {}
        results = self._collect(
            self._submit(lambda index: reading.verify_cloud(self, meta, index), range(self.n)),
            'get', lambda r: False)
        judge = reading.VersionReader(self, meta, [], faults, writing)
        for index, (ok, value) in sorted(results.items()):
            if ok:
                verified[index] = value
            else:
                judge.judge(index, value)
        return meta, signed, answers, faults, verified

    def check(self, data_unit):
        """Judge every cloud on ``data_unit``: :class:`CheckResult` with all faults found.

        Unlike a read, which stops at f + 1 verified value objects, this reads every
        cloud's metadata and whole value object (window by window).
        """
        meta, _, _, faults, _ = self._check_all(data_unit)
        return CheckResult(data_unit=data_unit, version=meta.version, faults=faults)

    def clouds_of(self, data_unit):
        """The cloud names ``data_unit``'s newest valid version is stored on.

        Asks every cloud (an object of a restricted project lives on a subset of them);
        format 2 versions name none: every cloud, in order. Raises
        :class:`~.errors.NotFoundError` when no cloud holds valid metadata.
        """
        results = self._collect(
            self._submit(lambda index: self._get_metadata(data_unit, index, False),
                         range(self.n)), 'get', lambda r: False)
        valid = [value[0] for ok, value in results.values() if ok and value is not None]
        if not valid:
            raise errors.NotFoundError(data_unit)
        newest = max(valid, key=lambda meta: meta.version)
        return newest.clouds or self.names

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
        erasure code reconstructs its fragments, Lagrange interpolation its key share) and
        must match the digest in the signed metadata before its upload completes. With
        ``collect_garbage`` the value objects of older versions are deleted too.
        """
        meta, signed, answers, faults, verified = self._check_all(data_unit)
        if len(verified) < self.f + 1:
            raise errors.QuorumError('repair', data_unit, self.f + 1,
                                     {fault.cloud: fault.reason for fault in faults.values()})
        repaired = {}
        failed = {}
        missing = [index for index in range(self.n) if index not in verified]
        rebuilt = {}
        if missing:
            sources = [verified[index] for index in sorted(verified)[:self.f + 1]]
            rebuilt = reading.rebuilt_value_objects(self, meta, sources, missing)
        metadata_targets = [index for index in range(self.n)
                            if not (isinstance(answers.get(index), tuple)
                                    and answers[index][1] == signed)]
        key = value_key(data_unit, meta.version)
        length = coding.layout_of(meta).total

        def fix(index):
            cloud = self.clouds[index]
            done = []
            if index in rebuilt:
                cloud.put_stream(key, rebuilt[index], length)
                done.append('value object')
            if index in metadata_targets:
                cloud.put(metadata_key(data_unit), signed)
                done.append('metadata')
            if collect_garbage:
                keep = {metadata_key(data_unit), key}
                for name in cloud.list(data_unit + '/'):
                    if name not in keep:
                        cloud.delete(name)
                        done.append('deleted %s' % name.split('/', 1)[1])
            return done

        targets = sorted(set(rebuilt) | set(metadata_targets)
                         | (set(range(self.n)) if collect_garbage else set()))
        # The rebuilt uploads share the windows they are rebuilt from: run them together.
        results = self._collect(self._submit(fix, targets), 'repair', lambda r: False)
        for index, (ok, value) in results.items():
            name = self.clouds[index].name
            if ok and value:
                repaired[name] = ', '.join(value)
            elif not ok:
                failed[name] = str(value)
        return RepairResult(data_unit=data_unit, version=meta.version, repaired=repaired,
                            failed=failed)

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
