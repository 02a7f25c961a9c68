"""How many calls the server runs at once, and how long an upload may stay silent.

:class:`CallLimits` is a server interceptor with two jobs:

- **Concurrency**: at most ``max_streams`` Denoiser calls run at once. Up to ``max_queued``
  more wait their turn in arrival order (at most ``queue_seconds`` each, and only while
  their client is still there); only a call that finds that queue full, or that waited
  its whole time, is answered RESOURCE_EXHAUSTED with a sentence saying the server is busy
  and what to do (clients retry it with backoff, :mod:`emdenoise.client.retry`). Health
  checks have their own small allowance (``max_health``, never queued), so a server full
  of streams still says it is alive.
- **Idle uploads**: every client-streaming call reads its requests through
  :class:`IdleGuard`. A stream that sends nothing for ``idle_seconds`` while the server
  waits for it ends with DEADLINE_EXCEEDED and its partly received frames are dropped.
  Time the server spends computing never counts.

The thread pool has a worker for every allowed and every queued call plus spares for the
refusals (:func:`pool_size`), so neither stalled streams nor health probes starve each other.
"""

from __future__ import annotations

import collections
import queue
import threading
import time

import grpc

from emdenoise.errors import UserError
from emdenoise.server.handlers import behaviour
from emdenoise.server.memory import Trimmer

HEALTH_PREFIX = "/grpc.health.v1.Health/"
#: Seconds an upload may send nothing while the server waits for it (``serve --idle-timeout``).
IDLE_SECONDS = 120.0
#: How often a servicer waiting for the next request checks that its call is still on.
POLL_SECONDS = 0.25
#: Calls that may wait for a stream beyond ``max_streams`` (``serve --max-queued``).
MAX_QUEUED = 32
#: Seconds a queued call may wait for a stream (``serve --queue-timeout``).
QUEUE_SECONDS = 60.0


class StreamIdle(UserError):
    """The client stopped sending in the middle of a stream (status DEADLINE_EXCEEDED)."""


class ClientGone(Exception):
    """The client cancelled or disconnected (or the server is stopping): stop working on its stream."""


class _Counter:
    """``limit`` calls at once; up to ``max_queued`` more wait their turn in arrival order.

    A freed place goes straight to the oldest waiting call, so a call that just arrived
    cannot overtake the queue.
    """

    def __init__(self, limit: int, max_queued: int = 0):
        self.limit = max(1, int(limit))
        self.max_queued = max(0, int(max_queued))
        self.active = 0
        self._waiting: collections.deque = collections.deque()
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Calls in the queue now."""
        return len(self._waiting)

    def try_acquire(self) -> bool:
        """Take a place if one is free and nobody waits for it."""
        with self._lock:
            if self.active >= self.limit or self._waiting:
                return False
            self.active += 1
            return True

    def acquire(self, timeout: float, still_wanted) -> str:
        """Take a place, waiting in the queue for at most ``timeout`` seconds.

        Parameters
        ----------
        timeout : float
            Longest wait.
        still_wanted : callable
            Asked every ``POLL_SECONDS``; when it returns False (the client went away) the
            call leaves the queue.

        Returns
        -------
        str
            ``"ok"`` (a place is held), ``"full"`` (the queue was full), ``"timeout"``
            (waited ``timeout``) or ``"gone"`` (``still_wanted`` said no).
        """
        with self._lock:
            if self.active < self.limit and not self._waiting:
                self.active += 1
                return "ok"
            if len(self._waiting) >= self.max_queued:
                return "full"
            turn = threading.Event()
            self._waiting.append(turn)
        deadline = time.monotonic() + max(0.0, float(timeout))
        outcome = "timeout"
        while True:
            left = deadline - time.monotonic()
            if turn.wait(min(POLL_SECONDS, max(0.0, left))):
                return "ok"
            if not still_wanted():
                outcome = "gone"
                break
            if left <= 0:
                break
        with self._lock:
            if turn.is_set():  # handed a place while giving up: it is held after all
                return "ok"
            self._waiting.remove(turn)
        return outcome

    def release(self) -> None:
        """Free a place: the oldest waiting call takes it, else it is free."""
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()  # the place passes on; active stays the same
            else:
                self.active -= 1


_END = object()


class IdleGuard:
    """The requests of one stream, with a limit on how long the client may stay silent.

    A helper thread reads the gRPC request iterator one message ahead; the servicer reads
    from this object. When no message arrives for ``idle_seconds`` while the servicer
    waits, :class:`StreamIdle` is raised in the servicer's thread; when the call ends while
    it waits (client cancelled, deadline, server stopping), :class:`ClientGone` is raised
    within ``POLL_SECONDS``, so a cancelled upload lets go of its partly received frame
    at once instead of holding it (and a worker thread) until the idle limit.

    Parameters
    ----------
    requests : iterator
        The gRPC request iterator.
    context : grpc.ServicerContext
        The call's context (the helper stops when the call ends).
    idle_seconds : float
        The limit.
    """

    def __init__(self, requests, context, idle_seconds: float):
        self._requests = requests
        self._idle = float(idle_seconds)
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        context.add_callback(self._stop.set)
        threading.Thread(target=self._pump, name="emdenoise-upload", daemon=True).start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def _pump(self) -> None:
        # grpc keeps the RpcError of a cancelled call, and with it this frame: the last
        # request (a 2 MiB chunk) must not stay in a local, nor this guard reach the call
        # again, or the chunk lives in a reference cycle until a full garbage collection.
        request = None
        try:
            for request in self._requests:
                if not self._put(request):
                    return
                request = None
            self._put(_END)
        except Exception as error:  # grpc.RpcError when the client cancels
            request = None
            self._put(error)
        finally:
            self._requests = None

    def close(self) -> None:
        """The call is over: stop the helper and drop what it read ahead."""
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def __iter__(self):
        return self

    def __next__(self):
        deadline = time.monotonic() + self._idle
        while True:
            try:
                item = self._queue.get(timeout=min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
                break
            except queue.Empty:
                if self._stop.is_set():  # the call ended (cancelled, deadline, server stopping): no more requests
                    raise ClientGone() from None
                if time.monotonic() >= deadline:
                    self._stop.set()
                    raise StreamIdle(
                        f"the client sent nothing for {self._idle:g} s in the middle of its stream, so the server "
                        "dropped it; send the data again (the server's --idle-timeout sets this limit)."
                    ) from None
        if item is _END:
            self._stop.set()
            raise StopIteration
        if isinstance(item, Exception):
            self._stop.set()
            raise item
        return item


def _admit(counter: _Counter, context, queue_seconds: float, what: str) -> None:
    """Take one of ``counter``'s places for this call, queueing if need be; abort when none comes.

    Raises
    ------
    Exception
        What ``context.abort`` raises: RESOURCE_EXHAUSTED with the sentence for a full queue
        or a wait that ran out, CANCELLED when the client left the queue.
    """
    outcome = counter.acquire(queue_seconds, context.is_active) if counter.max_queued else (
        "ok" if counter.try_acquire() else "full")
    if outcome == "ok":
        return
    if outcome == "gone":
        context.abort(grpc.StatusCode.CANCELLED, "the client left the queue.")
    if outcome == "timeout":
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, (
            f"the server stayed busy: this call waited {queue_seconds:g} s in the queue for one of its "
            f"{counter.limit} {what}; try again later, or ask its operator to raise --max-streams or --queue-timeout."))
    queued = f" and {counter.max_queued} more are waiting" if counter.max_queued else ""
    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, (
        f"the server is busy: {counter.limit} {what} are running{queued}; try again in a minute "
        f"(emdenoise clients retry a few times by themselves), or ask its operator to raise --max-streams"
        f"{' or --max-queued' if what == 'streams' else ''}."))


class CallLimits(grpc.ServerInterceptor):
    """Concurrency allowance with a bounded queue (Health apart) and idle limit of uploads; see the module docstring.

    Parameters
    ----------
    max_streams : int
        Denoiser calls at once.
    max_health : int
        Health calls at once (Check and Watch), counted apart from ``max_streams``, never queued.
    idle_seconds : float or None
        Silence allowed in the middle of a client stream (None: no limit).
    trimmer : Trimmer or None
        Told when each Denoiser call ends, so the memory of its frames goes back to the
        operating system (:mod:`emdenoise.server.memory`; None: never trim).
    max_queued : int
        Denoiser calls that may wait for a place beyond ``max_streams`` (0: refuse at once).
    queue_seconds : float
        Longest wait of a queued call.
    """

    def __init__(self, max_streams: int = 16, *, max_health: int = 4, idle_seconds: float | None = IDLE_SECONDS,
                 trimmer: Trimmer | None = None, max_queued: int = MAX_QUEUED, queue_seconds: float = QUEUE_SECONDS):
        self.streams = _Counter(max_streams, max_queued)
        self.health = _Counter(max_health)
        self.idle_seconds = idle_seconds
        self.trimmer = trimmer
        self.queue_seconds = float(queue_seconds)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        is_health = handler_call_details.method.startswith(HEALTH_PREFIX)
        counter = self.health if is_health else self.streams
        return _wrap(handler, counter, "health checks" if is_health else "streams", self.queue_seconds,
                     None if is_health else self.idle_seconds, None if is_health else self.trimmer)


def _wrap(handler: grpc.RpcMethodHandler, counter: _Counter, what: str, queue_seconds: float,
          idle_seconds: float | None, trimmer: Trimmer | None = None):
    """``handler`` run inside ``counter``'s allowance (queued for a place if need be), its requests
    through :class:`IdleGuard`."""
    inner, make = behaviour(handler)

    guarded = handler.request_streaming and bool(idle_seconds)

    def ended(requests) -> None:
        counter.release()
        if guarded:
            requests.close()
        if trimmer is not None:
            trimmer.call_ended()

    if handler.response_streaming:
        def behavior(request, context):
            _admit(counter, context, queue_seconds, what)
            requests = IdleGuard(request, context, idle_seconds) if guarded else request
            try:
                yield from inner(requests, context)
            finally:
                ended(requests)
    else:
        def behavior(request, context):
            _admit(counter, context, queue_seconds, what)
            requests = IdleGuard(request, context, idle_seconds) if guarded else request
            try:
                return inner(requests, context)
            finally:
                ended(requests)

    return make(behavior, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)


def pool_size(max_streams: int, max_health: int = 4, max_queued: int = 0) -> int:
    """Worker threads for :class:`CallLimits`: every allowed and every queued call (a queued
    call waits in a worker), plus spares for quick refusals."""
    return max(1, int(max_streams)) + max(0, int(max_queued)) + max(1, int(max_health)) + 4


__all__ = ["CallLimits", "ClientGone", "IDLE_SECONDS", "IdleGuard", "MAX_QUEUED", "QUEUE_SECONDS", "StreamIdle",
           "pool_size"]
