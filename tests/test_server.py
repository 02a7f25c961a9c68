"""The real server on 127.0.0.1: round trips, concurrency, errors that leave it serving."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest
import tifffile
from grpc_health.v1 import health_pb2, health_pb2_grpc

from emdenoise.client import EmbeddedClient, RemoteClient
from emdenoise.errors import InvalidInput, ModelNotFound, UserError
from emdenoise.io.tiff import read_tiff
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.v1 import denoiser_pb2_grpc as pb_grpc
from emdenoise.wire import CHUNK_BYTES, frame_to_chunks
from emdenoise.workflow import denoise_file

MODEL = "ede-kernel-tem-5"


@pytest.fixture(scope="module")
def embedded():
    return EmbeddedClient(device="cpu")


def test_health_check_serving(server):
    with grpc.insecure_channel(server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "emdenoise.v1.Denoiser"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_list_models_mirrors_cards(server, embedded):
    with RemoteClient(server.address) as client:
        remote = {card["id"]: card for card in client.list_models()}
    local = {card["id"]: card for card in embedded.list_models()}
    assert remote.keys() == local.keys()
    assert remote[MODEL]["graph_sha256"] == local[MODEL]["graph_sha256"]
    assert remote[MODEL]["receptive_field"] == 5


def test_50_frame_stack_round_trip_equals_embedded_with_calibration(server, embedded, tmp_path):
    rng = np.random.default_rng(11)
    stack = rng.poisson(25, size=(50, 512, 512)).astype(np.uint16)
    source = tmp_path / "movie.tif"
    tifffile.imwrite(
        source, stack, imagej=True, resolution=(1 / 0.0789, 1 / 0.0789), metadata={"axes": "TYX", "unit": "nm", "finterval": 0.25}
    )
    with RemoteClient(server.address) as client:
        remote_path = denoise_file(client, source, tmp_path / "remote.tif", model_id=MODEL)
    local_path = denoise_file(embedded, source, tmp_path / "local.tif", model_id=MODEL)
    remote, remote_meta = read_tiff(remote_path)
    local, _ = read_tiff(local_path)
    assert remote.shape == (50, 512, 512) and remote.dtype == np.float32
    np.testing.assert_array_equal(remote, local)
    assert remote_meta.unit == "nm"
    assert remote_meta.pixel_size == pytest.approx(0.0789, rel=1e-6)
    assert remote_meta.frame_interval == pytest.approx(0.25)
    assert "emdenoise.model = ede-kernel-tem-5" in remote_meta.info
    assert "emdenoise.graph_sha256 = " in remote_meta.info


def test_frame_larger_than_one_message_is_chunked(server, embedded):
    frame = np.random.default_rng(5).random((1200, 1100)).astype(np.float64)  # 10.6 MB
    assert frame.nbytes > 4 * CHUNK_BYTES
    with RemoteClient(server.address) as client:
        (result,) = list(client.denoise([frame], MODEL))
    np.testing.assert_array_equal(result, embedded.engine.denoise(frame, MODEL))


def test_eight_concurrent_clients_get_serial_results(server, embedded):
    stacks = [np.random.default_rng(100 + i).poisson(10 + 5 * i, (4, 200, 180)).astype(np.uint16) for i in range(8)]
    models = ["ede-kernel-tem-3", "ede-kernel-stem-7", "ede-kernel-temstem-11", "ede-kernel-tem-5"] * 2
    expected = [embedded.engine.denoise(stack, model) for stack, model in zip(stacks, models)]
    results: list = [None] * 8
    errors = []

    def work(i):
        try:
            with RemoteClient(server.address) as client:
                results[i] = np.stack(list(client.denoise(list(stacks[i]), models[i])))
        except Exception as error:  # collected and reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_unknown_model_and_empty_stack_then_still_serving(server):
    with RemoteClient(server.address) as client:
        with pytest.raises(ModelNotFound, match="unknown model 'no-such-model'"):
            list(client.denoise([np.ones((8, 8), np.uint16)], "no-such-model"))
        with pytest.raises(InvalidInput, match="stack is empty"):
            list(client.denoise([], MODEL))
        (result,) = list(client.denoise([np.ones((16, 16), np.uint16)], MODEL))
        assert result.shape == (16, 16)
    assert server.alive


def test_malformed_streams_get_invalid_argument(server):
    frame = np.ones((64, 64), np.float32)
    good = list(frame_to_chunks(frame, 0, chunk_bytes=4096))
    options = pb.DenoiseRequest(options=pb.DenoiseOptions(model_id=MODEL))
    cases = {
        "no options first": [pb.DenoiseRequest(chunk=good[0])],
        "chunk out of order": [options, pb.DenoiseRequest(chunk=good[1])],
        "truncated": [options] + [pb.DenoiseRequest(chunk=c) for c in good[:-1]],
        "shape mismatch": [
            options,
            pb.DenoiseRequest(
                chunk=pb.FrameChunk(
                    frame_index=0, chunk_index=0, chunk_count=1, header=pb.ArrayHeader(dtype="float32", shape=[64, 64]), data=b"\0" * 100
                )
            ),
        ],
        "rgb-like 3-D frame": [
            options,
            pb.DenoiseRequest(
                chunk=pb.FrameChunk(
                    frame_index=0, chunk_index=0, chunk_count=1, header=pb.ArrayHeader(dtype="uint8", shape=[4, 4, 3]), data=b"\0" * 48
                )
            ),
        ],
    }
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.DenoiserStub(channel)
        for name, requests in cases.items():
            with pytest.raises(grpc.RpcError) as caught:
                list(stub.Denoise(iter(requests), timeout=10))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
            assert len(caught.value.details()) > 20, name
    assert server.alive


def test_client_that_disconnects_mid_stream_frees_its_work(server):
    """A cancelled 200-frame job stops early; the server then answers a new job at once."""
    frames = (np.random.default_rng(i).random((512, 512)).astype(np.float32) for i in range(200))
    with RemoteClient(server.address) as client:
        job = client.denoise(frames, "ede-kernel-temstem-11")
        received = 0
        for _ in job:
            received += 1
            if received == 3:
                job.cancel()
                break
    time.sleep(0.5)
    started = time.monotonic()
    with RemoteClient(server.address) as client:
        (result,) = list(client.denoise([np.ones((32, 32), np.float32)], MODEL))
    assert time.monotonic() - started < 10
    assert received == 3 and result.shape == (32, 32) and server.alive


def test_unreachable_server_message_says_how_to_start_it():
    with RemoteClient("127.0.0.1:9") as client:  # discard port: nothing listens
        with pytest.raises(UserError, match="emdenoise serve"):
            client.list_models()


def test_graceful_shutdown_on_sigterm():
    from emdenoise.server.subprocess_server import ServerProcess

    process = ServerProcess()
    with RemoteClient(process.address) as client:
        assert client.list_models()
    assert process.stop() == 0
    assert any("server stopped" in line for line in process.lines)


def test_tile_size_travels_to_the_server_and_keeps_the_result(server, embedded):
    frame = np.random.default_rng(9).poisson(0.6, (200, 170)).astype(np.float32)
    with RemoteClient(server.address) as client:
        (small_tiles,) = list(client.denoise([frame], "sbd-unet32-hrtem", tile_size=64))
    np.testing.assert_allclose(small_tiles, embedded.engine.denoise(frame, "sbd-unet32-hrtem"), rtol=0, atol=1e-4)
