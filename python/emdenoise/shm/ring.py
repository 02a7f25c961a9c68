"""The client's ring of frame slots in one shared-memory segment, for one Denoise call.

Each frame is written into a free slot and named to the server by a ``SharedFrame``
message; the server writes the frame's float32 result into the same slot (a slot is
sized for that), and the slot is free again once the client copied the result out. So
at most :data:`SLOTS` frames are in flight, and a producer faster than the server waits
for a slot instead of filling memory.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable

import numpy as np

from emdenoise.errors import UserError
from emdenoise.shm.segments import HEADER_BYTES, create
from emdenoise.v1 import denoiser_pb2 as pb

#: Slots per call: enough for the server to read one frame while it computes another and
#: the client takes a third's result.
SLOTS = 4
#: Largest segment a call makes; frames whose slots would not fit this many times go with fewer slots.
MAX_RING_BYTES = 1 << 30
#: Seconds between checks that the call is still on while waiting for a free slot.
POLL_SECONDS = 0.25
#: Longest wait for a free slot before a frame goes as chunks instead. All slots stay taken
#: while the caller does not read results; the server, waiting for the next frame, would
#: end the call as idle after its --idle-timeout (120 s), where chunks queue up in gRPC's
#: buffers as they always did. A slow model holds a slot for its frame's time, far below this.
SLOT_PATIENCE = 30.0
#: Bytes a result pixel takes (float32).
RESULT_ITEMSIZE = 4
PAGE = 4096


def slot_bytes_for(frame: np.ndarray) -> int:
    """Bytes of a slot that holds ``frame`` and its float32 result, rounded up to a page."""
    need = frame.size * max(frame.dtype.itemsize, RESULT_ITEMSIZE)
    return max(PAGE, -(-need // PAGE) * PAGE)


class SharedRing:
    """Slots of ``slot_bytes`` each in a new private segment.

    Parameters
    ----------
    slot_bytes : int
        Bytes per slot (rounded up to a page).
    slots : int
        Number of slots.

    Raises
    ------
    OSError
        The segment could not be created (no ``/dev/shm``, no space).
    """

    def __init__(self, slot_bytes: int, slots: int = SLOTS):
        self.slot_bytes = max(PAGE, -(-int(slot_bytes) // PAGE) * PAGE)
        self.slots = max(1, int(slots))
        self.segment = create(HEADER_BYTES + self.slots * self.slot_bytes)
        self._free: queue.Queue = queue.Queue()
        for slot in range(self.slots):
            self._free.put(slot)
        self._used: dict[int, int] = {}  # frame index -> slot
        self._lock = threading.Lock()
        self._closed = threading.Event()

    @classmethod
    def for_frame(cls, frame: np.ndarray, frame_count: int = 0) -> "SharedRing":
        """A ring whose slots fit ``frame`` and its result: :data:`SLOTS` of them, fewer (at least 2)
        when that would exceed :data:`MAX_RING_BYTES`, and no more than ``frame_count`` (0: unknown).

        Every slot costs its pages' allocation (~1 ms per 4 MiB) whether used or not, so a
        call of one frame makes one slot."""
        size = slot_bytes_for(frame)
        slots = max(2, min(SLOTS, MAX_RING_BYTES // size))
        if frame_count > 0:
            slots = min(slots, int(frame_count))
        return cls(size, slots=slots)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed.is_set()

    def offer(self) -> pb.SharedMemory:
        """The ``DenoiseOptions.shared_memory`` naming this ring's segment."""
        return pb.SharedMemory(segment=self.segment.name, key=self.segment.key, size=self.segment.size)

    def fits(self, frame: np.ndarray) -> bool:
        """True when ``frame`` and its float32 result fit a slot."""
        return frame.size * max(frame.dtype.itemsize, RESULT_ITEMSIZE) <= self.slot_bytes

    def _offset(self, slot: int) -> int:
        return HEADER_BYTES + slot * self.slot_bytes

    def put(self, frame: np.ndarray, index: int, *, still_on: Callable[[], bool] = lambda: True,
            patience: float | None = None) -> pb.SharedFrame | None:
        """Write frame ``index`` into a free slot (waiting for one); the message naming it.

        Returns None when the ring was closed, ``still_on()`` turned False, or no slot
        came free within ``patience`` seconds (default :data:`SLOT_PATIENCE`).
        """
        patience = SLOT_PATIENCE if patience is None else max(0.0, float(patience))
        deadline = time.monotonic() + patience
        slot = None
        while slot is None:
            if self.closed or not still_on():
                return None
            left = deadline - time.monotonic()
            try:
                slot = self._free.get(timeout=min(POLL_SECONDS, left)) if left > 0 else self._free.get_nowait()
            except queue.Empty:
                if left <= 0:
                    return None
        offset = self._offset(slot)
        with self._lock:
            if self.closed:
                return None
            target = self.segment.array(offset, frame.dtype.newbyteorder("="), frame.shape)
            np.copyto(target, frame)  # byte-swaps a non-native frame
            del target
            self._used[index] = slot
        return pb.SharedFrame(frame_index=index, header=pb.ArrayHeader(dtype=frame.dtype.name, shape=list(frame.shape)),
                              offset=offset, capacity=self.slot_bytes)

    def take(self, message: pb.SharedFrame) -> np.ndarray:
        """A copy of the result the server wrote into a frame's slot; the slot is free again.

        Raises
        ------
        UserError
            The message names a frame this ring did not send, or a result that does not
            lie in its slot (a server that does not follow the protocol).
        """
        index = int(message.frame_index)
        with self._lock:
            slot = self._used.pop(index, None)
            if slot is None:
                raise UserError(f"the server returned frame {index} in shared memory, but that frame was not sent "
                                "there; use --shared-memory off and report this.")
            try:
                dtype = np.dtype(message.header.dtype)
                shape = tuple(int(n) for n in message.header.shape)
                nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                if int(message.offset) != self._offset(slot) or nbytes > self.slot_bytes:
                    raise ValueError("outside the slot")
                if self.closed:
                    raise ValueError("the segment was released")
                result = self.segment.array(int(message.offset), dtype, shape).copy()
            except (TypeError, ValueError) as error:
                raise UserError(f"the server's shared-memory result for frame {index} cannot be read ({error}); "
                                "use --shared-memory off and report this.") from None
        self._free.put(slot)
        return result

    def release(self, index: int) -> None:
        """Free frame ``index``'s slot without reading it (its result came as chunks)."""
        with self._lock:
            slot = self._used.pop(index, None)
        if slot is not None:
            self._free.put(slot)

    def close(self) -> None:
        """Remove the segment's name and release the mapping; safe to repeat."""
        self._closed.set()
        with self._lock:
            self.segment.unlink()
            self.segment.close()
