"""A client's rings kept between its Denoise calls.

Making a ring costs its pages on both sides: allocating 16 MiB under ``/dev/shm`` and
faulting it into the client and into the server took ~3 ms per 4 MiB slot here, against
0.07 ms to copy a 4 MiB frame into a slot already in use. So a
:class:`~emdenoise.client.remote.RemoteClient` keeps the ring of a call that ended
cleanly, and the server keeps its mapping of it (:mod:`emdenoise.server.segment_cache`);
the client's next call offers the same segment (same name and key, ``reuse``), which the
server finds without mapping anything.

A ring is in one call at a time: a call takes it out of the pool and only a clean end
puts it back, so two calls never write the same slots (concurrent calls of one client
get rings of their own). A ring leaving the pool for good is marked released, which
tells the server to unmap it as well.
"""

from __future__ import annotations

import threading

import numpy as np

from emdenoise.shm.ring import SharedRing, slot_bytes_for

#: Idle rings a client keeps (one per call it ran at the same time, up to this).
MAX_IDLE = 2


class RingPool:
    """Idle rings of one client.

    Parameters
    ----------
    max_idle : int
        Rings kept; a ring put back beyond that is closed (and released).
    """

    def __init__(self, max_idle: int = MAX_IDLE):
        self.max_idle = max(0, int(max_idle))
        self._idle: list[SharedRing] = []
        self._lock = threading.Lock()
        self._closed = False

    def take(self, frame: np.ndarray, frame_count: int = 0) -> tuple[SharedRing, bool]:
        """A ring for a call whose first frame is ``frame``: ``(ring, reused)``.

        An idle ring is reused when ``frame`` and its result fit its slots and it has the
        slots the call would get (:meth:`SharedRing.slots_for`) besides those it may lend;
        else a new ring is made, with slots to lend results from
        (:data:`~emdenoise.shm.ring.LENDABLE`), its pages faulted in at once since it may
        serve many calls.

        Raises
        ------
        OSError
            A new segment could not be created.
        """
        need, slots = slot_bytes_for(frame), SharedRing.slots_for(frame, frame_count)
        with self._lock:
            for ring in self._idle:
                if ring.slot_bytes >= need and ring.slots - ring.lendable >= slots:
                    self._idle.remove(ring)
                    return ring, True
        return SharedRing.for_frame(frame, frame_count, populate=True, lend=True), False

    def put_back(self, ring: SharedRing) -> None:
        """Keep ``ring`` for a later call (its call ended cleanly and the server kept its mapping)."""
        if not ring.idle:
            ring.close(released=True)
            return
        with self._lock:
            if not self._closed:
                self._idle.append(ring)
                ring = self._idle.pop(0) if len(self._idle) > self.max_idle else None
        if ring is not None:
            ring.close(released=True)

    @property
    def idle(self) -> int:
        """Rings kept now."""
        with self._lock:
            return len(self._idle)

    def close(self) -> None:
        """Release every kept ring (the server unmaps them too); later rings are not kept."""
        with self._lock:
            self._closed, rings, self._idle = True, self._idle, []
        for ring in rings:
            ring.close(released=True)


__all__ = ["MAX_IDLE", "RingPool"]
