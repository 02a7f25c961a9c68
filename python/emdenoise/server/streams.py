"""What every streaming RPC of the server shares: error handling and the incoming frames.

Each stream-stream method (Denoise, LikelihoodMap, Encode, Decode) turns user errors into a
gRPC status with the sentence a microscopist can act on, drops the work of a client that
went away, and never lets an unexpected error take the server down (ARCHITECTURE.md, wire
conventions).
"""

from __future__ import annotations

import logging
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


def incoming_frames(request_iterator, context, *, options_name: str, max_frame_bytes: int,
                    frame_count: int = 0) -> Iterator[tuple[int, object]]:
    """``(index, frame)`` of each frame the client streams after its options message.

    Raises
    ------
    ClientGone
        The client went away.
    InvalidInput
        A second options message, a truncated last frame, an empty stack, or fewer or more
        frames than ``frame_count`` announced (0: not announced).
    """
    assembler = FrameAssembler(max_frame_bytes=max_frame_bytes)
    for request in request_iterator:
        if not context.is_active():
            raise ClientGone()
        if request.WhichOneof("item") != "chunk":
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
