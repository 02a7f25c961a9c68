"""The Denoise RPC computes the next frame while the previous one is sent (issue 20, item 3).

The computation runs in a thread of its own (server.streams.pipelined); these tests hold
it to what the handler's own thread guaranteed before: results in order and equal to the
engine's, a user error after some frames still arrives as its status, and neither an error
nor a cancellation leaves the thread or its frames behind (a reference cycle through a
re-raised error kept half-received frames until a full garbage collection, which the
cancelled-upload memory bar of issue 22 caught).
"""

from __future__ import annotations

import gc
import threading
import time

import grpc
import numpy as np
import pytest

from emdenoise.engine import Engine
from emdenoise.server.app import create_server
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.v1 import denoiser_pb2_grpc as pb_grpc
from emdenoise.wire import FrameAssembler, frame_to_chunks

MODEL = "ede-kernel-stem-5"


@pytest.fixture(scope="module")
def served():
    engine = Engine(None, device="cpu")
    server, port, _health = create_server(engine, port=0)
    yield engine, f"127.0.0.1:{port}"
    server.stop(0)


def _frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.poisson(20, (256, 192)).astype(np.uint16) for _ in range(count)]


def _options() -> pb.DenoiseRequest:
    return pb.DenoiseRequest(options=pb.DenoiseOptions(model_id=MODEL, gain=1.0, offset=0.0))


def _compute_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "emdenoise-denoise"]


def _wait_for_no_compute_threads(seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while _compute_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _compute_threads()


def test_pipelined_results_in_order_then_error_status_and_nothing_left(served):
    engine, address = served
    frames = _frames(3)
    card = engine.card(MODEL)
    expected = [engine.denoise_frame(f, card, index=i, gain=1.0, offset=0.0) for i, f in enumerate(frames)]
    requests = [_options()] + [pb.DenoiseRequest(chunk=c) for i, f in enumerate(frames) for c in frame_to_chunks(f, i)]
    wrong = next(iter(frame_to_chunks(frames[0], 7)))  # frame 7 where frame 3 is due
    received, assembler = [], FrameAssembler()
    gc.collect()
    gc.disable()  # a cycle would survive until the check below
    try:
        with grpc.insecure_channel(address) as channel:
            call = pb_grpc.DenoiserStub(channel).Denoise(iter(requests + [pb.DenoiseRequest(chunk=wrong)]), timeout=60)
            with pytest.raises(grpc.RpcError) as caught:
                for response in call:
                    if response.WhichOneof("item") == "chunk":
                        frame = assembler.add(response.chunk)
                        if frame is not None:
                            received.append(frame)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "frame 7" in caught.value.details()
        assert len(received) == 3
        for got, want in zip(received, expected):
            np.testing.assert_array_equal(got, want)
        _wait_for_no_compute_threads()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        held = [o for o in gc.garbage if type(o).__name__ == "frame" and o.f_code.co_name in ("pipelined", "denoised")]
        assert not held, "the failed call's frames were in a reference cycle"
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_cancelled_call_with_frames_in_flight_ends_its_compute_thread(served):
    _engine, address = served
    frames = _frames(6)
    release = threading.Event()

    def requests():
        yield _options()
        for index, frame in enumerate(frames):
            yield from (pb.DenoiseRequest(chunk=c) for c in frame_to_chunks(frame, index))
        release.wait(30)  # the upload stays open: the server waits for more

    with grpc.insecure_channel(address) as channel:
        call = pb_grpc.DenoiserStub(channel).Denoise(requests(), timeout=60)
        first = next(call)
        assert first.WhichOneof("item") == "started"
        next(call)  # a result is on its way; more are computed or queued behind it
        call.cancel()
    release.set()
    _wait_for_no_compute_threads()
