"""The EM commands in an ImageJ started from Python, served in-process (issue 9).

Every test that needs Java starts it in a child process (a JVM cannot be restarted in
one Python, and would leak into other tests) with a hard timeout: either the
user-facing ``emdenoise fiji launch``, or this file run as a script with a scenario
name (see the bottom). Results are compared with what ``emdenoise denoise`` writes for
the same files, through the embedded engine and a real server on 127.0.0.1.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from emdenoise.client import connect

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from imagej_helpers import REPO, imagej_env, missing_inprocess_tools, run_python  # noqa: E402

MODEL = "ede-kernel-tem-5"
SLOW_MODEL = "classical-nlm"  # ~0.15 s per 128x128 frame here: slow enough to press Esc mid-job

_java_skip = pytest.mark.skipif(missing_inprocess_tools() is not None, reason=str(missing_inprocess_tools()))
_display_skip = pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed (apt-get install xvfb xauth)")


def needs_java(test):
    """Starts Java with ImageJ in a child process (marked ``imagej`` like the issue-8 tests)."""
    return pytest.mark.imagej(_java_skip(test))


def needs_display(test):
    """Also needs a virtual display (xvfb-run)."""
    return needs_java(_display_skip(test))


# -- fixtures and helpers ---------------------------------------------------------------------
def write_stack(path: Path, shape, *, seed: int = 0, axes: str = "TYX", dtype=np.uint16, **metadata) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[-2], : shape[-1]]
    clean = 40 + 20 * np.sin(x / 3.0) * np.cos(y / 4.0)
    data = rng.poisson(np.broadcast_to(clean, shape)).astype(dtype)
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": axes, **metadata}, resolution=(5.0, 5.0))
    return data


@pytest.fixture
def folders(tmp_path):
    """Empty HOME, TMPDIR (also Java's temp dir) and working directory for one ImageJ run."""
    made = {name: tmp_path / name for name in ("home", "temp", "cwd", "raw", "out")}
    for folder in made.values():
        folder.mkdir()
    return made


def inner_env(folders) -> dict:
    env = imagej_env(folders["home"], folders["temp"])
    keep = {"HOME", "TMPDIR", "_JAVA_OPTIONS"}
    inner = {key: env[key] for key in keep}
    # onnxruntime writes a telemetry device id under HOME and '.ses' in TMPDIR when it is
    # imported; the `emdenoise` CLI imports it before `fiji launch` can switch that off.
    inner["ORT_DISABLE_TELEMETRY"] = "1"
    inner["PYTHONUNBUFFERED"] = "1"
    return inner


def everything_in(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in root.rglob("*"))


def cli_result(source: Path, target: Path, server: str | None = None) -> Path:
    """What ``emdenoise denoise SOURCE -o TARGET --model MODEL [--server]`` writes."""
    from emdenoise.workflow import denoise_file

    with connect(server) as client:
        denoise_file(client, source, target, model_id=MODEL)
    return target


def assert_same_result(produced: Path, expected: Path) -> None:
    """Same pixels, axes, calibration, labels and provenance lines (the date aside).

    Metadata is compared as emdenoise reads it back: ImageJ's TIFF writer spells units
    its own way ("pixel", "\\u00B5m") where tifffile writes none or "um".
    """
    from emdenoise.io.tiff import provenance_from_info, read_tiff_metadata

    with tifffile.TiffFile(produced) as ours, tifffile.TiffFile(expected) as cli:
        np.testing.assert_array_equal(ours.asarray(), cli.asarray())
        assert ours.series[0].axes == cli.series[0].axes
        assert ours.pages.first.dtype == np.float32
    a, b = read_tiff_metadata(produced), read_tiff_metadata(expected)
    assert (a.unit, a.frame_interval, a.slice_labels, a.shape) == (b.unit, b.frame_interval, b.slice_labels, b.shape)
    assert a.pixel_size == pytest.approx(b.pixel_size)
    lines, cli_lines = provenance_from_info(a.info), provenance_from_info(b.info)
    lines.pop("date"), cli_lines.pop("date")
    assert lines == cli_lines


def assert_benchmark_table(output: str, movie: Path) -> None:
    """EM Benchmark's CSS and paired-frame error equal ``bench series``' own functions."""
    from emdenoise.bench import series
    from emdenoise.bench.methods import classical_method, engine_methods, select_baselines

    header = "Method,CSS,Paired MSE (counts^2),x Unfiltered MSE,s per megapixel,Time ratio\n"
    assert "EM Benchmark: movie.tif (4 frames; time ratios against" in output
    rows = {line.split(",")[0]: line.split(",") for line in output.split(header, 1)[1].splitlines()[:3]}
    stack = tifffile.imread(movie)[:4, 8:40, 4:36].astype(np.float64)  # first 4 frames, centred 32x32
    methods = [classical_method(b) for b in select_baselines(series.SERIES_KEYS, "unfiltered,gaussian_3x3")]
    methods += engine_methods([MODEL])
    calibration = series.calibrate(stack, None, None)
    scores = series.run_series(methods, (stack - calibration["offset"]) / calibration["gain"])["scores"]
    assert sorted(rows) == sorted(m.name for m in methods)
    for m in methods:
        assert float(rows[m.name][1]) == pytest.approx(np.mean(scores[m.name]["css"]), rel=1e-3)
        assert float(rows[m.name][2]) == pytest.approx(np.mean(scores[m.name]["paired_mse"]), rel=1e-3)


def section(output: str, start: str, end: str) -> str:
    return output.split(start, 1)[1].split(end, 1)[0]


# -- no Java: the choices before anything starts ------------------------------------------------
def test_what_launch_starts_and_its_messages(tmp_path, capsys):
    from emdenoise.cli import main
    from emdenoise.errors import UserError
    from emdenoise.fiji.launch import find_imagej

    imagej_folder = tmp_path / "ImageJ"
    (imagej_folder / "plugins").mkdir(parents=True)
    (imagej_folder / "ij.jar").write_bytes(b"")
    fiji = tmp_path / "Fiji.app"
    (fiji / "jars").mkdir(parents=True)
    assert find_imagej(imagej_folder).kind == "imagej1" and find_imagej(imagej_folder).plugins is not None
    assert find_imagej(fiji).kind == "fiji"
    with pytest.raises(UserError, match="is neither a Fiji.app"):
        find_imagej(tmp_path)
    macro = tmp_path / "m.ijm"
    macro.write_text('print("x");\n')
    cases = [
        (["--fiji", str(tmp_path / "nowhere"), "--headless", "--batch", str(macro)],
         f"{tmp_path / 'nowhere'} does not exist; pass the Fiji.app folder"),
        (["--headless"], "--headless has no window to work in; pass --batch MACRO"),
        (["--batch", str(tmp_path / "missing.ijm")], "missing.ijm does not exist; check the path."),
    ]
    for argv, message in cases:
        assert main(["fiji", "launch", *argv]) == 2
        assert message in capsys.readouterr().err


@needs_java
def test_pyimagej_branch_goes_as_far_as_a_fiji_app_allows(tmp_path, folders):
    """A Fiji.app lookalike (jars/ with ImageJ1 only): the pyimagej path starts Java with
    its jars and stops with a sentence, not a traceback, where ImageJ2 would be needed."""
    fake = tmp_path / "Fiji.app"
    (fake / "jars").mkdir(parents=True)
    (fake / "plugins").mkdir()
    (fake / "jars" / "ij-1.53t.jar").symlink_to(Path("/usr/share/java/ij.jar"))
    macro = tmp_path / "m.ijm"
    macro.write_text('print("unreachable");\n')
    run = run_python("-m", "emdenoise", "fiji", "launch", "--fiji", str(fake), "--headless", "--batch", str(macro),
                     inner_env=inner_env(folders), cwd=folders["cwd"], display=False)
    assert run.returncode == 2, run.output
    try:
        import imagej  # noqa: F401
    except ImportError:
        assert "starting a Fiji.app from Python needs pyimagej; install it with pip install 'emdenoise[fiji]'." in run.output
    else:
        assert f"emdenoise: error: {fake} is not a complete Fiji.app: Java started with its jars/" in run.output
    assert "Traceback" not in run.output and "unreachable" not in run.output
    print(f"pyimagej branch: {run.seconds:.1f} s")


# -- the launched ImageJ runs the lab's macros -----------------------------------------------
@needs_display
def test_lab_macros_in_launched_imagej_equal_the_cli_and_write_no_files(tmp_path, folders, server):
    raw, out = folders["raw"], folders["out"]
    write_stack(raw / "movie.tif", (5, 48, 40), unit="nm", finterval=0.25, Labels=[f"t{i}" for i in range(5)])
    hyper = write_stack(raw / "hyper.tif", (2, 3, 32, 32), seed=1, axes="TZYX")
    tifffile.imwrite(raw / "colour.tif", np.zeros((16, 16, 3), np.uint8), photometric="rgb")
    single = tmp_path / "single"
    single.mkdir()
    dead = "127.0.0.1:9"  # discard port: nothing listens
    folder_macro = REPO / "fiji-macros" / "examples" / "Denoise_Folder.ijm"
    lab = tmp_path / "lab.ijm"
    lab.write_text(f"""
runMacro("{folder_macro}", "in=[{raw}] out=[{out}] model={MODEL} server=embedded");
run("EM Server Settings", "address={server.address}");
open("{raw}/movie.tif");
run("EM Denoise", "model={MODEL}");
print("title: " + getTitle());
saveAs("Tiff", "{single}/movie-server.tif");
open("{raw}/hyper.tif");
run("EM Denoise", "model={MODEL} server=embedded output=[same as input] residual");
print("same-as-input: " + getTitle() + " " + bitDepth() + "-bit " + nSlices + " frames");
saveAs("Tiff", "{single}/hyper-16bit.tif");
selectImage("hyper_residual-{MODEL}.tif");
saveAs("Tiff", "{single}/hyper-residual.tif");
open("{raw}/movie.tif");
Stack.setFrame(2);
makeRectangle(4, 6, 20, 16);
run("EM Denoise", "model={MODEL} server=embedded preview");
print("preview: " + getTitle() + " " + getWidth() + "x" + getHeight() + " " + nSlices);
saveAs("Tiff", "{single}/preview.tif");
selectImage("movie.tif");
run("EM Benchmark", "models={MODEL} baselines=gaussian_3x3 frames=4 crop=32");
print("--- unknown model");
run("EM Denoise", "model=no-such-model");
print("--- server not running");
run("EM Denoise", "model={MODEL} server={dead}");
close("*");
print("--- empty");
run("EM Denoise", "model={MODEL}");
newImage("rgb", "RGB black", 32, 32, 1);
print("--- rgb");
run("EM Denoise", "model={MODEL}");
print("--- unknown EM command");
run("EM Nonexistent", "x=1");
print("not reached: the unknown command aborts the macro");
""")
    run = run_python("-m", "emdenoise", "fiji", "launch", "--batch", str(lab),
                     inner_env=inner_env(folders), cwd=folders["cwd"], timeout=120)
    output = run.output
    print(output)
    assert "Denoise_Folder: 2 written, 0 skipped, 1 failed" in output
    assert "EM Denoise: error: 'colour.tif' is an RGB image" in output
    for name in ("movie", "hyper"):
        assert_same_result(out / f"{name}_denoised-{MODEL}.tif", cli_result(raw / f"{name}.tif", tmp_path / f"{name}-cli.tif"))
    assert f"EM Server Settings: using {server.address} (" in output
    assert f"title: movie_denoised-{MODEL}.tif" in output
    from_server = cli_result(raw / "movie.tif", tmp_path / "movie-cli-server.tif", server.address)
    assert_same_result(single / "movie-server.tif", from_server)
    # 'same as input': the 32-bit result converted to 16 bits without scaling (rounded, clipped)
    assert f"same-as-input: hyper_denoised-{MODEL}.tif 16-bit 6 frames" in output
    float_result = tifffile.imread(tmp_path / "hyper-cli.tif")
    np.testing.assert_array_equal(tifffile.imread(single / "hyper-16bit.tif"),
                                  np.clip(np.floor(float_result + 0.5), 0, 65535).astype(np.uint16))
    residual = tifffile.TiffFile(single / "hyper-residual.tif")
    np.testing.assert_array_equal(residual.asarray(), hyper.astype(np.float32) - float_result)
    assert f"emdenoise.residual = raw - denoised by {MODEL}" in residual.imagej_metadata["Info"]
    residual.close()

    assert f"preview: movie_preview-{MODEL}.tif 20x16 1" in output  # frame 2, cut to the selection
    with connect(None) as client:
        job = client.denoise([tifffile.imread(raw / "movie.tif")[1, 6:22, 4:24]], MODEL, frame_count=1)
        np.testing.assert_array_equal(tifffile.imread(single / "preview.tif"), list(job)[0])
    assert_benchmark_table(output, raw / "movie.tif")

    sections = {}
    for part in output.split("--- ")[1:]:
        name, _, body = part.partition("\n")
        sections[name] = body.strip().splitlines()[0] if body.strip() else ""
    assert sections["unknown model"] == "EM Denoise: error: unknown model 'no-such-model'; run 'emdenoise models' to list them."
    assert sections["server not running"] == (
        "EM Denoise: error: cannot reach the emdenoise server at 127.0.0.1:9; start it with "
        "'emdenoise serve --port 9' or leave the server unset to use the embedded engine."
    )
    assert sections["empty"].startswith("EM Denoise: error: no image is open")
    assert sections["rgb"].startswith("EM Denoise: error: 'rgb' is an RGB image")
    assert sections["unknown EM command"] == 'Unrecognized command: "EM Nonexistent"'
    assert run.returncode == 1 and "emdenoise: the macro lab.ijm was aborted" in output
    assert "not reached" not in output.replace('print("not reached', "")
    assert "IMAGEJ-DIALOG" not in output and "Exception" not in output and "\tat " not in output
    assert everything_in(folders["home"], folders["temp"], folders["cwd"]) == [], "temporary files were written"
    print(f"launch --batch with the lab macros: {run.seconds:.1f} s")


@needs_display
def test_blocking_dialogs_are_disposed_and_unknown_commands_stop_their_macro(tmp_path, folders):
    """A macro error's modal dialog would hang a script: the guard prints and closes it.
    An unknown EM command called from a nested macro stops the macro that called it."""
    bad = tmp_path / "bad.ijm"
    bad.write_text("x = noSuchFunction(3);\n")
    inner = tmp_path / "inner.ijm"
    inner.write_text('print("inner starts");\nrun("EM Nonexistent");\nprint("inner not reached");\n')
    outer = tmp_path / "outer.ijm"
    outer.write_text(f"""
print("a failing macro returns: " + runMacro("{bad}"));
print("a stopped macro returns: " + runMacro("{inner}"));
run("EM Nonexistent");
print("outer not reached");
""")
    run = run_python("-m", "emdenoise", "fiji", "launch", "--batch", str(outer),
                     inner_env=inner_env(folders), cwd=folders["cwd"])
    print(run.output)
    dialogs = [line for line in run.output.splitlines() if line.startswith("IMAGEJ-DIALOG")]
    assert dialogs == ["IMAGEJ-DIALOG Macro Error | Undefined identifier in line 1 / x = <noSuchFunction> ( 3 ) ;"]
    assert "a failing macro returns: [aborted]" in run.output
    assert "inner starts" in run.output and "inner not reached" not in run.output.replace('print("inner not', "")
    assert "a stopped macro returns: " in run.output  # the calling macro goes on after its callee stopped
    assert run.output.count('Unrecognized command: "EM Nonexistent"') == 2
    assert "outer not reached" not in run.output.replace('print("outer not', "")
    assert run.returncode == 1 and "emdenoise: the macro outer.ijm was aborted" in run.output
    print(f"dialog guard scenario: {run.seconds:.1f} s")


@needs_java
def test_headless_imagej1_serves_the_commands_and_stops_unknown_ones(tmp_path, folders):
    raw = folders["raw"]
    write_stack(raw / "movie.tif", (4, 40, 36), seed=5, unit="nm", finterval=0.5)
    macro = tmp_path / "headless.ijm"
    macro.write_text(f"""
open("{raw}/movie.tif");
run("EM Denoise", "model={MODEL}");
saveAs("Tiff", "{folders['out']}/movie-headless.tif");
print("--- no options");
run("EM Denoise");
print("--- menu command");
run("Gaussian Blur...", "sigma=2");
print("not reached");
""")
    run = run_python("-m", "emdenoise", "fiji", "launch", "--headless", "--batch", str(macro),
                     inner_env=inner_env(folders), cwd=folders["cwd"], display=False)
    output = run.output
    print(output)
    assert_same_result(folders["out"] / "movie-headless.tif", cli_result(raw / "movie.tif", tmp_path / "cli.tif"))
    assert ('EM Denoise: error: EM Denoise needs its options when ImageJ has no display; call it as '
            'run("EM Denoise", "key=value ...")') in output
    assert ('Unrecognized command: "Gaussian Blur..." (ImageJ1 without a display has no menu commands; '
            "run under a display, or start a Fiji.app)") in output
    assert "not reached" not in output.replace('print("not reached', "")
    assert run.returncode == 1 and "the macro headless.ijm was aborted" in output
    assert everything_in(folders["home"], folders["temp"], folders["cwd"]) == []
    print(f"launch --headless --batch: {run.seconds:.1f} s")


# -- the script API ------------------------------------------------------------------------------
@needs_java
def test_imageplus_numpy_round_trip_and_denoise_api(tmp_path, folders, server):
    raw, out = folders["raw"], folders["out"]
    files = {
        "u8": write_stack(raw / "u8.tif", (24, 20), axes="YX", dtype=np.uint8),
        "u16-tzcyx": write_stack(raw / "u16-tzcyx.tif", (2, 2, 3, 16, 12), axes="TZCYX", unit="um",
                                 finterval=2.0, spacing=0.5),
        "f32-labels": write_stack(raw / "f32-labels.tif", (3, 20, 24), dtype=np.float32, unit="nm",
                                  finterval=0.125, Labels=["a", "b", "c"]),
        "i16": write_stack(raw / "i16.tif", (2, 16, 16), dtype=np.int16) - 30,
    }
    tifffile.imwrite(raw / "i16.tif", files["i16"], imagej=True, metadata={"axes": "TYX"})
    run = run_python(str(Path(__file__)), "api", str(raw), str(out), server.address,
                     inner_env=inner_env(folders), cwd=folders["cwd"], display=False)
    assert run.returncode == 0, run.output
    report = json.loads(section(run.output, "REPORT>>>", "<<<REPORT"))
    from emdenoise.io.tiff import read_tiff_metadata

    for name, data in files.items():
        pixels = np.load(out / f"{name}.npy")
        np.testing.assert_array_equal(pixels, data)  # ImagePlus -> numpy: values, dtype, axes order
        assert pixels.dtype == data.dtype
        meta, original = report["metadata"][name], read_tiff_metadata(raw / f"{name}.tif")
        assert meta["axes"] == original.axes and tuple(meta["shape"]) == original.shape
        assert meta["unit"] == original.unit and meta["frame_interval"] == original.frame_interval
        assert meta["slice_labels"] == original.slice_labels
        if original.pixel_size:
            assert meta["pixel_size"] == pytest.approx(original.pixel_size)
        # numpy -> ImagePlus -> ImageJ's own TIFF writer: the same image again
        with tifffile.TiffFile(out / f"{name}-roundtrip.tif") as tif:
            again = tif.asarray()
            np.testing.assert_array_equal(again.astype(data.dtype) if name == "i16" else again, data)
            assert tif.series[0].axes == original.axes
            assert read_tiff_metadata(out / f"{name}-roundtrip.tif").slice_labels == original.slice_labels
    assert report["joined"] == ["running", True]  # start_imagej() joined the script's own Java
    assert report["macro_title"] == f"u8_denoised-{MODEL}.tif"  # and serves run("EM Denoise") there
    assert report["metadata"]["u16-tzcyx"]["spacing"] == 0.5
    assert report["progress"] == [[i, 12] for i in range(1, 13)]
    for source, target, address in (("u16-tzcyx", "api-embedded", None), ("f32-labels", "api-server", server.address)):
        assert_same_result(out / f"{target}.tif", cli_result(raw / f"{source}.tif", tmp_path / f"{target}-cli.tif", address))
    assert report["errors"]["rgb"].startswith("'rgb' is an RGB image")
    assert report["errors"]["model"] == "unknown model 'nope'; run 'emdenoise models' to list them."
    assert everything_in(folders["home"], folders["temp"], folders["cwd"]) == []
    print(f"API scenario: {run.seconds:.1f} s")


@needs_java
def test_example_scripts_against_a_live_server(tmp_path, folders, server):
    from emdenoise.bench.series import calibrate

    raw, out = folders["raw"], folders["out"]
    movie = write_stack(raw / "movie.tif", (6, 48, 40), unit="nm", finterval=0.25)
    write_stack(raw / "other.tif", (3, 32, 40), seed=2)
    examples = REPO / "fiji-macros" / "examples"
    env = inner_env(folders)
    run = run_python(str(examples / "denoise_folder.py"), str(raw), str(out / "folder"), "--model", MODEL,
                     "--server", server.address, inner_env=env, cwd=folders["cwd"], display=False)
    assert run.returncode == 0, run.output
    assert "denoise_folder: 2 written, 0 skipped, 0 failed" in run.output
    for name in ("movie", "other"):
        expected = cli_result(raw / f"{name}.tif", tmp_path / f"{name}-cli.tif", server.address)
        assert_same_result(out / "folder" / f"{name}_denoised-{MODEL}.tif", expected)
    folder_seconds = run.seconds

    run = run_python(str(examples / "denoise_movie.py"), str(raw / "movie.tif"), str(out / "movie"), "--model", MODEL,
                     "--server", server.address, inner_env=env, cwd=folders["cwd"], display=False)
    assert run.returncode == 0, run.output
    print(run.output)
    assert_same_result(out / "movie" / f"movie_denoised-{MODEL}.tif", tmp_path / "movie-cli.tif")
    # The table, recomputed here from the CLI's result with the metrics module
    import runpy  # loads the example without writing a __pycache__ into the repository

    per_pair_scores = runpy.run_path(str(examples / "denoise_movie.py"))["per_pair_scores"]

    denoised = tifffile.imread(tmp_path / "movie-cli.tif").astype(np.float64)
    counts = calibrate(movie.astype(np.float64), None, None)
    scale = lambda frames: (frames - counts["offset"]) / counts["gain"]  # noqa: E731
    expected = per_pair_scores(scale(movie.astype(np.float64)), scale(denoised))
    with open(out / "movie" / "movie_per-frame.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["pair"] for row in rows] == ["1-2", "2-3", "3-4", "4-5", "5-6"]
    for row, want in zip(rows, expected):
        for key in ("css_raw", "css_denoised", "paired_mse_raw", "paired_mse_denoised"):
            assert float(row[key]) == pytest.approx(want[key], rel=1e-12), key
    # the model must help on this Poisson series: lower paired-frame error than the raw frames
    assert all(float(r["paired_mse_denoised"]) < float(r["paired_mse_raw"]) for r in rows)
    assert everything_in(folders["home"], folders["temp"], folders["cwd"]) == []
    print(f"denoise_folder.py: {folder_seconds:.1f} s, denoise_movie.py: {run.seconds:.1f} s")


# -- the ImageJ window --------------------------------------------------------------------------
@needs_display
def test_gui_menu_recorder_and_escape(tmp_path, folders):
    raw = folders["raw"]
    write_stack(raw / "stack.tif", (3, 32, 32))
    write_stack(raw / "long.tif", (60, 128, 128), seed=4)
    run = run_python(str(Path(__file__)), "gui", str(raw), inner_env=inner_env(folders), cwd=folders["cwd"], timeout=120)
    print(run.output)
    assert run.returncode == 0, run.output
    assert "MENU ['EM Denoise', 'EM Server Settings', 'EM Benchmark', 'EM Open']" in run.output
    recorded = section(run.output, "RECORDER>>>\n", "<<<RECORDER")
    # The same line the macro version of the command records (issue 8)
    assert (f'run("EM Denoise", "model={MODEL} modality=any server=embedded tile=128 gain=0.0000 offset=0 '
            'output=[32-bit float] residual");') in recorded
    assert "IMAGES 1 -> 3" in run.output and f"RESULT-TITLE stack_denoised-{MODEL}.tif" in run.output
    escape = json.loads(section(run.output, "ESCAPE>>>", "<<<ESCAPE"))
    assert 0 < escape["frames_before_escape"] < 60
    assert escape["images_after"] == escape["images_before"]  # cancelled: no result window
    assert escape["status"] == "EM Denoise: cancelled"
    assert escape["seconds_to_stop"] < 2.0
    assert "IMAGEJ-DIALOG" not in run.output


# -- scenarios run in a child process (this file as a script) ----------------------------------
def _scenario_api(raw: str, out: str, server: str) -> None:
    """ImagePlus <-> numpy and the denoise API in a headless ImageJ1 the script started itself."""
    import scyjava

    from emdenoise.errors import UserError
    from emdenoise.fiji import start_imagej, to_imageplus, to_numpy
    from imagej_helpers import IJ_JAR

    raw_dir, out_dir = Path(raw), Path(out)
    # Java started by the script, as its own imagej.init(...) would: start_imagej() joins it
    scyjava.config.set_java_constraints(fetch="never")
    scyjava.config.add_classpath(str(IJ_JAR))
    scyjava.config.add_option("-Djava.awt.headless=true")
    scyjava.start_jvm()
    ij = start_imagej()
    IJ = ij.ij("ij.IJ")
    report: dict = {"metadata": {}, "errors": {}, "joined": [ij.installation.kind, ij.headless]}
    for path in sorted(raw_dir.glob("*.tif")):
        imp = ij.open_image(path)
        pixels, meta = to_numpy(imp)
        np.save(out_dir / f"{path.stem}.npy", pixels)
        report["metadata"][path.stem] = {
            "axes": meta.axes, "shape": list(meta.shape), "unit": meta.unit, "pixel_size": meta.pixel_size,
            "frame_interval": meta.frame_interval, "slice_labels": meta.slice_labels,
            "spacing": (meta.extra.get("imagej") or {}).get("spacing"),
        }
        again = to_imageplus(pixels, meta, title=path.name)
        IJ.saveAsTiff(again, str(out_dir / f"{path.stem}-roundtrip.tif"))
    progress = []
    result = ij.denoise(ij.open_image(raw_dir / "u16-tzcyx.tif"), MODEL, server="embedded",
                        on_frame=lambda done, total: progress.append([done, total]))
    IJ.saveAsTiff(result.image, str(out_dir / "api-embedded.tif"))
    report["progress"] = progress
    result = ij.denoise(ij.open_image(raw_dir / "f32-labels.tif"), MODEL, server=server)
    IJ.saveAsTiff(result.image, str(out_dir / "api-server.tif"))
    report["macro_title"] = ij.run_macro(f'open("{raw_dir}/u8.tif"); run("EM Denoise", "model={MODEL}"); return getTitle();')
    rgb = ij.ij("ij.gui.NewImage").createRGBImage("rgb", 8, 8, 1, 0)
    for key, call in (("rgb", lambda: ij.denoise(rgb, MODEL)),
                      ("model", lambda: ij.denoise(ij.open_image(raw_dir / "u8.tif"), "nope"))):
        try:
            call()
        except UserError as error:
            report["errors"][key] = str(error)
    print("REPORT>>>" + json.dumps(report) + "<<<REPORT", flush=True)


def _scenario_gui(raw: str) -> None:
    """The ImageJ window: Plugins > emdenoise, the recorder, Esc during a job."""
    import threading

    import jpype.imports  # noqa: F401  (the harness helpers import ImageJ classes by module name)

    from emdenoise.fiji import start_imagej
    from imagej_helpers import _fill_and_ok, _wait_for_dialog

    ij = start_imagej(gui=True)
    IJ, WM = ij.ij("ij.IJ"), ij.ij("ij.WindowManager")
    recorder = ij.ij("ij.plugin.frame.Recorder")
    bar = IJ.getInstance().getMenuBar()
    plugins = next(bar.getMenu(i) for i in range(bar.getMenuCount()) if str(bar.getMenu(i).getLabel()) == "Plugins")
    submenu = next(plugins.getItem(i) for i in range(plugins.getItemCount()) if str(plugins.getItem(i).getLabel()) == "emdenoise")
    print(f"MENU {[str(submenu.getItem(i).getLabel()) for i in range(submenu.getItemCount())]}", flush=True)

    IJ.open(str(Path(raw) / "stack.tif"))
    IJ.run("Record...")
    time.sleep(0.5)
    before = WM.getImageCount()
    IJ.doCommand("EM Denoise")  # what choosing it in Plugins > emdenoise does
    _fill_and_ok(_wait_for_dialog("EM Denoise"), {"model": MODEL, "server": "embedded", "tile": "128", "residual": "true"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "EM Denoise" not in str(recorder.getInstance().getText()):
        time.sleep(0.1)
    print(f"IMAGES {before} -> {WM.getImageCount()}", flush=True)
    print("RECORDER>>>\n" + str(recorder.getInstance().getText()) + "<<<RECORDER", flush=True)
    print(f"RESULT-TITLE {IJ.getImage().getTitle()}", flush=True)
    recorder.getInstance().close()

    IJ.open(str(Path(raw) / "long.tif"))
    before = WM.getImageCount()
    status = ij.ij("ij.ImageJ")  # getStatusBarText(): what the status bar shows
    macro = f'run("EM Denoise", "model={SLOW_MODEL} server=embedded");'
    worker = threading.Thread(target=lambda: IJ.runMacro(macro), daemon=True)
    worker.start()
    frames = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and frames < 2:
        text = str(status.getStatusBarText())
        if text.startswith("EM Denoise: frame "):
            frames = int(text.split("frame ")[1].split("/")[0])
        time.sleep(0.02)
    from java.awt.event import KeyEvent

    frame = IJ.getInstance()
    pressed = time.monotonic()
    frame.keyPressed(KeyEvent(frame, KeyEvent.KEY_PRESSED, int(time.time() * 1000), 0, KeyEvent.VK_ESCAPE,
                              KeyEvent.CHAR_UNDEFINED))
    worker.join(30)
    stopped = time.monotonic() - pressed
    time.sleep(0.3)
    escape = {"frames_before_escape": frames, "seconds_to_stop": stopped, "images_before": before,
              "images_after": WM.getImageCount(), "status": str(status.getStatusBarText())}
    print("ESCAPE>>>" + json.dumps(escape) + "<<<ESCAPE", flush=True)


if __name__ == "__main__":
    scenario, *arguments = sys.argv[1:]
    code = 0
    try:
        {"api": _scenario_api, "gui": _scenario_gui}[scenario](*arguments)
    except Exception:
        import traceback

        traceback.print_exc()
        code = 1
    # Not sys.exit: the interpreter's teardown races ImageJ's live AWT/JPype threads and now
    # and then aborts ("FATAL: exception not rethrown", status 134; issue 22). Scripts that
    # start ImageJ end this way (README), so the scenarios do too.
    from emdenoise.fiji import exit_process
    from emdenoise.fiji import launch as _launch

    if _launch._SESSION is not None:
        _launch._SESSION.close()
    exit_process(code)
