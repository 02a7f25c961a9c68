"""Client of a running emdenoise server (gRPC)."""

from __future__ import annotations

import json
import threading
from itertools import chain
from typing import Iterable, Iterator

import grpc
import numpy as np

from emdenoise import chunk_codec
from emdenoise.engine.validation import check_job_options
from emdenoise.client.grpc_errors import user_error
from emdenoise.client.retry import Replay, RetryPolicy, retryable
from emdenoise.client.shared_call import SharedCall, resolve_mode
from emdenoise.client.security import CALL_TIMEOUT, STREAM_TIMEOUT, open_channel, resolve
from emdenoise.errors import InvalidInput, UserError
from emdenoise.shm.pool import RingPool
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.v1 import denoiser_pb2_grpc as pb_grpc
from emdenoise.wire import FrameAssembler
from emdenoise.client.job import DenoiseJob


def card_from_info(info: pb.ModelInfo) -> dict:
    """A ModelInfo as the card dictionary it mirrors."""
    card = json.loads(info.card_json) if info.card_json else {}
    card.update(id=info.id, task=info.task, backend=info.backend, modality=info.modality, default=info.is_default)
    card["graph_sha256"] = info.graph_sha256
    return card


class RemoteClient:
    """Talk to ``emdenoise serve`` at ``address`` (``host:port``).

    Parameters
    ----------
    address : str
        ``host:port`` of the server.
    connect_timeout : float
        Seconds to wait for the server in :meth:`wait_ready` and ListModels.
    tls_ca : path, optional
        PEM certificate of the server (self-signed) or of its CA: the channel uses TLS.
    token_file : path, optional
        File holding the server's bearer token.
    token : str, optional
        The token itself (wins over ``token_file``).
    call_timeout, stream_timeout : float or None
        Deadlines of unary and of streaming calls (:mod:`emdenoise.client.security`).
    retry : RetryPolicy, optional
        How a Denoise call the server refused as busy (RESOURCE_EXHAUSTED) or could not
        take (UNAVAILABLE) before answering is tried again (:mod:`emdenoise.client.retry`);
        default :class:`RetryPolicy` (5 tries, backoff from 0.25 s with jitter).
    shared_memory : {"auto", "on", "off"} or bool, optional
        Denoise frames and results through POSIX shared memory instead of gRPC messages
        (:mod:`emdenoise.client.shared_call`): ``"auto"`` (default, or
        ``$EMDENOISE_SHARED_MEMORY``) for a server on a loopback address, falling back to
        messages when it cannot; ``"on"``/True insists; ``"off"``/False never.

    Notes
    -----
    Settings not given come from ``EMDENOISE_TLS_CA``, ``EMDENOISE_TOKEN``,
    ``EMDENOISE_TOKEN_FILE``, then from those saved for ``address`` by EM Server Settings.
    """

    def __init__(self, address: str, *, connect_timeout: float = 10.0, tls_ca=None, token_file=None,
                 token: str | None = None, call_timeout: float | None = CALL_TIMEOUT,
                 stream_timeout: float | None = STREAM_TIMEOUT, retry: RetryPolicy | None = None,
                 shared_memory: bool | str | None = None):
        self.address = address
        self.shared_memory = resolve_mode(shared_memory, address)  # "on" | "auto" | "off"
        self._rings = RingPool() if self.shared_memory != "off" else None  # kept between calls (emdenoise.shm.pool)
        self.last_transport = ""  # how the last Denoise call's frames travelled: "shared memory" | "messages"
        self.retry = retry or RetryPolicy()
        self.connect_timeout = connect_timeout
        self.security = resolve(address, tls_ca=tls_ca, token_file=token_file, token=token)
        self.channel = open_channel(address, self.security, call_timeout=call_timeout, stream_timeout=stream_timeout)
        self.stub = pb_grpc.DenoiserStub(self.channel)
        # Denoise with the chunk codec: the bytes protobuf would send, without its copies of every frame
        self._denoise_call = self.channel.stream_stream(chunk_codec.DENOISE_METHOD,
                                                        request_serializer=chunk_codec.serialize,
                                                        response_deserializer=chunk_codec.parse_response)

    def close(self) -> None:
        """Close the channel and release the shared-memory rings kept between calls."""
        if self._rings is not None:
            self._rings.close()
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the server accepts connections, or raise a UserError."""
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout or self.connect_timeout)
        except grpc.FutureTimeoutError:
            raise UserError(
                f"cannot reach the emdenoise server at {self.address}; start it with 'emdenoise serve' "
                "or leave the server unset to use the embedded engine."
            ) from None

    @property
    def training(self):
        """Noise2Atom training jobs on the server (:class:`emdenoise.client.training.RemoteTraining`)."""
        from emdenoise.client.training import RemoteTraining

        return RemoteTraining(self)

    def list_models(self) -> list[dict]:
        """Cards of the models the server offers."""
        try:
            reply = self.stub.ListModels(pb.ListModelsRequest(), timeout=self.connect_timeout, wait_for_ready=False)
        except grpc.RpcError as error:
            raise user_error(error, self.address) from None
        return [card_from_info(info) for info in reply.models]

    def denoise(
        self,
        frames: Iterable[np.ndarray],
        model_id: str | None = None,
        *,
        modality: str = "any",
        gain: float | None = None,
        offset: float | None = None,
        frame_count: int = 0,
        tile_size: int | None = None,
    ) -> DenoiseJob:
        """Stream ``frames`` to the server; iterate the returned job for float32 results."""
        checked = check_job_options(gain=gain, offset=offset, tile_size=tile_size)  # as the server will
        gain, offset, tile_size = checked["gain"], checked["offset"], checked["tile_size"]
        options = pb.DenoiseOptions(
            model_id=model_id or "", modality=modality, frame_count=frame_count, tile_size=tile_size or 0
        )
        if gain is not None:
            options.gain = float(gain)
        if offset is not None:
            options.offset = float(offset)

        replay = Replay(frames)  # frames sent before the server took the call are sent again on a retry

        def requests(shared: SharedCall | None) -> Iterator[pb.DenoiseRequest]:
            frames, early = iter(replay.attempt()), None
            if shared is None:
                yield pb.DenoiseRequest(options=options)
            else:  # the segment is sized for the first frame and offered with the options
                first = next(frames, None)
                offered = pb.DenoiseOptions()
                offered.CopyFrom(options)
                offer = shared.offer(first, frame_count) if first is not None else None
                if offer is not None:
                    offered.shared_memory.CopyFrom(offer)
                yield pb.DenoiseRequest(options=offered)
                early = shared.early(np.asarray(first), 0) if offer is not None else None
                if early is not None:  # a ring the server kept: frame 0 goes without waiting for JobInfo
                    yield early
                if offer is not None and not shared.wait_answer() and (shared.strict or shared.stopped):
                    return
                if first is not None and early is None:
                    frames = chain([first], frames)
            for index, frame in enumerate(frames, start=0 if shared is None or early is None else 1):
                frame = np.asarray(frame)
                message = shared.request(frame, index) if shared is not None else None
                if message is not None:
                    yield message
                    continue
                if shared is not None and shared.stopped:
                    return
                yield from chunk_codec.chunk_messages(frame, index)

        calls: list = []
        cancelled = threading.Event()

        def start():
            shared = None if self.shared_memory == "off" else SharedCall(strict=self.shared_memory == "on",
                                                                          pool=self._rings)
            call = self._denoise_call(requests(shared))
            if shared is not None:
                shared.call = call
            calls.append(call)
            if cancelled.is_set():
                call.cancel()
            return call, shared

        def cancel() -> None:
            cancelled.set()
            if calls:
                calls[-1].cancel()

        return DenoiseJob(self._retried(start, replay, cancelled), cancel=cancel)

    def _retried(self, start, replay: Replay, cancelled: threading.Event) -> Iterator:
        """The results of ``start()``'s call; while it fails before its first response with a
        :func:`~emdenoise.client.retry.retryable` status, a new call after a backoff."""
        retries = 0
        while True:
            call, shared = start()
            try:
                first = next(iter(call))
            except StopIteration:
                first = None
            except grpc.RpcError as error:
                if shared is not None:
                    shared.close()
                if not retryable(error) or retries + 1 >= self.retry.attempts or cancelled.is_set():
                    raise user_error(error, self.address) from None
                if cancelled.wait(self.retry.delay(retries)):
                    raise UserError("the job was cancelled.") from None
                retries += 1
                continue
            if shared is not None and first is not None and shared.stale(first):
                # a kept ring the server no longer maps (it restarted): again at once with a new ring;
                # no frame went yet (they wait for the answer), and the dropped ring is not reused
                shared.close()
                call.cancel()
                continue
            replay.commit()  # the server took the call: what it answers from now on is final
            break
        clean = False
        try:
            yield from self._results(call if first is None else chain([first], call), shared)
            clean = True
        finally:  # ended, failed or abandoned: no segment outlives the call (a kept ring waits in the pool)
            if shared is not None:
                shared.close(clean=clean)
            call.cancel()

    def likelihood(
        self,
        noisy: np.ndarray,
        denoised: np.ndarray | None = None,
        model_id: str | None = None,
        *,
        modality: str = "any",
        gain: float | None = None,
        offset: float | None = None,
        estimate_frame: np.ndarray | None = None,
        **settings,
    ):
        """Likelihood map of ``noisy`` (seed 003, sec. 3): with ``denoised``, or the estimate of
        ``model_id``; ``settings`` are :class:`emdenoise.likelihood.LikelihoodSettings` fields.
        ``estimate_frame``: another frame of the same area; the model's estimate is made from it
        (Denoise RPC) and sent as the given estimate, so the server tests counts it never saw
        (it then locates the vacuum in the estimate). Returns a
        :class:`emdenoise.likelihood.LikelihoodResult`."""
        from emdenoise.likelihood import LikelihoodSettings
        from emdenoise.likelihood.messages import options_message, request_messages, result_from_responses

        if estimate_frame is not None:
            from emdenoise.likelihood.holdout import second_frame_estimate

            if denoised is not None:
                raise InvalidInput("give either a denoised frame or a second frame to make the estimate from, not both; drop one.")
            g = 1.0 if gain is None else float(gain)
            o = 0.0 if offset is None else float(offset)
            denoised = second_frame_estimate(
                lambda counts: (np.asarray(next(iter(self.denoise([np.asarray(counts * g + o, np.float32)], model_id, modality=modality, gain=gain,
                                                               offset=offset))), np.float64) - o) / g,
                (np.asarray(estimate_frame, np.float64) - o) / g, (np.asarray(noisy, np.float64) - o) / g,
            ) * g + o
            denoised = denoised.astype(np.float32)
            model_id = None

        options = options_message(
            LikelihoodSettings.from_options(**settings), model_id=model_id, modality=modality, gain=gain, offset=offset
        )
        frames = [noisy] if denoised is None else [noisy, denoised]
        try:
            return result_from_responses(self.stub.LikelihoodMap(request_messages(options, frames)))
        except grpc.RpcError as error:
            raise user_error(error, self.address) from None

    def encode(self, frames: Iterable[np.ndarray], model_id: str, *, frame_count: int = 0) -> DenoiseJob:
        """Autoencoder latents of ``frames`` from the Encode RPC; see :mod:`emdenoise.compress.calls`."""
        from emdenoise.compress.calls import remote_encode

        return remote_encode(self, frames, model_id, frame_count=frame_count)

    def decode(self, latents, model_id: str, *, encoder_sha256: str, frame_count: int = 0) -> DenoiseJob:
        """Restored frames from the Decode RPC; see :mod:`emdenoise.compress.calls`."""
        from emdenoise.compress.calls import remote_decode

        return remote_decode(self, latents, model_id, encoder_sha256=encoder_sha256, frame_count=frame_count)

    def _results(self, responses, shared: SharedCall | None = None) -> Iterator:
        assembler = FrameAssembler()
        try:
            for response in responses:
                kind = response.WhichOneof("item")
                if kind == "started":
                    info = response.started
                    if shared is not None:
                        shared.answer(info)  # frames wait for this; raises if shared memory was insisted on
                    self.last_transport = "shared memory" if shared is not None and shared.accepted else "messages"
                    yield {
                        "model_id": info.model_id,
                        "model_version": info.model_version,
                        "graph_sha256": info.graph_sha256,
                        "emdenoise_version": info.emdenoise_version,
                        "device": info.device,
                    }
                    continue
                if kind == "shared":
                    if shared is None:
                        raise UserError("the server answered in shared memory although this call did not use it; "
                                        "use --shared-memory off and report this.")
                    assembler.add_whole(response.shared.frame_index)
                    yield shared.result(response.shared)
                    continue
                frame = assembler.add(response.chunk)
                if frame is not None:
                    if shared is not None:
                        shared.chunked(assembler.next_frame - 1)
                    yield frame
        except grpc.RpcError as error:
            raise user_error(error, self.address) from None
