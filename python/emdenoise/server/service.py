"""The gRPC Denoiser service: streams frames through the engine.

The server knows nothing of tiling (ARCHITECTURE.md): it reassembles frames, hands each
to :class:`emdenoise.engine.Engine`, streams the result back, and turns every user error
into a gRPC status with a sentence a microscopist can act on.
"""

from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager


import grpc

from emdenoise import chunk_codec
from emdenoise._version import __version__
from emdenoise.engine import Engine, ModelCard
from emdenoise.engine.validation import check_job_options
from emdenoise.errors import InvalidInput
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.v1 import denoiser_pb2_grpc as pb_grpc
from emdenoise.server.segment_cache import SegmentCache
from emdenoise.server.shared_frames import SharedFrames
from emdenoise.server.streams import ClientGone, guarded, incoming_frames, pipelined
from emdenoise.wire import MAX_FRAME_BYTES

log = logging.getLogger(__name__)

def model_info(card: ModelCard) -> pb.ModelInfo:
    """ListModels entry for a card."""
    return pb.ModelInfo(
        id=card.id,
        name=str(card.raw.get("name", card.id)),
        task=card.task,
        backend=card.backend,
        modality=card.modality,
        is_default=card.is_default,
        version=card.version,
        dose_range=list(card.dose_range or ()),
        graph_sha256=card.graph_sha256(),
        card_json=json.dumps(card.raw, sort_keys=True),
    )


def job_info(card: ModelCard, device: str) -> pb.JobInfo:
    """What ran, for provenance."""
    return pb.JobInfo(
        model_id=card.id,
        model_version=card.version,
        graph_sha256=card.graph_sha256(),
        emdenoise_version=__version__,
        device=device,
    )


class _HandlerTable:
    """Stands in for the server while the generated code registers its handlers, to keep them."""

    def add_generic_rpc_handlers(self, handlers) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        self.service, self.handlers = service, handlers


def add_to_server(service: "DenoiserService", server: grpc.Server) -> None:
    """Register the Denoiser service as the generated code does, but Denoise with the
    chunk codec of :mod:`emdenoise.chunk_codec` (the same bytes on the wire, fewer copies).
    """
    table = _HandlerTable()
    pb_grpc.add_DenoiserServicer_to_server(service, table)
    handlers = dict(table.handlers)
    handlers["Denoise"] = grpc.stream_stream_rpc_method_handler(
        service.Denoise, request_deserializer=chunk_codec.parse_request, response_serializer=chunk_codec.serialize
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(table.service, handlers),))
    server.add_registered_method_handlers(table.service, handlers)


class DenoiserService(pb_grpc.DenoiserServicer):
    """Denoiser servicer over one shared engine.

    Parameters
    ----------
    engine : Engine
        Loaded once; ONNX Runtime sessions are shared by all streams.
    max_parallel_frames : int
        Frames computed at the same time across all streams (bounded concurrency: more
        streams wait their turn instead of exhausting memory). When the engine batches
        calls (``engine.batching``), ``max_parallel_frames * max_batch`` frames may be in
        the engine at once, so that runs can stack up to ``max_batch`` windows (a frame
        waits there at most the batch delay, or for a run in progress).
    max_frame_bytes : int
        Largest frame a request may announce.
    """

    def __init__(self, engine: Engine, *, max_parallel_frames: int = 2, max_frame_bytes: int = MAX_FRAME_BYTES):
        self.engine = engine
        self.max_frame_bytes = max_frame_bytes
        batching = getattr(engine, "batching", None)
        frames = max(1, max_parallel_frames) * (batching.max_batch if batching is not None else 1)
        self._compute_slots = threading.BoundedSemaphore(frames)
        self.max_training_jobs = 1  # Noise2Atom jobs at once (emdenoise.server.training_rpc)
        self._training = None
        self._training_lock = threading.Lock()
        self.on_frame = None  # called once per frame denoised (metrics)
        self.segments = SegmentCache()  # clients' shared-memory segments kept between their calls

    @property
    def training(self):
        """Noise2Atom training jobs (seed 004), created on first use; their workers run torch, this process never does."""
        with self._training_lock:
            if self._training is None:
                from emdenoise.jobs.manager import jobs_for_engine

                self._training = jobs_for_engine(self.engine, max_jobs=self.max_training_jobs)
            return self._training

    @contextmanager
    def _compute_slot(self, context):
        while not self._compute_slots.acquire(timeout=0.5):
            if not context.is_active():
                raise ClientGone()
        try:
            yield
        finally:
            self._compute_slots.release()

    def ListModels(self, request, context):
        self.engine.repository.refresh()
        cards = self.engine.list_cards()
        return pb.ListModelsResponse(models=[model_info(card) for card in cards], device=self.engine.device)

    def Denoise(self, request_iterator, context):
        yield from guarded("Denoise", self._denoise, request_iterator, context, context=context)

    def LikelihoodMap(self, request_iterator, context):
        from emdenoise.server.likelihood_rpc import likelihood_map_stream

        yield from likelihood_map_stream(self, request_iterator, context)

    def Encode(self, request_iterator, context):
        from emdenoise.server.compress_rpc import encode_stream

        yield from encode_stream(self, request_iterator, context)

    def Decode(self, request_iterator, context):
        from emdenoise.server.compress_rpc import decode_stream

        yield from decode_stream(self, request_iterator, context)

    def StartTraining(self, request_iterator, context):
        from emdenoise.server.training_rpc import start_training

        return start_training(self, request_iterator, context)

    def WatchTraining(self, request, context):
        from emdenoise.server.training_rpc import watch_training

        yield from watch_training(self, request, context)

    def CancelTraining(self, request, context):
        from emdenoise.server.training_rpc import cancel_training

        return cancel_training(self, request, context)

    def ListTrainingJobs(self, request, context):
        from emdenoise.server.training_rpc import list_training_jobs

        return list_training_jobs(self, request, context)

    def _denoise(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("item") != "options":
            raise InvalidInput("a Denoise stream must start with DenoiseOptions (model and modality).")
        options = first.options
        card = self.engine.card(options.model_id or None, modality=options.modality or "any")
        if card.task != "denoise":
            raise InvalidInput(f"model {card.id} is a {card.task} model, not a denoiser; choose a denoise model.")
        checked = check_job_options(
            gain=options.gain if options.HasField("gain") else None,
            offset=options.offset if options.HasField("offset") else None,
            tile_size=options.tile_size,
        )
        calibration = {"gain": checked["gain"], "offset": checked["offset"]}
        shared, refused = None, ""
        if options.HasField("shared_memory"):  # a client on this host offered a segment (issue 20, item 3)
            shared, refused = SharedFrames.accept(options.shared_memory, max_frame_bytes=self.max_frame_bytes,
                                                  cache=self.segments)
        started = job_info(card, self.engine.device)
        started.shared_memory, started.shared_memory_refused = shared is not None, refused
        started.shared_memory_kept = shared is not None and shared.kept
        clean = False
        try:
            yield pb.DenoiseResponse(started=started)
            yield from self._denoise_frames(request_iterator, context, options, card, checked, calibration, shared)
            clean = True  # every result was produced (the compute thread ended): nothing writes to the slots
        finally:
            if shared is not None:
                shared.close(clean=clean)

    def _denoise_frames(self, request_iterator, context, options, card, checked, calibration, shared):
        def denoised(stop):  # runs ahead in its own thread: frame n+1 is computed while frame n is sent
            frames = incoming_frames(request_iterator, context, options_name="DenoiseOptions",
                                     max_frame_bytes=self.max_frame_bytes, frame_count=options.frame_count,
                                     shared=shared)
            for index, frame in frames:
                # a frame in shared memory: the engine writes its result into the slot (no copy afterwards)
                out = shared.result_buffer(index, frame.shape) if shared is not None else None
                with self._compute_slot(context):
                    result = self.engine.denoise_frame(
                        frame, card, index=index, tile_size=checked["tile_size"], cancelled=stop, out=out,
                        **calibration
                    )
                frame = out = None  # noqa: F841 -- the received frame is not held while the next one arrives
                if self.on_frame is not None:
                    self.on_frame()
                placed = shared.put_result(index, result) if shared is not None else None
                yield index, (result if placed is None else placed)

        for index, result in pipelined(denoised, context, requests=request_iterator, name="emdenoise-denoise"):
            if isinstance(result, pb.SharedFrame):
                yield pb.DenoiseResponse(shared=result)
            else:  # serialized straight from the array (emdenoise.chunk_codec, registered by add_to_server)
                yield from chunk_codec.chunk_messages(result, index)
            result = None
