"""The LikelihoodMap RPC: raw frame (and optionally its estimate) in, likelihood map out.

Seed 003, sec. 3 "Likelihood maps" on the wire. The computation is
:func:`emdenoise.likelihood.job.run_likelihood`, the same call the embedded client makes,
so a map is identical through the server and in-process.
"""

from __future__ import annotations

from emdenoise.errors import InvalidInput
from emdenoise.likelihood.job import estimate_info, resolve_estimator, run_likelihood
from emdenoise.likelihood.messages import calibration_from_message, response_messages, settings_from_message
from emdenoise.server.streams import ClientGone, guarded
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.wire import FrameAssembler

#: Frames a request may carry: the raw frame and, optionally, its denoised estimate.
MAX_FRAMES = 2


def likelihood_map_stream(service, request_iterator, context):
    """Body of ``DenoiserService.LikelihoodMap``: user errors become gRPC status codes.

    Parameters
    ----------
    service : emdenoise.server.service.DenoiserService
        Provides the engine, the per-frame size limit and the compute slots.
    request_iterator, context
        As gRPC hands them to a stream-stream method.
    """
    yield from guarded("LikelihoodMap", _likelihood, service, request_iterator, context, context=context)


def _likelihood(service, request_iterator, context):
    first = next(request_iterator, None)
    if first is None or first.WhichOneof("item") != "options":
        raise InvalidInput("a LikelihoodMap stream must start with LikelihoodOptions.")
    options = first.options
    settings = settings_from_message(options)
    calibration = calibration_from_message(options)
    assembler = FrameAssembler(max_frame_bytes=service.max_frame_bytes)
    frames = []
    for request in request_iterator:
        if not context.is_active():
            raise ClientGone()
        if request.WhichOneof("item") != "chunk":
            raise InvalidInput("LikelihoodOptions may only be sent once, as the first message.")
        if assembler.next_frame >= MAX_FRAMES:
            raise InvalidInput("send at most two frames: the raw frame and, optionally, its denoised estimate.")
        frame = assembler.add(request.chunk)
        if frame is not None:
            frames.append(frame)
    if assembler.in_progress:
        raise InvalidInput("the stream ended in the middle of a frame; the upload was truncated, send it again.")
    if not frames:
        raise InvalidInput("no frame was sent; send the raw frame (and optionally its denoised estimate).")
    noisy = frames[0]
    denoised = frames[1] if len(frames) > 1 else None
    card = resolve_estimator(service.engine, denoised, options.model_id, options.modality)
    yield pb.LikelihoodResponse(started=pb.JobInfo(**estimate_info(card, service.engine.device)))
    with service._compute_slot(context):
        result = run_likelihood(service.engine, noisy, denoised, card=card, settings=settings, **calibration)
    yield from response_messages(result)
