"""Health outside the stream allowance, idle uploads dropped, client deadlines (issue 22, item 5)."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from emdenoise.client import RemoteClient
from emdenoise.errors import UserError
from emdenoise.server.subprocess_server import ServerProcess, process_memory
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.v1 import denoiser_pb2_grpc as pb_grpc
from emdenoise.wire import frame_to_chunks

MODEL = "ede-kernel-tem-5"
IDLE = 4.0


@pytest.fixture(scope="module")
def idle_server():
    process = ServerProcess("--idle-timeout", str(IDLE), "--max-streams", "16", "--max-queued", "0")
    yield process
    process.stop()


def stalled_requests(release: threading.Event, half_frame: bool = True):
    """Options, then the first chunk of a 4 MiB frame, then nothing until ``release``."""
    yield pb.DenoiseRequest(options=pb.DenoiseOptions(model_id=MODEL))
    if half_frame:
        chunks = frame_to_chunks(np.ones((1024, 1024), np.float32), 0)
        yield pb.DenoiseRequest(chunk=next(iter(chunks)))
    release.wait()


def health_check(address: str, timeout: float = 5.0) -> int:
    with grpc.insecure_channel(address) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout).status


def stall_16(address: str) -> tuple[list, float]:
    """16 stalled Denoise streams; checks Health and a 17th stream meanwhile; returns outcomes and seconds."""
    release = threading.Event()
    channel = grpc.insecure_channel(address)
    stub = pb_grpc.DenoiserStub(channel)
    calls = [stub.Denoise(stalled_requests(release), timeout=60) for _ in range(16)]
    outcomes: list = [None] * 16

    def drain(i):
        try:
            for _ in calls[i]:
                pass
            outcomes[i] = "OK"
        except grpc.RpcError as error:
            outcomes[i] = (error.code(), error.details())

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)  # all 16 are in, each holding part of a frame
        start = time.monotonic()
        assert health_check(address) == health_pb2.HealthCheckResponse.SERVING
        assert time.monotonic() - start < 3.0
        with pytest.raises(grpc.RpcError) as caught:  # a 17th stream is refused at once (no queue here)
            list(stub.Denoise(iter([pb.DenoiseRequest(options=pb.DenoiseOptions(model_id=MODEL))]), timeout=10))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "the server is busy: 16 streams are running" in caught.value.details()
        for thread in threads:
            thread.join(timeout=IDLE + 15)
        return outcomes, time.monotonic() - start
    finally:
        release.set()
        channel.close()


def test_16_stalled_streams_leave_health_answering_and_are_dropped_when_idle(idle_server):
    with RemoteClient(idle_server.address) as client:  # model loaded before the baseline
        list(client.denoise([np.ones((1024, 1024), np.float32)], MODEL))
    outcomes, elapsed = stall_16(idle_server.address)
    assert all(o != "OK" and o is not None for o in outcomes), outcomes
    assert {o[0] for o in outcomes} == {grpc.StatusCode.DEADLINE_EXCEEDED}, outcomes
    assert "sent nothing for 4 s" in outcomes[0][1]
    assert elapsed < IDLE + 10, elapsed
    time.sleep(0.5)
    first = process_memory(idle_server.pid)
    stall_16(idle_server.address)  # again: nothing the first round held is still held
    time.sleep(0.5)
    second = process_memory(idle_server.pid)
    # The pool keeps its workers (one per allowed stream); the upload helper threads are gone.
    assert second["threads"] <= first["threads"], (first, second)
    with RemoteClient(idle_server.address) as client:  # the allowance is free again
        (result,) = list(client.denoise([np.ones((8, 8), np.uint16)], MODEL))
    assert result.shape == (8, 8)


def test_dropped_streams_free_their_partial_frames():
    """In-process server (same code, on 127.0.0.1) so the frame buffers themselves can be counted."""
    import gc

    from emdenoise.engine import Engine
    from emdenoise.server.app import create_server
    from emdenoise.wire import FrameAssembler

    def is_assembler(obj) -> bool:
        try:
            return isinstance(obj, FrameAssembler)
        except ReferenceError:  # a dead weakref.proxy among the tracked objects (gRPC keeps some)
            return False

    def assemblers():
        gc.collect()
        return sum(1 for o in gc.get_objects() if is_assembler(o))

    server, port, _ = create_server(Engine(None, device="cpu"), port=0, idle_seconds=IDLE, max_queued=0)
    try:
        baseline = assemblers()
        seen = []
        watcher = threading.Timer(2.0, lambda: seen.append(assemblers()))
        watcher.start()
        outcomes, _ = stall_16(f"127.0.0.1:{port}")
        watcher.join()
        assert seen == [baseline + 16]  # each stalled stream held its partial frame...
        assert {o[0] for o in outcomes} == {grpc.StatusCode.DEADLINE_EXCEEDED}
        time.sleep(0.5)
        assert assemblers() == baseline  # ...and none is held once they were dropped
    finally:
        server.stop(0).wait()


def test_a_stalled_client_reads_one_sentence(idle_server):
    release = threading.Event()

    def frames():
        yield np.ones((16, 16), np.uint16)
        release.wait(30)

    try:
        with RemoteClient(idle_server.address) as client:
            with pytest.raises(UserError, match="sent nothing for 4 s in the middle of its stream"):
                list(client.denoise(frames(), MODEL))
    finally:
        release.set()


def test_a_slow_but_steady_upload_is_not_idle(idle_server):
    def frames():
        for _ in range(3):
            time.sleep(IDLE * 0.6)
            yield np.ones((16, 16), np.uint16)

    with RemoteClient(idle_server.address) as client:
        assert len(list(client.denoise(frames(), MODEL))) == 3


def test_client_calls_carry_a_deadline(idle_server):
    release = threading.Event()

    def frames():
        release.wait(30)
        yield np.ones((8, 8), np.uint16)

    # No idle limit hits here: the stream has not sent its options' first frame yet, but the
    # client's own deadline (stream_timeout) ends the call.
    try:
        with RemoteClient(idle_server.address, stream_timeout=1.5) as client:
            start = time.monotonic()
            with pytest.raises(UserError):
                list(client.denoise(frames(), MODEL))
            assert time.monotonic() - start < IDLE
    finally:
        release.set()
