"""Encode/Decode messages <-> :class:`EncodedFrame`, shared by the client and the server.

One frame's latents travel as a :class:`LatentFrame` (original size, per-tile
normalisation) followed by one float32 array of shape ``(tiles * depth, side * side)``
cut into :mod:`emdenoise.wire` chunks, so latents of any frame size stay below the
message limit and are checked like frames.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from emdenoise.compress.codec import EncodedFrame
from emdenoise.compress.grid import plan_grid
from emdenoise.errors import InvalidInput, ResourceExhausted
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.wire import MAX_FRAME_BYTES, FrameAssembler, frame_to_chunks

_JOB_FIELDS = ("model_id", "model_version", "graph_sha256", "emdenoise_version", "device")


def format_message(info: dict) -> pb.LatentFormat:
    """The LatentFormat of a codec ``info`` (``AutoencoderSpec.info``)."""
    return pb.LatentFormat(
        job=pb.JobInfo(**{key: str(info.get(key, "")) for key in _JOB_FIELDS}),
        encoder_sha256=info["encoder_sha256"],
        decoder_sha256=info["decoder_sha256"],
        depth=int(info["depth"]),
        tile_size=int(info["tile_size"]),
        latent_side=int(info["latent_side"]),
        normalization=info.get("normalization", ""),
    )


def info_from_format(message: pb.LatentFormat) -> dict:
    """The codec info dictionary a LatentFormat carries."""
    info = {key: getattr(message.job, key) for key in _JOB_FIELDS}
    info.update(
        encoder_sha256=message.encoder_sha256,
        decoder_sha256=message.decoder_sha256,
        depth=int(message.depth),
        tile_size=int(message.tile_size),
        latent_side=int(message.latent_side),
        normalization=message.normalization,
    )
    return info


def job_info_dict(message: pb.JobInfo) -> dict:
    """A JobInfo as the provenance dictionary every job's ``info`` holds."""
    return {key: getattr(message, key) for key in _JOB_FIELDS}


def frame_messages(encoded: EncodedFrame, index: int) -> Iterator[pb.LatentFrame | pb.FrameChunk]:
    """A LatentFrame, then the latents' chunks (the caller wraps them in its request/response)."""
    yield pb.LatentFrame(
        frame_index=index,
        height=encoded.shape[0],
        width=encoded.shape[1],
        shift=encoded.shift.tolist(),
        scale=encoded.scale.tolist(),
    )
    count, depth, side, _ = encoded.latents.shape
    yield from frame_to_chunks(np.ascontiguousarray(encoded.latents, np.float32).reshape(count * depth, side * side), index)


class LatentAssembler:
    """Collect LatentFrame + chunks into :class:`EncodedFrame` objects, checking the layout.

    Parameters
    ----------
    tile, depth, side : int
        The model's tile size, latent depth and latent side (from its card or LatentFormat).
    max_frame_bytes : int
        Largest latent array a frame may announce.
    """

    def __init__(self, tile: int, depth: int, side: int, *, max_frame_bytes: int = MAX_FRAME_BYTES):
        self.tile, self.depth, self.side = int(tile), int(depth), int(side)
        self.max_frame_bytes = max_frame_bytes
        self.frames = FrameAssembler(max_frame_bytes=max_frame_bytes)
        self._header: pb.LatentFrame | None = None

    @property
    def next_frame(self) -> int:
        return self.frames.next_frame

    @property
    def in_progress(self) -> bool:
        return self._header is not None or self.frames.in_progress

    def add_header(self, message: pb.LatentFrame) -> None:
        """Start frame ``next_frame``: its size and per-tile normalisation (checked)."""
        index = self.frames.next_frame
        if self._header is not None or self.frames.in_progress:
            raise InvalidInput(f"frame {index}: a LatentFrame arrived before the previous frame's latents; send them in order.")
        if message.frame_index != index:
            raise InvalidInput(f"latents of frame {message.frame_index} arrived while frame {index} was expected; send frames in order.")
        grid = plan_grid((int(message.height), int(message.width)), self.tile)
        restored_bytes = grid.padded_shape[0] * grid.padded_shape[1] * 4
        if restored_bytes > self.max_frame_bytes:
            raise ResourceExhausted(
                f"frame {index} would decode to {restored_bytes / 2**20:.0f} MiB, above the "
                f"{self.max_frame_bytes / 2**20:.0f} MiB per-frame limit; split the stack or raise --max-frame-mib."
            )
        if len(message.shift) != grid.count or len(message.scale) != grid.count:
            raise InvalidInput(
                f"frame {index}: a {message.height}x{message.width} frame has {grid.count} tiles, but "
                f"{len(message.shift)} shifts and {len(message.scale)} scales were sent; send one per tile."
            )
        self._header = message

    def add_chunk(self, chunk: pb.FrameChunk) -> EncodedFrame | None:
        """Add one chunk of the current frame's latents; the frame once complete, else None."""
        if self._header is None:
            raise InvalidInput(f"frame {self.frames.next_frame}: latents arrived without their LatentFrame; send it first.")
        array = self.frames.add(chunk)
        if array is None:
            return None
        header, self._header = self._header, None
        grid = plan_grid((int(header.height), int(header.width)), self.tile)
        expected = (grid.count * self.depth, self.side * self.side)
        index = self.frames.next_frame - 1
        if array.dtype != np.float32 or array.shape != expected:
            raise InvalidInput(
                f"frame {index}: latents of shape {array.shape} ({array.dtype}) do not fit this model "
                f"(depth {self.depth}: expected float32 {expected}); decode them with the model that encoded them."
            )
        return EncodedFrame(
            shape=grid.shape,
            tile=self.tile,
            shift=np.asarray(header.shift, np.float32),
            scale=np.asarray(header.scale, np.float32),
            latents=array.reshape(grid.count, self.depth, self.side, self.side),
        )
