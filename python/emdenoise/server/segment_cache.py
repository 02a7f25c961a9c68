"""The server's mappings of shared-memory segments kept between one client's calls.

A client that keeps its ring between calls (:mod:`emdenoise.shm.pool`) offers it with
``SharedMemory.reuse``. The server maps it as for any call (owner, mode 0600, size, key
checked; the name removed at once) and, when the call ends cleanly, keeps the mapping
here, keyed by the segment's name (the creator's pid, its start time and 16 random
bytes). The next call that names it must carry the same key and size; it then gets the
mapping without the server opening, mapping or faulting in anything. Only one call uses
a segment at a time; another call naming a segment in use is refused (and goes on as
gRPC messages), so two calls never write the same slots.

A kept mapping is let go (the memory is freed once the client unmapped it too) when
its call ends in any other way than cleanly, when the client marks it released (it
closed the ring), when the creator process is gone (killed with SIGKILL, say), after
:data:`IDLE_SECONDS` unused, or when more than :data:`MAX_SEGMENTS` are kept (the
longest unused first). A thread checks every :data:`REAP_SECONDS` while any is kept. A
server that restarts keeps nothing: the name is gone, so the client's offer is refused
and the client makes a new segment.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from dataclasses import dataclass, field

from emdenoise.shm.segments import Segment, SegmentRefused, check_name, creator, open_private, process_start

log = logging.getLogger(__name__)

#: Segments kept at most (all clients together).
MAX_SEGMENTS = 32
#: Seconds a kept segment may stay unused.
IDLE_SECONDS = 300.0
#: Seconds between checks of the kept segments.
REAP_SECONDS = 1.0
#: Seconds a call waits for a segment still held by the call before it (the previous call's
#: clean end is recorded before its status reaches the client, so this is rarely waited).
BUSY_SECONDS = 1.0


@dataclass
class _Kept:
    segment: Segment
    in_use: bool = True
    last_used: float = field(default_factory=time.monotonic)


def creator_gone(name: str) -> bool:
    """True when the process that created segment ``name`` no longer runs (its pid is gone or
    belongs to a process started at another time)."""
    made_by = creator(name)
    if made_by is None:
        return True
    pid, started = made_by
    now = process_start(pid)
    return now is None or (started != "0" and now != started)


class SegmentCache:
    """Segments mapped by this server, kept between the calls of the clients that made them.

    Parameters
    ----------
    max_segments : int
        Segments kept at most.
    idle_seconds : float
        A segment unused this long is let go.
    reap_seconds : float
        Seconds between checks.
    """

    def __init__(self, *, max_segments: int = MAX_SEGMENTS, idle_seconds: float = IDLE_SECONDS,
                 reap_seconds: float = REAP_SECONDS):
        self.max_segments = max(0, int(max_segments))
        self.idle_seconds = float(idle_seconds)
        self.reap_seconds = float(reap_seconds)
        self._kept: dict[str, _Kept] = {}
        self._changed = threading.Condition()
        self._reaper: threading.Thread | None = None
        self._stopped = False

    def lease(self, offer, *, max_size: int | None = None) -> tuple[Segment, bool]:
        """The segment ``offer`` (a ``SharedMemory`` message) names, for one call: ``(segment, kept)``.

        ``kept``: the mapping will be kept after the call if it ends cleanly
        (:meth:`give_back`); only offers with ``reuse`` set are kept.

        Raises
        ------
        SegmentRefused
            The segment cannot be used (see :func:`~emdenoise.shm.segments.open_private`),
            a kept one is named with another key or size, or it is in use by another call.
        """
        name = check_name(offer.segment)
        with self._changed:
            kept = self._kept.get(name)
            if kept is not None:
                deadline = time.monotonic() + BUSY_SECONDS
                while kept.in_use and self._kept.get(name) is kept and time.monotonic() < deadline:
                    self._changed.wait(deadline - time.monotonic())
                if self._kept.get(name) is kept:
                    return self._reuse(name, kept, offer), True
        segment = open_private(offer.segment, offer.key, size=offer.size, max_size=max_size)
        if not offer.reuse:
            return segment, False
        with self._changed:
            if self._stopped or not self._make_room():
                return segment, False
            self._kept[name] = _Kept(segment)
            self._start_reaper()
        return segment, True

    def _reuse(self, name: str, kept: _Kept, offer) -> Segment:
        """``kept`` for a call naming it (the lock is held)."""
        segment = kept.segment
        if kept.in_use:
            raise SegmentRefused(f"shared-memory segment {name} is in use by another call; "
                                 "a segment serves one call at a time.")
        if int(offer.size) != segment.size or not hmac.compare_digest(bytes(offer.key), segment.key):
            raise SegmentRefused(f"shared-memory segment {name} does not carry the key of this call; "
                                 "only the process that created a segment may name it.")
        if segment.released:  # its client let go of it: nothing may use it again
            self._drop(name)
            raise SegmentRefused(f"shared-memory segment {name} was released by its client; "
                                 "a new call must offer a new segment.")
        kept.in_use = True
        return segment

    def give_back(self, segment: Segment, *, keep: bool) -> None:
        """The call using ``segment`` ended: keep the mapping (``keep``: it ended cleanly) or let go of it."""
        with self._changed:
            kept = self._kept.get(segment.name)
            if kept is not None and kept.segment is segment:
                if keep and not self._stopped and not segment.released:
                    kept.in_use, kept.last_used = False, time.monotonic()
                    self._changed.notify_all()
                    return
                del self._kept[segment.name]
                self._changed.notify_all()
        segment.close()

    @property
    def kept(self) -> int:
        """Segments kept now (in use or not)."""
        with self._changed:
            return len(self._kept)

    def _make_room(self) -> bool:
        """Let go of the longest-unused idle segment while :data:`MAX_SEGMENTS` are kept (lock held);
        False when all kept ones are in use."""
        while len(self._kept) >= self.max_segments:
            idle = [(kept.last_used, name) for name, kept in self._kept.items() if not kept.in_use]
            if not idle:
                return False
            self._drop(min(idle)[1])
        return True

    def _drop(self, name: str) -> None:
        kept = self._kept.pop(name)
        kept.segment.close()
        self._changed.notify_all()

    def reap(self) -> list[str]:
        """Let go of idle segments whose client released them, ended, or left them unused too long;
        the names let go."""
        now = time.monotonic()
        with self._changed:
            idle = [(name, kept) for name, kept in self._kept.items() if not kept.in_use]
        gone = [name for name, kept in idle
                if kept.segment.released or now - kept.last_used > self.idle_seconds or creator_gone(name)]
        with self._changed:
            gone = [name for name in gone if name in self._kept and not self._kept[name].in_use]
            for name in gone:
                self._drop(name)
        if gone:
            log.info("let go of %d shared-memory segment(s) whose clients are done", len(gone))
        return gone

    def _start_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap_while_kept, name="emdenoise-shm-reaper", daemon=True)
            self._reaper.start()

    def _reap_while_kept(self) -> None:
        while True:
            with self._changed:
                if self._stopped or not self._kept:
                    self._reaper = None
                    return
                self._changed.wait(self.reap_seconds)
            self.reap()

    def close(self) -> None:
        """Let go of every idle segment and keep none from now on (in-use ones go when their calls end)."""
        with self._changed:
            self._stopped = True
            for name in [name for name, kept in self._kept.items() if not kept.in_use]:
                self._drop(name)
            self._changed.notify_all()


__all__ = ["BUSY_SECONDS", "IDLE_SECONDS", "MAX_SEGMENTS", "REAP_SECONDS", "SegmentCache", "creator_gone"]
