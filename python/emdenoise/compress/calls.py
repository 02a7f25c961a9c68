"""Encode/Decode jobs for both clients: in this process, or through a server's RPCs.

:class:`emdenoise.client.EmbeddedClient` and :class:`emdenoise.client.RemoteClient`
expose these as ``encode(frames, model_id)`` and ``decode(latents, model_id,
encoder_sha256=...)``; both return a :class:`emdenoise.client.DenoiseJob` whose ``info``
is filled before the first item, so callers cannot tell them apart.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import grpc
import numpy as np

from emdenoise.client.job import DenoiseJob
from emdenoise.compress.codec import EncodedFrame, codec_for
from emdenoise.compress.messages import LatentAssembler, frame_messages, info_from_format, job_info_dict
from emdenoise.compress.model import check_latent_source
from emdenoise.errors import InvalidInput
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.wire import FrameAssembler, frame_to_chunks


def _decoder_info(spec, device: str) -> dict:
    info = spec.info(device)
    info["graph_sha256"] = spec.decoder.sha256
    return {key: info[key] for key in ("model_id", "model_version", "graph_sha256", "emdenoise_version", "device")}


# -- embedded ------------------------------------------------------------------------------
def embedded_encode(engine, frames: Iterable[np.ndarray], model_id: str) -> DenoiseJob:
    """Latents of ``frames`` from ``engine`` (seed 002, sec. 2); items are :class:`EncodedFrame`."""
    codec = codec_for(engine)
    spec = codec.spec(model_id)

    def stream() -> Iterator:
        yield spec.info(engine.device)
        for index, frame in enumerate(frames):
            yield codec.encode_frame(frame, spec, index=index)

    return DenoiseJob(stream())


def embedded_decode(engine, latents: Iterable[EncodedFrame], model_id: str, *, encoder_sha256: str) -> DenoiseJob:
    """Restored float32 frames from latents made by ``model_id``'s encoder (checked by digest)."""
    codec = codec_for(engine)
    spec = codec.spec(model_id)
    check_latent_source(spec, encoder_sha256)

    def stream() -> Iterator:
        yield _decoder_info(spec, engine.device)
        for index, encoded in enumerate(latents):
            yield codec.decode_frame(encoded, spec, index=index)

    return DenoiseJob(stream())


# -- remote ----------------------------------------------------------------------------------
class _Source:
    """Wraps the iterator a request stream reads, keeping its error: gRPC would only report
    the call as cancelled, and the user needs to hear why (a corrupt file, a bad frame)."""

    def __init__(self, items: Iterable):
        self.items = iter(items)
        self.error: BaseException | None = None

    def __iter__(self):
        while True:
            try:
                item = next(self.items)
            except StopIteration:
                return
            except BaseException as error:
                self.error = error
                raise
            yield item

    def failure(self, error: grpc.RpcError, address: str) -> BaseException:
        from emdenoise.client.grpc_errors import user_error

        return self.error if self.error is not None else user_error(error, address)


def remote_encode(client, frames: Iterable[np.ndarray], model_id: str, *, frame_count: int = 0) -> DenoiseJob:
    """Stream ``frames`` to the server's Encode RPC; items are :class:`EncodedFrame`."""
    source = _Source(frames)

    def requests() -> Iterator[pb.EncodeRequest]:
        yield pb.EncodeRequest(options=pb.EncodeOptions(model_id=model_id or "", frame_count=frame_count))
        for index, frame in enumerate(source):
            for chunk in frame_to_chunks(np.asarray(frame), index):
                yield pb.EncodeRequest(chunk=chunk)

    call = client.stub.Encode(requests())

    def results() -> Iterator:
        assembler = None
        try:
            for response in call:
                kind = response.WhichOneof("item")
                if kind == "started":
                    info = info_from_format(response.started)
                    assembler = LatentAssembler(info["tile_size"], info["depth"], info["latent_side"])
                    yield info
                elif assembler is None:
                    raise InvalidInput("the server sent latents before their format; update the server.")
                elif kind == "frame":
                    assembler.add_header(response.frame)
                else:
                    encoded = assembler.add_chunk(response.chunk)
                    if encoded is not None:
                        yield encoded
        except grpc.RpcError as error:
            raise source.failure(error, client.address) from None

    return DenoiseJob(results(), cancel=call.cancel)


def remote_decode(
    client, latents: Iterable[EncodedFrame], model_id: str, *, encoder_sha256: str, frame_count: int = 0
) -> DenoiseJob:
    """Stream latents to the server's Decode RPC; items are restored float32 frames."""
    source = _Source(latents)

    def requests() -> Iterator[pb.DecodeRequest]:
        yield pb.DecodeRequest(options=pb.DecodeOptions(
            model_id=model_id or "", encoder_sha256=encoder_sha256 or "", frame_count=frame_count
        ))
        for index, encoded in enumerate(source):
            for message in frame_messages(encoded, index):
                if isinstance(message, pb.LatentFrame):
                    yield pb.DecodeRequest(frame=message)
                else:
                    yield pb.DecodeRequest(chunk=message)

    call = client.stub.Decode(requests())

    def results() -> Iterator:
        assembler = FrameAssembler()
        try:
            for response in call:
                if response.WhichOneof("item") == "started":
                    yield job_info_dict(response.started)
                    continue
                frame = assembler.add(response.chunk)
                if frame is not None:
                    yield frame
        except grpc.RpcError as error:
            raise source.failure(error, client.address) from None

    return DenoiseJob(results(), cancel=call.cancel)


__all__ = ["embedded_decode", "embedded_encode", "remote_decode", "remote_encode"]
