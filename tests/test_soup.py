"""Weight averages of branches of one sim-trained run (issue 17): ``emdenoise.train.soup``."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from emdenoise.errors import UserError  # noqa: E402
from emdenoise.train.sim_denoiser import SimTrainConfig, read_carry, train  # noqa: E402
from emdenoise.train.soup import average_carries  # noqa: E402

SMALL = dict(width=4, crop=32, batch=2, validate_every=3, validation_images=2, validation_size=32)


def _train(out, steps=3, init=None, seed=None, **changes):
    config = SimTrainConfig(**{**SMALL, **changes})
    return train(out, config, hours=1.0, max_steps=steps, init=init, seed=seed, log=lambda line: None)


def test_branches_with_their_own_seeds_average_into_a_scored_carry(tmp_path):
    _train(tmp_path / "parent")
    parent = tmp_path / "parent" / "carry.npz"
    for seed in (1, 2):
        _train(tmp_path / f"branch{seed}", steps=2, init=parent, seed=seed)
    branches = [tmp_path / f"branch{seed}" / "carry.npz" for seed in (1, 2)]
    (meta1, w1), (meta2, w2) = (read_carry(b) for b in branches)
    assert meta1["config"]["seed"] == 1 and meta2["config"]["seed"] == 2
    assert any(not np.array_equal(w1[k], w2[k]) for k in w1)  # different batches, different weights

    counters = average_carries(branches, tmp_path / "soup", parent=parent)
    meta, weights = read_carry(tmp_path / "soup" / "carry.npz")
    for key in weights:
        np.testing.assert_allclose(weights[key], ((w1[key] + w2[key]) / 2).astype(np.float16).astype(np.float32))
    shared = read_carry(parent)[0]["cpu_seconds"]
    assert meta["cpu_seconds"] == pytest.approx(meta1["cpu_seconds"] + meta2["cpu_seconds"] - shared)
    assert len(counters["validation"]) == 3 and all(e > 0 for e in counters["validation"])
    assert (tmp_path / "soup" / "best.npz").is_file() and (tmp_path / "soup" / "history.jsonl").is_file()


def test_carries_of_different_networks_are_refused_with_a_sentence(tmp_path):
    _train(tmp_path / "narrow", steps=1)
    _train(tmp_path / "wide", steps=1, width=8)
    with pytest.raises(UserError, match="differ in width"):
        average_carries([tmp_path / "narrow" / "carry.npz", tmp_path / "wide" / "carry.npz"], tmp_path / "soup")
    with pytest.raises(UserError, match="at least two"):
        average_carries([tmp_path / "narrow" / "carry.npz"], tmp_path / "soup")
