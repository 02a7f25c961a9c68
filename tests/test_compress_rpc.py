"""Encode/Decode on a real loopback server: same latents and restored frames as in-process,
bad latents refused with INVALID_ARGUMENT and a sentence (seed 002, sec. 2)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tifffile

from emdenoise.cli import main
from emdenoise.client import EmbeddedClient, RemoteClient
from emdenoise.compress.emz import read_header
from emdenoise.compress.messages import frame_messages
from emdenoise.errors import InvalidInput
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.wire import CHUNK_BYTES


@pytest.fixture(scope="module")
def embedded():
    return EmbeddedClient(device="cpu")


@pytest.fixture(scope="module")
def stack():
    rng = np.random.default_rng(41)
    return [rng.poisson(25, size=(190, 350)).astype(np.uint16) for _ in range(3)]


def _encode(client, frames, model):
    job = client.encode(frames, model, frame_count=len(frames))
    return job.start(), list(job)


def _decode(client, latents, model, sha):
    job = client.decode(latents, model, encoder_sha256=sha, frame_count=len(latents))
    return job.start(), list(job)


def test_encode_decode_through_the_server_equals_in_process_for_a_stack(server, embedded, stack):
    with RemoteClient(server.address) as remote:
        remote_info, remote_latents = _encode(remote, stack, "ede-ae-d16")
        decoded_info, remote_frames = _decode(remote, remote_latents, "ede-ae-d16", remote_info["encoder_sha256"])
    local_info, local_latents = _encode(embedded, stack, "ede-ae-d16")
    _, local_frames = _decode(embedded, local_latents, "ede-ae-d16", local_info["encoder_sha256"])
    assert remote_info == local_info
    assert decoded_info["graph_sha256"] == local_info["decoder_sha256"]
    for remote, local in zip(remote_latents, local_latents):
        np.testing.assert_array_equal(remote.latents, local.latents)
        np.testing.assert_array_equal(remote.shift, local.shift)
        np.testing.assert_array_equal(remote.scale, local.scale)
    assert len(remote_frames) == len(stack)
    for remote, local, frame in zip(remote_frames, local_frames, stack):
        assert remote.shape == frame.shape
        np.testing.assert_array_equal(remote, local)


def test_latents_larger_than_one_message_round_trip(server, embedded):
    frame = np.random.default_rng(42).poisson(40, size=(800, 700)).astype(np.uint16)
    with RemoteClient(server.address) as remote:
        info, latents = _encode(remote, [frame], "ede-ae-d64")
        assert latents[0].latents.nbytes > CHUNK_BYTES
        _, restored = _decode(remote, latents, "ede-ae-d64", info["encoder_sha256"])
    _, local = _decode(embedded, latents, "ede-ae-d64", info["encoder_sha256"])
    np.testing.assert_array_equal(restored[0], local[0])


def _raw_decode(address, options, latents):
    def requests():
        yield pb.DecodeRequest(options=options)
        for index, encoded in enumerate(latents):
            for message in frame_messages(encoded, index):
                yield pb.DecodeRequest(**{"frame" if isinstance(message, pb.LatentFrame) else "chunk": message})

    with grpc.insecure_channel(address) as channel:
        from emdenoise.v1 import denoiser_pb2_grpc as pb_grpc

        with pytest.raises(grpc.RpcError) as caught:
            list(pb_grpc.DenoiserStub(channel).Decode(requests(), timeout=60))
    return caught.value


def test_latents_from_another_model_are_invalid_argument(server, embedded, stack):
    info, latents = _encode(embedded, stack[:1], "ede-ae-d16")
    error = _raw_decode(server.address, pb.DecodeOptions(model_id="ede-ae-d4", encoder_sha256=info["encoder_sha256"]), latents)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not by ede-ae-d4" in error.details()
    d4 = embedded.engine.card("ede-ae-d4").graphs["encode"].sha256
    error = _raw_decode(server.address, pb.DecodeOptions(model_id="ede-ae-d4", encoder_sha256=d4), latents)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "do not fit this model" in error.details()
    error = _raw_decode(server.address, pb.DecodeOptions(model_id="ede-ae-d16"), latents)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "encoder sha256 missing" in error.details()
    with RemoteClient(server.address) as remote:
        with pytest.raises(InvalidInput, match="not by ede-ae-d4"):
            _decode(remote, latents, "ede-ae-d4", info["encoder_sha256"])
        with pytest.raises(InvalidInput, match="not an autoencoder"):
            _encode(remote, stack[:1], "ede-kernel-tem-7")
        with pytest.raises(InvalidInput, match="frames arrived but"):
            list(remote.encode(stack[:1], "ede-ae-d16", frame_count=2))


def test_cli_through_the_server_restores_what_the_embedded_engine_restores(server, tmp_path, stack, capsys):
    source = tmp_path / "stack.tif"
    tifffile.imwrite(source, np.stack(stack), imagej=True, metadata={"axes": "TYX"})
    emz = tmp_path / "stack.emz"
    assert main(["compress", str(source), "-o", str(emz), "--model", "ede-ae-d4", "--server", server.address]) == 0
    assert "bytes/pixel" in capsys.readouterr().out and read_header(emz).model_id == "ede-ae-d4"
    assert main(["decompress", str(emz), "-o", str(tmp_path / "remote.tif"), "--server", server.address]) == 0
    assert main(["decompress", str(emz), "-o", str(tmp_path / "local.tif"), "--device", "cpu"]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "remote.tif"), tifffile.imread(tmp_path / "local.tif"))
    data = bytearray(emz.read_bytes())
    data[-40] ^= 0xFF  # inside the last frame's payload
    (tmp_path / "bad.emz").write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["decompress", str(tmp_path / "bad.emz"), "-o", str(tmp_path / "bad.tif"), "--server", server.address]) == 2
    err = capsys.readouterr().err
    assert "bad.emz is corrupt (frame 2 of 3 fails its checksum)" in err and "Traceback" not in err
    assert not (tmp_path / "bad.tif").exists()


def test_latents_announcing_a_huge_frame_are_refused_before_any_work(server, embedded, stack):
    info, latents = _encode(embedded, stack[:1], "ede-ae-d16")
    huge = latents[0]

    def requests():
        yield pb.DecodeRequest(options=pb.DecodeOptions(model_id="ede-ae-d16", encoder_sha256=info["encoder_sha256"]))
        yield pb.DecodeRequest(frame=pb.LatentFrame(frame_index=0, height=200_000, width=200_000,
                                                    shift=huge.shift.tolist(), scale=huge.scale.tolist()))

    from emdenoise.v1 import denoiser_pb2_grpc as pb_grpc

    with grpc.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            list(pb_grpc.DenoiserStub(channel).Decode(requests(), timeout=30))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "per-frame limit" in caught.value.details()
