"""``emdenoise simulate ...``: the verb, its kinds, the contact sheet and its errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emdenoise.errors import UserError
from emdenoise.simulate import cli, load_shards

REPO = Path(__file__).resolve().parents[1]


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="emdenoise")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_stem_kind_and_contact_sheet(tmp_path, capsys):
    out = tmp_path / "stem"
    sheet = tmp_path / "sheet.png"
    assert _run(["simulate", "stem", "--n", "5", "--shard-size", "4", "--out", str(out), "--peak-counts", "8", "--sheet", str(sheet)]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[0])
    assert summary["items"] == 5 and summary["made"] == 2
    items = list(load_shards(out))
    assert len(items) == 5 and items[0][2]["peak_counts"] == 8.0
    with Image.open(sheet) as img:
        # 5 pairs on a 4-column sheet: 2 rows of 256 px tiles (+ captions), 4 x 2 tiles wide.
        assert img.size == (4 * 2 * 256, 2 * (256 + 14))
        pixels = np.asarray(img)
    assert pixels[14:270, :256].std() > 10  # the clean tile is an image, not a blank
    again = tmp_path / "again.png"
    assert _run(["simulate", "sheet", str(out), "--out", str(again), "--count", "2"]) == 0
    with Image.open(again) as img:
        assert img.size == (4 * 2 * 256, 256 + 14)


def test_hrtem_kind_tiny_grid(tmp_path, capsys):
    pytest.importorskip("abtem")
    out = tmp_path / "hrtem"
    assert _run(["simulate", "hrtem", "--n", "2", "--gpts", "128", "--out", str(out), "--seed", "4"]) == 0
    items = list(load_shards(out))
    assert len(items) == 2
    for clean, noisy, params in items:
        assert clean.shape == (64, 64)
        assert params["dose_counts_per_px"] == 0.45 and params["contrast"] in ("white", "black", "intermediate")
        assert params["optics"]["cs_um"] == -13.0 and params["optics"]["energy_ev"] == 300e3
        assert 0.0 <= params["defocus_nm"] <= 20.0


def test_series_and_corpus_kinds(tmp_path):
    pytest.importorskip("abtem")
    series = tmp_path / "series"
    assert _run(["simulate", "series", "--n", "1", "--frames", "3", "--size", "32", "--dose", "500", "--out", str(series)]) == 0
    (clean, noisy, params), = list(load_shards(series))
    assert clean.shape == noisy.shape == (3, 32, 32)
    assert params["dose_e_per_a2"] == 500.0 and params["device"] == "cpu" and len(params["pt_xy_A"]) == 3
    corpus = tmp_path / "corpus"
    assert _run(["simulate", "tem-corpus", "--n", "1", "--size", "32", "--out", str(corpus)]) == 0
    (clean, noisy, params), = list(load_shards(corpus))
    assert clean.shape == (32, 32) and params["kind"] == "tem-corpus" and params["material"]


def test_user_errors_are_sentences(tmp_path):
    with pytest.raises(UserError, match="inside the repository"):
        _run(["simulate", "stem", "--out", str(REPO / "generated")])
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        _run(["simulate", "stem", "--out", str(a_file)])
    _run(["simulate", "stem", "--n", "1", "--out", str(tmp_path / "d")])
    with pytest.raises(UserError, match="different config"):
        _run(["simulate", "stem", "--n", "1", "--peak-counts", "2", "--out", str(tmp_path / "d")])
    with pytest.raises(UserError, match="not a simulated data set"):
        _run(["simulate", "sheet", str(tmp_path), "--out", str(tmp_path / "x.png")])


def test_bad_numbers_are_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exc:
        _run(["simulate", "hrtem", "--out", "/tmp/x", "--n", "0"])
    assert exc.value.code == 2
    assert "expected a number >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run(["simulate", "hrtem", "--out", "/tmp/x", "--dose", "-1"])
    assert "expected a number > 0, got -1.0" in capsys.readouterr().err
