"""Likelihood maps at seed 003's dose (0.45 counts/px): the vacuum found from the counts, a
decision with a stated significance, and the second-frame path (issue 21, item 4)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import tifffile

from emdenoise.client.embedded import EmbeddedClient
from emdenoise.likelihood import VACUUM_LABEL
from emdenoise.likelihood.holdout import thin_counts
from emdenoise.likelihood.poisson import decide, decision_power
from emdenoise.likelihood.regions import flat_by_counts

LEVEL = 0.45  # counts/px in vacuum, seed 003 sec. 4


def lattice_with_strip(seed: int = 0, amp: float = 0.9, frames: int = 1):
    """256x256 at 0.45 counts/px: columns (sigma 2 px, 12 px apart) left of x = 180, plain vacuum right of it."""
    yy, xx = np.mgrid[:256, :256]
    clean = np.full((256, 256), LEVEL)
    for r in range(6, 256, 12):
        for c in range(6, 180, 12):
            clean += amp * np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 2.0**2))
    rng = np.random.default_rng(seed)
    counts = [rng.poisson(clean).astype(np.uint16) for _ in range(frames)]
    return clean, counts[0] if frames == 1 else np.stack(counts)


def test_vacuum_strip_at_0_45_counts_is_found_from_the_counts():
    """The estimate-based finder found no vacuum here (issue 21); the counts' dispersion does."""
    for seed in range(3):
        _, noisy = lattice_with_strip(seed)
        half, _ = thin_counts(noisy)  # the estimate half: 0.225 counts/px in the vacuum
        mask = flat_by_counts(half)
        assert mask[:, 190:].mean() > 0.6 and mask[:, :170].mean() < 0.02, (seed, mask[:, 190:].mean(), mask[:, :170].mean())


def test_a_frame_of_pure_vacuum_is_all_vacuum_and_a_filled_lattice_none():
    rng = np.random.default_rng(3)
    assert flat_by_counts(rng.poisson(LEVEL, (256, 256))).mean() > 0.9
    yy, xx = np.mgrid[:256, :256]
    lattice = LEVEL + 0.9 * sum(np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / 8.0) for r in range(6, 256, 12) for c in range(6, 256, 12))
    assert flat_by_counts(rng.poisson(lattice)).mean() < 0.02


def test_the_map_finds_the_vacuum_at_0_45_counts_with_the_shipped_hrtem_default():
    _, noisy = lattice_with_strip(1)
    result = EmbeddedClient(device="cpu").likelihood(noisy, None, None, modality="hrtem")
    vacuum = result.labels == VACUUM_LABEL
    assert vacuum[:, 200:].mean() > 0.5 and vacuum[:, :170].mean() < 0.02
    assert abs(result.vacuum_level - 0.5 * LEVEL) < 0.02  # tested on the other binomial half
    assert "never saw" in result.message and "undecided" in result.message


def test_decision_rejects_vacuum_at_most_at_its_significance():
    """Regions whose counts are vacuum come out supported at most 5 % of the time, whatever
    their size or the estimate's intensity; the LLR's sign alone supports 17-45 % of them."""
    rng = np.random.default_rng(0)
    for pixels, column in ((20, 0.5), (60, 0.3), (150, 0.26)):
        sums = rng.poisson(pixels * 0.225, 4000)
        decisions = [decide(s, pixels, column, 0.225) for s in sums]
        supported = decisions.count("supported") / len(sums)
        llr_positive = np.mean(sums * np.log(column / 0.225) - pixels * (column - 0.225) > 0)
        assert supported <= 0.055, (pixels, supported)
        assert llr_positive > 0.15, (pixels, llr_positive)
        assert "undecided" in decisions
    assert decision_power(100, 0.45, 0.225) > 0.95 and decision_power(50, 0.26, 0.225) < 0.2


def test_noise_blobs_of_a_pure_vacuum_frame_are_not_supported():
    rng = np.random.default_rng(7)
    noisy = rng.poisson(LEVEL, (256, 256)).astype(np.uint16)
    result = EmbeddedClient(device="cpu").likelihood(noisy, None, None, modality="hrtem", threshold=0.02)
    assert len(result.regions) >= 20, len(result.regions)
    assert np.mean([r.supported for r in result.regions]) <= 0.1
    assert np.mean([r.llr > 0 for r in result.regions]) > 0.2  # what the sign rule would have called supported


def test_second_frame_is_tested_at_its_whole_dose_against_the_first_frames_estimate():
    _, stack = lattice_with_strip(5, frames=2)
    client = EmbeddedClient(device="cpu")
    result = client.likelihood(stack[1], None, "classical-auto", estimate_frame=stack[0])
    assert "second frame" in result.message
    assert abs(result.vacuum_level - LEVEL) < 0.02  # whole dose: nothing thinned away
    on_column = lambda r: abs((r.row - 6 + 6) % 12 - 6) <= 2 and abs((r.col - 6 + 6) % 12 - 6) <= 2  # noqa: E731
    columns = [r for r in result.regions if r.col < 178 and on_column(r)]
    in_vacuum = [r for r in result.regions if r.col >= 195]
    assert len(columns) > 250 and np.mean([r.supported for r in columns]) > 0.9, (len(columns), np.mean([r.supported for r in columns]))
    assert not in_vacuum or np.mean([r.supported for r in in_vacuum]) <= 0.1


def test_cli_tests_one_frame_of_a_stack_against_the_estimate_of_another(tmp_path):
    _, stack = lattice_with_strip(6, frames=2)
    path = tmp_path / "pair.tif"
    tifffile.imwrite(path, stack, imagej=True)
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "emdenoise.cli", "likelihood", str(path), "--model", "classical-auto", "--frame", "0",
         "--test-frame", "1", "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "against the estimate of pair.tif frame 0" in run.stdout and "second frame" in run.stdout
    assert (out / "pair_frame1_llr-regions.csv").exists()
    same = subprocess.run(
        [sys.executable, "-m", "emdenoise.cli", "likelihood", str(path), "--model", "classical-auto", "--test-frame", "0",
         "-o", str(tmp_path / "same")],
        capture_output=True, text=True, timeout=300,
    )
    assert same.returncode != 0 and "pick another frame" in same.stderr
