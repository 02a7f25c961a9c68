"""Whether a client uses shared memory with its server, and one Denoise attempt's side of it.

``shared_memory`` of :class:`~emdenoise.client.remote.RemoteClient` (``--shared-memory``,
``$EMDENOISE_SHARED_MEMORY``) is one of :data:`MODES`:

- ``auto`` (the default): frames travel through shared memory when the server's address
  is a loopback address and this machine has ``/dev/shm``; whenever the server cannot
  use the segment (another user, another host, an older server) the call goes on as
  gRPC messages;
- ``on``: the same, but a server that cannot use the segment is an error;
- ``off``: always gRPC messages (what remote servers get anyway).

A :class:`SharedCall` lives for one attempt of one Denoise call: it takes a ring from
the client's pool (:mod:`emdenoise.shm.pool`) or makes one from the first frame, offers
it in ``DenoiseOptions``, learns from the server's ``JobInfo`` whether it was taken (and
kept for later calls), and turns frames into ``SharedFrame`` requests and the server's
``SharedFrame`` answers back into arrays. A call that ended cleanly puts its ring back
into the pool when the server kept its mapping; any other end releases it.
"""

from __future__ import annotations

import ipaddress
import os
import threading

import numpy as np

from emdenoise.errors import UserError

#: Values of ``shared_memory``.
MODES = ("auto", "on", "off")
#: Environment variable giving the mode when none is passed.
ENV = "EMDENOISE_SHARED_MEMORY"
_WORDS = {"auto": "auto", "on": "on", "true": "on", "yes": "on", "1": "on",
          "off": "off", "false": "off", "no": "off", "0": "off"}
#: Seconds between checks that the call is still on while waiting for the server's answer.
POLL_SECONDS = 0.25


def is_loopback(address: str) -> bool:
    """True when ``address`` (``host:port``) names this machine by a loopback address or ``localhost``."""
    host = address.rsplit(":", 1)[0] if ":" in address else address
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_mode(value) -> str:
    """``auto``, ``on`` or ``off`` from a bool, one of those words (or yes/no/true/false/1/0), or None
    (``$EMDENOISE_SHARED_MEMORY``, else ``auto``)."""
    if value is None:
        value = os.environ.get(ENV) or "auto"
    if isinstance(value, bool):
        return "on" if value else "off"
    mode = _WORDS.get(str(value).strip().lower())
    if mode is None:
        raise UserError(f"shared memory must be auto, on or off, not {value!r} (--shared-memory, ${ENV}).")
    return mode


def resolve_mode(value, address: str) -> str:
    """The mode a client of ``address`` uses: ``auto`` becomes ``off`` for a server that is not on a
    loopback address or where there is no ``/dev/shm``.

    Raises
    ------
    UserError
        An unknown value, or ``on`` where this machine has no usable ``/dev/shm``.
    """
    from emdenoise.shm.segments import available

    mode = parse_mode(value)
    if mode == "auto" and not (is_loopback(address) and available()):
        return "off"
    if mode == "on" and not available():
        raise UserError("shared memory was asked for but this machine has no usable /dev/shm; "
                        "use --shared-memory auto or off.")
    return mode


class SharedCall:
    """The shared-memory side of one attempt of one Denoise call.

    Parameters
    ----------
    strict : bool
        True (mode ``on``): a segment the server does not take is an error, raised by
        :meth:`answer`; False: the call goes on as gRPC messages.
    pool : emdenoise.shm.pool.RingPool, optional
        The client's kept rings: the ring comes from there and goes back after a clean
        end. None: a ring for this attempt only.
    """

    def __init__(self, *, strict: bool = False, pool=None):
        self.strict = strict
        self.pool = pool
        self.ring = None
        self.reused = False  # the ring served an earlier call (the server should still map it)
        self.kept = False  # the server keeps its mapping after this call
        self.accepted = False
        self.refused = ""
        self.call = None  # the gRPC call, once started: a call that ended stops the waits
        self._answered = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()  # a ring is never made after close(): the call may end before the first frame

    def offer(self, first_frame: np.ndarray, frame_count: int = 0):
        """A ``SharedMemory`` offer sized for ``first_frame`` (and ``frame_count`` frames, 0: unknown),
        or None when no segment could be made."""
        from emdenoise.shm.ring import SharedRing

        with self._lock:
            if self._closed.is_set():
                return None
            try:
                if self.pool is None:
                    self.ring = SharedRing.for_frame(np.asarray(first_frame), frame_count)
                else:
                    self.ring, self.reused = self.pool.take(np.asarray(first_frame), frame_count)
            except OSError as error:
                self.refused = f"this client could not create a shared-memory segment ({error.strerror or error})"
                return None
            return self.ring.offer(reuse=self.pool is not None)

    def stale(self, response) -> bool:
        """True when ``response`` (the call's first) refuses a ring from the pool: a server that
        restarted, or that let go of it, no longer maps it. The attempt is then made again
        with a new ring (:meth:`close` drops this one)."""
        return (self.reused and response.WhichOneof("item") == "started"
                and not response.started.shared_memory)

    def answer(self, info) -> None:
        """Take the server's ``JobInfo``: was the segment mapped?

        Raises
        ------
        UserError
            In strict mode, when it was not; the sentence says why.
        """
        self.accepted = bool(info.shared_memory) and self.ring is not None
        self.kept = self.accepted and bool(info.shared_memory_kept)
        if not self.accepted:
            self.refused = (self.refused or info.shared_memory_refused.rstrip(".")
                            or "the server does not offer shared memory (an older emdenoise)")
            if self.ring is not None:
                self.ring.close(released=self.reused)
        elif self.ring is not None:
            self.ring.segment.unlink()  # the server removed the name already; this is the belt to its braces
        self._answered.set()
        if not self.accepted and self.strict:
            raise UserError(f"shared memory was asked for but cannot be used: {self.refused}; "
                            "use --shared-memory auto to fall back to gRPC messages.")

    def _on(self) -> bool:
        return not self._closed.is_set() and (self.call is None or not self.call.done())

    def wait_answer(self) -> bool:
        """Wait for :meth:`answer`; True when frames may go through the segment (False: the call ended)."""
        while not self._answered.wait(POLL_SECONDS):
            if not self._on():
                return False
        return self.accepted

    @property
    def stopped(self) -> bool:
        """True once the attempt ended (closed, or its call is done)."""
        return not self._on()

    def request(self, frame: np.ndarray, index: int):
        """A ``DenoiseRequest`` naming frame ``index`` in the segment (waits for a free slot), or None:
        send it as chunks (it does not fit a slot, the segment was not taken, no slot came free within
        :data:`~emdenoise.shm.ring.SLOT_PATIENCE`) or stop (:attr:`stopped`)."""
        from emdenoise.v1 import denoiser_pb2 as pb

        if not self.accepted or not self.ring.fits(frame):
            return None
        message = self.ring.put(frame, index, still_on=self._on)
        return None if message is None else pb.DenoiseRequest(shared=message)

    def early(self, frame: np.ndarray, index: int):
        """A ``DenoiseRequest`` naming frame ``index`` in a ring from the pool, to send before the
        server's answer (it kept the ring after this client's previous call; should it not have it
        any more, the attempt is made again, :meth:`stale`), or None: wait for the answer."""
        from emdenoise.v1 import denoiser_pb2 as pb

        if not self.reused or self.ring is None or not self.ring.fits(frame):
            return None
        message = self.ring.put(frame, index, still_on=self._on, patience=0.0)
        return None if message is None else pb.DenoiseRequest(shared=message)

    def result(self, message) -> np.ndarray:
        """The array a ``SharedFrame`` response names (a copy; its slot is free again)."""
        if self.ring is None or not self.accepted:
            raise UserError("the server answered in shared memory although this call did not use it; "
                            "use --shared-memory off and report this.")
        return self.ring.take(message)

    def chunked(self, index: int) -> None:
        """Frame ``index``'s result came as chunks: free its slot."""
        if self.ring is not None and self.accepted:
            self.ring.release(index)

    def close(self, *, clean: bool = False) -> None:
        """End the attempt; safe to repeat.

        ``clean`` (every result arrived and the call ended without error): a ring the
        server kept goes back to the pool. Otherwise the segment's name is removed and the
        ring released (a server that kept it is told to let go too).
        """
        with self._lock:
            ring = None if self._closed.is_set() else self.ring  # the first close decides
            self._closed.set()
        if ring is None:
            return
        if clean and self.kept and self.pool is not None:
            self.pool.put_back(ring)
        else:
            ring.close(released=self.kept or self.reused)


__all__ = ["ENV", "MODES", "SharedCall", "is_loopback", "parse_mode", "resolve_mode"]
