"""EM Likelihood Map in Debian's real ImageJ under Xvfb: overlay on the image, ROIs coloured by LLR."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from emdenoise.fiji import bridge
from emdenoise.likelihood import likelihood_map
from emdenoise.likelihood.validation import gaussian_lattice, plant_spurious_column

sys.path.insert(0, str(Path(__file__).resolve().parent))
from imagej_helpers import imagej_env, installed_imagej, missing_tools, run_batch, run_harness  # noqa: E402

pytestmark = [
    pytest.mark.imagej,
    pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools())),
    pytest.mark.skipif(
        "likelihood" not in bridge.ACTIONS,
        reason="emdenoise.fiji.bridge.ACTIONS has no 'likelihood' action yet (emdenoise.likelihood.fiji_job.run_likelihood_job)",
    ),
]


def test_em_likelihood_map_shows_overlay_and_rois_coloured_by_llr(tmp_path):
    root, home, temp = installed_imagej(tmp_path)
    clean = gaussian_lattice()
    rng = np.random.default_rng(31)
    estimate, planted = plant_spurious_column(clean, rng)
    noisy = rng.poisson(clean).astype(np.uint16)
    tifffile.imwrite(tmp_path / "estimate.tif", estimate.astype(np.float32), imagej=True)
    tifffile.imwrite(tmp_path / "noisy.tif", noisy, imagej=True)
    expected = likelihood_map(noisy, estimate.astype(np.float32))
    macro = tmp_path / "run.ijm"
    macro.write_text(
        f'''
open("{tmp_path / 'estimate.tif'}");
open("{tmp_path / 'noisy.tif'}");
run("EM Likelihood Map", "estimate=estimate.tif model=default server=embedded");
print("ROIS " + roiManager("count") + " OVERLAY " + Overlay.size + " TITLE " + getTitle());
for (i = 0; i < Overlay.size - 1; i++) {{
    Overlay.activateSelection(i);
    print("ROI " + Roi.getName + " " + Roi.getStrokeColor + " " + Roi.getProperty("llr"));
}}
selectImage("noisy_llr");
saveAs("Tiff", "{tmp_path / 'map.tif'}");
'''
    )
    run = run_harness("--gui", "--macro", str(macro), imagej_dir=root, env=imagej_env(home, temp), timeout=120)
    assert not run.dialogs, run.output
    columns = len(expected.regions)
    assert f"ROIS {columns + 1} OVERLAY {columns + 2} TITLE noisy.tif" in run.output, run.output  # + vacuum, + image
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "map.tif"), expected.llr_map)
    lines = [line.split() for line in run.output.splitlines() if line.startswith("ROI col-")]
    assert len(lines) == columns
    for (_, _, _, colour, llr), region in zip(lines, expected.regions):
        assert float(llr) == pytest.approx(region.llr, rel=1e-5)
        assert colour == ("#d72626" if region.llr > 0 else "#2166e6")
    spurious = [r for r in expected.regions if abs(r.row - planted.row) <= 2 and abs(r.col - planted.col) <= 2]
    assert len(spurious) == 1 and spurious[0].llr < 0
    assert not list(temp.glob("emdenoise-job-*"))


def test_em_likelihood_map_tests_the_next_frame_of_a_stack(tmp_path):
    """Test_counts=[next frame]: the estimate comes from this frame, the other frame's counts
    are tested whole; a given estimate with it is refused in one sentence."""
    root, home, temp = installed_imagej(tmp_path)
    clean = gaussian_lattice()
    rng = np.random.default_rng(7)
    stack = np.stack([rng.poisson(clean), rng.poisson(clean)]).astype(np.uint16)
    tifffile.imwrite(tmp_path / "pair.tif", stack, imagej=True, metadata={"axes": "TYX"})
    tifffile.imwrite(tmp_path / "estimate.tif", clean.astype(np.float32), imagej=True)
    macro = tmp_path / "run.ijm"
    macro.write_text(
        f'''
open("{tmp_path / 'estimate.tif'}");
open("{tmp_path / 'pair.tif'}");
run("EM Likelihood Map", "estimate=[run model] model=classical-auto server=embedded test_counts=[next frame]");
print("TITLE " + getTitle() + " SLICE " + getSliceNumber() + " OVERLAY " + Overlay.size);
selectImage("pair.tif");
run("EM Likelihood Map", "estimate=estimate.tif model=default server=embedded test_counts=[next frame]");
'''
    )
    run = run_batch(macro, "", imagej_dir=root, env=imagej_env(home, temp))
    print(run.output)
    assert "TITLE pair.tif SLICE 1 OVERLAY " in run.output, run.output
    assert int(run.output.split(" OVERLAY ", 1)[1].split()[0]) > 5, run.output  # columns, vacuum, the map image
    assert "tested on a second frame whose counts the estimate (made from the other frame) never saw" in run.output
    assert ("EM Likelihood Map: error: the next frame is tested against a model run on this frame; "
            "choose Estimate=[run model]") in run.output
    assert not list(temp.glob("emdenoise-job-*"))
