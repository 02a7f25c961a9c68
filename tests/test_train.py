"""Training recipes (seed 003 appendix C.4, seed 002 sec. 3.2): smoke runs, resume, data, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from emdenoise.cli import main  # noqa: E402
from emdenoise.engine.repository import ModelRepository  # noqa: E402
from emdenoise.errors import UserError  # noqa: E402
from emdenoise.simulate.shards import write_manifest, write_shard  # noqa: E402
from emdenoise.train import RECIPES, get_recipe  # noqa: E402
from emdenoise.train.checkpoints import load_checkpoint  # noqa: E402
from emdenoise.train.data import Augment, augmented_patch, make_pool, noisy_batch  # noqa: E402
from emdenoise.train.loop import train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _falls(losses: list[float]) -> bool:
    k = max(len(losses) // 4, 1)
    return float(np.mean(losses[-k:])) < 0.8 * float(np.mean(losses[:k]))


@pytest.mark.parametrize("name", ["sbd-unet", "sbd-dncnn"])
def test_smoke_recipe_loss_falls(name, tmp_path):
    result = train(get_recipe(name, "smoke"), tmp_path / name, threads=1, log=lambda line: None)
    assert result.step == get_recipe(name, "smoke").steps
    assert _falls(result.losses), result.losses
    assert (tmp_path / name / "best.pt").is_file() and (tmp_path / name / "last.pt").is_file()


def test_smoke_recipe_through_the_cli(tmp_path, capsys):
    assert main(["train", "sbd-smallunet", "--smoke", "--threads", "1", "--out", str(tmp_path / "run")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["recipe"] == "sbd-smallunet" and summary["variant"] == "smoke"
    assert summary["loss_last"] < 0.8 * summary["loss_first"]
    state = load_checkpoint(tmp_path / "run")
    assert state["recipe"]["model"] == {"family": "durr-unet"}


def test_distilled_mlp_smoke_imitates_its_teacher(tmp_path):
    recipe = get_recipe("ede-mlp", "smoke")
    if recipe.teacher not in {card.id for card in ModelRepository().cards()}:
        pytest.fail(f"teacher {recipe.teacher} is not installed; it ships in export/")
    result = train(recipe, tmp_path / "mlp", threads=1, log=lambda line: None)
    assert _falls(result.losses), result.losses
    assert "val_mse" in result.history[-1]


def test_autoencoder_teacher_is_its_encode_decode_round_trip(tmp_path):
    # Seed 002, sec. 3.2: kernels and MLPs imitate the latent-depth-16 autoencoder.
    from emdenoise.compress.codec import codec_for
    from emdenoise.engine import Engine
    from emdenoise.train.distill import teacher_function

    engine = Engine(device="cpu")
    frame = np.random.default_rng(3).poisson(20.0, (100, 130)).astype(np.float32)
    codec = codec_for(engine)
    spec = codec.spec("ede-ae-d16")
    expected = codec.decode_frame(codec.encode_frame(frame, spec), spec)
    out = teacher_function(engine, "ede-ae-d16")(frame)
    assert out.shape == frame.shape
    np.testing.assert_array_equal(out, expected)
    assert not np.allclose(out, frame)  # the round trip is not the identity
    recipe = get_recipe("ede-mlp", "smoke", teacher="ede-ae-d16", model={"size": 3, "hidden": 0})
    result = train(recipe, tmp_path / "kernel", threads=1, log=lambda line: None)
    assert _falls(result.losses), result.losses


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    recipe = get_recipe("sbd-smallunet", "smoke", steps=6, val_every=3)
    whole = train(recipe, tmp_path / "whole", threads=1, log=lambda line: None)
    train(get_recipe("sbd-smallunet", "smoke", steps=3, val_every=3), tmp_path / "split", threads=1, log=lambda line: None)
    lines = []
    resumed = train(recipe, tmp_path / "split", threads=1, log=lines.append)
    assert any("resuming" in line for line in lines)
    assert resumed.step == 6 and len(resumed.losses) == 6
    np.testing.assert_allclose(resumed.losses, whole.losses, rtol=1e-4)


def test_resume_refuses_a_different_recipe(tmp_path):
    train(get_recipe("sbd-smallunet", "smoke", steps=2, val_every=2), tmp_path, threads=1, log=lambda line: None)
    with pytest.raises(UserError, match="different lr"):
        train(get_recipe("sbd-smallunet", "smoke", steps=4, lr=0.01), tmp_path, threads=1, log=lambda line: None)


def test_recipes_carry_the_papers_hyperparameters():
    unet = get_recipe("sbd-unet")
    assert unet.model == {"family": "sbd-unet", "width": 32, "scales": 4}
    assert (unet.lr, unet.schedule, unet.patch, unet.dose) == (1e-3, "plateau", 400, 0.45)  # seed 003, C.4
    assert unet.augment["rotation_deg"] == 45.0 and unet.augment["flips"]
    mlp = get_recipe("ede-mlp")
    assert (mlp.lr, mlp.schedule, mlp.steps) == (0.01, "quadratic", 10000)  # seed 002, sec. 3.2
    assert set(RECIPES) == {"sbd-unet", "sbd-dncnn", "sbd-smallunet", "ede-mlp", "ede-xception", "ede-ae"}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "nope", "--out", "/tmp/x"], None),
        (["train", "ede-mlp", "--width", "8", "--out", "/tmp/x"], "--width applies"),
        (["train", "sbd-unet", "--hidden", "1", "--out", "/tmp/x"], "--hidden applies to ede-mlp"),
        (["train", "sbd-unet", "--smoke", "--out", str(REPO / "python" / "emdenoise")], "inside the repository"),
        (["train", "sbd-unet", "--smoke", "--patch", "60", "--out", "/tmp/ez-never-written"], "not a multiple of 16"),
    ],
)
def test_bad_training_requests_fail_with_one_sentence(argv, message, capsys):
    if message is None:
        with pytest.raises(SystemExit):
            main(argv)
        return
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_recipe_field_is_refused():
    with pytest.raises(UserError, match="no field"):
        get_recipe("sbd-unet", epochs=3)


def test_augmented_patch_keeps_counts_per_pixel_and_shape():
    rng = np.random.default_rng(0)
    flat = np.full((64, 64), 0.45, np.float32)
    patch = augmented_patch(flat, 32, rng, Augment())
    assert patch.shape == (32, 32)
    np.testing.assert_allclose(patch, 0.45, rtol=1e-5)  # resizing keeps the dose per pixel


def test_identity_augment_cuts_a_plain_crop():
    yy, xx = np.mgrid[0:80, 0:80].astype(np.float32)
    ramp = 3.0 * yy + 0.5 * xx + 1.0
    patch = augmented_patch(ramp, 16, np.random.default_rng(2), Augment(flips=False, rotation_deg=0.0, scale=(1.0, 1.0)))
    i, j = np.mgrid[0:16, 0:16]
    np.testing.assert_allclose(patch - patch[0, 0], 3.0 * i + 0.5 * j, atol=1e-3)


@pytest.mark.parametrize("scale", [0.5, 0.8, 1.25])
def test_rotated_resized_patch_scales_the_image_and_keeps_its_slope(scale):
    """Seed 003 C.4: resizing by ``scale`` makes features ``scale`` times as large; rotation keeps slopes."""
    yy, xx = np.mgrid[0:200, 0:200].astype(np.float32)
    ramp = 3.0 * yy + 0.5 * xx + 1000.0
    for seed in range(4):
        patch = augmented_patch(ramp, 24, np.random.default_rng(seed), Augment(rotation_deg=45.0, scale=(scale, scale)))
        gy, gx = np.gradient(patch.astype(np.float64))
        np.testing.assert_allclose(np.hypot(gy, gx), np.hypot(3.0, 0.5) / scale, rtol=1e-3)


def test_noisy_batches_are_poisson_draws_of_the_clean_patches():
    pool = make_pool({"source": "lattice", "n_train": 2, "n_val": 1, "size": 128, "options": {}}, role="train", seed=3, dose=0.45)
    noisy, clean = noisy_batch(pool, batch=64, patch=32, rng=np.random.default_rng(0), augment=Augment())
    assert noisy.shape == clean.shape == (64, 1, 32, 32)
    assert np.array_equal(noisy, np.round(noisy)) and noisy.min() >= 0
    assert abs(noisy.mean() / clean.mean() - 1) < 0.02
    vacuum = clean < 0.46
    assert abs(noisy[vacuum].var() / clean[vacuum].mean() - 1) < 0.05  # Poisson: variance = mean


def test_training_pool_never_uses_the_benchmark_streams():
    from emdenoise.bench.lattice import synthetic_set

    bench = synthetic_set(2, 128, 1)
    pool = make_pool({"source": "lattice", "n_train": 2, "n_val": 2, "size": 128, "options": {}}, role="train", seed=1, dose=1.0)
    for item in bench:
        assert all(not np.allclose(item.image, image) for image in pool.images)


def test_pool_reads_simulation_shards(tmp_path):
    rng = np.random.default_rng(0)
    clean = [rng.uniform(0.3, 0.9, (64, 64)).astype(np.float32) for _ in range(3)]
    records = [{"index": i, "dose_counts_per_px": 0.45, "contrast": "white"} for i in range(3)]
    write_manifest(tmp_path, {"format": "emdenoise-sim-shards/1", "kind": "hrtem", "seed": 0, "shard_size": 3})
    write_shard(tmp_path, 0, clean, [rng.poisson(c) for c in clean], records)
    data = {"source": "shards", "path": str(tmp_path), "n_val": 1}
    val = make_pool(data, role="val", seed=0, dose=0.9)
    train_pool = make_pool(data, role="train", seed=0, dose=0.9)
    assert len(val) == 1 and len(train_pool) == 2
    np.testing.assert_allclose(train_pool.images[0], clean[1] * 2, rtol=1e-6)  # rescaled 0.45 -> 0.9
    with pytest.raises(UserError, match="not a simulated data set"):
        make_pool({"source": "shards", "path": str(tmp_path / "missing"), "n_val": 1}, role="train", seed=0, dose=0.45)
