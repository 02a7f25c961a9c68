"""Hard limits of the live server: huge frames, long stacks with flat memory, and 1000
malformed requests that must neither crash, hang nor leak."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emdenoise.client import EmbeddedClient, RemoteClient
from emdenoise.errors import ResourceExhausted
from emdenoise.server.subprocess_server import ServerProcess, process_memory
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.v1 import denoiser_pb2_grpc as pb_grpc

MODEL = "ede-kernel-stem-5"


@pytest.fixture(scope="module")
def limited_server():
    process = ServerProcess("--max-frame-mib", "64")
    yield process
    process.stop()


def test_4096_square_float32_frame_passes_chunked(limited_server):
    frame = np.random.default_rng(0).gamma(3.0, 10.0, (4096, 4096)).astype(np.float32)  # 64 MiB
    with RemoteClient(limited_server.address) as client:
        (result,) = list(client.denoise([frame], MODEL))
    expected = EmbeddedClient(device="cpu").engine.denoise(frame, MODEL)
    np.testing.assert_array_equal(result, expected)


def test_frame_over_the_limit_is_resource_exhausted_and_names_the_setting(limited_server):
    frame = np.zeros((4097, 4096), np.float32)
    with RemoteClient(limited_server.address) as client:
        with pytest.raises(ResourceExhausted, match="--max-frame-mib"):
            list(client.denoise([frame], MODEL))
    assert limited_server.alive


@pytest.mark.slow
def test_1000_frame_stack_streams_with_flat_server_memory(limited_server):
    """1000 frames of 1024x1024 (4 GB as float32) pass; server memory after 1000 frames is
    within 64 MiB of its level after the first 100."""
    rng = np.random.default_rng(1)
    pool = [rng.poisson(8, (1024, 1024)).astype(np.uint16) for _ in range(4)]
    expected = EmbeddedClient(device="cpu").engine.denoise(pool[1], MODEL)
    pid = limited_server.process.pid
    after_100 = None
    with RemoteClient(limited_server.address) as client:
        job = client.denoise((pool[i % 4] for i in range(1000)), MODEL, frame_count=1000)
        count = 0
        for result in job:
            if count % 4 == 1 and count < 20:
                np.testing.assert_array_equal(result, expected)
            count += 1
            if count == 100:
                after_100 = process_memory(pid)
    after_1000 = process_memory(pid)
    assert count == 1000
    assert after_1000["rss_kb"] - after_100["rss_kb"] < 64 * 1024, (after_100, after_1000)


# -- fuzzing -------------------------------------------------------------------------------

dtypes = st.sampled_from(["uint16", "float32", "float64", "uint8", "int32", "complex64", "bool", "object", "<U3", "nonsense", "", "V7", ">f4"])
shapes = st.lists(st.integers(min_value=0, max_value=2**40), min_size=0, max_size=4)
chunks = st.builds(
    pb.FrameChunk,
    frame_index=st.integers(0, 3),
    chunk_index=st.integers(0, 3),
    chunk_count=st.integers(0, 4),
    header=st.one_of(st.none(), st.builds(pb.ArrayHeader, dtype=dtypes, shape=shapes)),
    data=st.binary(max_size=300),
)
options = st.builds(
    pb.DenoiseOptions,
    model_id=st.sampled_from(["", MODEL, "nope", "ede-kernel-tem-3", "../etc/passwd", "x" * 300]),
    modality=st.sampled_from(["", "tem", "stem", "weird"]),
    frame_count=st.integers(0, 3),
)
requests = st.lists(
    st.one_of(st.builds(pb.DenoiseRequest, options=options), st.builds(pb.DenoiseRequest, chunk=chunks)),
    max_size=6,
)
ALLOWED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,
}


def test_1000_malformed_requests_no_crash_no_hang_no_leak(limited_server):
    channel = grpc.insecure_channel(limited_server.address)
    stub = pb_grpc.DenoiserStub(channel)
    pid = limited_server.process.pid
    seen: dict[str, int] = {}

    def call(sequence):
        try:
            for _ in stub.Denoise(iter(sequence), timeout=20):
                pass
            seen["OK"] = seen.get("OK", 0) + 1
        except grpc.RpcError as error:
            assert error.code() in ALLOWED, (error.code(), error.details(), sequence)
            assert error.details(), sequence
            seen[error.code().name] = seen.get(error.code().name, 0) + 1

    call([])  # warm up before the baseline
    before = process_memory(pid)

    @settings(max_examples=1000, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(requests)
    def fuzz(sequence):
        call(sequence)

    fuzz()
    after = process_memory(pid)
    channel.close()
    assert sum(seen.values()) >= 1000
    assert limited_server.alive
    assert after["threads"] <= before["threads"] + 4, (before, after)
    assert after["rss_kb"] - before["rss_kb"] < 100 * 1024, (before, after, seen)
    # A healthy request still works afterwards.
    with RemoteClient(limited_server.address) as client:
        (result,) = list(client.denoise([np.ones((8, 8), np.uint16)], MODEL))
    assert result.shape == (8, 8)
    print("fuzz outcomes:", seen, "memory before/after (kB):", before["rss_kb"], after["rss_kb"])
