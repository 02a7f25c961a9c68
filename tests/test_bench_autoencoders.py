"""``emdenoise bench autoencoders``: seed 002's Table 3 on the shipped autoencoders (real ONNX Runtime)."""

from __future__ import annotations

import json
import math

from emdenoise.cli import main


def test_table3_has_a_row_per_latent_depth_and_scores_against_truth_and_input(tmp_path, capsys):
    assert main(["bench", "autoencoders", "--n", "3", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "Autoencoder, Latent Depth 16" in printed and "paper TEM (Table 3)" in printed
    result = json.loads((tmp_path / "autoencoders-ordinary.json").read_text())
    rows = {row["id"]: row for row in result["rows"]}
    assert {"Unfiltered", "ede-ae-d4", "ede-ae-d16", "ede-ae-d64"} <= set(rows)
    for key in ("ede-ae-d4", "ede-ae-d16", "ede-ae-d64"):
        assert math.isfinite(rows[key]["truth_mean"]) and rows[key]["truth_mean"] > 0
        assert math.isfinite(rows[key]["input_mean"]) and rows[key]["seconds_per_megapixel"] > 0
    assert rows["ede-ae-d16"]["paper_tem"] == [0.01436, 0.000004]
    # Students distilled from ede-ae-d16 are scored against it at their valid interior.
    for row in result["rows"]:
        if row["name"].startswith(("Kernel", "MLP")):
            assert row["teacher_mean"] >= 0


def test_unknown_teacher_is_a_one_sentence_error(tmp_path, capsys):
    assert main(["bench", "autoencoders", "--n", "1", "--teacher", "ede-ae-d3", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "ede-ae-d3 is not an installed autoencoder" in err and "Traceback" not in err
