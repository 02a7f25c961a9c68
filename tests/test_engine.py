"""Engine: tiling equals untiled, kernels equal an independent convolution, dtype policy,
bad frames refused with a sentence."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import correlate

from emdenoise.engine import Engine
from emdenoise.engine.tiling import plan_tiles
from emdenoise.errors import InvalidInput, ModelNotFound
from emdenoise.export.ede_kernels import printed_kernels


@pytest.fixture(scope="module")
def engine():
    return Engine(device="cpu")


def reference_kernel_denoise(frame: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Seed 002 kernel by SciPy: min-mean normalisation, mirror borders, correlation."""
    x = frame.astype(np.float64)
    low = x.min()
    scale = (x - low).mean()
    return correlate((x - low) / scale, weights.astype(np.float64), mode="mirror") * scale + low


@pytest.mark.parametrize("index", range(12))
def test_kernel_models_equal_scipy_correlation(engine, index):
    kernel = printed_kernels()[index]
    model = f"ede-kernel-{ {'TEM': 'tem', 'STEM': 'stem', 'TEM+STEM': 'temstem'}[kernel.domain]}-{kernel.size}"
    frame = np.random.default_rng(index).poisson(30, (77, 130)).astype(np.uint16)
    result = engine.denoise(frame, model)
    expected = reference_kernel_denoise(frame, kernel.weights)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("tile_size", [16, 37, 64, 1000])
def test_tiled_equals_untiled(tile_size):
    frame = np.random.default_rng(1).gamma(2.0, 50.0, (150, 203)).astype(np.float32)
    untiled = Engine(device="cpu", tile_size=4096).denoise(frame, "ede-kernel-temstem-11")
    tiled = Engine(device="cpu", tile_size=tile_size, batch_size=3).denoise(frame, "ede-kernel-temstem-11")
    np.testing.assert_allclose(tiled, untiled, rtol=1e-6, atol=1e-4)


def test_plan_covers_frame_once_per_pixel():
    plan = plan_tiles((150, 203), tile_size=64, halo=5)
    covered = np.zeros((150, 203), int)
    for tile in plan.tiles:
        covered[tile.y0 : tile.y0 + plan.core[0], tile.x0 : tile.x0 + plan.core[1]] += 1
    assert covered.min() >= 1
    assert plan.window == (74, 74)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "int32", "float32", "float64"])
def test_dtype_policy_float32_out(engine, dtype):
    frame = (np.random.default_rng(2).random((40, 50)) * 100).astype(dtype)
    out = engine.denoise(frame, "ede-kernel-tem-3")
    assert out.dtype == np.float32 and out.shape == frame.shape
    np.testing.assert_allclose(out, engine.denoise(frame.astype(np.float64), "ede-kernel-tem-3"), rtol=1e-5, atol=1e-3)


def test_stack_shape_kept(engine):
    stack = np.random.default_rng(3).poisson(20, (2, 3, 32, 40)).astype(np.uint16)
    out = engine.denoise(stack, "ede-kernel-stem-5")
    assert out.shape == stack.shape
    np.testing.assert_array_equal(out[1, 2], engine.denoise(stack[1, 2], "ede-kernel-stem-5"))


@pytest.mark.parametrize(
    "frame, words",
    [
        (np.zeros((1, 1), np.float32), "at least 2x2"),
        (np.zeros((0, 5), np.float32), "at least 2x2"),
        (np.full((8, 8), np.nan, np.float32), "NaN"),
        (np.array([[1.0, np.inf], [-np.inf, 1.0]] * 4, np.float64), "infinite"),
        (np.zeros((8, 8), np.complex64), "complex"),
        (np.zeros((8, 8), bool), "not supported"),
    ],
)
def test_bad_frames_are_refused_with_a_sentence(engine, frame, words):
    with pytest.raises(InvalidInput, match=words):
        engine.denoise(frame, "ede-kernel-tem-3")


def test_a_retired_model_names_its_successor(engine, tmp_path):
    from emdenoise.engine.repository import retired_models

    retired = retired_models()
    assert retired, "export/retired.json lists the retired ids"
    for model_id, entry in retired.items():
        with pytest.raises(ModelNotFound, match=f"was retired .*use '{entry['successor']}' instead"):
            engine.denoise(np.ones((8, 8)), model_id)
        assert engine.card(entry["successor"]).id == entry["successor"]  # the successor is installed


def test_unknown_model_names_the_alternatives(engine):
    with pytest.raises(ModelNotFound, match="emdenoise models"):
        engine.denoise(np.ones((8, 8)), "no-such-model")


def test_defaults_per_modality(engine):
    """The defaults are the benchmarks' winners (issue 17, docs/benchmarks.md)."""
    assert engine.card(modality="stem").id == "sim-vstunet32-stem-r2"
    assert engine.card(modality="tem").id == "classical-auto"
    assert engine.card(modality="hrtem").id == "sim-vstunet24d4-hrtem-r4"
    assert engine.card(modality="any").id == "classical-auto"


def test_counts_model_estimates_a_missing_gain_and_offset(engine):
    """A raw client (or the Python API) that sends no calibration gets the frame's estimate,
    not gain 1 / offset 0, which would feed detector units to a network trained on counts."""
    from emdenoise.noise.calibration import resolve_counts

    rng = np.random.default_rng(5)
    y, x = np.mgrid[:128, :128]
    frame = 2400.0 + 200.0 * rng.poisson(2 + x / 8 + 4 * (np.sin(x / 2.5) * np.sin(y / 2.5)) ** 2)
    counts = resolve_counts([frame], assume_offset=0.0)
    assert abs(counts.offset - 2400) < 300
    estimated = engine.denoise(frame, "sim-vstunet32-stem-r2")
    given = engine.denoise(frame, "sim-vstunet32-stem-r2", gain=counts.gain, offset=counts.offset)
    np.testing.assert_allclose(estimated, given, rtol=1e-6)
    units = engine.denoise(frame, "sim-vstunet32-stem-r2", gain=1.0, offset=0.0)
    assert np.abs(estimated - units).mean() > 1.0


@pytest.mark.parametrize("tile_size", [64, 100, 1024])
def test_pooling_network_tiles_keep_the_pooling_grid(tile_size):
    """Tile origins on multiples of the card's multiple_of: a UNet gives the untiled result."""
    frame = np.random.default_rng(4).poisson(0.6, (301, 257)).astype(np.float32)
    reference = Engine(device="cpu", tile_size=4096).denoise(frame, "sbd-unet32-hrtem")
    tiled = Engine(device="cpu", tile_size=tile_size).denoise(frame, "sbd-unet32-hrtem")
    np.testing.assert_allclose(tiled, reference, rtol=0, atol=1e-4)


class _TightMemory:
    """A backend that runs out of memory above ``max_batch`` tiles or ``max_side`` pixels."""

    def __init__(self, inner, max_batch: int, max_side: int):
        self.inner, self.max_batch, self.max_side, self.calls = inner, max_batch, max_side, []

    def run(self, batch: np.ndarray) -> np.ndarray:
        from emdenoise.errors import ResourceExhausted

        self.calls.append(batch.shape)
        if batch.shape[0] > self.max_batch or max(batch.shape[-2:]) > self.max_side:
            raise ResourceExhausted("failed to allocate memory (simulated)")
        return self.inner.run(batch)


def test_out_of_memory_halves_the_batch_then_the_tile_then_names_the_setting(caplog):
    from emdenoise.errors import ResourceExhausted

    frame = np.random.default_rng(12).poisson(30, (300, 280)).astype(np.float32)
    expected = Engine(device="cpu").denoise(frame, "ede-kernel-tem-5")
    tight = Engine(device="cpu", batch_size=8)
    card = tight.card("ede-kernel-tem-5")
    backend = _TightMemory(tight._backend(card), max_batch=1, max_side=140)
    tight._backends[card.id] = backend
    np.testing.assert_allclose(tight.denoise(frame, card.id), expected, rtol=0, atol=1e-5)
    retries = [r.getMessage().split("retrying with ", 1)[1] for r in caplog.records if "retrying with" in r.getMessage()]
    assert retries[:3] == ["batch 4, tile (300, 280)", "batch 2, tile (300, 280)", "batch 1, tile (300, 280)"]
    assert retries[3:] == ["batch 1, tile (150, 150)", "batch 1, tile (75, 75)"]  # then the tiles shrink
    assert max(backend.calls[-1][-2:]) <= 140
    hopeless = Engine(device="cpu")
    hopeless._backends[card.id] = _TightMemory(hopeless._backend(card), max_batch=0, max_side=0)
    with pytest.raises(ResourceExhausted, match="--max-parallel-frames"):
        hopeless.denoise(frame, card.id)
