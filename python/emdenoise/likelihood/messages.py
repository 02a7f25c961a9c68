"""LikelihoodMap messages <-> Python objects, shared by the client and the server.

The frames travel as :mod:`emdenoise.wire` chunks; this module only maps the options and
the region table, so both ends read and write them the same way.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from emdenoise.errors import InvalidInput
from emdenoise.likelihood.compute import LikelihoodResult, LikelihoodSettings, Region
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.wire import FrameAssembler, frame_to_chunks

_OPTIONAL_NUMBERS = ("vacuum_level", "min_sigma", "max_sigma", "threshold")
_STRINGS = ("polarity", "vacuum", "map_units")
#: Frames of a reply, in order.
RESULT_FRAMES = ("llr_map", "labels", "estimate")


def options_message(
    settings: LikelihoodSettings,
    *,
    model_id: str | None = None,
    modality: str = "any",
    gain: float | None = None,
    offset: float | None = None,
) -> pb.LikelihoodOptions:
    """The first message of a LikelihoodMap stream."""
    options = pb.LikelihoodOptions(model_id=model_id or "", modality=modality or "any")
    for name in _STRINGS:
        setattr(options, name, getattr(settings, name))
    for name in _OPTIONAL_NUMBERS:
        value = getattr(settings, name)
        if value is not None:
            setattr(options, name, float(value))
    if gain is not None:
        options.gain = float(gain)
    if offset is not None:
        options.offset = float(offset)
    return options


def settings_from_message(options: pb.LikelihoodOptions) -> LikelihoodSettings:
    """Settings a LikelihoodOptions message asks for (unset fields keep the defaults)."""
    values = {name: getattr(options, name) for name in _STRINGS}
    values.update({name: getattr(options, name) for name in _OPTIONAL_NUMBERS if options.HasField(name)})
    return LikelihoodSettings.from_options(**values)


def calibration_from_message(options: pb.LikelihoodOptions) -> dict:
    """``gain``/``offset`` keyword arguments (None when unset)."""
    return {
        "gain": options.gain if options.HasField("gain") else None,
        "offset": options.offset if options.HasField("offset") else None,
    }


def request_messages(options: pb.LikelihoodOptions, frames: Iterable[np.ndarray]) -> Iterator[pb.LikelihoodRequest]:
    """Options, then each frame's chunks."""
    yield pb.LikelihoodRequest(options=options)
    for index, frame in enumerate(frames):
        for chunk in frame_to_chunks(np.asarray(frame), index):
            yield pb.LikelihoodRequest(chunk=chunk)


def summary_message(result: LikelihoodResult) -> pb.LikelihoodSummary:
    """The region table and the scalars of a result."""
    return pb.LikelihoodSummary(
        regions=[
            pb.LikelihoodRegion(
                id=r.id, row=r.row, col=r.col, radius=r.radius, pixels=r.pixels, intensity=r.intensity,
                observed=r.observed, llr=r.llr, llr_per_pixel=r.llr_per_pixel, power=r.power,
            )
            for r in result.regions
        ],
        vacuum_level=result.vacuum_level,
        vacuum_pixels=result.vacuum_pixels,
        polarity=result.polarity,
        map_units=result.map_units,
        message=result.message,
    )


def response_messages(result: LikelihoodResult) -> Iterator[pb.LikelihoodResponse]:
    """Summary, then the map, label and estimate frames (after the caller's JobInfo)."""
    yield pb.LikelihoodResponse(summary=summary_message(result))
    for index, name in enumerate(RESULT_FRAMES):
        for chunk in frame_to_chunks(getattr(result, name), index):
            yield pb.LikelihoodResponse(chunk=chunk)


def result_from_responses(responses: Iterable[pb.LikelihoodResponse]) -> LikelihoodResult:
    """Rebuild the :class:`LikelihoodResult` a server streamed back."""
    info: dict = {}
    summary = None
    frames: list[np.ndarray] = []
    assembler = FrameAssembler()
    for response in responses:
        kind = response.WhichOneof("item")
        if kind == "started":
            started = response.started
            info = {
                "model_id": started.model_id,
                "model_version": started.model_version,
                "graph_sha256": started.graph_sha256,
                "emdenoise_version": started.emdenoise_version,
                "device": started.device,
            }
        elif kind == "summary":
            summary = response.summary
        elif kind == "chunk":
            frame = assembler.add(response.chunk)
            if frame is not None:
                frames.append(frame)
    if summary is None or len(frames) != len(RESULT_FRAMES):
        raise InvalidInput("the server's likelihood reply was incomplete; run the job again.")
    regions = [
        Region(
            id=int(r.id), row=r.row, col=r.col, radius=r.radius, pixels=int(r.pixels), intensity=r.intensity,
            observed=r.observed, llr=r.llr, llr_per_pixel=r.llr_per_pixel, power=r.power,
            vacuum_rate=summary.vacuum_level,
        )
        for r in summary.regions
    ]
    llr_map, labels, estimate = frames
    return LikelihoodResult(
        llr_map=llr_map,
        labels=labels,
        estimate=estimate,
        regions=regions,
        vacuum_level=summary.vacuum_level,
        vacuum_pixels=int(summary.vacuum_pixels),
        polarity=summary.polarity,
        map_units=summary.map_units,
        message=summary.message,
        info=info,
    )
