"""The Encode and Decode RPCs: frames to autoencoder latents and latents to restored frames.

Seed 002, sec. 2 on the wire. The computation is :class:`emdenoise.compress.LatentCodec`,
the same object the embedded client uses, so latents and restored frames are identical
through the server and in-process. The server knows nothing of tiling: the codec does it.
"""

from __future__ import annotations

from emdenoise.compress.codec import codec_for
from emdenoise.compress.messages import LatentAssembler, format_message, frame_messages
from emdenoise.compress.model import check_latent_source
from emdenoise.errors import InvalidInput
from emdenoise.server.streams import ClientGone, guarded, incoming_frames
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.wire import frame_to_chunks


def encode_stream(service, request_iterator, context):
    """Body of ``DenoiserService.Encode``: user errors become gRPC status codes."""
    yield from guarded("Encode", _encode, service, request_iterator, context, context=context)


def decode_stream(service, request_iterator, context):
    """Body of ``DenoiserService.Decode``: user errors become gRPC status codes."""
    yield from guarded("Decode", _decode, service, request_iterator, context, context=context)


def _check_count(count: int, announced: int, what: str) -> None:
    if count == 0:
        raise InvalidInput(f"the stack is empty: no {what} were sent.")
    if announced and count != announced:
        raise InvalidInput(f"{count} {what} arrived but {announced} were announced; the upload was cut short.")


def _encode(service, request_iterator, context):
    first = next(request_iterator, None)
    if first is None or first.WhichOneof("item") != "options":
        raise InvalidInput("an Encode stream must start with EncodeOptions (the autoencoder's model id).")
    options = first.options
    codec = codec_for(service.engine)
    spec = codec.spec(options.model_id)
    yield pb.EncodeResponse(started=format_message(spec.info(service.engine.device)))
    frames = incoming_frames(request_iterator, context, options_name="EncodeOptions",
                             max_frame_bytes=service.max_frame_bytes, frame_count=options.frame_count)
    for index, frame in frames:
        with service._compute_slot(context):
            encoded = codec.encode_frame(frame, spec, index=index)
        for message in frame_messages(encoded, index):
            if isinstance(message, pb.LatentFrame):
                yield pb.EncodeResponse(frame=message)
            else:
                yield pb.EncodeResponse(chunk=message)


def _decode(service, request_iterator, context):
    first = next(request_iterator, None)
    if first is None or first.WhichOneof("item") != "options":
        raise InvalidInput("a Decode stream must start with DecodeOptions (model id and encoder sha256).")
    options = first.options
    codec = codec_for(service.engine)
    spec = codec.spec(options.model_id)
    check_latent_source(spec, options.encoder_sha256)
    info = spec.info(service.engine.device)
    yield pb.DecodeResponse(started=pb.JobInfo(
        model_id=spec.model_id, model_version=spec.card.version, graph_sha256=spec.decoder.sha256,
        emdenoise_version=info["emdenoise_version"], device=service.engine.device,
    ))
    assembler = LatentAssembler(spec.tile, spec.depth, spec.latent_side, max_frame_bytes=service.max_frame_bytes)
    for request in request_iterator:
        if not context.is_active():
            raise ClientGone()
        kind = request.WhichOneof("item")
        if kind == "frame":
            assembler.add_header(request.frame)
            continue
        if kind != "chunk":
            raise InvalidInput("DecodeOptions may only be sent once, as the first message.")
        encoded = assembler.add_chunk(request.chunk)
        if encoded is None:
            continue
        index = assembler.next_frame - 1
        with service._compute_slot(context):
            restored = codec.decode_frame(encoded, spec, index=index)
        for chunk in frame_to_chunks(restored, index):
            yield pb.DecodeResponse(chunk=chunk)
    if assembler.in_progress:
        raise InvalidInput(f"the stream ended in the middle of frame {assembler.next_frame}'s latents; send them again.")
    _check_count(assembler.next_frame, options.frame_count, "frames of latents")
