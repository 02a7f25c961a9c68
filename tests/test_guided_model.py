"""Guided VST U-Nets (issue 17): a whole-frame Fourier Wiener estimate as a second input channel."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from emdenoise.engine import Engine, tiling  # noqa: E402
from emdenoise.engine.guides import guide_frame  # noqa: E402
from emdenoise.errors import InvalidInput  # noqa: E402
from emdenoise.train.sim_denoiser import (  # noqa: E402
    SimTrainConfig,
    _with_guide_input,
    build_model,
    model_from_carry,
    read_carry,
    train,
)

SMALL = dict(width=4, crop=32, batch=2, validate_every=3, validation_images=2, validation_size=32)


def _train(out, steps=3, init=None, **changes):
    return train(out, SimTrainConfig(**SMALL, **changes), hours=1.0, max_steps=steps, init=init, log=lambda line: None)


def test_a_guided_run_starts_from_an_unguided_carry_as_the_same_function(tmp_path):
    parent = _train(tmp_path / "plain")
    plain, meta = model_from_carry(tmp_path / "plain" / "carry.npz")
    _, weights = read_carry(tmp_path / "plain" / "carry.npz")
    grown = build_model({**meta["config"], "guide": "fourier-wiener"})
    grown.load_state_dict({k: torch.from_numpy(v) for k, v in _with_guide_input(weights).items()})
    counts = torch.from_numpy(np.random.default_rng(0).poisson(3.0, (1, 1, 32, 48)).astype(np.float32))
    guide = torch.rand(1, 1, 32, 48) * 100  # anything: its weights start at zero
    with torch.no_grad():
        assert torch.equal(grown.eval()(torch.cat([counts, guide], 1)), plain(counts))

    child = _train(tmp_path / "guided", steps=2, init=tmp_path / "plain" / "carry.npz",
                   guide="fourier-wiener", guide_context=48)
    child_meta, child_weights = read_carry(tmp_path / "guided" / "carry.npz")
    assert child_meta["config"]["guide"] == "fourier-wiener" and child_meta["config"]["guide_context"] == 48
    assert child_weights["unet.enc0.0.weight"].shape[1] == 2
    assert child["steps"] == parent["steps"] + 2 and child["cpu_seconds"] > parent["cpu_seconds"]
    assert child["warm_start"]["steps"] == parent["steps"]
    assert child["best_step"] > parent["steps"]  # the parent's best is not the guided model's


def test_export_serves_the_guided_network_on_the_engines_padding_whatever_the_cut(tmp_path):
    from emdenoise.train.sim_export import export_run

    _train(tmp_path / "plain")
    _train(tmp_path / "guided", steps=2, init=tmp_path / "plain" / "carry.npz", guide="fourier-wiener", guide_context=48)
    folder = export_run(tmp_path / "guided" / "carry.npz", "sim-test-guided", tmp_path / "models")
    card = json.loads((folder / "card.json").read_text())
    assert card["guide"] == {"name": "fourier-wiener", "delta": 8.0}
    assert card["architecture"]["spec"]["in_channels"] == 2 and card["training"]["warm_start"]

    engine = Engine([tmp_path / "models"], device="cpu")
    served_card = engine.repository.get("sim-test-guided")
    counts = np.random.default_rng(1).poisson(2.0, (150, 170)).astype(np.float32)
    whole = engine.denoise_frame(counts, served_card, gain=1.0, offset=0.0)
    for tile in (64, 100):
        assert np.array_equal(engine.denoise_frame(counts, served_card, gain=1.0, offset=0.0, tile_size=tile), whole)

    # What the engine computes: the network on the frame and its whole-frame guide, both padded as the plan pads.
    model, _ = model_from_carry(tmp_path / "guided" / "carry.npz")
    plan = engine.tile_plan(counts.shape, served_card)
    pads = tiling.frame_pads(counts.shape, plan)
    inputs = np.stack([np.pad(c, pads, mode="reflect") for c in (counts, guide_frame(card["guide"], counts))])
    with torch.no_grad():
        expected = model(torch.from_numpy(inputs.astype(np.float32))[None])[0, 0].numpy()
    (top, _), (left, _) = pads
    np.testing.assert_allclose(whole, expected[top : top + 150, left : left + 170], atol=1e-4)


def test_dask_runs_a_guided_model_on_whole_frames_as_the_engine_does(tmp_path):
    da = pytest.importorskip("dask.array")
    from emdenoise import dask as emd
    from emdenoise.cluster.lazy import ChunkingWarning
    from emdenoise.train.sim_export import export_run

    _train(tmp_path / "plain")
    _train(tmp_path / "guided", steps=2, init=tmp_path / "plain" / "carry.npz", guide="fourier-wiener", guide_context=48)
    export_run(tmp_path / "guided" / "carry.npz", "sim-test-guided", tmp_path / "models")
    stack = np.random.default_rng(2).poisson(2.0, (2, 150, 170)).astype(np.uint16)
    expected = Engine([tmp_path / "models"], device="cpu").denoise(stack, "sim-test-guided", gain=1.0, offset=0.0)
    with pytest.warns(ChunkingWarning, match="guide is computed on the whole frame"):
        lazy = emd.denoise(da.from_array(stack, chunks=(1, 64, 80)), "sim-test-guided", gain=1.0, offset=0.0,
                           models_dirs=[tmp_path / "models"], device="cpu", tile_size=64)
    np.testing.assert_allclose(lazy.compute(scheduler="synchronous"), expected, rtol=1e-5, atol=1e-4)


def test_adapt_and_bioimageio_export_refuse_a_guided_model_with_a_sentence(tmp_path):
    from emdenoise.adapt.export import adaptable_weights
    from emdenoise.errors import UserError
    from emdenoise.train.sim_export import export_run

    _train(tmp_path / "plain")
    _train(tmp_path / "guided", steps=1, init=tmp_path / "plain" / "carry.npz", guide="fourier-wiener", guide_context=48)
    export_run(tmp_path / "guided" / "carry.npz", "sim-test-guided", tmp_path / "models")
    with pytest.raises(UserError, match="guided model"):
        adaptable_weights("sim-test-guided", [tmp_path / "models"])
    pytest.importorskip("bioimageio.spec")
    from emdenoise.bioimageio._export import export_package

    with pytest.raises(UserError, match="bioimage.io's preprocessing cannot express"):
        export_package("sim-test-guided", tmp_path / "pkg", engine=Engine([tmp_path / "models"], device="cpu"))


def test_an_unknown_guide_is_refused_with_what_to_do():
    with pytest.raises(InvalidInput, match="update emdenoise"):
        guide_frame({"name": "wavelet-magic"}, np.ones((8, 8), np.float32))
