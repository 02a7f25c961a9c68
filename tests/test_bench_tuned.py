"""Tuned classical rows of `bench ede` and `bench series` (issue 17, item 1): real filters on small data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from emdenoise.bench.clean import synthetic_clean_set
from emdenoise.bench.ede import draw_instance, run_ede, tune_ede_rows, validation_pairs
from emdenoise.bench.methods import classical_method
from emdenoise.bench._tuned import EDE_TUNED, tuned_methods
from emdenoise.bench.series import held_out_split, tune_series_rows
from emdenoise.baselines.registry import BY_KEY
from emdenoise.cli import main
from emdenoise.tuning import GAUSSIAN_SIGMAS

PROTOCOL = dict(dose="low", crop=96, downsample=1)


def _rows(path: Path) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(path.read_text())["methods"]}


def test_validation_instances_are_disjoint_from_scored_ones():
    clean = synthetic_clean_set(2, 96, seed=0)
    val = validation_pairs(clean, 6, seed=0, **PROTOCOL)
    scored = [draw_instance(clean, i, np.random.default_rng([0, i]), **PROTOCOL)[3] for i in range(6)]
    # Same law, independent draws: no validation crop equals a scored one, doses differ.
    for v in val:
        assert not any(v.noisy.shape == s.noisy.shape and np.array_equal(v.noisy, s.noisy) for s in scored)
    assert {round(p.counts_per_unit, 6) for p in val}.isdisjoint({round(p.counts_per_unit, 6) for p in scored})
    # ... and they are reproducible.
    again = validation_pairs(clean, 6, seed=0, **PROTOCOL)
    assert all(np.array_equal(a.noisy, b.noisy) for a, b in zip(val, again))


def test_tuned_gaussian_is_interior_and_no_worse_than_the_3x3_row():
    val = validation_pairs(synthetic_clean_set(2, 96, seed=7), 8, seed=0, **PROTOCOL)
    chosen = tune_ede_rows(val, ["gaussian_3x3"])
    sigma = chosen["gaussian"]["sigma"]
    assert list(chosen) == ["gaussian"]
    assert GAUSSIAN_SIGMAS[0] < sigma < GAUSSIAN_SIGMAS[-1]
    scores = chosen["gaussian"]["validation_mse"]
    assert scores[str(sigma)] == min(scores.values())
    # Scored on other instances of another clean set, the tuned Gaussian beats the paper's 3x3.
    fixed = classical_method(BY_KEY["gaussian_3x3"])
    tuned = tuned_methods(EDE_TUNED, chosen)
    raw = run_ede(synthetic_clean_set(2, 96, seed=0), [fixed, *tuned], n=8, seed=0, keep_example=False, **PROTOCOL)
    assert np.mean(raw["scores"][tuned[0].name]["mse"]) <= np.mean(raw["scores"]["Gaussian"]["mse"])


def test_bench_ede_tuned_rows_and_no_tune(tmp_path, capsys):
    base = ("bench", "ede", "--n", "3", "--crop", "64", "--n-clean", "2", "--val", "4",
            "--baselines", "unfiltered,gaussian_3x3,wiener")
    assert main([*base, "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "t" / "ede-low.json").read_text())
    rows = _rows(tmp_path / "t" / "ede-low.json")
    names = list(rows)
    assert names[:3] == ["Unfiltered", "Gaussian", "Wiener"]
    assert [rows[n]["tuned"] for n in names] == [False, False, False, True, True]
    assert names[3] == result["tuned"]["gaussian"]["label"] == f"Gaussian (tuned: sigma {result['tuned']['gaussian']['sigma']} px)"
    assert rows[names[3]]["params"]["sigma"] == result["tuned"]["gaussian"]["sigma"]
    assert rows[names[4]]["params"]["mysize"] == result["tuned"]["wiener"]["mysize"]
    best = min(names[3:], key=lambda n: rows[n]["mse_mean"])
    assert result["best_tuned"]["name"] == best and f"Best tuned classical row (lowest scored mean MSE): {best}" in out
    assert "seed 1000003" in result["validation"]["clean"] and "tuning" in result["conventions"]

    assert main([*base, "--no-tune", "--out", str(tmp_path / "n")]) == 0
    capsys.readouterr()
    plain = json.loads((tmp_path / "n" / "ede-low.json").read_text())
    assert [r["name"] for r in plain["methods"]] == ["Unfiltered", "Gaussian", "Wiener"]
    assert "tuned" not in plain and "tuning" not in plain["conventions"]
    # The paper's rows are untouched by tuning: the same per-image scores.
    for r in plain["methods"]:
        assert r["per_image"] == rows[r["name"]]["per_image"]


def test_bench_ede_prints_models_against_the_best_tuned_row(tmp_path, capsys):
    pytest.importorskip("emdenoise.engine")
    assert main(["bench", "ede", "--n", "2", "--crop", "64", "--n-clean", "1", "--val", "3",
                 "--baselines", "gaussian_3x3", "--method", "classical-gaussian3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "ede-low.json").read_text())
    rows = _rows(tmp_path / "ede-low.json")
    versus = result["models_vs_best_tuned"]["classical-gaussian3"]
    best = result["best_tuned"]
    assert versus["ratio_to_best_tuned"] == pytest.approx(rows["classical-gaussian3"]["mse_mean"] / best["mse_mean"])
    assert f"| classical-gaussian3 | " in out and f"x {best['name']}" in out


def test_held_out_split_shares_no_frame_with_tuning():
    split = held_out_split(6, 2, 64)
    assert split["mode"] == "frames" and split["tune"] == [0, 1] and split["score"] == [3, 4]
    tune_frames = {f for t in split["tune"] for f in (t, t + 1)}
    score_frames = {f for t in split["score"] for f in (t, t + 1)}
    assert tune_frames.isdisjoint(score_frames)
    pair = held_out_split(2, 1, 64)
    assert pair == {"mode": "halves", "tune": [0], "score": [0], "column": 32}


def _series(frames: int, seed: int = 11) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clean = 8 * synthetic_clean_set(1, 96, seed=5).images[0].image
    return np.stack([rng.poisson(clean) for _ in range(frames)]).astype(np.float64)


@pytest.mark.parametrize("frames", [5, 2])
def test_series_tuning_reads_only_the_tuning_data(frames):
    counts = _series(frames)
    split = held_out_split(frames, 1, counts.shape[2])
    chosen = tune_series_rows(counts, split, ["gaussian_3x3", "median_3x3"])
    spoiled = counts.copy()
    if split["mode"] == "frames":
        spoiled[split["tune"][-1] + 2 :] = np.nan  # every held-out frame
    else:
        spoiled[:, :, split["column"] :] = np.nan  # every right half
    assert tune_series_rows(spoiled, split, ["gaussian_3x3", "median_3x3"]) == chosen
    assert GAUSSIAN_SIGMAS[0] < chosen["gaussian"]["sigma"] < GAUSSIAN_SIGMAS[-1]


def test_bench_series_tuned_gaussian_beats_the_3x3_on_held_out_pairs(tmp_path, capsys):
    path = tmp_path / "series.tif"
    tifffile.imwrite(path, (20 * _series(5) + 100).astype(np.uint16), photometric="minisblack")
    argv = ["bench", "series", "--stack", str(path), "--gain", "20", "--offset", "100",
            "--baselines", "unfiltered,gaussian_3x3"]
    assert main([*argv, "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "t" / "series.json").read_text())
    rows = _rows(tmp_path / "t" / "series.json")
    label = result["tuned"]["gaussian"]["label"]
    assert result["held_out"] == {"mode": "frames", "tune": [0], "score": [2, 3]}
    assert rows[label]["held_out_mse"] < rows["Gaussian"]["held_out_mse"]
    # The held-out column is the mean of the all-pairs column over the held-out pairs.
    assert rows["Gaussian"]["held_out_mse"] == pytest.approx(np.mean(rows["Gaussian"]["per_pair"]["paired_mse"][2:]))
    assert result["best_tuned"]["name"] == label and "held-out paired MSE" in out and "tuning" in result["conventions"]

    assert main([*argv, "--no-tune", "--out", str(tmp_path / "n")]) == 0
    out = capsys.readouterr().out
    plain = _rows(tmp_path / "n" / "series.json")
    assert list(plain) == ["Unfiltered", "Gaussian"] and "held-out" not in out
    assert plain["Gaussian"]["per_pair"]["paired_mse"] == rows["Gaussian"]["per_pair"]["paired_mse"]
