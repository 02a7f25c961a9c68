"""Ede's atrous encoder-decoder (seed 001, sec. 2) and denoising autoencoders (seed 002, sec. 2):
structure, smoke training, ONNX export and parity, and the shipped folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from emdenoise.cli import main  # noqa: E402
from emdenoise.engine.cards import load_card  # noqa: E402
from emdenoise.errors import UserError  # noqa: E402
from emdenoise.export.ede_models import (  # noqa: E402
    export_autoencoder,
    export_ede_network,
    graph_parity,
    parity_input,
)
from emdenoise.export.torch_export import MAX_GRAPH_BYTES, PARITY_TOLERANCE, model_from_folder  # noqa: E402
from emdenoise.models import build_model, count_parameters  # noqa: E402
from emdenoise.models.autoencoder import LATENT_DEPTHS  # noqa: E402
from emdenoise.models.ede_xception import ASPP, MiddleBlock, SeparableConv  # noqa: E402
from emdenoise.train import get_recipe, train  # noqa: E402
from emdenoise.train.ede import huberised, min_mean  # noqa: E402

EXPORT = Path(__file__).resolve().parents[1] / "export"
SHIPPED = sorted(f for f in EXPORT.glob("ede-*") if (f / "card.json").is_file()
                 and "torch_state" in json.loads((f / "card.json").read_text()))


def test_full_ede_network_has_the_papers_structure():
    net = build_model({"family": "ede-xception"})
    middle = [m for m in net.modules() if isinstance(m, MiddleBlock)]
    assert len(middle) == 12
    assert all(len(block.convs) == 3 for block in middle)
    (aspp,) = [m for m in net.modules() if isinstance(m, ASPP)]
    assert [b[0].dilation[0] for b in aspp.branches] == [1, 6, 12, 18]
    assert aspp.bottleneck[0].in_channels == 3640 and aspp.bottleneck[0].out_channels == 256
    # Separable convs: depthwise -> BN -> pointwise -> BN -> ReLU6 (extra BN between, sec. 2).
    sep = next(m for m in net.modules() if isinstance(m, SeparableConv))
    assert [type(m) for m in sep] == [nn.Conv2d, nn.BatchNorm2d, nn.Conv2d, nn.BatchNorm2d, nn.ReLU6]
    assert sep[0].groups == sep[0].in_channels
    assert not any(isinstance(m, (nn.ReLU, nn.MaxPool2d)) for m in net.modules())
    # Decoder's concatenations take high- and low-level features 1:1 (sec. 2.4).
    assert net.decode1[0][0].in_channels == 2 * 256 and net.decode2[0][0].in_channels == 2 * 128
    assert any(isinstance(m, nn.ConvTranspose2d) for m in net.up.modules())


def test_width_multiplier_shrinks_the_network_and_keeps_shapes():
    full = count_parameters(build_model({"family": "ede-xception"}))
    small = build_model({"family": "ede-xception", "width": 0.125, "middle": 1})
    assert count_parameters(small) < full / 50
    out = small(torch.rand(2, 1, 64, 96))
    assert out.shape == (2, 1, 64, 96)


def test_image_pooling_makes_the_output_global():
    net = build_model({"family": "ede-xception", "width": 0.125, "middle": 1}).eval()
    x = torch.rand(1, 1, 128, 128, requires_grad=True)
    net(x)[0, 0, 8, 8].backward()
    assert x.grad[0, 0, -8:, -8:].abs().sum() > 0  # a far corner still changes the output pixel


@pytest.mark.parametrize("depth", LATENT_DEPTHS)
def test_autoencoder_maps_160_to_20x20xd(depth):
    ae = build_model({"family": "ede-ae", "depth": depth, "width": 16})
    latent = ae.encoder(torch.rand(2, 1, 160, 160))
    assert latent.shape == (2, depth, 20, 20)
    assert ae.decoder(latent).shape == (2, 1, 160, 160)


def test_autoencoder_last_two_layers_follow_the_paper():
    ae = build_model({"family": "ede-ae", "depth": 16})
    layers = list(ae.decoder.layers)
    assert isinstance(layers[-1], nn.Conv2d)  # second to last: a convolution, no batch norm after it
    assert isinstance(ae.decoder.last, nn.Identity)  # last: no weights, biases, BN or activation
    convs = [m for m in ae.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    norms = [m for m in ae.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == len(convs) - 1


def test_huberised_loss_and_min_mean_normalisation():
    values = huberised(torch.tensor([0.25, 1.0, 4.0]))
    assert torch.allclose(values, torch.tensor([0.25, 1.0, 2.0]))
    noisy = np.array([[2.0, 4.0], [6.0, 8.0]], np.float32)
    normed, truth = min_mean(noisy, noisy + 1)
    assert normed.min() == 0.0 and normed.mean() == pytest.approx(1.0)
    assert np.allclose(truth - normed, 1.0 / 3.0)


@pytest.mark.parametrize("name, model", [("ede-xception", {"width": 0.125, "middle": 1}), ("ede-ae", {"depth": 4, "width": 16})])
def test_smoke_recipe_loss_falls(name, model, tmp_path):
    recipe = get_recipe(name, "smoke", model=model)
    result = train(recipe, tmp_path / "run", threads=2, log=lambda line: None)
    assert result.step == recipe.steps and len(result.losses) == recipe.steps
    assert np.mean(result.losses[-5:]) < 0.7 * np.mean(result.losses[:5])
    assert (tmp_path / "run" / "best.pt").is_file()


def test_recipe_rejects_a_patch_the_network_cannot_take(tmp_path):
    recipe = get_recipe("ede-xception", "smoke", model={"width": 0.125, "middle": 1}, patch=60)
    with pytest.raises(UserError, match="multiple of 16"):
        train(recipe, tmp_path / "bad", log=lambda line: None)


def test_export_round_trip_and_parity(tmp_path):
    ede = get_recipe("ede-xception", "smoke", model={"width": 0.125, "middle": 0}, steps=2, val_every=2)
    ae = get_recipe("ede-ae", "smoke", model={"depth": 4, "width": 16}, steps=2, val_every=2)
    train(ede, tmp_path / "ede", threads=2, log=lambda line: None)
    train(ae, tmp_path / "ae", threads=2, log=lambda line: None)
    net_folder = export_ede_network(tmp_path / "ede", tmp_path / "models", "ede-xception-test", log=lambda line: None)
    ae_folder = export_autoencoder(tmp_path / "ae", tmp_path / "models", "ede-ae-d4", log=lambda line: None)
    net_card, ae_card = load_card(net_folder), load_card(ae_folder)
    assert net_card.is_global and net_card.normalization["kind"] == "range01"
    assert ae_card.task == "encode" and set(ae_card.graphs) == {"encode", "decode"}
    assert ae_card.normalization["kind"] == "min-mean"
    assert net_card.raw["export"]["parity_max_abs_error"] <= PARITY_TOLERANCE
    assert max(ae_card.raw["export"]["parity_max_abs_error"].values()) <= PARITY_TOLERANCE
    latent_shape = [d.dim_value or d.dim_param for d in onnx.load(ae_folder / "encoder.onnx").graph.output[0].type.tensor_type.shape.dim]
    assert latent_shape[1] == 4


def test_cli_trains_the_ordinary_dose_fine_tune_from_an_exported_folder_and_exports_it(tmp_path, capsys):
    # Seed 001, sec. 3.2: the ordinary-dose network starts from the low-dose one.
    small = ["--smoke", "--width", "0.125", "--middle", "1", "--steps", "2", "--val-every", "2", "--threads", "2"]
    assert main(["train", "ede-xception", *small, "--dose", "low", "--out", str(tmp_path / "low")]) == 0
    assert main(["export", str(tmp_path / "low"), "--id", "ede-xception-cli-low", "--out", str(tmp_path / "models")]) == 0
    low = tmp_path / "models" / "ede-xception-cli-low"
    assert load_card(low).raw["dose_range"] == [25.0, 300.0]
    assert main(["train", "ede-xception", *small, "--dose", "ordinary", "--init", str(low), "--out", str(tmp_path / "ord")]) == 0
    assert "initialised from" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "ord"), "--id", "ede-xception-cli-ord", "--out", str(tmp_path / "models")]) == 0
    card = load_card(tmp_path / "models" / "ede-xception-cli-ord").raw
    assert card["dose_range"] == [25.0, 2500.0]
    assert card["training"]["recipe"]["data"]["dose"] == "ordinary"
    assert card["training"]["initialised_from"]["dose"] == "low"
    assert card["training"]["initialised_from"]["checkpoint_step"] == 2


def test_cli_refuses_architecture_flags_of_another_family(tmp_path, capsys):
    assert main(["train", "sbd-unet", "--smoke", "--middle", "2", "--out", str(tmp_path / "x")]) == 2
    assert "--middle applies to ede-xception only" in capsys.readouterr().err
    assert main(["train", "ede-ae", "--smoke", "--width", "0.5", "--out", str(tmp_path / "y")]) == 2
    assert "whole number" in capsys.readouterr().err
    assert main(["train", "ede-xception", "--smoke", "--init", str(tmp_path), "--out", str(tmp_path / "z")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["train", "ede-xception", "--smoke", "--dose", "0.45", "--out", str(tmp_path / "w")]) == 2
    assert "takes --dose low or ordinary" in capsys.readouterr().err
    assert main(["train", "ede-mlp", "--smoke", "--dose", "ordinary", "--out", str(tmp_path / "v")]) == 2
    assert "give ede-mlp counts/px" in capsys.readouterr().err


def _check_parity(folder: Path, card) -> None:
    model = model_from_folder(folder)
    if card.task == "encode":
        x = parity_input((2, 1, 160, 160))
        assert graph_parity(model.encoder, folder / card.graphs["encode"].file, x, input_name="image", output_name="latent") <= PARITY_TOLERANCE
        with torch.no_grad():
            latent = model.encoder(torch.from_numpy(x)).numpy()
        assert graph_parity(model.decoder, folder / card.graphs["decode"].file, latent, input_name="latent", output_name="denoised") <= PARITY_TOLERANCE
    else:
        x = parity_input((2, 1, 96, 160))
        assert graph_parity(model, folder / card.graphs["denoise"].file, x, input_name="image", output_name="denoised") <= PARITY_TOLERANCE


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda f: f.name)
def test_shipped_ede_graphs_match_pytorch(folder):
    card = load_card(folder)  # also checks every graph's sha256
    for spec in card.graphs.values():
        assert (folder / spec.file).stat().st_size < MAX_GRAPH_BYTES
    _check_parity(folder, card)
    assert card.raw["metrics"], "card lacks measured metrics"
