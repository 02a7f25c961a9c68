"""What every streaming RPC of the server shares: error handling and the incoming frames.

Each stream-stream method (Denoise, LikelihoodMap, Encode, Decode) turns user errors into a
gRPC status with the sentence a microscopist can act on, drops the work of a client that
went away, and never lets an unexpected error take the server down (ARCHITECTURE.md, wire
conventions).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable, Iterator

import grpc

from emdenoise.engine.engine import JobCancelled
from emdenoise.errors import InvalidInput, ModelNotFound, ResourceExhausted, UserError
from emdenoise.server.limits import ClientGone, StreamIdle
from emdenoise.wire import FrameAssembler

log = logging.getLogger(__name__)

class PermissionDenied(UserError):
    """The request names something on the server this client may not use (status PERMISSION_DENIED)."""


STATUS_OF = (
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (StreamIdle, grpc.StatusCode.DEADLINE_EXCEEDED),
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFound, grpc.StatusCode.NOT_FOUND),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (UserError, grpc.StatusCode.FAILED_PRECONDITION),
)


def stopped(context) -> Callable[[], bool]:
    """``cancelled`` for the engine: True once the call ended (client gone, deadline, server stopping)."""
    return lambda: not context.is_active()


def status_for(error: Exception) -> grpc.StatusCode:
    """The gRPC status code of a user error (INTERNAL for anything else)."""
    for kind, code in STATUS_OF:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def guarded(name: str, body: Callable[..., Iterator], *args, context) -> Iterator:
    """Yield from ``body(*args)``; user errors abort with their status, nothing else escapes.

    Parameters
    ----------
    name : str
        The RPC, for the log.
    body : callable
        Generator function of the RPC's work.
    *args
        Passed to ``body``.
    context : grpc.ServicerContext
        The stream's context.
    """
    try:
        yield from body(*args)
    except (ClientGone, JobCancelled):
        log.info("client went away; its %s job is dropped", name)
    except UserError as error:
        context.abort(status_for(error), str(error))
    except grpc.RpcError:
        raise
    except Exception as error:  # never let one request take the server down
        if not context.is_active():
            return
        log.exception("%s failed", name)
        context.abort(grpc.StatusCode.INTERNAL, f"the server failed unexpectedly ({error}); see its log.")


_DONE = object()


#: Seconds a closed :func:`pipelined` waits for its producer (it stops between tile batches
#: or within a poll of its request reader; the wait only ends early on a stuck reader).
JOIN_SECONDS = 10.0


def pipelined(produce: Callable[[Callable[[], bool]], Iterator], context, *, requests=None, depth: int = 1,
              name: str = "emdenoise-compute") -> Iterator:
    """Yield what ``produce(stop)`` yields, computed ahead in a thread of its own.

    gRPC's synchronous server sends a response message from the handler's thread and
    waits until the transport took it, so a handler that computes and sends in turn
    leaves the engine idle while each result travels (a 4 MiB float32 frame: about a
    third of the wall time of ``ede-kernel-stem-5`` at 1024x1024). Here the next frame is
    read and computed while the previous one is sent; at most ``depth`` finished results
    wait, so memory stays bounded.

    ``produce`` receives ``stop()`` (True once this generator was closed or the call
    ended) to pass on as the engine's ``cancelled``. Its exceptions (user errors,
    :class:`ClientGone`, :class:`JobCancelled`) are raised here, in the handler's thread,
    where :func:`guarded` turns them into a status. Closing this generator (the call
    ended or failed) stops the producer and waits for it, so no computation outlives
    its call (the server's SIGTERM grace and memory release count on that).

    Parameters
    ----------
    produce : callable
        Generator function of the work, given ``stop``.
    context : grpc.ServicerContext
        The call's context.
    requests : iterator, optional
        The call's requests, closed (when they can be, :class:`IdleGuard`) if the
        producer still waits for one when this generator is closed.
    depth : int
        Finished results that may wait to be sent.
    name : str
        The producer thread's name.
    """
    results: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
    closed = threading.Event()

    def stop() -> bool:
        return closed.is_set() or not context.is_active()

    def put(item) -> bool:
        while not stop():  # nobody will take it once the call ended
            try:
                results.put(item, timeout=0.25)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in produce(stop):
                if not put(item):
                    return
                item = None  # noqa: F841 -- a sent frame is not kept alive by this frame
            put(_DONE)
        except BaseException as error:  # raised again in the handler's thread
            put(error)

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = results.get(timeout=0.25)
            except queue.Empty:
                if not worker.is_alive() and results.empty():
                    raise ClientGone() from None  # the producer ended without a word (closed)
                continue
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                error, item = item, None
                try:
                    raise error
                finally:  # the traceback holds this frame: no local may hold the error (a cycle keeping the frames)
                    error = None
            yield item
            item = None
    finally:
        closed.set()
        try:
            while True:
                results.get_nowait()
        except queue.Empty:
            pass
        if worker.is_alive() and callable(getattr(requests, "close", None)):
            requests.close()  # a producer waiting for the client's next message (IdleGuard) gives up at once
        worker.join(JOIN_SECONDS)


def incoming_frames(request_iterator, context, *, options_name: str, max_frame_bytes: int,
                    frame_count: int = 0, shared=None) -> Iterator[tuple[int, object]]:
    """``(index, frame)`` of each frame the client streams after its options message.

    Parameters
    ----------
    shared : emdenoise.server.shared_frames.SharedFrames, optional
        The call's shared-memory segment: ``shared`` requests (Denoise) name frames in it.

    Raises
    ------
    ClientGone
        The client went away.
    InvalidInput
        A second options message, a truncated last frame, an empty stack, fewer or more
        frames than ``frame_count`` announced (0: not announced), or a frame in shared
        memory in a call without a segment.
    """
    assembler = FrameAssembler(max_frame_bytes=max_frame_bytes)
    for request in request_iterator:
        if not context.is_active():
            raise ClientGone()
        kind = request.WhichOneof("item")
        if kind == "shared":
            if shared is None:
                raise InvalidInput("a frame in shared memory arrived, but this call has no shared-memory segment; "
                                   "send frames as chunks.")
            assembler.add_whole(request.shared.frame_index)
            yield assembler.next_frame - 1, shared.frame(request.shared)
            continue
        if kind != "chunk":
            raise InvalidInput(f"{options_name} may only be sent once, as the first message.")
        frame = assembler.add(request.chunk)
        if frame is not None:
            yield assembler.next_frame - 1, frame
    if assembler.in_progress:
        raise InvalidInput(
            f"the stream ended in the middle of frame {assembler.next_frame}; the upload was truncated, send it again."
        )
    if assembler.next_frame == 0:
        raise InvalidInput("the stack is empty: no frames were sent.")
    if frame_count and assembler.next_frame != frame_count:
        raise InvalidInput(f"{assembler.next_frame} frames arrived but {frame_count} were announced; the upload was cut short.")
