"""Compressed latents in-process: tiling, normalisation, quantisation, seams, the .emz format
and every way a file can be refused (seed 002, sec. 2)."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
import tifffile

from emdenoise.bench.lattice import synthetic_lattice
from emdenoise.cli import main
from emdenoise.client import EmbeddedClient
from emdenoise.compress import codec_for, seam_ratio
from emdenoise.compress.emz import SIGNATURE, EmzError, iter_frames, read_header
from emdenoise.compress.files import compress_file, decompress_file
from emdenoise.compress.grid import join_tiles, plan_grid, split_tiles, tile_maps
from emdenoise.compress.quantize import dequantise, quantise
from emdenoise.errors import InvalidInput
from emdenoise.io.tiff import read_tiff_metadata
from emdenoise.metrics.error import mse

MODEL = "ede-ae-d16"


@pytest.fixture(scope="module")
def client():
    return EmbeddedClient(device="cpu")


@pytest.fixture(scope="module")
def codec(client):
    return codec_for(client.engine)


@pytest.fixture(scope="module")
def lattice():
    rng = np.random.default_rng(11)
    clean = synthetic_lattice(340, rng).image[:, :300] * 20.0  # 20 counts/px vacuum: low dose
    return clean, rng.poisson(clean).astype(np.uint16)


@pytest.fixture(scope="module")
def emz_file(tmp_path_factory, client):
    folder = tmp_path_factory.mktemp("emz")
    rng = np.random.default_rng(12)
    stack = rng.poisson(30, size=(3, 170, 230)).astype(np.uint16)
    source = folder / "stack.tif"
    labels = ["a", "b", "c"]
    tifffile.imwrite(source, stack, imagej=True, resolution=(1 / 0.25, 1 / 0.25),
                     metadata={"axes": "TYX", "unit": "nm", "finterval": 2.0, "Labels": labels})
    result = compress_file(client, source, folder / "stack.emz", model_id=MODEL)
    return result, source, stack


@pytest.mark.parametrize("shape", [(2, 3), (160, 160), (161, 333), (500, 170)])
def test_tiles_cover_any_frame_and_join_back_exactly(shape):
    frame = np.random.default_rng(0).random(shape).astype(np.float32)
    grid = plan_grid(shape, 160)
    tiles = split_tiles(frame, grid)
    assert tiles.shape == (grid.rows * grid.cols, 160, 160)
    np.testing.assert_array_equal(join_tiles(tiles, grid), frame)
    wide = split_tiles(frame, grid, margin=16)
    np.testing.assert_array_equal(wide[:, 16:-16, 16:-16], tiles)  # the margin surrounds the same cores


def test_min_mean_normalisation_per_tile_as_seed_002():
    tiles = np.random.default_rng(1).random((4, 160, 160)).astype(np.float32) * [[[3.0]], [[10.0]], [[1.0]], [[0.5]]] + 7
    shift, scale = tile_maps(tiles, "min-mean")
    normalised = (tiles - shift[:, None, None]) / scale[:, None, None]
    np.testing.assert_allclose(normalised.min(axis=(1, 2)), 0, atol=1e-6)
    np.testing.assert_allclose(normalised.mean(axis=(1, 2)), 1, rtol=1e-4)
    flat_shift, flat_scale = tile_maps(np.full((1, 160, 160), 5.0, np.float32), "min-mean")
    assert flat_shift[0] == 5 and flat_scale[0] == 1  # a flat tile stays finite


@pytest.mark.parametrize("bits", [8, 16])
def test_quantisation_error_is_within_half_a_step(bits):
    latents = np.random.default_rng(2).gamma(2.0, size=(6, 4, 20, 20)).astype(np.float32)
    back = dequantise(quantise(latents, bits))
    step = (latents.max(axis=(0, 2, 3)) - latents.min(axis=(0, 2, 3))) / (2**bits - 1)
    assert np.all(np.abs(back - latents).max(axis=(0, 2, 3)) <= step * 0.5 + 1e-6)


def test_decoding_restores_the_shape_and_denoises(codec, lattice):
    clean, noisy = lattice
    spec = codec.spec(MODEL)
    encoded = codec.encode_frame(noisy, spec)
    side = spec.tile // spec.downsampling
    assert encoded.latents.shape == (plan_grid(noisy.shape, spec.tile).count, spec.depth, side, side)
    restored = codec.decode_frame(encoded, spec)
    assert restored.shape == noisy.shape and restored.dtype == np.float32
    assert mse(restored, clean) < mse(noisy.astype(np.float32), clean)  # seed 002: decoding denoises


def test_seam_halo_and_levelling_make_tile_borders_less_visible(codec, lattice):
    clean, noisy = lattice
    spec = codec.spec(MODEL)
    plain = codec.decode_frame(codec.encode_frame(noisy, spec, halo=0), spec, halo=0, seam_width=0)
    smooth = codec.decode_frame(codec.encode_frame(noisy, spec), spec)
    before, after = seam_ratio(plain, spec.tile, reference=clean), seam_ratio(smooth, spec.tile, reference=clean)
    assert after < before, (before, after)


def test_emz_records_model_layout_and_metadata(emz_file, client):
    result, source, stack = emz_file
    header = read_header(result.path)
    card = client.engine.card(MODEL)
    assert header.model_id == MODEL
    assert header.encoder_sha256 == card.graphs["encode"].sha256
    assert header.raw["model"]["decoder_sha256"] == card.graphs["decode"].sha256
    assert header.depth == card.raw["latent"]["depth"] and header.tile == card.tile["size"]
    assert header.frame_shape == stack.shape[1:] and header.frame_count == len(stack)
    assert (header.raw["tile"]["rows"], header.raw["tile"]["cols"]) == (2, 2)
    assert header.source["dtype"] == "uint16" and header.raw["normalization"]["kind"] == card.normalization["kind"]
    assert header.metadata["pixel_size"] == pytest.approx(0.25) and header.metadata["unit"] == "nm"
    assert header.metadata["slice_labels"] == ["a", "b", "c"]
    assert result.bytes == result.path.stat().st_size and result.bytes_per_pixel < stack.itemsize
    frames = list(iter_frames(result.path))
    assert len(frames) == 3 and all(f.latents.shape[1] == header.depth for f in frames)


def test_decompress_equals_decoding_the_stored_latents_and_keeps_calibration(emz_file, client, codec, tmp_path):
    result, source, _ = emz_file
    out = decompress_file(client, result.path, tmp_path / "restored.tif")
    spec = codec.spec(MODEL)
    expected = np.stack([codec.decode_frame(f, spec) for f in iter_frames(result.path)])
    np.testing.assert_array_equal(tifffile.imread(out), expected)
    meta = read_tiff_metadata(out)
    assert meta.pixel_size == pytest.approx(0.25) and meta.unit == "nm" and meta.frame_interval == 2.0
    assert meta.slice_labels == ["a", "b", "c"]
    assert "emdenoise.model = ede-ae-d16" in meta.info and "emdenoise.encoder_sha256 = " in meta.info


def _damaged(path, tmp_path, name, change):
    data = bytearray(path.read_bytes())
    target = tmp_path / name
    target.write_bytes(bytes(change(data)))
    return target


def _cli_error(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    "name, change, words",
    [
        ("cut-header.emz", lambda d: d[:20], "truncated"),
        ("cut-frame.emz", lambda d: d[: len(d) // 2], "truncated"),
        ("no-trailer.emz", lambda d: d[:-4], "truncated"),
        ("flipped.emz", lambda d: d[: len(d) // 2] + bytes([d[len(d) // 2] ^ 0x55]) + d[len(d) // 2 + 1 :], "corrupt"),
        ("header-byte.emz", lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], "corrupt"),
        ("appended.emz", lambda d: d + b"junk", "after its end marker"),
        ("not.emz", lambda d: b"II*\x00" + d[4:], "not an .emz file"),
    ],
)
def test_damaged_files_are_refused_with_one_sentence(emz_file, tmp_path, capsys, name, change, words):
    bad = _damaged(emz_file[0].path, tmp_path, name, change)
    with pytest.raises(EmzError, match=words):
        list(iter_frames(bad))
    out = tmp_path / "out.tif"
    err = _cli_error(capsys, "decompress", str(bad), "-o", str(out), "--device", "cpu")
    assert words in err and name in err
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def _with_header(data: bytearray, edit) -> bytearray:
    (length,) = struct.unpack_from("<I", data, len(SIGNATURE) + 2)
    start = len(SIGNATURE) + 6
    header = json.loads(bytes(data[start : start + length]))
    edit(header)
    text = json.dumps(header).encode()
    return data[:start - 4] + struct.pack("<I", len(text)) + text + struct.pack("<I", zlib.crc32(text)) + data[start + length + 4 :]


def test_latents_of_another_model_are_refused(emz_file, tmp_path, capsys):
    path = emz_file[0].path
    err = _cli_error(capsys, "decompress", str(path), "-o", str(tmp_path / "x.tif"), "--model", "ede-ae-d4")
    assert "holds latents of ede-ae-d16" in err and "--model ede-ae-d16" in err

    def other_version(header):
        header["model"]["encoder_sha256"] = "0" * 64

    retrained = _damaged(path, tmp_path, "retrained.emz", lambda d: _with_header(d, other_version))
    err = _cli_error(capsys, "decompress", str(retrained), "-o", str(tmp_path / "y.tif"), "--device", "cpu")
    assert "made by an encoder with sha256 000000000000" in err and "model version that encoded them" in err

    def relabelled(header):  # a file claiming a model whose latents have another depth
        header["model"]["id"] = "ede-ae-d4"

    wrong = _damaged(path, tmp_path, "relabelled.emz", lambda d: _with_header(d, relabelled))
    err = _cli_error(capsys, "decompress", str(wrong), "-o", str(tmp_path / "z.tif"), "--device", "cpu")
    assert "not by ede-ae-d4" in err


def test_existing_outputs_need_overwrite_and_non_autoencoders_are_refused(emz_file, tmp_path, capsys):
    result, source, _ = emz_file
    taken = tmp_path / "taken.emz"
    taken.write_bytes(b"keep")
    err = _cli_error(capsys, "compress", str(source), "-o", str(taken), "--model", MODEL, "--device", "cpu")
    assert "--overwrite" in err and taken.read_bytes() == b"keep"
    assert main(["compress", str(source), "-o", str(taken), "--model", MODEL, "--device", "cpu", "--overwrite"]) == 0
    assert read_header(taken).model_id == MODEL
    capsys.readouterr()
    err = _cli_error(capsys, "compress", str(source), "-o", str(tmp_path / "k.emz"), "--model", "ede-kernel-tem-7")
    assert "not an autoencoder" in err
    with pytest.raises(InvalidInput, match="not an autoencoder"):
        EmbeddedClient(device="cpu").encode([np.ones((8, 8))], "classical-gaussian3").start()
