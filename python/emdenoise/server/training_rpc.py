"""The training RPCs: start a job (Noise2Atom on a series, seed 004, or adapt, issue 18), watch it, cancel it.

The server only receives frames, checks them and hands them to
:class:`emdenoise.jobs.TrainingJobs`, which trains in a worker process: this module and
everything it imports stay free of torch. A finished job's model is registered in the user
model directory and the engine re-scans it, so the next Denoise can use it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import grpc

from emdenoise.errors import InvalidInput, UserError
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.wire import HELD_OUT_SCORES, FrameAssembler

log = logging.getLogger(__name__)

#: Most frames a training upload may carry (seed 004 samples ~100-120 of a series).
MAX_TRAINING_FRAMES = 2000


def job_message(job_id: str, state: dict) -> pb.TrainingJob:
    return pb.TrainingJob(job_id=job_id, state=str(state.get("state", "")), model_id=str(state.get("model_id", "")),
                          message=str(state.get("message", "")))


def event_message(job_id: str, event: dict) -> pb.TrainingEvent:
    message = pb.TrainingEvent(
        job_id=job_id, kind=str(event.get("kind", "")), state=str(event.get("state", "")),
        step=int(event.get("step", 0)), total_steps=int(event.get("total_steps", 0)),
        elapsed_seconds=float(event.get("elapsed", 0.0)), eta_seconds=float(event.get("eta", 0.0)),
        message=str(event.get("message", "")), model_id=str(event.get("model_id", "")),
    )
    for key, value in (event.get("losses") or {}).items():
        message.losses[key] = float(value)
    for key in HELD_OUT_SCORES:
        if event.get(key) is not None:
            setattr(message, key, float(event[key]))
    return message


def _guard(context, body):
    """Run ``body()``; user errors become status codes, anything else INTERNAL, never a crash."""
    from emdenoise.server.streams import ClientGone, status_for

    try:
        return body()
    except ClientGone:
        context.abort(grpc.StatusCode.CANCELLED, "the call ended before the upload was complete; send it again.")
    except UserError as error:
        context.abort(status_for(error), str(error))
    except grpc.RpcError:
        raise
    except Exception as error:
        log.exception("training RPC failed")
        context.abort(grpc.StatusCode.INTERNAL, f"the server failed unexpectedly ({error}); see its log.")


def _read_upload(request_iterator, context, max_frame_bytes: int, data_root: Path | None = None):
    first = next(request_iterator, None)
    if first is None or first.WhichOneof("item") != "options":
        raise InvalidInput("a StartTraining stream must start with TrainSeriesOptions (model name and settings).")
    options = first.options
    assembler = FrameAssembler(max_frame_bytes=max_frame_bytes)
    frames = []
    for request in request_iterator:
        if not context.is_active():
            raise InvalidInput("the upload was cancelled.")
        if request.WhichOneof("item") != "chunk":
            raise InvalidInput("TrainSeriesOptions may only be sent once, as the first message.")
        if assembler.next_frame >= MAX_TRAINING_FRAMES:
            raise InvalidInput(f"send at most {MAX_TRAINING_FRAMES} frames; Noise2Atom samples about 100 of a series.")
        frame = assembler.add(request.chunk)
        if frame is not None:
            frames.append(frame)
    if assembler.in_progress:
        raise InvalidInput(f"the upload ended in the middle of frame {assembler.next_frame}; send the series again.")
    if options.frame_count and len(frames) != options.frame_count:
        raise InvalidInput(f"{len(frames)} frames arrived but {options.frame_count} were announced; the upload was cut short.")
    if options.server_path:
        if frames:
            raise InvalidInput("send either frames or server_path, not both.")
        frames = _frames_from_path(options.server_path, data_root)
    return options, frames


def inside_data_root(name: str, data_root: Path | None) -> Path:
    """The file ``name`` names under ``data_root``, or PermissionDenied revealing nothing else.

    Parameters
    ----------
    name : str
        A path sent by the client: relative to the data root, or absolute.
    data_root : Path or None
        ``serve --data-root``; None: the server reads no files for clients.

    Raises
    ------
    PermissionDenied
        No data root is configured, or ``name`` resolves (symbolic links followed) outside it.
        The sentence is the same whether or not the path exists.
    """
    from emdenoise.server.streams import PermissionDenied

    if data_root is None:
        raise PermissionDenied("this server reads no files for its clients (it was started without --data-root); "
                               "send the frames instead.")
    root = Path(data_root).resolve()
    try:
        target = (root / name).resolve()
    except (OSError, RuntimeError, ValueError):
        target = None
    if target is None or (target != root and root not in target.parents):
        raise PermissionDenied("the server only reads training files under its data root (serve --data-root); "
                               "give a path inside it, or send the frames instead.")
    return target


def _frames_from_path(name: str, data_root: Path | None) -> list:
    from emdenoise.train.series_checks import read_series_file

    path = inside_data_root(name, data_root)
    if not path.is_file():
        raise InvalidInput(f"{name} is not a file under the server's data root; give a file there, or send the frames.")
    return read_series_file(path)


def start_training(service, request_iterator, context) -> pb.TrainingJob:
    """Body of ``StartTraining``."""

    def body():
        options, frames = _read_upload(request_iterator, context, service.max_frame_bytes,
                                       getattr(service, "data_root", None))
        try:
            settings = json.loads(options.settings_json) if options.settings_json else {}
        except ValueError:
            raise InvalidInput("settings_json is not valid JSON; send an object of the recipe's settings.") from None
        if not isinstance(settings, dict):
            raise InvalidInput("settings_json must be a JSON object of the recipe's settings.")
        job = service.training.start(
            frames, options.model_id,
            gain=options.gain if options.HasField("gain") else None,
            offset=options.offset if options.HasField("offset") else None,
            preset=options.preset or "cpu", settings=settings,
            series_name=options.series_name or (Path(options.server_path).name if options.server_path else ""),
            recipe=options.recipe or "noise2atom",
        )
        return job_message(job.id, job.state())

    return _guard(context, body)


def watch_training(service, request, context):
    """Body of ``WatchTraining``: events until the job ends or the client leaves."""
    from emdenoise.server.streams import status_for

    try:
        for event in service.training.watch(request.job_id, alive=context.is_active):
            yield event_message(request.job_id, event)
    except UserError as error:
        context.abort(status_for(error), str(error))


def cancel_training(service, request, context) -> pb.TrainingJob:
    return _guard(context, lambda: job_message(request.job_id, service.training.cancel(request.job_id)))


def list_training_jobs(service, request, context) -> pb.ListTrainingJobsResponse:
    return _guard(context, lambda: pb.ListTrainingJobsResponse(
        jobs=[job_message(state["job_id"], state) for state in service.training.jobs()]))
