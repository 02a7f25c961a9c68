"""The command line as a user runs it: files, folders, a server, the demo, errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import tifffile

from emdenoise.io.tiff import read_tiff


def emdenoise(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "emdenoise", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_denoise_file_embedded_keeps_metadata(calibrated_stack, tmp_path):
    result = emdenoise("denoise", calibrated_stack, "-o", tmp_path / "out", "--model", "ede-kernel-stem-3")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out" / "stack_denoised-ede-kernel-stem-3.tif"
    pixels, meta = read_tiff(out)
    assert pixels.shape == (6, 96, 80) and pixels.dtype == np.float32
    assert meta.slice_labels[0] == "frame-0" and meta.unit == "nm"
    again = emdenoise("denoise", calibrated_stack, "-o", tmp_path / "out", "--model", "ede-kernel-stem-3")
    assert again.returncode == 0 and "skipped" in again.stdout


def test_denoise_through_server_equals_embedded(server, calibrated_stack, tmp_path):
    local = emdenoise("denoise", calibrated_stack, "-o", tmp_path / "a.tif")
    remote = emdenoise("denoise", calibrated_stack, "-o", tmp_path / "b.tif", "--server", server.address)
    assert local.returncode == 0 and remote.returncode == 0, remote.stderr
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a.tif"), tifffile.imread(tmp_path / "b.tif"))


def test_folder_batch_continues_past_bad_files_and_fails_at_the_end(calibrated_stack, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.tif").write_bytes(calibrated_stack.read_bytes())
    (folder / "broken.tif").write_bytes(b"not a tiff at all")
    tifffile.imwrite(folder / "c.tif", np.ones((20, 20), np.float32))
    result = emdenoise("denoise", folder, "-o", tmp_path / "out", "--model", "ede-kernel-tem-3")
    assert result.returncode == 1
    assert "2 written, 0 skipped, 1 failed" in result.stdout
    assert "broken.tif" in result.stdout and "Traceback" not in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a_denoised-ede-kernel-tem-3.tif",
        "c_denoised-ede-kernel-tem-3.tif",
    ]


def test_errors_are_one_sentence_without_traceback(tmp_path):
    missing = emdenoise("denoise", tmp_path / "nope.tif", "-o", tmp_path / "o")
    assert missing.returncode != 0 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    src = tmp_path / "x.tif"
    tifffile.imwrite(src, np.ones((8, 8), np.float32))
    unknown = emdenoise("denoise", src, "-o", tmp_path / "o", "--model", "nope-model")
    assert unknown.returncode != 0 and "unknown model 'nope-model'" in unknown.stderr
    no_server = emdenoise("denoise", src, "-o", tmp_path / "o", "--server", "127.0.0.1:9")
    assert no_server.returncode != 0 and "emdenoise serve" in no_server.stderr and "Traceback" not in no_server.stderr


def test_models_lists_defaults():
    result = emdenoise("models")
    assert result.returncode == 0
    line = next(l for l in result.stdout.splitlines() if l.startswith("sim-vstunet32-stem-r2 "))
    assert "yes" in line


def test_demo_writes_tiff_and_png(tmp_path):
    result = emdenoise("demo", "-o", tmp_path / "demo")
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert names == ["sample_srtio3_haadf_denoised-sim-vstunet32-stem-r2.png", "sample_srtio3_haadf_denoised-sim-vstunet32-stem-r2.tif"]
    raw, _ = read_tiff(__import__("emdenoise.demo", fromlist=["x"]).sample_path())
    denoised, meta = read_tiff(tmp_path / "demo" / names[1])
    assert meta.unit == "nm" and denoised.std() < raw.std()
    second = emdenoise("demo", "-o", tmp_path / "demo")
    assert second.returncode != 0 and "--overwrite" in second.stderr


def test_output_that_cannot_be_created_is_one_sentence(calibrated_stack, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = emdenoise("denoise", calibrated_stack, "-o", blocker / "out")
    assert result.returncode != 0
    assert "cannot create the output folder" in result.stderr and "Traceback" not in result.stderr
    assert blocker.read_text() == "not a folder"


def test_counts_model_warns_on_a_dose_outside_its_range_and_on_a_poor_estimate(tmp_path):
    y, x = np.mgrid[:128, :128]
    structured = tmp_path / "structured.tif"  # ~40 counts/px: far above the HRTEM UNet's range
    tifffile.imwrite(structured, np.random.default_rng(1).poisson(40 + 30 * np.sin(x / 5) * np.cos(y / 7)).astype(np.uint16))
    result = emdenoise("denoise", structured, "-o", tmp_path / "a", "--model", "sbd-unet32-hrtem")
    assert result.returncode == 0, result.stderr
    assert "warning: sbd-unet32-hrtem: estimated dose" in result.stderr and "is above the 0.614" in result.stderr
    assert "unreliable" not in result.stderr
    flat = tmp_path / "flat.tif"  # no intensity variation: gain and offset cannot be separated
    tifffile.imwrite(flat, np.random.default_rng(2).poisson(40, (96, 96)).astype(np.uint16))
    result = emdenoise("denoise", flat, "-o", tmp_path / "b", "--model", "sbd-unet32-hrtem")
    assert result.returncode == 0, result.stderr
    assert "estimated gain/offset are unreliable" in result.stderr and "offset 0 was assumed" in result.stderr
    assert "is above the 0.614" in result.stderr  # gain fitted with offset 0: about 1, dose about 40
    given = emdenoise("denoise", flat, "-o", tmp_path / "c", "--model", "sbd-unet32-hrtem", "--gain", "1", "--offset", "0")
    assert given.returncode == 0 and "unreliable" not in given.stderr
