"""The LikelihoodMap RPC on a real loopback server: same map as in-process, clear errors."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tifffile

from emdenoise.cli import main
from emdenoise.client import EmbeddedClient, RemoteClient
from emdenoise.errors import InvalidInput
from emdenoise.likelihood.validation import gaussian_lattice, plant_spurious_column
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.wire import CHUNK_BYTES


@pytest.fixture(scope="module")
def embedded():
    return EmbeddedClient(device="cpu")


@pytest.fixture(scope="module")
def frames():
    clean = gaussian_lattice()
    rng = np.random.default_rng(21)
    estimate, planted = plant_spurious_column(clean, rng)
    noisy = rng.poisson(clean).astype(np.uint16)
    return noisy, estimate, planted


def assert_same(remote, local):
    np.testing.assert_array_equal(remote.llr_map, local.llr_map)
    np.testing.assert_array_equal(remote.labels, local.labels)
    np.testing.assert_array_equal(remote.estimate, local.estimate)
    assert remote.regions == local.regions
    assert (remote.vacuum_level, remote.vacuum_pixels, remote.polarity, remote.map_units, remote.message) == (
        local.vacuum_level, local.vacuum_pixels, local.polarity, local.map_units, local.message
    )
    assert remote.info == local.info


def test_map_through_the_server_equals_in_process_with_a_given_estimate(server, embedded, frames):
    noisy, estimate, planted = frames
    with RemoteClient(server.address) as client:
        remote = client.likelihood(noisy, estimate)
    local = embedded.likelihood(noisy, estimate)
    assert_same(remote, local)
    assert remote.info["model_id"] == ""  # the estimate was given, no model ran
    spurious = [r for r in remote.regions if abs(r.row - planted.row) <= 2 and abs(r.col - planted.col) <= 2]
    assert len(spurious) == 1 and spurious[0].llr < 0  # seed 003 Fig. 4 over the wire


def test_map_through_the_server_equals_in_process_with_a_model_and_settings(server, embedded, frames):
    noisy, _, _ = frames
    options = dict(vacuum_level=0.45, threshold=0.08, map_units="total")
    with RemoteClient(server.address) as client:
        remote = client.likelihood(noisy, None, "classical-gaussian3", **options)
    local = embedded.likelihood(noisy, None, "classical-gaussian3", **options)
    assert_same(remote, local)
    assert remote.info["model_id"] == "classical-gaussian3" and remote.map_units == "total"


def test_a_frame_larger_than_one_message_round_trips(server, embedded):
    clean = np.tile(gaussian_lattice((192, 192)), (6, 4))[:1100, :700]  # 1100x700 float64: 6 MB, 3 chunks
    clean[:200] = 0.45  # some vacuum
    noisy = np.random.default_rng(22).poisson(clean).astype(np.uint16)
    assert clean.nbytes > 2 * CHUNK_BYTES
    with RemoteClient(server.address) as client:
        remote = client.likelihood(noisy, clean)
    assert_same(remote, embedded.likelihood(noisy, clean))
    assert len(remote.regions) > 100


def test_cli_through_the_server_writes_the_same_map_as_embedded(server, frames, tmp_path):
    noisy, estimate, _ = frames
    tifffile.imwrite(tmp_path / "noisy.tif", noisy)
    tifffile.imwrite(tmp_path / "estimate.tif", estimate)
    common = ["likelihood", str(tmp_path / "noisy.tif"), "--denoised", str(tmp_path / "estimate.tif")]
    assert main([*common, "-o", str(tmp_path / "remote"), "--server", server.address]) == 0
    assert main([*common, "-o", str(tmp_path / "local"), "--device", "cpu"]) == 0
    for name in ("noisy_llr.tif", "noisy_llr-regions.csv"):
        remote, local = (tmp_path / where / name for where in ("remote", "local"))
        if name.endswith(".tif"):
            np.testing.assert_array_equal(tifffile.imread(remote), tifffile.imread(local))
        else:
            assert remote.read_text() == local.read_text()
    assert (tmp_path / "remote" / "noisy_llr-rois.zip").read_bytes() == (tmp_path / "local" / "noisy_llr-rois.zip").read_bytes()


def test_errors_come_back_as_sentences_and_the_server_keeps_serving(server, frames):
    noisy, estimate, _ = frames
    with RemoteClient(server.address) as client:
        with pytest.raises(InvalidInput, match="not in counts"):
            client.likelihood(noisy.astype(np.float32) * 2.5 + 0.1, estimate)
        with pytest.raises(InvalidInput, match="not both"):
            client.likelihood(noisy, estimate, "classical-gaussian3")
        with pytest.raises(InvalidInput, match="polarity"):
            client.likelihood(noisy, estimate, polarity="sideways")
        three = [pb.LikelihoodRequest(options=pb.LikelihoodOptions()), *_chunks(noisy, 0), *_chunks(noisy, 1), *_chunks(noisy, 2)]
        with pytest.raises(grpc.RpcError) as caught:
            list(client.stub.LikelihoodMap(iter(three)))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "at most two frames" in caught.value.details()
        assert any(card["id"] == "classical-gaussian3" for card in client.list_models())


def test_no_columns_is_an_empty_result_not_an_error(server):
    flat = np.full((96, 96), 0.45)
    noisy = np.random.default_rng(23).poisson(flat).astype(np.uint16)
    with RemoteClient(server.address) as client:
        result = client.likelihood(noisy, flat)
    assert result.regions == [] and np.isnan(result.llr_map).all()
    assert "no atom columns were detected" in result.message


def _chunks(frame, index):
    from emdenoise.wire import frame_to_chunks

    return [pb.LikelihoodRequest(chunk=chunk) for chunk in frame_to_chunks(frame, index)]
