"""Issue 20, item 4: the engine chooses its tiles (least halo work within a memory budget,
whole frames when they fit) and the output is identical whatever cut is chosen."""

from __future__ import annotations

import numpy as np
import pytest

from emdenoise.engine import Engine
from emdenoise.engine.tiling import halo_fraction, plan_tiles, plan_within, work_pixels


def _covered_once(plan) -> bool:
    covered = np.zeros(plan.shape, int)
    for tile in plan.tiles:
        covered[tile.y0 : tile.y0 + plan.core[0], tile.x0 : tile.x0 + plan.core[1]] += 1
    return bool((covered == 1).all())


def test_a_frame_that_fits_runs_whole():
    plan = plan_within((1024, 1024), halo=122, multiple_of=16, max_window_pixels=1280 * 1280)
    assert len(plan.tiles) == 1 and plan.window == (1280, 1280)


@pytest.mark.parametrize("shape", [(2048, 2048), (1000, 3000), (301, 257), (4096, 1024)])
@pytest.mark.parametrize("budget", [600_000, 1_000_000, 2_000_000])
def test_the_chosen_cut_fits_covers_keeps_the_grid_and_beats_the_fixed_tiles(shape, budget):
    plan = plan_within(shape, halo=122, multiple_of=16, max_window_pixels=budget)
    assert plan.window[0] * plan.window[1] <= budget
    assert _covered_once(plan)
    assert all(tile.y0 % 16 == 0 and tile.x0 % 16 == 0 for tile in plan.tiles)  # the pooling grid
    fixed = plan_tiles(shape, tile_size=512, halo=122, multiple_of=16)  # what f9f4b87 ran (768 px windows)
    if fixed.window[0] * fixed.window[1] <= budget:
        assert work_pixels(plan) <= work_pixels(fixed)
    # no cut within the budget computes fewer pixels
    for core_y in range(16, shape[0] + 16, 16):
        for core_x in range(16, shape[1] + 16, 16):
            window = (-(-(core_y + 244) // 16) * 16, -(-(core_x + 244) // 16) * 16)
            if window[0] * window[1] <= budget:
                work = -(-shape[0] // core_y) * -(-shape[1] // core_x) * window[0] * window[1]
                assert work >= work_pixels(plan)


def test_2048_frames_of_the_unet_carry_far_less_halo_than_512_tiles():
    engine = Engine(device="cpu")
    card = engine.card("sbd-unet32-hrtem")
    auto = engine.tile_plan((2048, 2048), card)
    fixed = engine.tile_plan((2048, 2048), card, tile_size=512)
    assert halo_fraction(fixed) > 0.55 and halo_fraction(auto) < 0.37
    assert auto.window[0] * auto.window[1] <= engine.window_budget(card)
    assert len(engine.tile_plan((1024, 1024), card).tiles) == 1  # a 1024^2 frame runs whole


def test_global_models_keep_their_card_tiles():
    engine = Engine(device="cpu", memory_budget=64 << 30)
    card = engine.card("ede-xception-w025-tem-low")
    plan = engine.tile_plan((2048, 2048), card)
    assert plan == plan_tiles((2048, 2048), tile_size=512, halo=64, multiple_of=16)


def test_the_memory_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("EMDENOISE_MEMORY_BUDGET_MB", "256")
    engine = Engine(device="cpu")
    assert engine.memory_budget == 256 << 20
    card = engine.card("sbd-unet32-hrtem")
    assert engine.window_budget(card) == 756 * 756  # never below the card's own 512 px tile and its halo


class _Recording:
    """The real ONNX backend, recording each batch it is given."""

    def __init__(self, inner):
        self.inner, self.shapes = inner, []

    def run(self, batch):
        self.shapes.append(batch.shape)
        return self.inner.run(batch)


def _unet(engine: Engine) -> _Recording:
    card = engine.card("sbd-unet32-hrtem")
    backend = _Recording(engine._backend(card))
    engine._backends[card.id] = backend
    return backend


def test_unet_output_is_identical_whatever_cut_and_batches_stay_in_the_budget():
    """Bit-identical results: whole frame, the budgeted cut (several non-square tiles), fixed tiles."""
    frame = np.random.default_rng(7).poisson(0.6, (700, 650)).astype(np.uint16)
    whole = Engine(device="cpu", tile_size=4096)
    reference = whole.denoise(frame, "sbd-unet32-hrtem", gain=1.0, offset=0.0)
    assert len(whole.tile_plan(frame.shape, whole.card("sbd-unet32-hrtem")).tiles) == 1

    tight = Engine(device="cpu", memory_budget=1)  # only the card's own 756 px window fits
    recorded = _unet(tight)
    budgeted = tight.denoise(frame, "sbd-unet32-hrtem", gain=1.0, offset=0.0)
    plan = tight.tile_plan(frame.shape, tight.card("sbd-unet32-hrtem"))
    assert len(plan.tiles) > 1 and plan.core[0] != plan.core[1]
    assert np.array_equal(budgeted, reference)
    limit = tight.window_budget(tight.card("sbd-unet32-hrtem"))
    assert all(n * h * w <= limit for n, _, h, w in recorded.shapes)  # one window per call here

    fixed = Engine(device="cpu", tile_size=256, batch_size=8)
    recorded = _unet(fixed)
    assert np.array_equal(fixed.denoise(frame, "sbd-unet32-hrtem", gain=1.0, offset=0.0), reference)
    assert max(n for n, *_ in recorded.shapes) > 1  # small windows are still batched
