"""Give the memory of finished calls back to the operating system.

A frame arrives in 2 MiB chunks that gRPC, protobuf and NumPy allocate on the worker
thread that reads the stream. glibc keeps what such threads free in per-thread arenas and
raises its mmap threshold after large frees, so the resident size of a server stays at its
peak after big uploads end, are cancelled or stall, although nothing references the
frames any more (issue 22: +40 % after 8 cancelled 4 MiB uploads). ``malloc_trim(0)``
returns the free pages of every arena; :class:`Trimmer` runs it shortly after calls end
(the C core frees a cancelled call's buffers after the handler returns), at most once per
``delay`` however many calls end.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

log = logging.getLogger(__name__)


def _load_malloc_trim():
    """glibc's ``malloc_trim``, or None (musl, macOS, Windows)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()
#: ``mallopt`` parameter number of the arena limit (glibc malloc.h).
M_ARENA_MAX = -8


def limit_arenas(count: int = 1) -> bool:
    """Let at most ``count`` malloc arenas serve this process's threads (glibc ``mallopt``).

    glibc gives busy threads arenas of their own (up to 8 per core) and never hands back
    the top of such an arena, so memory a worker thread freed stays resident; with one
    arena :func:`release_freed_memory` returns all of it. Call it early, before the
    server's threads allocate: threads already using another arena keep it.

    Parameters
    ----------
    count : int
        The most arenas (glibc's default: 8 per CPU core).

    Returns
    -------
    bool
        True when ``mallopt`` accepted the limit, False where the C library has none.
    """
    mallopt = _mallopt()
    return mallopt is not None and bool(mallopt(M_ARENA_MAX, max(1, int(count))))


#: ``mallopt`` parameter numbers of the trim and mmap thresholds (glibc malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Allocations below this come from the heap, where a freed frame's pages are reused.
REUSE_BELOW = 64 << 20


def reuse_freed_memory(below: int = REUSE_BELOW) -> bool:
    """Keep freed buffers of up to ``below`` bytes for reuse during a call (glibc ``mallopt``).

    Each frame allocates and frees buffers of a few MiB (the received message, the
    engine's arrays, the serialized result). glibc's default gives such buffers back to
    the operating system as soon as they are freed (``mmap`` below the dynamic threshold,
    the heap's top above the trim threshold), and the next frame's buffers are fresh
    pages again: about 3 ms of page faults per 4 MiB on this kind of virtual machine,
    as long as the engine's frame (issue 20, item 3). With both thresholds raised the
    pages are reused; :class:`Trimmer` still returns them after each call.

    Returns
    -------
    bool
        True when ``mallopt`` accepted both, False where the C library has none.
    """
    mallopt = _mallopt()
    if mallopt is None:
        return False
    below = max(1, int(below))
    return bool(mallopt(M_MMAP_THRESHOLD, below)) and bool(mallopt(M_TRIM_THRESHOLD, 4 * below))


def _mallopt():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


def release_freed_memory() -> bool:
    """Return the free pages of every malloc arena to the operating system.

    Returns
    -------
    bool
        True when glibc's ``malloc_trim`` ran, False where the C library has none.
    """
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


class Trimmer:
    """Run :func:`release_freed_memory` at ``delays`` seconds after a call ends.

    The first trim returns what the handler freed; the later one what the C core and the
    request reader thread freed after it (a cancelled call's buffers, the transport of a
    client that hung up). Calls that end while a trim is pending share it, so a busy
    server trims at most once per delay.

    Parameters
    ----------
    delays : tuple of float
        Seconds after a call ends at which to trim.
    """

    def __init__(self, delays: tuple[float, ...] = (0.5, 1.5)):
        self.delays = tuple(float(d) for d in delays)
        self.trims = 0
        self._pending = [False] * len(self.delays)
        self._lock = threading.Lock()

    def call_ended(self) -> None:
        """Schedule the trims that are not pending yet (returns at once)."""
        if _MALLOC_TRIM is None:
            return
        for slot, delay in enumerate(self.delays):
            with self._lock:
                if self._pending[slot]:
                    continue
                self._pending[slot] = True
            timer = threading.Timer(delay, self._trim, args=(slot,))
            timer.daemon = True
            timer.name = "emdenoise-trim"
            timer.start()

    def _trim(self, slot: int) -> None:
        with self._lock:
            self._pending[slot] = False
        try:
            release_freed_memory()
            self.trims += 1
        except Exception:  # never let housekeeping disturb serving
            log.exception("malloc_trim failed")


__all__ = ["Trimmer", "limit_arenas", "release_freed_memory", "reuse_freed_memory"]
