"""`emdenoise bench ede|sbd|series` end to end on small real files (synthetic and real data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from emdenoise.bench.clean import synthetic_clean_set
from emdenoise.bench.sbd import SYNTHETIC_OPTIONS
from emdenoise.cli import main

REAL_PAIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "serialem_haadf_tilt0_2frames.tif"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["bench", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _methods(path: Path) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(path.read_text())["methods"]}


def test_bench_lists_its_sub_verbs(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    for verb in ("ede", "sbd", "series"):
        assert verb in out


def test_bench_ede_prints_table1_and_writes_results(tmp_path, capsys):
    out_dir = tmp_path / "ede"
    args = ("ede", "--n", "4", "--crop", "64", "--n-clean", "2", "--out", str(out_dir),
            "--baselines", "unfiltered,gaussian_3x3,wiener")
    code, out, _ = _run(capsys, *args)
    assert code == 0
    assert "| Unfiltered |" in out and "MSE mean (1e-3)" in out and "s / megapixel" in out
    for name in ("ede-low.json", "ede-low.md", "ede-low-kde-mse.png", "ede-low-kde-ssim.png",
                 "ede-low-mae-maps.png", "ede-low-example.png"):
        assert (out_dir / name).stat().st_size > 0, name
    result = json.loads((out_dir / "ede-low.json").read_text())
    rows = _methods(out_dir / "ede-low.json")
    # The paper's rows first, then the rows tuned on validation instances (issue 17).
    assert list(rows)[:3] == ["Unfiltered", "Gaussian", "Wiener"]
    assert [r["tuned"] for r in rows.values()] == [False, False, False, True, True]
    assert "data_range" in result["conventions"]["ssim"]
    # Unfiltered MSE follows from the dose model alone: ~ mean(x) * s / D^2 per instance.
    predicted = result["protocol_check"]["predicted_unfiltered_mse"]
    assert rows["Unfiltered"]["mse_mean"] == pytest.approx(predicted, rel=0.15)
    # At 25 + Exp(75) counts a 3x3 smoothing beats doing nothing.
    assert rows["Gaussian"]["mse_mean"] < rows["Unfiltered"]["mse_mean"]
    assert rows["Gaussian"]["seconds_per_megapixel"] > 0
    # Seeds are fixed: a second run reproduces every per-image score.
    code, _, _ = _run(capsys, *args[:-2], "--baselines", "unfiltered", "--out", str(tmp_path / "again"))
    again = _methods(tmp_path / "again" / "ede-low.json")
    assert again["Unfiltered"]["per_image"] == rows["Unfiltered"]["per_image"]


def test_bench_ede_on_a_folder_of_user_tiffs(tmp_path, capsys):
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    for i, item in enumerate(synthetic_clean_set(2, 160, seed=3).images):
        tifffile.imwrite(clean_dir / f"m{i}.tif", (item.image * 10000).astype(np.uint16))
    code, out, _ = _run(capsys, "ede", "--clean", str(clean_dir), "--dose", "ordinary", "--n", "2",
                        "--crop", "64", "--baselines", "unfiltered,median_3x3", "--out", str(tmp_path / "o"))
    assert code == 0
    result = json.loads((tmp_path / "o" / "ede-ordinary.json").read_text())
    assert result["downsample"] == 2 and result["clean"].startswith("2 frames from")
    assert all(200 <= r["scale"] <= 2500 for r in result["instances"])


def test_bench_sbd_raw_psnr_matches_poisson_theory(tmp_path, capsys):
    out_dir = tmp_path / "sbd"
    code, out, _ = _run(capsys, "sbd", "--n", "2", "--val", "1", "--size", "64", "--out", str(out_dir),
                        "--baselines", "unfiltered,low_pass,adaptive_wiener")
    assert code == 0
    assert "| Raw |" in out and "paper PSNR" in out
    rows = _methods(out_dir / "sbd.json")
    # Raw MSE of Poisson counts equals their mean: PSNR = 10 log10(R^2 / mean(clean counts)).
    images = synthetic_clean_set(3, 64, 0, **SYNTHETIC_OPTIONS).images[1:]
    theory = [10 * np.log10((0.45 * np.ptp(im.image)) ** 2 / (0.45 * im.image.mean())) for im in images]
    np.testing.assert_allclose(rows["Raw"]["per_image"]["psnr"], theory, atol=0.5)
    assert rows["Low Pass Filter"]["psnr_mean"] > rows["Raw"]["psnr_mean"] + 5
    tuned = json.loads((out_dir / "sbd.json").read_text())["tuned"]
    assert rows["Low Pass Filter"]["params"]["cutoff"] == tuned["low_pass"]["cutoff"]


def _write_series(path: Path, frames: int = 3, gain: float = 20.0, offset: float = 100.0) -> float:
    rng = np.random.default_rng(11)
    clean = 8 * synthetic_clean_set(1, 96, seed=5).images[0].image
    stack = np.stack([gain * rng.poisson(clean) + offset for _ in range(frames)]).astype(np.uint16)
    tifffile.imwrite(path, stack, photometric="minisblack")
    return float(clean.mean())


def test_bench_series_paired_error_and_css_on_a_synthetic_series(tmp_path, capsys):
    stack = tmp_path / "series.tif"
    dose = _write_series(stack)
    code, out, _ = _run(capsys, "series", "--stack", str(stack), "--gain", "20", "--offset", "100",
                        "--baselines", "unfiltered,gaussian_3x3", "--out", str(tmp_path / "s"))
    assert code == 0 and "| Unfiltered |" in out
    rows = _methods(tmp_path / "s" / "series.json")
    # For raw frames the paired estimate is the Poisson noise variance, i.e. the dose.
    assert rows["Unfiltered"]["paired_mse"] == pytest.approx(dose, rel=0.05)
    assert rows["Gaussian"]["paired_mse"] < rows["Unfiltered"]["paired_mse"]
    assert rows["Unfiltered"]["css"] < rows["Gaussian"]["css"] <= 1.0
    assert (tmp_path / "s" / "series-frame0.png").stat().st_size > 0


@pytest.mark.skipif(not REAL_PAIR.exists(), reason="shared real HAADF pair not present")
def test_bench_series_on_the_real_haadf_pair(tmp_path, capsys):
    code, out, _ = _run(capsys, "series", "--stack", str(REAL_PAIR), "--crop", "128",
                        "--baselines", "unfiltered,gaussian_3x3", "--out", str(tmp_path / "r"))
    assert code == 0
    result = json.loads((tmp_path / "r" / "series.json").read_text())
    rows = {r["name"]: r for r in result["methods"]}
    # Gain/offset estimated from the pair; raw-frame error ~ dose if the data are Poisson-like.
    assert result["calibration"]["source"] == "estimated"
    assert rows["Unfiltered"]["paired_mse"] == pytest.approx(result["calibration"]["dose"], rel=0.2)
    assert rows["Gaussian"]["paired_mse"] < 0.5 * rows["Unfiltered"]["paired_mse"]


def test_engine_models_join_the_table_as_methods(tmp_path, capsys):
    pytest.importorskip("emdenoise.engine")
    code, out, _ = _run(capsys, "ede", "--n", "2", "--crop", "64", "--n-clean", "1",
                        "--baselines", "gaussian_3x3", "--method", "classical-gaussian3",
                        "--out", str(tmp_path / "e"))
    assert code == 0 and "| classical-gaussian3 |" in out
    rows = _methods(tmp_path / "e" / "ede-low.json")
    assert rows["classical-gaussian3"]["kind"] == "engine"
    assert rows["classical-gaussian3"]["per_image"]["mse"] == pytest.approx(rows["Gaussian"]["per_image"]["mse"])


@pytest.mark.parametrize("argv, message", [
    (("ede", "--clean", "/nonexistent/dir"), "does not exist"),
    (("ede", "--n", "1", "--crop", "32", "--method", "no-such-model"), "emdenoise models"),
    (("ede", "--baselines", "bogus"), "Unknown baseline"),
    (("series", "--stack", "/nonexistent.tif"), "does not exist"),
])
def test_bad_arguments_get_one_sentence_and_exit_code_2(argv, message, capsys):
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_single_frame_series_is_refused(tmp_path, capsys):
    path = tmp_path / "one.tif"
    tifffile.imwrite(path, np.ones((32, 32), np.uint16))
    code, _, err = _run(capsys, "series", "--stack", str(path))
    assert code == 2 and "two or more" in err
