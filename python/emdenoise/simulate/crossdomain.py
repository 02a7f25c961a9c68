"""The cross-domain HRTEM test set, fixed before any training (issue 17, item 3).

Seed 003's own family (SBD, sec. 4 and appendix A): Pt nanoparticles on CeO2 (111) in
[110] profile view, 300 kV, Cs -13 um, C5 5 mm, defocus 0-20 nm, support 3-6 nm, tilt
0-4 degrees, 4 nm focal spread averaged over 7 defocus values, 0.2 mrad convergence,
50 pm vibration, a 1024^2 grid over ~5 nm binned by 2 to 512 x 512 pixels of ~0.1 Å,
Poisson noise at 0.45 counts/px in vacuum (:func:`emdenoise.simulate.hrtem.simulate_hrtem`),
with abTEM's **kirkland** potential parametrisation.

What the training engine (:mod:`.exitwaves` + :mod:`.imaging`) never sees:

* the structure family: no bank specimen contains Pt or Ce (no Pt particle, no CeO2),
  and no bank particle sits on a fluorite support (the geometry of this family);
* the potential parametrisation: the bank uses ``lobato`` only, this set ``kirkland``;
* the image-formation path: here temporal coherence is an explicit average over 7
  defocus values and the pixel is a 2 x 2 bin of the simulation grid, where training
  uses the quasi-coherent envelope and Fourier resampling with a modelled MTF.

What it does share with training, stated so nobody mistakes it for held out: the optics
values (300 kV, Cs -13 um, C5 5 mm and defocus 0-20 nm lie inside the training ranges),
the support thickness range, the pixel size (~0.1 Å, inside 0.05-0.2 Å) and the dose
(0.45 counts/px, inside 0.1-5).

The generator settings and seeds below are constants; the set is made on demand in the
cache (``$EMDENOISE_CACHE/crossdomain-hrtem/<version>/{test,val}``, else under
``~/.cache/emdenoise``), in the shard format of :mod:`.shards`, deterministically
(image ``i`` of a split depends only on its seed and ``i``). The validation split is
for tuning the classical rows, never for choosing a network by its test score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from emdenoise.simulate.dose import SBD_DOSE
from emdenoise.simulate.exitwaves import cache_root
from emdenoise.simulate.hrtem import HrtemConfig

VERSION = "v1"
#: Generator settings: seed 003's simulator with kirkland potentials, 512 x 512 output.
CONFIG = HrtemConfig(gpts=1024, bin_factor=2, dose=SBD_DOSE, parametrization="kirkland")
#: Image counts and data-set seeds of the two splits.
SPLITS = {"test": {"n": 24, "seed": 1_700_017}, "val": {"n": 8, "seed": 1_700_018}}
SHARD_SIZE = 8


def default_dir() -> Path:
    """``<cache>/crossdomain-hrtem/<VERSION>``."""
    return cache_root() / "crossdomain-hrtem" / VERSION


def ensure_crossdomain(directory: str | Path | None = None, *, config: HrtemConfig = CONFIG,
                       splits: dict | None = None, log: Callable[[str], None] = print) -> dict[str, Path]:
    """Generate whatever is missing of the set and return ``{split: folder}``.

    Parameters
    ----------
    directory : path or None
        Parent folder of the splits (default :func:`default_dir`).
    config : HrtemConfig
        Only tests pass anything but :data:`CONFIG` (with a tiny grid).
    splits : dict or None
        ``{name: {"n": ..., "seed": ...}}``; :data:`SPLITS` by default.
    log : callable
    """
    from emdenoise.simulate.generate import generate

    directory = Path(directory) if directory is not None else default_dir()
    out = {}
    for name, spec in (splits or SPLITS).items():
        folder = directory / name
        summary = generate("hrtem", folder, n=spec["n"], seed=spec["seed"], shard_size=SHARD_SIZE,
                           config=config, log=log)
        if summary["items"]:
            log(f"{name}: {summary['items']} images in {summary['seconds']:.0f} s")
        out[name] = folder
    return out


def load_split(folder: str | Path) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """All ``(clean, noisy, record)`` of one split, in index order."""
    from emdenoise.simulate.shards import load_shards

    items = list(load_shards(folder))
    return sorted(items, key=lambda item: item[2]["index"])
