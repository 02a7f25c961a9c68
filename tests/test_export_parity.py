"""Torch -> ONNX export: parity of every shipped graph, a full export round trip, cards, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from emdenoise.cli import main  # noqa: E402
from emdenoise.engine import Engine  # noqa: E402
from emdenoise.engine.cards import load_card  # noqa: E402
from emdenoise.export.torch_export import (  # noqa: E402
    MAX_GRAPH_BYTES,
    PARITY_TOLERANCE,
    export_checkpoint,
    export_onnx,
    model_from_folder,
    parity,
    receptive_field,
)
from emdenoise.models import build_model  # noqa: E402
from emdenoise.train import get_recipe  # noqa: E402
from emdenoise.train.loop import train  # noqa: E402

EXPORT = Path(__file__).resolve().parents[1] / "export"
SHIPPED = sorted(
    folder for folder in EXPORT.iterdir()
    if (folder / "card.json").is_file() and "torch_weights" in json.loads((folder / "card.json").read_text())
)


def test_models_trained_here_are_shipped():
    ids = {folder.name for folder in SHIPPED}
    assert "sbd-unet32-hrtem" in ids


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda f: f.name)
def test_shipped_graph_matches_pytorch(folder):
    card = load_card(folder)  # also checks the graph's sha256
    graph = folder / card.graphs["denoise"].file
    proto = onnx.load(graph)
    assert graph.stat().st_size < MAX_GRAPH_BYTES
    assert max(op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in proto.graph.input] == ["image"] and [o.name for o in proto.graph.output] == ["denoised"]
    assert not (folder / "model.onnx.data").exists()
    model = model_from_folder(folder)
    error = parity(model, graph)
    assert error <= PARITY_TOLERANCE, error
    assert card.raw["export"]["parity_max_abs_error"] <= PARITY_TOLERANCE
    assert card.normalization["kind"] == "counts"
    metrics = card.raw["metrics"]
    # bench sbd's PSNR, or seed 002's Table 3 errors for students of an autoencoder
    assert metrics.get("psnr_mean") is not None or any(k.startswith("table3_") for k in metrics), "card lacks benchmark metrics"
    if card.receptive_field <= 64:  # the 245 px UNet field takes a minute: measured at export
        assert receptive_field(model) == card.receptive_field


def test_export_round_trip_serves_and_tiles_seamlessly(tmp_path):
    run = tmp_path / "run"
    train(get_recipe("sbd-smallunet", "smoke", steps=2, val_every=2), run, threads=1, log=lambda line: None)
    folder = export_checkpoint(run, tmp_path / "models", "sbd-smallunet-smoke", log=lambda line: None)
    card = json.loads((folder / "card.json").read_text())
    assert card["receptive_field"] == 47 and card["tile"]["multiple_of"] == 2
    assert card["training"]["steps_run"] == 2 and card["architecture"]["parameters"] == 233_440
    assert card["dose_range"][0] > 0.45  # mean counts of lattices whose vacuum reads 0.45
    frame = np.random.default_rng(0).poisson(0.6, (150, 170)).astype(np.uint16)
    whole = Engine([tmp_path / "models"], device="cpu", tile_size=512).denoise(frame, "sbd-smallunet-smoke")
    tiled = Engine([tmp_path / "models"], device="cpu", tile_size=64).denoise(frame, "sbd-smallunet-smoke")
    assert whole.shape == frame.shape
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_fp16_export_stays_close(tmp_path):
    torch.manual_seed(0)
    model = build_model({"family": "durr-unet"}).eval()
    path = export_onnx(model, tmp_path / "half.onnx", fp16=True)
    proto = onnx.load(path)
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in proto.graph.initializer)
    assert parity(model, path) < 1e-2


def test_metrics_from_the_benchmark_land_on_the_card(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    train(get_recipe("sbd-smallunet", "smoke", steps=2, val_every=2), run, threads=1, log=lambda line: None)
    models = tmp_path / "models"
    assert main(["export", str(run), "--id", "sbd-smallunet-smoke", "--out", str(models)]) == 0
    monkeypatch.setenv("EMDENOISE_MODELS", str(models))
    bench = tmp_path / "bench"
    assert main(["bench", "sbd", "--n", "1", "--val", "1", "--size", "64", "--baselines", "low_pass",
                 "--method", "sbd-smallunet-smoke", "--out", str(bench)]) == 0
    assert main(["export", "--id", "sbd-smallunet-smoke", "--out", str(models), "--metrics", str(bench / "sbd.json")]) == 0
    card = load_card(models / "sbd-smallunet-smoke")
    result = json.loads((bench / "sbd.json").read_text())
    row = next(r for r in result["methods"] if r["key"] == "sbd-smallunet-smoke")
    assert card.raw["metrics"]["psnr_mean"] == row["psnr_mean"]
    assert card.raw["metrics"]["best_classical"]["name"] == "Low Pass Filter"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["export", "--id", "sbd-x-y"], "nothing to do"),
        (["export", "/nonexistent/run", "--id", "sbd-x-y", "--out", "/tmp/ez-never"], "no checkpoint"),
        (["export", "--id", "sbd-x-y", "--out", "/tmp/ez-never", "--metrics", "/nonexistent.json"], "holds no model card"),
    ],
)
def test_bad_export_requests_fail_with_one_sentence(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_export_refuses_a_bad_id(tmp_path, capsys):
    run = tmp_path / "run"
    train(get_recipe("sbd-smallunet", "smoke", steps=1, val_every=1), run, threads=1, log=lambda line: None)
    assert main(["export", str(run), "--id", "Bad_ID", "--out", str(tmp_path)]) == 2
    assert "lowercase" in capsys.readouterr().err
    assert not (tmp_path / "Bad_ID").exists()
