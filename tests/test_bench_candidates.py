"""``emdenoise bench candidates`` (issue 17, item 4): equal-budget errors and serving cost of real runs' carries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emdenoise.cli import main

torch = pytest.importorskip("torch")


def write_run(folder, width: int, depth: int, curve: list[tuple[float, float]]) -> None:
    """A run folder as sim_denoiser leaves it: carry.npz of a real VstUNet and its history.jsonl."""
    from emdenoise.models.vst_unet import VstUNet
    from emdenoise.train.sim_denoiser import SimTrainConfig, _carry

    folder.mkdir()
    model = VstUNet(width, depth)
    config = SimTrainConfig(source="hrtem", width=width, depth=depth)
    np.savez(folder / "carry.npz", **_carry(model, model, config, {"steps": 10 * len(curve)}))
    lines = [json.dumps({"step": 10 * (i + 1), "cpu_hours": h, "val_error": 0.01, "val_vs_gaussian": r, "lr": 3e-4})
             for i, (h, r) in enumerate(curve)]
    (folder / "history.jsonl").write_text("\n".join(lines) + "\n")


def test_candidates_interpolates_at_equal_budgets_and_times_the_real_networks(tmp_path, capsys):
    write_run(tmp_path / "small", 8, 2, [(0.05, 2.0), (0.15, 1.0)])
    write_run(tmp_path / "large", 16, 3, [(0.05, 3.0), (0.25, 0.8)])
    out = tmp_path / "out"
    assert main(["bench", "candidates", str(tmp_path / "small"), str(tmp_path / "large"), "--budgets", "0.1,0.2",
                 "--side", "64", "--out", str(out)]) == 0
    rows = {r["run"]: r for r in json.loads((out / "candidates.json").read_text())["rows"]}
    assert rows["small"]["at_budget"] == {"0.1": pytest.approx(1.5), "0.2": None}  # never extrapolated
    assert rows["large"]["at_budget"]["0.2"] == pytest.approx(1.35)  # 3.0 + (0.8 - 3.0) * 0.15 / 0.2
    from emdenoise.models.vst_unet import VstUNet

    assert rows["large"]["parameters"] == sum(p.numel() for p in VstUNet(16, 3).parameters())
    assert rows["large"]["best"] == 0.8 and rows["large"]["best_cpu_hours"] == 0.25
    assert all(r["seconds_per_mp"] > 0 for r in rows.values())
    table = (out / "candidates.md").read_text()
    assert "| small | 8 | 2 |" in table and "| 1.500 | - |" in table
    assert table in capsys.readouterr().out


def test_candidates_names_a_folder_that_is_not_a_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["bench", "candidates", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) != 0
    assert "has no carry.npz" in capsys.readouterr().err
