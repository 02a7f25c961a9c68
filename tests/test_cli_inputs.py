"""Issue 22, "Nothing lost, nothing hung": bad files, clashing outputs and odd values on the CLI.

Every case is a real TIFF (or ``.emz``) file and the real command line; each error is one
sentence on stderr, and nothing partial is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

import grpc
import numpy as np
import pytest
import tifffile

from emdenoise.cli import main
from emdenoise.compress import emz
from emdenoise.engine import Engine
from emdenoise.engine.normalization import fit_normalization
from emdenoise.engine.validation import check_job_options
from emdenoise.errors import InvalidInput, UserError
from emdenoise.io.metadata import ImageMetadata
from emdenoise.io.tiff import read_tiff_metadata, write_tiff
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.v1 import denoiser_pb2_grpc as pb_grpc
from emdenoise.wire import frame_to_chunks

MODEL = "ede-kernel-tem-3"  # min-mean normalisation, small and fast


def frames(count=4, shape=(32, 32), seed=0):
    return np.random.default_rng(seed).poisson(40, size=(count, *shape)).astype(np.uint16)


def denoise(capsys, *args):
    """Run ``emdenoise denoise ARGS --model MODEL``; returns (exit code, stdout, stderr)."""
    try:
        code = main(["denoise", *map(str, args), "--model", MODEL])
    except SystemExit as stop:  # argparse refusing a value
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_sentence(err):
    """One ``error:`` line, last (argparse prints its usage before it), and no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in err, err


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- 1: one bad file does not stop a folder run ------------------------------------------

def test_folder_run_goes_on_past_a_file_that_breaks_mid_stack(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", frames(2))
    tifffile.imwrite(folder / "b.tif", frames(3), compression="zlib", photometric="minisblack")
    with tifffile.TiffFile(folder / "b.tif") as tif:  # frame 2's compressed bytes zeroed
        offset, count = tif.pages[2].dataoffsets[0], tif.pages[2].databytecounts[0]
    data = bytearray((folder / "b.tif").read_bytes())
    data[offset : offset + count] = bytes(count)
    (folder / "b.tif").write_bytes(bytes(data))
    tifffile.imwrite(folder / "c.tif", frames(1)[0])
    code, out, err = denoise(capsys, folder, "-o", tmp_path / "out")
    assert code == 1, err
    assert "2 written, 0 skipped, 1 failed" in out
    line = next(line for line in out.splitlines() if line.startswith("b.tif"))
    assert "b.tif is damaged (frame 2 of 3" in line and "copy it again" in line
    assert leftovers(tmp_path / "out") == [f"a_denoised-{MODEL}.tif", f"c_denoised-{MODEL}.tif"]


# -- 2: no silent data loss ---------------------------------------------------------------

def test_truncated_stack_is_refused_not_written_as_one_frame(tmp_path, capsys):
    source = tmp_path / "movie.tif"
    tifffile.imwrite(source, frames(4, (64, 64)), imagej=True, metadata={"axes": "TYX"})
    whole = source.read_bytes()
    source.write_bytes(whole[: len(whole) * 5 // 8])
    code, _, err = denoise(capsys, source, "-o", tmp_path / "out")
    assert code != 0 and "movie.tif is truncated or damaged" in err and "4 frames" in err
    assert_one_sentence(err)
    assert leftovers(tmp_path / "out") == []


def test_pages_of_different_sizes_are_refused(tmp_path, capsys):
    source = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(source) as writer:
        for shape in ((64, 64), (32, 48), (64, 64)):
            writer.write(np.ones(shape, np.uint16), photometric="minisblack")
    code, _, err = denoise(capsys, source, "-o", tmp_path / "out")
    assert code != 0 and "mixed.tif holds 3 images of different sizes" in err
    assert_one_sentence(err)
    assert leftovers(tmp_path / "out") == []


# -- 3: unique temporary files -------------------------------------------------------------

@pytest.mark.parametrize("overwrite", [True, False])
def test_two_writers_of_one_output_do_not_share_a_temporary_file(tmp_path, overwrite):
    """Writer A is mid-stack when writer B writes the same output and finishes."""
    target = tmp_path / "out.tif"
    meta = ImageMetadata(axes="TYX", shape=(3, 16, 16))
    stack = frames(3, (16, 16)).astype(np.float32)

    def first_writer_frames():
        yield stack[0]
        write_tiff(target, list(stack + 1), meta, overwrite=overwrite, frame_total=3)
        yield stack[1]
        yield stack[2]

    if overwrite:
        write_tiff(target, first_writer_frames(), meta, overwrite=True, frame_total=3)
        np.testing.assert_array_equal(tifffile.imread(target), stack)  # the last one to finish wins
    else:
        with pytest.raises(UserError, match="written meanwhile"):
            write_tiff(target, first_writer_frames(), meta, frame_total=3)
        np.testing.assert_array_equal(tifffile.imread(target), stack + 1)  # never replaced unasked
    assert leftovers(tmp_path) == ["out.tif"]


# -- 4: outputs that clash -----------------------------------------------------------------

def test_two_inputs_with_one_output_name_are_refused_before_any_work(tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        tifffile.imwrite(tmp_path / folder / "x.tif", frames(1)[0])
    code, _, err = denoise(capsys, tmp_path / "a" / "x.tif", tmp_path / "b" / "x.tif", "-o", tmp_path / "out")
    assert code != 0 and "would both be written to" in err and "separate runs" in err
    assert_one_sentence(err)
    assert leftovers(tmp_path / "out") == []


def test_output_equal_to_the_input_never_replaces_it(tmp_path, capsys):
    source = tmp_path / "raw.tif"
    tifffile.imwrite(source, frames(2))
    before = source.read_bytes()
    code, _, err = denoise(capsys, source, "-o", source, "--overwrite")
    assert code != 0 and "is the input" in err and "raw data is kept" in err
    assert_one_sentence(err)
    assert source.read_bytes() == before


# -- 5: odd paths and values ---------------------------------------------------------------

def test_existing_folder_named_like_the_output_file(tmp_path, capsys):
    source = tmp_path / "x.tif"
    tifffile.imwrite(source, frames(1)[0])
    (tmp_path / "out.tif").mkdir()
    code, _, err = denoise(capsys, source, "-o", tmp_path / "out.tif", "--overwrite")
    assert code != 0 and "is an existing folder" in err
    assert_one_sentence(err)
    assert leftovers(tmp_path / "out.tif") == []


def test_input_name_too_long_for_its_output_name(tmp_path, capsys):
    source = tmp_path / ("a" * 240 + ".tif")
    tifffile.imwrite(source, frames(1)[0])
    code, _, err = denoise(capsys, source, "-o", tmp_path / "out")
    assert code != 0 and "more than the 255 a file name may have" in err
    assert_one_sentence(err)
    assert leftovers(tmp_path / "out") == []


def test_file_name_that_is_not_utf8_is_denoised(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.tif")
    tifffile.imwrite(folder / name, frames(2))
    tifffile.imwrite(folder / "ok.tif", frames(2))
    code, out, err = denoise(capsys, folder, "-o", tmp_path / "out")
    assert code == 0, err
    assert "2 written" in out and "caf\ufffd.tif" in out
    written = tmp_path / "out" / os.fsdecode(f"caf\xe9_denoised-{MODEL}.tif".encode("latin-1"))
    info = tifffile.TiffFile(written).imagej_metadata["Info"]
    assert "emdenoise.source = caf\ufffd.tif" in info


def test_six_dimensional_tiff_is_refused(tmp_path, capsys):
    source = tmp_path / "six.tif"
    tifffile.imwrite(source, np.ones((2, 2, 2, 2, 16, 16), np.float32))
    code, _, err = denoise(capsys, source, "-o", tmp_path / "out")
    assert code != 0 and "6-D image" in err and "at most 5-D" in err
    assert_one_sentence(err)
    assert leftovers(tmp_path / "out") == []


@pytest.mark.parametrize("size", ["0", "99999999999", "-3", "1.5"])
def test_tile_size_out_of_range_is_one_sentence(tmp_path, capsys, size):
    source = tmp_path / "x.tif"
    tifffile.imwrite(source, frames(1)[0])
    code, _, err = denoise(capsys, source, "-o", tmp_path / "out", f"--tile-size={size}")
    assert code == 2 and "--tile-size" in err
    assert_one_sentence(err)
    assert leftovers(tmp_path / "out") == []


def test_unreadable_folder_is_one_sentence(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    tifffile.imwrite(folder / "x.tif", frames(1)[0])
    folder.chmod(0)
    command = [sys.executable, "-m", "emdenoise", "denoise", str(folder), "-o", str(tmp_path / "out")]
    if os.geteuid() == 0:  # root reads any folder: drop the capabilities that allow it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    finally:
        folder.chmod(0o755)
    assert result.returncode != 0 and "cannot list the folder" in result.stderr and "permissions" in result.stderr
    assert_one_sentence(result.stderr)


# -- 6: values at the edge of float32 ------------------------------------------------------

def test_float32_data_near_the_largest_value_are_denoised_or_refused(tmp_path, capsys):
    signs = np.sign(np.random.default_rng(3).standard_normal((2, 32, 32)))
    source = tmp_path / "huge_values.tif"
    tifffile.imwrite(source, (signs * 3.3e38).astype(np.float32))
    for model in (MODEL, "ede-kernel-stem-5"):  # min-mean and no normalisation
        target = tmp_path / f"{model}.tif"
        code = main(["denoise", str(source), "-o", str(target), "--model", model])
        _, err = capsys.readouterr()
        if code == 0:
            assert np.isfinite(tifffile.imread(target)).all(), model
        else:
            assert "too large for 32-bit arithmetic" in err and not target.exists(), model
            assert_one_sentence(err)


def test_engine_never_returns_inf_or_nan():
    engine = Engine(device="cpu")
    frame = np.full((32, 32), 3.3e38, np.float32)
    frame[::2] *= -1
    for model in (MODEL, "ede-kernel-stem-5", "ede-kernel-hrtem-3"):
        try:
            result = engine.denoise(frame, model, gain=1e-6)
        except InvalidInput as error:
            assert "too large for 32-bit arithmetic" in str(error)
        else:
            assert np.isfinite(result).all(), model


# -- 7: one validation of gain, offset and tile size ---------------------------------------

BAD_OPTIONS = [
    {"gain": float("nan")}, {"gain": float("inf")}, {"gain": 0.0}, {"gain": -2.0}, {"gain": 1e-300},
    {"offset": float("nan")}, {"offset": float("-inf")}, {"tile_size": 99999999999}, {"tile_size": -1},
]


@pytest.mark.parametrize("options", BAD_OPTIONS)
def test_bad_gain_offset_or_tile_size_is_refused_by_the_shared_check(options):
    with pytest.raises(InvalidInput):
        check_job_options(**options)


def test_counts_normalisation_refuses_instead_of_treating_bad_gain_as_one():
    frame = np.ones((8, 8), np.float32)
    for gain in (0.0, float("nan"), 1e-300):
        with pytest.raises(InvalidInput, match="gain"):
            fit_normalization(frame, {"kind": "counts"}, gain=gain, offset=0.0)
    with pytest.raises(InvalidInput, match="offset"):
        fit_normalization(frame, {"kind": "counts"}, gain=2.0, offset=float("nan"))
    unset = fit_normalization(frame, {"kind": "counts"}, gain=None, offset=None)
    assert (unset.shift, unset.scale) == (0.0, 1.0)


@pytest.mark.parametrize("flag, value", [("--gain", "nan"), ("--gain", "0"), ("--gain", "-1"), ("--gain", "1e-300"),
                                         ("--gain", "inf"), ("--offset", "nan")])
def test_cli_refuses_bad_gain_and_offset(tmp_path, capsys, flag, value):
    source = tmp_path / "x.tif"
    tifffile.imwrite(source, frames(1)[0])
    code, _, err = denoise(capsys, source, "-o", tmp_path / "out", f"{flag}={value}")
    assert code == 2 and flag in err
    assert_one_sentence(err)


@pytest.mark.parametrize("options", [{"gain": float("nan")}, {"gain": 0.0}, {"gain": -1.0}, {"gain": 1e-300},
                                     {"offset": float("nan")}, {"tile_size": 4294967295}])
def test_server_answers_invalid_argument_for_bad_options(server, options):
    requests = [pb.DenoiseRequest(options=pb.DenoiseOptions(model_id="ede-kernel-hrtem-3", frame_count=1, **options))]
    requests += [pb.DenoiseRequest(chunk=chunk) for chunk in frame_to_chunks(np.full((32, 32), 40, np.uint16), 0)]
    with grpc.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            list(pb_grpc.DenoiserStub(channel).Denoise(iter(requests), timeout=30))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any(word in caught.value.details() for word in ("gain", "offset", "tile size"))


# -- 8: declared sizes checked before allocation -------------------------------------------

def _patch_size(path, width, height):
    """Rewrite the ImageWidth/ImageLength values of page 0 (a few bytes)."""
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages.first.tags
        spots = [(tags["ImageWidth"], width), (tags["ImageLength"], height)]
        data = bytearray(path.read_bytes())
        for tag, value in spots:
            struct.pack_into(tif.byteorder + ("H" if tag.dtype == 3 else "I"), data, tag.valueoffset, value)
    path.write_bytes(bytes(data))


def test_tiff_declaring_an_image_larger_than_the_file_is_refused_before_reading(tmp_path, capsys):
    source = tmp_path / "patched.tif"
    tifffile.imwrite(source, frames(1, (64, 64))[0])
    _patch_size(source, 65535, 65535)  # 8 GiB of uint16 in an 8 KiB file
    with pytest.raises(UserError, match="truncated or damaged"):
        read_tiff_metadata(source)
    code, _, err = denoise(capsys, source, "-o", tmp_path / "out")
    assert code != 0 and "patched.tif is truncated or damaged" in err
    assert_one_sentence(err)


def test_compressed_tiff_declaring_a_huge_frame_is_refused_by_the_memory_budget(tmp_path, capsys):
    source = tmp_path / "patched.tif"
    tifffile.imwrite(source, frames(1, (64, 64))[0], compression="zlib")
    _patch_size(source, 40000, 40000)  # compressed: the file size cannot bound it, memory does
    code, _, err = denoise(capsys, source, "-o", tmp_path / "out")
    assert code != 0 and "declares 40000x40000-pixel frames" in err and "crop or bin" in err
    assert_one_sentence(err)


def _rewrite_emz_header(path, change):
    data = path.read_bytes()
    start = len(emz.SIGNATURE)
    _, length = struct.unpack_from("<HI", data, start)
    body = start + 6
    header = json.loads(data[body : body + length])
    change(header)
    text = json.dumps(header, sort_keys=True).encode()
    rest = data[body + length + 4 :]
    path.write_bytes(data[:start] + struct.pack("<HI", 1, len(text)) + text + struct.pack("<I", zlib.crc32(text)) + rest)


@pytest.fixture
def small_emz(tmp_path, capsys):
    source = tmp_path / "x.tif"
    tifffile.imwrite(source, frames(1, (48, 48))[0])
    target = tmp_path / "x.emz"
    assert main(["compress", str(source), "-o", str(target), "--model", "ede-ae-d4"]) == 0
    capsys.readouterr()
    return target


@pytest.mark.parametrize("change, words", [
    (lambda h: h.update(frame_shape=[200000, 200000]), "crop or bin"),
    (lambda h: h.update(frame_count=10**9), "more than the file can hold"),
    (lambda h: h["tile"].update(size=0), "tile size is 0"),
])
def test_emz_header_sizes_are_checked_before_allocation(small_emz, capsys, change, words):
    _rewrite_emz_header(small_emz, change)
    with pytest.raises(UserError, match=words):
        next(emz.iter_frames(small_emz))
    code = main(["decompress", str(small_emz), "-o", str(small_emz.parent / "restored")])
    err = capsys.readouterr().err
    assert code != 0 and words in err
    assert_one_sentence(err)


def test_emz_model_id_cannot_send_the_output_outside_its_folder(small_emz, capsys):
    _rewrite_emz_header(small_emz, lambda h: h["model"].update(id="x/../../escaped/ede-ae-d4"))
    out = small_emz.parent / "restored"
    code = main(["decompress", str(small_emz), "-o", str(out)])
    err = capsys.readouterr().err
    assert not (small_emz.parent.parent / "escaped").exists() and not (small_emz.parent / "escaped").exists()
    assert leftovers(out) == []
    assert code != 0 and "model id" in err
    assert_one_sentence(err)
