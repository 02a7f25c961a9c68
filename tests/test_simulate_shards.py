"""Sharded, seeded, resumable generation and the load_shards reader."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from emdenoise.simulate import load_shards
from emdenoise.simulate.generate import generate, make_item
from emdenoise.simulate.stem import Noise2AtomConfig


def _quiet(_line: str) -> None:
    pass


def test_generate_writes_shards_records_and_csv(tmp_path):
    summary = generate("stem", tmp_path, n=5, seed=9, shard_size=2, log=_quiet)
    assert summary["made"] == 3 and summary["items"] == 5
    names = sorted(os.listdir(tmp_path))
    assert names == [
        "dataset.json", "params.csv",
        "shard-00000.json", "shard-00000.npz", "shard-00001.json", "shard-00001.npz",
        "shard-00002.json", "shard-00002.npz",
    ]
    manifest = json.loads((tmp_path / "dataset.json").read_text())
    assert manifest["kind"] == "stem" and manifest["seed"] == 9 and manifest["n"] == 5
    items = list(load_shards(tmp_path))
    assert [p["index"] for _, _, p in items] == [0, 1, 2, 3, 4]
    for clean, noisy, params in items:
        assert clean.shape == noisy.shape == (128, 128)
        assert clean.dtype == noisy.dtype == np.float32
        assert params["kind"] == "stem" and 75 <= params["n_positions"] <= 150
    with open(tmp_path / "params.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["index"]) for r in rows] == [0, 1, 2, 3, 4]
    assert float(rows[3]["variance"]) == pytest.approx(items[3][2]["variance"])


def test_items_depend_only_on_seed_and_index(tmp_path):
    cfg = Noise2AtomConfig()
    a = make_item("stem", cfg, 1, 3)
    b = make_item("stem", cfg, 1, 3)
    c = make_item("stem", cfg, 1, 4)
    d = make_item("stem", cfg, 2, 3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[0], d[0])
    # Shard size and worker processes do not change the images.
    generate("stem", tmp_path / "one", n=4, seed=1, shard_size=4, log=_quiet)
    generate("stem", tmp_path / "two", n=4, seed=1, shard_size=1, workers=2, log=_quiet)
    one = list(load_shards(tmp_path / "one"))
    two = list(load_shards(tmp_path / "two"))
    assert np.array_equal(one[3][0], a[0]) and np.array_equal(one[3][1], a[1])
    for (c1, n1, p1), (c2, n2, p2) in zip(one, two):
        assert np.array_equal(c1, c2) and np.array_equal(n1, n2) and p1 == p2


def test_resume_extend_and_refuse_other_settings(tmp_path):
    generate("stem", tmp_path, n=3, seed=0, shard_size=2, log=_quiet)
    before = [c for c, _, _ in load_shards(tmp_path)]
    again = generate("stem", tmp_path, n=3, seed=0, shard_size=2, log=_quiet)
    assert again["made"] == 0 and again["skipped"] == 2
    # An interrupted shard (NPZ without JSON) is redone.
    (tmp_path / "shard-00001.json").unlink()
    redo = generate("stem", tmp_path, n=3, seed=0, shard_size=2, log=_quiet)
    assert redo["made"] == 1
    # Extending: the partial last shard is completed, a new one added, old images kept.
    more = generate("stem", tmp_path, n=6, seed=0, shard_size=2, log=_quiet)
    assert more["made"] == 2 and more["skipped"] == 1
    after = [c for c, _, _ in load_shards(tmp_path)]
    assert len(after) == 6 and all(np.array_equal(x, y) for x, y in zip(before, after))
    with pytest.raises(ValueError, match="different seed"):
        generate("stem", tmp_path, n=3, seed=1, shard_size=2, log=_quiet)
    with pytest.raises(ValueError, match="different config"):
        generate("stem", tmp_path, n=3, seed=0, shard_size=2, config=Noise2AtomConfig(peak_counts=9.0), log=_quiet)


def test_load_shards_refuses_a_folder_that_is_no_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        next(load_shards(tmp_path))
