"""Reading one verified version from the clouds: window by window, verified piece by piece.

:class:`VersionReader` serves :meth:`.protocol.DepSkyCA.open` (a GET, a range), and the
helpers below serve ``check`` and ``repair``. A reader takes f + 1 clouds whose value
objects verify against the signed metadata (one more per failure: Algorithm 2 of Bessani
et al. 2011) and decodes from them:

- a format 3 object larger than one window: each cloud's trailer (its piece hashes) is
  fetched and checked against the signed digest, then each *window* of segments (at most
  ``window_segments``, only those a read needs) with one ranged read per cloud; every
  piece is checked against its hash before it is decoded, so memory is bounded by the
  window (and the one fetched ahead), never the object, and a cloud serving a bad piece
  mid-object is reported and replaced by the next one for the rest of the read;
- a format 3 object within one window, and every format 2 object (whose digest covers the
  whole value object): each cloud's whole value object, read to at most one byte past its
  signed length.

A reader of a GET (``direct``) receives each cloud's pieces straight into its buffers
(:meth:`.backends.base.Backend.read_into`), the data fragments of a segment side by side in
one ciphertext buffer that AES-GCM then decrypts in place (:class:`_Slots`), and hashes
each piece part by part as it arrives; ``check`` and ``repair`` cut their pieces as bytes
(they upload them).

Faults are judged as :mod:`.protocol` describes; nothing here reads configuration.
"""
import concurrent.futures
import ctypes
import hashlib
import threading

from tclouds_openstack.cloudstore import coding
from tclouds_openstack.cloudstore import errors
from tclouds_openstack.cloudstore import shamir

FAULTY = 'faulty'
UNAVAILABLE = 'unavailable'
#: Fewer bytes than this are hashed on the calling thread: handing them to ``offload``
#: (eventlet's tpool in the proxy: waking another thread) costs more CPU than SHA-256 of
#: them (a trailer of a 1 GiB object is 33 KiB), and stalls the caller for < 0.2 ms.
OFFLOAD_BYTES = 256 * 1024


try:
    # CPython's own constructor, which leaves the bytes as malloc gave them (bytearray(n)
    # zeroes them: 5 % of a GET's CPU, the buffers being as large as the data).
    _NEW_BYTEARRAY = ctypes.pythonapi.PyByteArray_FromStringAndSize
    _NEW_BYTEARRAY.restype = ctypes.py_object
    _NEW_BYTEARRAY.argtypes = (ctypes.c_char_p, ctypes.c_ssize_t)
except (AttributeError, ValueError):    # (another interpreter)
    _NEW_BYTEARRAY = None


def receiving_buffer(size):
    """A writable buffer of ``size`` bytes to receive into, not cleared first.

    Its old contents never leave it: a piece is used only once every byte of it was
    received and its SHA-256 matched the verified trailer (:meth:`VersionReader._receive`
    hashes only pieces received whole), and AES-GCM decrypts only from such pieces.
    """
    if _NEW_BYTEARRAY is None or size <= 0:
        return bytearray(size)
    return _NEW_BYTEARRAY(None, size)


def value_key(data_unit, version):
    return '%s/v%020d' % (data_unit, version)


def piece_hashes(pieces):
    return [coding.piece_hash(piece) for piece in pieces]


def windows(first, stop, size):
    """The windows ``(first, stop)`` of at most ``size`` segments covering a read."""
    return [(start, min(start + size, stop)) for start in range(first, stop, size)]


def _inline(fn, *args):
    return fn(*args)


class _Source:
    """One cloud whose value object verified against the metadata (its share and hashes).

    Whole value objects keep their pieces; larger ones fetch a window at a time.
    """

    def __init__(self, index, share, hashes=None, pieces=None):
        self.index = index
        self.share = share
        self.hashes = hashes
        self.pieces = pieces
        self.windows = {}   # (first, stop) -> future of the window's pieces


class _Slots:
    """Where one read's pieces of segments ``first`` .. ``stop - 1`` are received.

    The data fragments' pieces (clouds 0 .. k - 1) of a segment go into place in one
    ciphertext buffer of that segment (see :class:`.coding.Piece`); each cloud's slot is
    handed out once (a cloud fetching the same segments again, or any other cloud, gets
    buffers of its own), so no two fetches ever write the same bytes.
    """

    def __init__(self, layout, k):
        self.layout = layout
        self.k = k
        self._lock = threading.Lock()
        self._claimed = set()
        self._buffers = {}      # segment -> ciphertext buffer

    def pieces(self, index, first, stop):
        """Empty :class:`.coding.Piece` s of cloud ``index`` for segments first .. stop - 1."""
        where = self.layout
        with self._lock:
            shared = index < self.k and index not in self._claimed
            self._claimed.add(index)
            pieces = []
            for segment in range(first, stop):
                length = where.piece(segment)
                header = bytearray(min(length, coding.FRAGMENT_HEADER_BYTES))
                size = length - len(header)
                if shared:
                    buffer = self._buffers.get(segment)
                    if buffer is None:
                        buffer = self._buffers[segment] = receiving_buffer(self.k * size)
                    payload = memoryview(buffer)[index * size:(index + 1) * size]
                    pieces.append(coding.Piece(header, payload, buffer))
                else:
                    pieces.append(coding.Piece(header, memoryview(receiving_buffer(size))))
        return pieces


class VersionReader:
    """The plaintext of one verified version, from f + 1 clouds, window by window.

    Iterating yields every segment's plaintext; :meth:`read` yields the bytes of a range
    (only the segments it needs are fetched and decoded). Faults found while reading are
    reported like those of :meth:`.protocol.DepSkyCA.open` and the faulty cloud is
    replaced by the next one; :class:`~.errors.QuorumError` when fewer than f + 1 remain.
    ``writing``: the clouds still being written when the read began (not judged on a
    missing object). ``offload`` runs the hashing of trailers and format 2 value objects
    (eventlet's tpool in the proxy; pieces are hashed as they arrive).
    """

    def __init__(self, depsky, meta, order, faults, writing=frozenset(), offload=None,
                 direct=False):
        self.depsky = depsky
        #: Pieces received into place (:class:`_Slots`) for decoding here; otherwise
        #: cut from the cloud's chunks as bytes (``check``, ``repair``: they upload them).
        self.direct = direct
        self._slots = {}        # window -> _Slots
        self._slots_lock = threading.Lock()
        self.writing = writing
        self.metadata = meta
        self.faults = faults
        self.offload = offload or depsky.offload
        self.layout = coding.layout_of(meta)
        self.k = meta.f + 1
        self.window = depsky.window_segments
        self.whole = (meta.value_format == coding.FORMAT_2
                      or self.layout.count <= self.window)
        self.key = value_key(meta.data_unit, meta.version)
        self._candidates = list(order)
        self._opening = {}      # future -> (cloud index, 'whole' or 'trailer')
        self._early = {}        # cloud index -> {window: future} while it is verified
        self._tried = set()
        self._sources = []
        self._decoder = None

    def first_window(self, start=0, stop=None):
        """The first window of a read of plaintext bytes ``start`` .. ``stop - 1``."""
        size = self.metadata.segment_size
        first = min(start // size, self.layout.count - 1)
        last = self.layout.count if stop is None else max(first + 1, -(-stop // size))
        return windows(first, min(last, self.layout.count), self.window)[0]

    def adopt(self, opening, early, slots=None):
        """Use fetches already started (:meth:`.protocol.DepSkyCA.open`'s prefetch)."""
        if slots is not None:
            # the same buffers: the prefetched clouds' pieces land beside the others'
            self._slots, self._slots_lock = slots
        self._opening.update(opening)
        self._early.update(early)
        self._tried.update(index for index, _ in opening.values())

    # -- fetching -------------------------------------------------------------------------

    def open_source(self, index, window):
        """Start fetching what verifies cloud ``index`` (and ``window``, its first)."""
        self._tried.add(index)
        executor = self.depsky.executor
        where = self.layout
        if self.whole:
            self._opening[executor.submit(self.fetch_whole, index)] = (index, 'whole')
            return
        cloud = self.depsky.clouds[index]
        future = executor.submit(cloud.get_range, self.key, where.pieces_end,
                                 where.trailer_bytes)
        self._opening[future] = (index, 'trailer')
        self._window_future(index, window)

    def fetch_whole(self, index):
        """Cloud ``index``'s whole value object, read up to one byte past its signed length.

        Format 2: its bytes; format 3: ``(pieces, trailer, piece hashes)``, each piece
        hashed as it arrived (see :meth:`_receive` and :func:`.coding.split`).
        """
        cloud = self.depsky.clouds[index]
        where = self.layout
        if self.metadata.value_format == coding.FORMAT_2:
            return cloud.get(self.key, where.total)
        if self.direct:
            trailer, surplus = bytearray(where.trailer_bytes), bytearray(1)
            pieces, digests, received, filled = self._receive(index, 0, where.count, 0,
                                                              [trailer, surplus])
            if filled[1]:
                raise errors.ObjectTooLarge(cloud.name, self.key, where.total)
            if filled[0] != len(trailer) or len(digests) != len(pieces):
                raise errors.FragmentError('length', received, 'value object ends before '
                                           'the %d bytes the metadata implies' % where.total)
            return pieces, bytes(trailer), digests
        lengths = [where.piece(segment) for segment in range(where.count)]
        digests = []
        parts, surplus = coding.split(cloud.iter_range(self.key, 0, where.total + 1),
                                      lengths + [where.trailer_bytes], digests)
        if surplus:
            raise errors.ObjectTooLarge(cloud.name, self.key, where.total)
        if len(parts) != len(lengths) + 1:
            raise errors.FragmentError('length', sum(map(len, parts)), 'value object ends '
                                       'before the %d bytes the metadata implies'
                                       % where.total)
        return parts[:-1], parts[-1], digests[:-1]

    def fetch_window(self, index, window):
        """``(pieces, their hashes)`` of segments ``window`` from cloud ``index``.

        One ranged read; each piece is hashed as it arrives (see :meth:`_receive` and
        :func:`.coding.split`).
        """
        first, stop = window
        start, length = self.layout.span(first, stop)
        if self.direct:
            pieces, digests, received, _ = self._receive(index, first, stop, start)
            if len(digests) != len(pieces):
                raise errors.FragmentError('length', start + received, 'segments %d-%d: the '
                                           'value object ends before the %d bytes the '
                                           'metadata implies' % (first, stop - 1, length))
            return pieces, digests
        lengths = [self.layout.piece(segment) for segment in range(first, stop)]
        digests = []
        pieces, _ = coding.split(self.depsky.clouds[index].iter_range(self.key, start, length),
                                 lengths, digests)
        if len(pieces) != len(lengths):
            raise errors.FragmentError('length', start + sum(map(len, pieces)), 'segments '
                                       '%d-%d: the value object ends before the %d bytes '
                                       'the metadata implies' % (first, stop - 1, length))
        return pieces, digests

    def _receive(self, index, first, stop, start, extra=()):
        """Receive cloud ``index``'s pieces of segments first .. stop - 1 (from ``start``).

        Returns ``(pieces, digests, received, filled)``: the :class:`.coding.Piece` s,
        the SHA-256 of each piece received whole (hashed part by part as the parts
        arrive, while they are in the CPU's cache), the bytes received and those received
        into each buffer of ``extra`` (read after the pieces). One ranged read.
        """
        with self._slots_lock:
            slots = self._slots.get((first, stop))
            if slots is None:
                slots = self._slots[first, stop] = _Slots(self.layout, self.k)
        pieces = slots.pieces(index, first, stop)
        views = []
        for piece in pieces:
            views += (memoryview(piece.header), piece.payload)
        views += [memoryview(buffer) for buffer in extra]
        hashers = [hashlib.sha256() for _ in pieces]
        filled = [0] * len(views)
        for number, part in self.depsky.clouds[index].read_into(self.key, start, views):
            if number < 2 * len(pieces):
                hashers[number // 2].update(part)
            filled[number] += len(part)
        digests = []
        for number, hasher in enumerate(hashers):
            if filled[2 * number] + filled[2 * number + 1] != len(pieces[number]):
                break
            digests.append(hasher.digest())
        return pieces, digests, sum(filled), filled[2 * len(pieces):]

    def _window_future(self, index, window, source=None):
        future = self.depsky.executor.submit(self.fetch_window, index, window)
        if source is not None:
            source.windows[window] = future
        else:
            self._early.setdefault(index, {})[window] = future
        return future

    # -- verifying ------------------------------------------------------------------------

    def verify(self, index, what, data):
        """A :class:`_Source` for ``index`` from what was fetched; raises FragmentError."""
        meta = self.metadata
        if what == 'whole':
            if meta.value_format == coding.FORMAT_2:
                if self._digest(data) != meta.digests[index]:
                    raise errors.FragmentError('digest', 0, 'SHA-256 of the %d-byte value '
                                               'object does not match the signed metadata'
                                               % len(data))
                share, pieces = coding.parse_value_object(data, index, meta)
                return _Source(index, share, pieces=pieces)
            pieces, trailer, digests = data
            share, hashes = self._check_trailer(index, trailer)
            self._check_pieces(digests, hashes, 0)
            return _Source(index, share, pieces=pieces)
        share, hashes = self._check_trailer(index, data)
        return _Source(index, share, hashes=hashes)

    def _digest(self, data):
        if len(data) < OFFLOAD_BYTES:
            return coding.digest(data)
        return self.offload(coding.digest, data)

    def _check_trailer(self, index, trailer):
        if self._digest(trailer) != self.metadata.digests[index]:
            raise errors.FragmentError('digest', self.layout.pieces_end, 'SHA-256 of the '
                                       '%d-byte trailer does not match the signed metadata'
                                       % len(trailer))
        return coding.parse_trailer(trailer, index, self.metadata)

    def _check_pieces(self, digests, hashes, first):
        """FragmentError unless the pieces of ``digests`` (segments ``first`` ..) match.

        ``digests``: the SHA-256 of each piece as it was cut; ``hashes``: the verified
        trailer's.
        """
        for segment, digest in enumerate(digests, first):
            if digest != hashes[segment]:
                raise errors.FragmentError('piece', self.layout.offset(segment), 'piece of '
                                           'segment %d does not match its hash in the '
                                           'verified trailer' % segment)

    def judge(self, index, exc):
        """Report cloud ``index`` for what fetching or verifying its value object raised."""
        meta = self.metadata

        def fault(kind, reason):
            self.depsky._fault(self.faults, index, kind, reason, meta.data_unit)

        if isinstance(exc, errors.BackendNotFound):
            if index not in self.writing:
                fault(FAULTY, 'missing value object of version %d' % meta.version)
        elif isinstance(exc, errors.ObjectTooLarge):
            fault(FAULTY, 'bad value object of version %d: longer than the %d bytes the '
                  'signed metadata implies' % (meta.version, exc.limit))
        elif isinstance(exc, errors.FragmentError):
            fault(FAULTY, 'bad value object of version %d: %s' % (meta.version, exc))
        else:
            fault(UNAVAILABLE, str(self.depsky._wrap(index, 'get', exc)))

    def ensure_sources(self, window):
        """Verify clouds until f + 1 are usable (Algorithm 2: one more per failure)."""
        timeout = self.depsky.timeout
        while len(self._sources) < self.k:
            while self._candidates and \
                    len(self._sources) + len({i for i, _ in self._opening.values()}) < self.k:
                index = self._candidates.pop(0)
                if index not in self._tried:
                    self.open_source(index, window)
            if not self._opening:
                raise errors.QuorumError(
                    'read', self.metadata.data_unit, self.k,
                    {fault.cloud: fault.reason for fault in self.faults.values()})
            done, _ = concurrent.futures.wait(list(self._opening), timeout=timeout,
                                              return_when=concurrent.futures.FIRST_COMPLETED)
            if not done:
                for future, (index, _) in list(self._opening.items()):
                    self.depsky._fault(self.faults, index, UNAVAILABLE, 'value object: no '
                                       'answer within %.1f s' % timeout,
                                       self.metadata.data_unit)
                    self._opening.pop(future)
                    self._early.pop(index, None)
                continue
            for future in done:
                index, what = self._opening.pop(future)
                try:
                    source = self.verify(index, what, future.result())
                except Exception as exc:
                    self.judge(index, exc)
                    self._early.pop(index, None)
                    continue
                if len(self._sources) >= self.k:
                    continue        # a prefetched extra: not needed
                source.windows.update(self._early.pop(index, {}))
                self._sources.append(source)
        if self._decoder is None:
            self._decoder = coding.SegmentDecoder(self.metadata,
                                                  [source.share for source in self._sources])

    def window_pieces(self, source, window):
        """The verified pieces of segments ``window`` from ``source``; raises on a fault."""
        if source.pieces is not None:
            return source.pieces[window[0]:window[1]]
        future = source.windows.pop(window, None)
        if future is None:
            future = self._window_future(source.index, window, source)
            source.windows.pop(window)
        try:
            pieces, digests = future.result(timeout=self.depsky.timeout)
        except concurrent.futures.TimeoutError:
            raise errors.BackendError(self.depsky.clouds[source.index].name, 'get',
                                      'segments %d-%d: no answer within %.1f s'
                                      % (window[0], window[1] - 1, self.depsky.timeout))
        self._check_pieces(digests, source.hashes, window[0])
        return pieces

    def request(self, wanted):
        """Start fetching the ``wanted`` windows from every source (read-ahead)."""
        for source in self._sources:
            if source.pieces is None:
                for window in wanted:
                    if window not in source.windows:
                        self._window_future(source.index, window, source)

    def _window(self, window, ahead):
        """``{cloud index: pieces}`` of ``window``, replacing failing sources."""
        collected = {}
        while True:
            self.ensure_sources(window)
            self.request([window] + ahead)
            complete = True
            for source in list(self._sources):
                if source.index in collected:
                    continue
                try:
                    collected[source.index] = self.window_pieces(source, window)
                except Exception as exc:
                    self.judge(source.index, exc)
                    self._sources.remove(source)
                    for future in source.windows.values():
                        future.cancel()
                    complete = False
            if complete:
                return {source.index: collected[source.index] for source in self._sources}

    # -- plaintext ------------------------------------------------------------------------

    def segments(self, first=0, stop=None):
        """Yield the plaintext of segments ``first`` .. ``stop - 1``."""
        stop = self.layout.count if stop is None else min(stop, self.layout.count)
        planned = windows(first, stop, self.window)
        for position, window in enumerate(planned):
            pieces = self._window(window, planned[position + 1:position + 2])
            for segment in range(*window):
                # Decoding the data fragments is a copy and AES-GCM is fast: no offload.
                yield self._decoder.decode(segment, {
                    index: part[segment - window[0]] for index, part in pieces.items()})
            del pieces
            if not self.whole:
                with self._slots_lock:
                    self._slots.pop(window, None)   # read again: into new buffers

    def __iter__(self):
        return self.segments()

    def read(self, start, stop):
        """Yield the plaintext bytes ``start`` .. ``stop - 1`` (only their segments)."""
        stop = min(stop, self.metadata.size)
        if start >= stop:
            return
        size = self.metadata.segment_size
        first = start // size
        for number, plaintext in enumerate(self.segments(first, (stop - 1) // size + 1),
                                           first):
            base = number * size
            yield plaintext[max(start - base, 0):stop - base]

    def close(self):
        """Drop what is still being fetched (a client that went away)."""
        for source in self._sources:
            for future in source.windows.values():
                future.cancel()
            source.windows.clear()


def verify_cloud(depsky, meta, index):
    """Verify cloud ``index``'s whole value object of ``meta``, window by window.

    Returns its :class:`_Source` (for ``repair``); raises what :meth:`VersionReader.judge`
    judges. Runs in an executor thread (no offload); memory stays within one window.
    """
    reader = VersionReader(depsky, meta, [], {}, offload=_inline)
    cloud = depsky.clouds[index]
    where = reader.layout
    if reader.whole:
        return reader.verify(index, 'whole', reader.fetch_whole(index))
    source = reader.verify(index, 'trailer', cloud.get_range(reader.key, where.pieces_end,
                                                             where.trailer_bytes))
    for window in windows(0, where.count, reader.window):
        reader._check_pieces(reader.fetch_window(index, window)[1], source.hashes, window[0])
    # Nothing may follow the trailer (a whole read would have refused it too).
    if cloud.get_range(reader.key, where.total, 1):
        raise errors.ObjectTooLarge(cloud.name, reader.key, where.total)
    return source


def rebuilt_value_objects(depsky, meta, sources, missing):
    """Chunk iterators of the value objects of the ``missing`` clouds.

    Rebuilt window by window from the verified ``sources`` (the erasure code reconstructs
    the fragments, Lagrange interpolation the key shares); each raises before its last
    chunk unless the result matches the signed digest, so no upload of a wrong object
    completes. Needs no writer key.
    """
    reader = VersionReader(depsky, meta, [], {}, offload=_inline)
    reader._sources = sources
    where = reader.layout
    k = meta.f + 1
    driver = coding.ec_driver(k, meta.n - k)
    shares = {index: (index + 1, shamir.interpolate([s.share for s in sources], index + 1))
              for index in missing}
    planned = windows(0, where.count, reader.window)
    lock = threading.Lock()
    cache = {}

    def window_of(position):
        # The first rebuilt cloud to need a window decodes it for all of them (one window
        # is kept: a cloud that falls behind has it fetched again).
        with lock:
            if position not in cache:
                cache.clear()
                reader.request(planned[position:position + 2])
                first, stop = planned[position]
                parts = [reader.window_pieces(source, planned[position])
                         for source in sources]
                rebuilt = {index: [] for index in missing}
                for offset, segment in enumerate(range(first, stop)):
                    try:
                        pieces = driver.reconstruct([part[offset] for part in parts],
                                                    list(missing))
                    except Exception as exc:  # pyeclib's own error family
                        raise errors.FragmentError(
                            'fragment', where.offset(segment),
                            'reconstruction of segment %d failed: %s' % (segment, exc))
                    for index, piece in zip(missing, pieces):
                        rebuilt[index].append(piece)
                cache[position] = rebuilt
            return cache[position]

    def chunks(index):
        hashes = []
        whole = hashlib.sha256()
        if meta.value_format == coding.FORMAT_2:
            header = coding.value_header(index, shares[index])
            whole.update(header)
            yield header
        for position in range(len(planned)):
            pieces = window_of(position)[index]
            for piece in pieces:
                hashes.append(coding.piece_hash(piece))
                whole.update(piece)
            if meta.value_format == coding.FORMAT_2 and position == len(planned) - 1:
                # Format 2: the digest covers everything; hold back the last window.
                if whole.hexdigest() != meta.digests[index]:
                    raise errors.FragmentError('digest', 0, 'rebuilt value object does not '
                                               'match the signed digest')
            yield from pieces
        if meta.value_format == coding.FORMAT_3:
            trailer = coding.fixed_fields(coding.FORMAT_3, index, shares[index]) + \
                b''.join(hashes)
            if coding.digest(trailer) != meta.digests[index]:
                raise errors.FragmentError('digest', where.pieces_end, 'rebuilt value object '
                                           'does not match the signed digest')
            yield trailer

    return {index: chunks(index) for index in missing}
