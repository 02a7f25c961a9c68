"""How many calls the server runs at once, and how long an upload may stay silent.

:class:`CallLimits` is a server interceptor with two jobs:

- **Concurrency**: at most ``max_streams`` Denoiser calls run at once; one more is answered
  RESOURCE_EXHAUSTED at once instead of waiting. Health checks have their own small
  allowance (``max_health``), so a server full of streams still says it is alive.
- **Idle uploads**: every client-streaming call reads its requests through
  :class:`IdleGuard`. A stream that sends nothing for ``idle_seconds`` while the server
  waits for it ends with DEADLINE_EXCEEDED and its partly received frames are dropped.
  Time the server spends computing never counts.

The thread pool has a worker for every allowed call plus spares for the refusals
(:func:`pool_size`), so neither stalled streams nor health probes starve each other.
"""

from __future__ import annotations

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


class StreamIdle(UserError):
    """The client stopped sending in the middle of a stream (status DEADLINE_EXCEEDED)."""


class ClientGone(Exception):
    """The client cancelled or disconnected (or the server is stopping): stop working on its stream."""


class _Counter:
    def __init__(self, limit: int):
        self.limit = max(1, int(limit))
        self.active = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self.active >= self.limit:
                return False
            self.active += 1
            return True

    def release(self) -> None:
        with self._lock:
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


def _refuse(code: grpc.StatusCode, message: str):
    def refuse(_request, context):
        context.abort(code, message)

    return refuse


class CallLimits(grpc.ServerInterceptor):
    """Concurrency allowance (Health apart) and idle limit of uploads; see the module docstring.

    Parameters
    ----------
    max_streams : int
        Denoiser calls at once.
    max_health : int
        Health calls at once (Check and Watch), counted apart from ``max_streams``.
    idle_seconds : float or None
        Silence allowed in the middle of a client stream (None: no limit).
    trimmer : Trimmer or None
        Told when each Denoiser call ends, so the memory of its frames goes back to the
        operating system (:mod:`emdenoise.server.memory`; None: never trim).
    """

    def __init__(self, max_streams: int = 16, *, max_health: int = 4, idle_seconds: float | None = IDLE_SECONDS,
                 trimmer: Trimmer | None = None):
        self.streams = _Counter(max_streams)
        self.health = _Counter(max_health)
        self.idle_seconds = idle_seconds
        self.trimmer = trimmer

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        is_health = handler_call_details.method.startswith(HEALTH_PREFIX)
        counter = self.health if is_health else self.streams
        busy = (f"the server is busy with {counter.limit} {'health checks' if is_health else 'streams'} at once; "
                "try again shortly, or ask its operator to raise --max-streams.")
        return _wrap(handler, counter, busy, None if is_health else self.idle_seconds,
                     None if is_health else self.trimmer)


def _wrap(handler: grpc.RpcMethodHandler, counter: _Counter, busy: str, idle_seconds: float | None,
          trimmer: Trimmer | None = None):
    """``handler`` run inside ``counter``'s allowance, its requests through :class:`IdleGuard`."""
    inner, make = behaviour(handler)
    refuse = _refuse(grpc.StatusCode.RESOURCE_EXHAUSTED, busy)

    guarded = handler.request_streaming and bool(idle_seconds)

    def ended(requests) -> None:
        counter.release()
        if guarded:
            requests.close()
        if trimmer is not None:
            trimmer.call_ended()

    if handler.response_streaming:
        def behavior(request, context):
            if not counter.try_acquire():
                refuse(request, context)
            requests = IdleGuard(request, context, idle_seconds) if guarded else request
            try:
                yield from inner(requests, context)
            finally:
                ended(requests)
    else:
        def behavior(request, context):
            if not counter.try_acquire():
                refuse(request, context)
            requests = IdleGuard(request, context, idle_seconds) if guarded else request
            try:
                return inner(requests, context)
            finally:
                ended(requests)

    return make(behavior, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)


def pool_size(max_streams: int, max_health: int = 4) -> int:
    """Worker threads for :class:`CallLimits`: every allowed call, plus spares for quick refusals."""
    return max(1, int(max_streams)) + max(1, int(max_health)) + 4


__all__ = ["CallLimits", "ClientGone", "IDLE_SECONDS", "IdleGuard", "StreamIdle", "pool_size"]
