"""Training jobs from the client: the same calls for a server and in-process.

``recipe`` is ``noise2atom`` (seed 004, ``train-series``) or ``adapt`` (issue 18).

``start`` streams the series and returns ``{"job_id", "state", "model_id", "message"}``;
``watch`` yields progress dictionaries (``kind``, ``state``, ``step``, ``total_steps``,
``losses``, ``css``, ``paired_mse``, ``elapsed``, ``eta``, ``message``) until the job ends,
the last one being ``{"kind": "state", "state": <final>}``; ``cancel`` asks it to stop.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

import grpc
import numpy as np

from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.wire import HELD_OUT_SCORES, frame_to_chunks


def _job(message: pb.TrainingJob) -> dict[str, Any]:
    return {"job_id": message.job_id, "state": message.state, "model_id": message.model_id, "message": message.message}


def _event(message: pb.TrainingEvent) -> dict[str, Any]:
    event: dict[str, Any] = {
        "kind": message.kind, "state": message.state, "step": int(message.step),
        "total_steps": int(message.total_steps), "losses": dict(message.losses),
        "elapsed": message.elapsed_seconds, "eta": message.eta_seconds, "message": message.message,
        "model_id": message.model_id,
    }
    for key in HELD_OUT_SCORES:
        event[key] = getattr(message, key) if message.HasField(key) else None
    return event


class RemoteTraining:
    """Training calls of :class:`emdenoise.client.remote.RemoteClient`."""

    def __init__(self, client):
        self.client = client

    def _call(self, method, request, **kwargs):
        from emdenoise.client.grpc_errors import user_error

        try:
            return method(request, **kwargs)
        except grpc.RpcError as error:
            raise user_error(error, self.client.address) from None

    def start(self, frames: Iterable[np.ndarray] | None, model_id: str, *, gain: float | None = None,
              offset: float | None = None, preset: str = "cpu", settings: dict | None = None,
              series_name: str = "", server_path: str = "", frame_count: int = 0,
              recipe: str = "noise2atom") -> dict[str, Any]:
        options = pb.TrainSeriesOptions(model_id=model_id, preset=preset, series_name=series_name,
                                        settings_json=json.dumps(settings or {}), server_path=server_path,
                                        frame_count=frame_count, recipe=recipe)
        if gain is not None:
            options.gain = float(gain)
        if offset is not None:
            options.offset = float(offset)

        def requests() -> Iterator[pb.TrainSeriesRequest]:
            yield pb.TrainSeriesRequest(options=options)
            for index, frame in enumerate(() if frames is None else frames):
                for chunk in frame_to_chunks(np.asarray(frame), index):
                    yield pb.TrainSeriesRequest(chunk=chunk)

        return _job(self._call(self.client.stub.StartTraining, requests()))

    def watch(self, job_id: str) -> Iterator[dict[str, Any]]:
        from emdenoise.client.grpc_errors import user_error

        try:
            for message in self.client.stub.WatchTraining(pb.TrainingJobRequest(job_id=job_id)):
                yield _event(message)
        except grpc.RpcError as error:
            raise user_error(error, self.client.address) from None

    def cancel(self, job_id: str) -> dict[str, Any]:
        return _job(self._call(self.client.stub.CancelTraining, pb.TrainingJobRequest(job_id=job_id)))

    def jobs(self) -> list[dict[str, Any]]:
        reply = self._call(self.client.stub.ListTrainingJobs, pb.ListTrainingJobsRequest())
        return [_job(job) for job in reply.jobs]


class EmbeddedTraining:
    """Training calls of :class:`emdenoise.client.embedded.EmbeddedClient`: a worker process of this one."""

    def __init__(self, engine):
        from emdenoise.jobs.manager import jobs_for_engine

        self.manager = jobs_for_engine(engine)

    def start(self, frames, model_id: str, *, gain=None, offset=None, preset: str = "cpu", settings=None,
              series_name: str = "", server_path: str = "", frame_count: int = 0,
              recipe: str = "noise2atom") -> dict[str, Any]:
        if server_path:
            from emdenoise.train.series_checks import read_series_file

            frames = read_series_file(server_path)
        job = self.manager.start(list(frames), model_id, gain=gain, offset=offset, preset=preset,
                                 settings=settings, series_name=series_name, recipe=recipe)
        state = job.state()
        return {"job_id": job.id, "state": state.get("state", ""), "model_id": model_id, "message": state.get("message", "")}

    def watch(self, job_id: str) -> Iterator[dict[str, Any]]:
        keys = ("kind", "state", "step", "total_steps", "losses", *HELD_OUT_SCORES, "elapsed", "eta", "message", "model_id")
        for event in self.manager.watch(job_id):
            yield {key: event.get(key, {} if key == "losses" else None) for key in keys}

    def cancel(self, job_id: str) -> dict[str, Any]:
        state = self.manager.cancel(job_id)
        return {key: state.get(key, "") for key in ("job_id", "state", "model_id", "message")}

    def jobs(self) -> list[dict[str, Any]]:
        return [{key: s.get(key, "") for key in ("job_id", "state", "model_id", "message")} for s in self.manager.jobs()]
