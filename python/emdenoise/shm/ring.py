"""The client's ring of frame slots in one shared-memory segment.

Each frame is written into a free slot and named to the server by a ``SharedFrame``
message; the server writes the frame's float32 result into the same slot (a slot is
sized for that), and the slot is free again once the client copied the result out, or,
for a result lent to the caller without a copy, once the caller dropped the last array
over it. So
at most :data:`SLOTS` frames are in flight, and a producer faster than the server waits
for a slot instead of filling memory. A ring serves one call at a time; a client keeps
it for its next calls (:mod:`emdenoise.shm.pool`) when the call ended cleanly.
"""

from __future__ import annotations

import queue
import threading
import time
import weakref
from typing import Callable

import numpy as np

from emdenoise.errors import UserError
from emdenoise.shm.segments import HEADER_BYTES, create
from emdenoise.v1 import denoiser_pb2 as pb

#: Slots per call: enough for the server to read one frame while it computes another and
#: the client takes a third's result.
SLOTS = 4
#: Extra slots of a ring kept between calls (:mod:`emdenoise.shm.pool`) for results lent to the
#: caller: the array the caller gets is the slot itself, no copy, and the slot is free again when
#: the caller dropped it. A caller that keeps every result holds at most this many slots; later
#: results are copied out, so the other :data:`SLOTS` always carry frames.
LENDABLE = 2
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


class _Lent:
    """Owner of a result lent out of a slot: the base of the caller's array and of every view of it.

    It holds the slot's view of the mapping (an export: the memory stays mapped while any of
    those arrays lives) and is collected only when the last of them is.
    """

    __slots__ = ("__array_interface__", "_view", "__weakref__")

    def __init__(self, view: np.ndarray):
        self._view = view
        self.__array_interface__ = view.__array_interface__


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
    populate : bool
        Fault the slots in now (:meth:`~emdenoise.shm.segments.Segment.populate`): a ring
        kept across calls pays its page faults once, when it is made.
    lendable : int
        Of the ``slots``, how many may be lent to the caller at once (:meth:`take`).

    Raises
    ------
    OSError
        The segment could not be created (no ``/dev/shm``, no space).
    """

    def __init__(self, slot_bytes: int, slots: int = SLOTS, *, populate: bool = False, lendable: int = 0):
        self.slot_bytes = max(PAGE, -(-int(slot_bytes) // PAGE) * PAGE)
        self.slots = max(1, int(slots))
        self.lendable = min(max(0, int(lendable)), self.slots - 1)
        self.lent = 0  # results lent to the caller and not yet dropped
        self.segment = create(HEADER_BYTES + self.slots * self.slot_bytes)
        if populate:
            self.segment.populate()
        self._free: queue.Queue = queue.Queue()
        for slot in range(self.slots):
            self._free.put(slot)
        self._used: dict[int, int] = {}  # frame index -> slot
        # reentrant: a lent array's finaliser may run (garbage collection) while this thread holds it
        self._lock = threading.RLock()
        self._closed = threading.Event()

    @staticmethod
    def slots_for(frame: np.ndarray, frame_count: int = 0) -> int:
        """Slots of a ring for ``frame``: :data:`SLOTS`, fewer (at least 2) when that would exceed
        :data:`MAX_RING_BYTES`, and no more than ``frame_count`` (0: unknown).

        Every slot costs its pages' allocation (~1 ms per 4 MiB) whether used or not, so a
        call of one frame makes one slot."""
        slots = max(2, min(SLOTS, MAX_RING_BYTES // slot_bytes_for(frame)))
        return min(slots, int(frame_count)) if frame_count > 0 else slots

    @classmethod
    def for_frame(cls, frame: np.ndarray, frame_count: int = 0, *, populate: bool = False,
                  lend: bool = False) -> "SharedRing":
        """A ring whose :meth:`slots_for` slots fit ``frame`` and its result; ``lend``: and
        :data:`LENDABLE` more for lent results, where the call has more than one frame and they fit
        :data:`MAX_RING_BYTES`."""
        size, slots = slot_bytes_for(frame), cls.slots_for(frame, frame_count)
        lendable = LENDABLE if lend and slots > 1 and (slots + LENDABLE) * size <= MAX_RING_BYTES else 0
        return cls(size, slots=slots + lendable, populate=populate, lendable=lendable)

    @property
    def idle(self) -> bool:
        """True when the ring is open and no slot holds a frame in flight: a next call may use it
        (slots lent to the caller come back on their own)."""
        with self._lock:
            return not self.closed and not self._used

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed.is_set()

    def offer(self, *, reuse: bool = False) -> pb.SharedMemory:
        """The ``DenoiseOptions.shared_memory`` naming this ring's segment (``reuse``: the client will
        offer it again in later calls)."""
        return pb.SharedMemory(segment=self.segment.name, key=self.segment.key, size=self.segment.size, reuse=reuse)

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
        """The result the server wrote into a frame's slot.

        Lent while fewer than ``lendable`` results are: the array is the slot itself (no copy),
        and the slot is free again once the last array over it is gone (the caller owns it
        until then: no frame is written there). Otherwise a copy, and the slot is free at once.

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
                view = self.segment.array(int(message.offset), dtype, shape)
            except (TypeError, ValueError) as error:
                raise UserError(f"the server's shared-memory result for frame {index} cannot be read ({error}); "
                                "use --shared-memory off and report this.") from None
            if self.lent < self.lendable:
                self.lent += 1
                owner = _Lent(view)
                weakref.finalize(owner, self._returned, slot)
                return np.asarray(owner)
            result = view.copy()
            del view
        self._free.put(slot)
        return result

    def _returned(self, slot: int) -> None:
        """A lent result was dropped: its slot is free again."""
        with self._lock:
            self.lent -= 1
            if not self.closed:
                self._free.put(slot)

    def release(self, index: int) -> None:
        """Free frame ``index``'s slot without reading it (its result came as chunks)."""
        with self._lock:
            slot = self._used.pop(index, None)
        if slot is not None:
            self._free.put(slot)

    def close(self, *, released: bool = False) -> None:
        """Remove the segment's name and release the mapping; safe to repeat.

        ``released``: first tell a server that kept the segment mapped across calls to let go
        of it too (else it does when this process ends or the segment stays unused).
        """
        self._closed.set()
        with self._lock:
            if released:
                self.segment.mark_released()
            self.segment.unlink()
            self.segment.close()
