"""The in-process fast path (issue 20): float32 normalisation, the frame normalised straight into
its padded array, whole frames without copies, small convolutions without ONNX Runtime's NCHWc
layout. Outputs stay within float32 rounding of the float64 formulas and are the same bits
whatever the tile size and whatever integer type carries the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from emdenoise.engine import Engine, tiling
from emdenoise.engine.backends import conv_output_channels, nchwc_pays
from emdenoise.engine.normalization import AffineMap, _mean
from emdenoise.engine.repository import bundled_models_dir
from emdenoise.errors import InvalidInput


@pytest.fixture(scope="module")
def engine():
    return Engine(device="cpu")


def test_padded_frame_equals_numpy_reflect_padding():
    rng = np.random.default_rng(0)
    for _ in range(300):
        shape = tuple(int(v) for v in rng.integers(2, 50, 2))
        plan = tiling.plan_tiles(shape, tile_size=int(rng.integers(4, 60)), halo=int(rng.integers(0, 12)),
                                 multiple_of=int(rng.choice([1, 2, 8])))
        frame = rng.standard_normal(shape).astype(np.float32)
        made = tiling.padded_frame(shape, plan, lambda out: out.__setitem__(Ellipsis, frame))
        assert made.dtype == np.float32 and made.flags.c_contiguous
        np.testing.assert_array_equal(made, tiling.pad_frame(frame, plan))


def ulps(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.abs(values.astype(np.float64) - reference) / np.spacing(np.abs(reference).astype(np.float32))


@pytest.mark.parametrize("shift, scale", [(2.0, 17.25), (100.3, 0.37), (-1e5, 1e-3), (7.1e-3, 3e-7), (0.0, 1.0)])
def test_float32_map_stays_within_rounding_of_float64(shift, scale):
    rng = np.random.default_rng(1)
    raw = rng.poisson(40, (64, 80)).astype(np.uint16)
    mapping = AffineMap(shift, scale)
    forward = mapping.forward(raw)
    assert forward.dtype == np.float32
    assert ulps(forward, (raw.astype(np.float64) - shift) / scale).max() <= 1.5
    # the model's output of a frame whose minimum is the shift: positive, no cancellation
    output = rng.gamma(2.0, 1.0, raw.shape).astype(np.float32)
    inverse = mapping.inverse(output)
    assert ulps(inverse, output.astype(np.float64) * scale + shift).max() <= 1.5
    # element by element: a window of the frame maps to the window of the map (tiles agree)
    np.testing.assert_array_equal(mapping.forward(raw[5:30, 7:61]), forward[5:30, 7:61])
    np.testing.assert_array_equal(mapping.inverse(output[5:30, 7:61]), inverse[5:30, 7:61])
    out = np.full((70, 90), -1.0, np.float32)
    mapping.forward(raw, out=out[3:67, 5:85])
    np.testing.assert_array_equal(out[3:67, 5:85], forward)
    assert (out[:3] == -1).all()


def test_float32_overflow_is_computed_again_in_float64_or_refused():
    frame = np.array([[3e38, -3e38], [1.0, 2.0]], np.float32)
    forward = AffineMap(-3e38, 1e3).forward(frame)  # 3e38 - (-3e38) overflows float32, /1e3 does not
    np.testing.assert_allclose(forward, (frame.astype(np.float64) + 3e38) / 1e3, rtol=1e-6)
    assert np.isfinite(forward).all()
    back = AffineMap(-3e38, 2.0).inverse(np.array([[3e38, 1.0]], np.float32))  # 6e38 - 3e38 fits
    np.testing.assert_allclose(back, [[3e38, -3e38]], rtol=1e-6)
    with pytest.raises(InvalidInput, match="too large for 32-bit"):
        AffineMap(-3e38, 1e-3).forward(frame)
    with pytest.raises(InvalidInput, match="too large for 32-bit"):
        AffineMap(0.0, 1.0).inverse(np.array([[np.nan, 1.0]], np.float32))
    # a scale float32 cannot hold runs in float64 throughout
    np.testing.assert_array_equal(AffineMap(0.0, 1e39).forward(np.ones((2, 2), np.float32)), np.float32(1e-39))


def test_integer_means_are_the_float64_means():
    rng = np.random.default_rng(2)
    for dtype in ("uint8", "uint16", "int8", "int16"):
        info = np.iinfo(dtype)
        for shape in ((1024, 1024), (3, 7), (32767, 2)):
            for frame in (rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype),
                          np.full(shape, info.max, dtype), np.full(shape, info.min, dtype)):
                assert _mean(frame) == float(frame.mean(dtype=np.float64))


def test_small_convolutions_run_without_the_nchwc_layout():
    models = bundled_models_dir()
    assert conv_output_channels((models / "ede-kernel-stem-5" / "model.onnx").read_bytes()) == [1]
    assert not nchwc_pays(models / "ede-kernel-stem-5" / "model.onnx")
    unet = conv_output_channels((models / "sbd-unet32-hrtem" / "model.onnx").read_bytes())
    assert len(unet) > 5 and max(unet) >= 32
    assert nchwc_pays(models / "sbd-unet32-hrtem" / "model.onnx")
    assert nchwc_pays(models / "no-such-model.onnx")  # unreadable: ONNX Runtime's default


@pytest.mark.parametrize("model", ["ede-kernel-stem-5", "ede-kernel-temstem-11"])
def test_same_bits_whatever_the_tile_and_the_integer_type(engine, model):
    rng = np.random.default_rng(3)
    frame = rng.poisson(25, (300, 517)).astype(np.uint16)
    whole = engine.denoise(frame, model)
    assert whole.dtype == np.float32 and whole.flags.c_contiguous and whole.shape == frame.shape
    for tile in (64, 100, 256):
        np.testing.assert_array_equal(Engine(device="cpu", tile_size=tile, batch_size=3).denoise(frame, model), whole)
    np.testing.assert_array_equal(engine.denoise(frame.astype(np.float32), model), whole)
    np.testing.assert_array_equal(engine.denoise(frame.astype(np.int16), model), whole)
    np.testing.assert_array_equal(engine.denoise(frame.astype(np.int32), model), whole)
    again = engine.denoise(frame, model)
    assert again is not whole and not np.shares_memory(again, whole)
    np.testing.assert_array_equal(again, whole)


def test_a_result_goes_into_the_callers_array_when_it_can_and_is_the_same_bits(engine):
    """``denoise_frame(out=...)``: the server's shared-memory slot receives the result itself (issue 20,
    item 3); an array it cannot use is left alone and the result is a new array with the same bits."""
    rng = np.random.default_rng(4)
    frame = rng.poisson(25, (200, 333)).astype(np.uint16)
    card = engine.card("ede-kernel-stem-5")
    fresh = engine.denoise_frame(frame, card, gain=1.0, offset=0.0)
    out = np.full(frame.shape, np.nan, np.float32)
    assert engine.denoise_frame(frame, card, gain=1.0, offset=0.0, out=out) is out
    np.testing.assert_array_equal(out, fresh)
    # the slot holds the frame too: a float32 frame and its result in the same bytes
    slot = frame.astype(np.float32)
    assert engine.denoise_frame(slot, card, gain=1.0, offset=0.0, out=slot) is slot
    np.testing.assert_array_equal(slot, engine.denoise_frame(frame.astype(np.float32), card, gain=1.0, offset=0.0))
    read_only = np.zeros(frame.shape, np.float32)
    read_only.flags.writeable = False
    for unusable in (np.zeros(frame.shape, np.float64), np.zeros((200, 334), np.float32),
                     np.zeros((333, 200), np.float32).T, read_only):
        result = engine.denoise_frame(frame, card, gain=1.0, offset=0.0, out=unusable)
        assert result is not unusable and not np.shares_memory(result, unusable)
        np.testing.assert_array_equal(result, fresh)
    assert not read_only.any()
