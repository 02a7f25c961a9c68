"""The server's side of a Denoise call whose frames travel through shared memory.

A client on this host offers a segment it created (``DenoiseOptions.shared_memory``,
:mod:`emdenoise.shm.segments`). :meth:`SharedFrames.accept` maps it after checking its
owner, mode and key, and removes its name; the call's ``JobInfo`` then says whether the
segment was taken, or why not (the client falls back to chunks). Each ``SharedFrame``
request names a slot: the frame is read in place, and its float32 result is written
into the same slot when it fits (else it goes back as chunks). A segment offered for
reuse is kept mapped after a clean call (:mod:`emdenoise.server.segment_cache`).
"""

from __future__ import annotations

import threading

import numpy as np

from emdenoise.errors import InvalidInput
from emdenoise.shm.ring import LENDABLE, RESULT_ITEMSIZE, SLOTS
from emdenoise.server.segment_cache import SegmentCache
from emdenoise.shm.segments import HEADER_BYTES, SegmentRefused, available
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.wire import MAX_FRAME_BYTES, check_frame_bytes, check_header


def max_segment_bytes(max_frame_bytes: int) -> int:
    """Largest segment the server maps: the client's ring of :data:`~emdenoise.shm.ring.SLOTS` slots (and
    :data:`~emdenoise.shm.ring.LENDABLE` for lent results), each holding a frame of the per-frame limit and
    its float32 result (4 bytes a pixel, uint8 frames included)."""
    return HEADER_BYTES + (SLOTS + LENDABLE) * max(int(max_frame_bytes), 1) * RESULT_ITEMSIZE


class SharedFrames:
    """The segment one call's client offered: frames are read from it, results written to it.

    Parameters
    ----------
    segment : emdenoise.shm.segments.Segment
        The mapped segment (its name already removed).
    max_frame_bytes : int
        Largest frame a request may announce.
    cache : SegmentCache, optional
        Where the segment came from, and goes back to at :meth:`close`.
    kept : bool
        The cache keeps the mapping after a clean end of the call.
    """

    def __init__(self, segment, *, max_frame_bytes: int = MAX_FRAME_BYTES, cache: SegmentCache | None = None,
                 kept: bool = False):
        self.segment = segment
        self.max_frame_bytes = max_frame_bytes
        self.cache = cache
        self.kept = kept and cache is not None
        self._slots: dict[int, tuple[int, int]] = {}  # frame index -> (offset, capacity)
        self._lock = threading.Lock()

    @classmethod
    def accept(cls, offer: pb.SharedMemory, *, max_frame_bytes: int = MAX_FRAME_BYTES,
               cache: SegmentCache | None = None) -> tuple["SharedFrames | None", str]:
        """Map the offered segment (or take it from ``cache``, where a clean earlier call of the same
        client left it); ``(frames, "")``, or ``(None, why not)`` in one sentence.

        Never raises: a segment that cannot be used leaves the call on the gRPC byte path.
        """
        if not available():
            return None, "the server's host has no usable /dev/shm; frames travel as gRPC messages."
        cache = SegmentCache(max_segments=0) if cache is None else cache  # keeps nothing
        try:
            segment, kept = cache.lease(offer, max_size=max_segment_bytes(max_frame_bytes))
        except SegmentRefused as error:
            return None, str(error)
        except (OSError, ValueError) as error:
            return None, f"the server could not map shared-memory segment {offer.segment!r} ({error})."
        return cls(segment, max_frame_bytes=max_frame_bytes, cache=cache, kept=kept), ""

    def frame(self, message: pb.SharedFrame) -> np.ndarray:
        """The frame a request names, read-only in place; its slot is kept for the result.

        Raises
        ------
        InvalidInput
            A header the wire refuses, a frame larger than its slot, or a slot outside
            the segment.
        ResourceExhausted
            A frame above the server's per-frame limit.
        """
        index = int(message.frame_index)
        if not message.HasField("header"):
            raise InvalidInput(f"frame {index} in shared memory has no header (dtype and shape).")
        dtype, shape, nbytes = check_header(message.header, index)
        check_frame_bytes(nbytes, index, self.max_frame_bytes)
        offset, capacity = int(message.offset), int(message.capacity)
        if nbytes > capacity:
            raise InvalidInput(f"frame {index} needs {nbytes} bytes but its shared-memory slot holds {capacity}.")
        if offset < HEADER_BYTES or offset + capacity > self.segment.size:
            raise InvalidInput(
                f"frame {index}'s slot (bytes {offset} to {offset + capacity}) lies outside the shared-memory "
                f"segment's {HEADER_BYTES} to {self.segment.size}."
            )
        with self._lock:
            if self.segment.closed:
                raise InvalidInput(f"frame {index} arrived after the call's shared-memory segment was released.")
            view = self.segment.array(offset, dtype.newbyteorder("="), shape)
            self._slots[index] = (offset, capacity)
        view.flags.writeable = False
        return view

    def result_buffer(self, index: int, shape: tuple[int, ...]) -> np.ndarray | None:
        """A writable float32 view of frame ``index``'s slot where the engine may write the frame's result
        of ``shape`` itself (``Engine.denoise_frame(out=...)``), or None (the frame did not come through
        shared memory, or the result would not fit).

        The view starts where the frame does: the engine reads the frame before it writes the result.
        """
        with self._lock:
            slot = self._slots.get(index)
            if slot is None or self.segment.closed:
                return None
            offset, capacity = slot
            if int(np.prod(shape, dtype=np.int64)) * RESULT_ITEMSIZE > capacity:
                return None
            return self.segment.array(offset, np.float32, tuple(shape))

    def put_result(self, index: int, result: np.ndarray) -> pb.SharedFrame | None:
        """Write frame ``index``'s result into its slot (nothing to write when the engine wrote it there
        already, :meth:`result_buffer`); the message naming it, or None (send chunks).

        None when the frame did not come through shared memory or the result does not fit.
        """
        with self._lock:
            slot = self._slots.pop(index, None)
            if slot is None or self.segment.closed:
                return None
            offset, capacity = slot
            result = np.ascontiguousarray(result)
            if result.nbytes > capacity:
                return None
            target = self.segment.array(offset, result.dtype, result.shape)
            if target.__array_interface__["data"][0] != result.__array_interface__["data"][0]:
                np.copyto(target, result)
            del target
        return pb.SharedFrame(
            frame_index=index,
            header=pb.ArrayHeader(dtype=result.dtype.name, shape=list(result.shape)),
            offset=offset,
            capacity=capacity,
        )

    def close(self, *, clean: bool = False) -> None:
        """End the call's use of the segment: kept for the client's next call when the call ended
        ``clean`` (every result written, nothing in flight) and the segment is kept, else the
        mapping is released (at once, or when the last view of a frame is gone)."""
        with self._lock:
            unfinished = bool(self._slots)
            self._slots.clear()
        if self.cache is not None:
            self.cache.give_back(self.segment, keep=clean and self.kept and not unfinished)
        else:
            self.segment.close()
