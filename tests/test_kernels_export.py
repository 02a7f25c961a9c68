"""Seed 002's printed kernels become the shipped ONNX models, reproducibly."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import numpy_helper

from emdenoise.engine.cards import file_sha256, load_card
from emdenoise.engine.repository import bundled_models_dir
from emdenoise.export.ede_kernels import printed_kernels
from emdenoise.export.kernel_graphs import export_kernels, model_id


def test_twelve_symmetric_kernels_one_misprint_repaired():
    kernels = printed_kernels()
    assert [(k.domain, k.size) for k in kernels] == [
        (d, s) for d in ("TEM", "STEM", "TEM+STEM") for s in (3, 5, 7, 11)
    ]
    for kernel in kernels:
        w = kernel.weights
        assert np.array_equal(w, w[::-1]) and np.array_equal(w, w[:, ::-1]) and np.array_equal(w, w.T)
    repaired = [k for k in kernels if k.repairs]
    assert [(k.domain, k.size) for k in repaired] == [("TEM+STEM", 11)]
    assert repaired[0].weights[1, 10] == np.float32(-0.003)
    assert "row 2, column 11" in repaired[0].repairs[0]


def test_shipped_graphs_are_what_the_export_code_writes(tmp_path):
    export_kernels(tmp_path)
    for kernel in printed_kernels():
        name = model_id(kernel)
        shipped = bundled_models_dir() / name
        assert file_sha256(tmp_path / name / "model.onnx") == file_sha256(shipped / "model.onnx")
        weights = numpy_helper.to_array(onnx.load(shipped / "model.onnx").graph.initializer[0])
        np.testing.assert_array_equal(weights[0, 0], kernel.weights)
        card = load_card(shipped)
        assert card.receptive_field == kernel.size
        if kernel.repairs:
            assert any("Misprint repaired" in note for note in card.raw["notes"])


def test_every_bundled_card_checks_out():
    for folder in sorted(p for p in bundled_models_dir().iterdir() if (p / "card.json").is_file()):
        card = load_card(folder)  # verifies each graph's sha256
        raw = json.loads((folder / "card.json").read_text())
        for key in ("id", "task", "backend", "modality", "normalization", "training_data", "metrics"):
            assert key in raw, f"{folder.name} card lacks {key}"
        for graph in card.graphs.values():
            assert (folder / graph.file).stat().st_size < 16 * 2**20
