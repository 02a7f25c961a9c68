"""``emdenoise bench likelihood``: do likelihood maps flag noise and support real columns?

Issue 21, item 4, on seed 003's own family (the cross-domain Pt/CeO2 HRTEM set,
:mod:`emdenoise.simulate.crossdomain`, 0.45 counts/px in vacuum): each noisy image goes
through :func:`emdenoise.likelihood.job.run_likelihood` with a model as the estimate
(binomial thinning by default, ``--holdout none`` for the biased old test), and its
regions' decisions (:func:`emdenoise.likelihood.poisson.decide`: supported, contradicted
or undecided at the map's significance) are scored against the ground truth:

* **vacuum regions**: regions centred where the clean image is vacuum (within
  ``--vacuum-tolerance`` of the vacuum level over a ``--vacuum-window`` neighbourhood)
  are noise only; the bar is >= 95 % of them not supported;
* **Pt columns** (each record's ``pt_columns_rc``): a column is *decided* when the
  region centred nearest it (within ``--match`` pixels) is supported or contradicted;
  the bars are >= 50 % of the columns decided and >= 95 % of the decided ones supported;
* **all columns**: the same for every column peak of the clean image outside the vacuum
  (Pt and CeO2 support; :func:`column_peaks`), which has no list in the records;
* **oracle**: the share of Pt columns that the same test would support with the clean
  image as the estimate and a disc of ``--match`` px as the region, at the tested dose
  (exact Poisson power): what any estimate can reach on these columns.

``--tune`` chooses the detection threshold, the smallest blob scale and the significance
on the ``val`` split (8 images, other seeds) and then scores the ``test`` split (24
images) once with the choice, printing both.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

BARS = {"vacuum_unsupported": 0.95, "columns_decided": 0.50, "decided_supported": 0.95}


@dataclass
class Score:
    """Counts over the images for one model and holdout."""

    model: str
    holdout: str
    images: int = 0
    vacuum_regions: int = 0
    vacuum_unsupported: int = 0
    columns: int = 0
    columns_detected: int = 0
    columns_decided: int = 0
    decided_supported: int = 0
    all_columns: int = 0
    all_decided: int = 0
    all_supported: int = 0
    oracle_supported: float = 0.0
    regions: int = 0
    refused: int = 0
    seconds: float = 0.0

    def fractions(self) -> dict[str, float]:
        """The three figures of the issue's bar (NaN when the denominator is 0)."""
        def ratio(a: int, b: int) -> float:
            return a / b if b else float("nan")

        return {
            "vacuum_unsupported": ratio(self.vacuum_unsupported, self.vacuum_regions),
            "columns_decided": ratio(self.columns_decided, self.columns),
            "decided_supported": ratio(self.decided_supported, self.columns_decided),
            "all_columns_decided": ratio(self.all_decided, self.all_columns),
            "all_decided_supported": ratio(self.all_supported, self.all_decided),
            "oracle_pt_supported": ratio(self.oracle_supported, self.columns),
        }


def vacuum_mask(clean: np.ndarray, level: float, *, window: int = 21, tolerance: float = 0.05) -> np.ndarray:
    """Where the clean image stays within ``tolerance x level`` of the vacuum ``level`` over a ``window``."""
    deviation = np.abs(np.asarray(clean, np.float64) - level)
    return ndimage.maximum_filter(deviation, size=window) <= tolerance * level


def column_peaks(clean: np.ndarray, level: float, vacuum: np.ndarray, *, contrast: float = 0.05,
                 spacing: int = 5) -> np.ndarray:
    """(row, col) of the column peaks of a clean HRTEM image outside its vacuum.

    Local extrema of the clean image on the columns' side of the vacuum ``level`` (the
    side with the larger 99.9th-percentile deviation) that stand out by at least
    ``contrast x level``, at least ``spacing`` px apart.
    """
    from skimage.feature import peak_local_max

    deviation = np.asarray(clean, np.float64) - level
    sign = 1.0 if np.percentile(deviation, 99.9) >= -np.percentile(deviation, 0.1) else -1.0
    peaks = peak_local_max(sign * deviation, min_distance=spacing, threshold_abs=contrast * level, exclude_border=False)
    return peaks[~vacuum[peaks[:, 0], peaks[:, 1]]].astype(np.float64) if len(peaks) else np.empty((0, 2))


def _match(centres: np.ndarray, columns: np.ndarray, match: float) -> list[int]:
    """Index of the nearest unused region centre within ``match`` px of each column (-1: none)."""
    used: set[int] = set()
    found = []
    for column in columns:
        if not len(centres):
            found.append(-1)
            continue
        distance = np.hypot(*(centres - column).T)
        order = [k for k in np.argsort(distance) if distance[k] <= match and k not in used]
        found.append(order[0] if order else -1)
        if order:
            used.add(order[0])
    return found


def oracle_support(clean: np.ndarray, columns: np.ndarray, level: float, dose_fraction: float, radius: float,
                   significance: float) -> float:
    """Expected number of ``columns`` the test supports with the clean image as the estimate.

    Region: the disc of ``radius`` px around each column where the clean image is on the
    columns' side of ``level``; rates scaled by ``dose_fraction`` (the tested share of
    the counts); exact power of :func:`emdenoise.likelihood.poisson.decision_power`.
    """
    from emdenoise.likelihood.poisson import decision_power

    c = np.asarray(clean, np.float64)
    sign = 1.0 if np.percentile(c - level, 99.9) >= -np.percentile(c - level, 0.1) else -1.0
    total = 0.0
    for row, col in np.asarray(columns, np.float64).reshape(-1, 2):
        r0, r1 = int(max(row - radius, 0)), int(min(row + radius + 1, c.shape[0]))
        c0, c1 = int(max(col - radius, 0)), int(min(col + radius + 1, c.shape[1]))
        yy, xx = np.mgrid[r0:r1, c0:c1]
        patch = c[r0:r1, c0:c1]
        inside = (np.hypot(yy - row, xx - col) <= radius) & (sign * (patch - level) > 0)
        if inside.any():
            a = float(patch[inside].mean()) * dose_fraction
            total += decision_power(int(inside.sum()), a, level * dose_fraction, significance)
    return total


def score_image(score: Score, result, clean: np.ndarray, columns_rc: np.ndarray, level: float, *,
                match: float, window: int, tolerance: float, dose_fraction: float = 0.5) -> None:
    """Add one image's regions to ``score`` (decisions of :attr:`Region.decision`)."""
    vacuum = vacuum_mask(clean, level, window=window, tolerance=tolerance)
    score.images += 1
    score.regions += len(result.regions)
    centres = np.array([[r.row, r.col] for r in result.regions]).reshape(-1, 2)
    for region in result.regions:
        row, col = int(round(region.row)), int(round(region.col))
        inside = 0 <= row < vacuum.shape[0] and 0 <= col < vacuum.shape[1] and vacuum[row, col]
        if inside:
            score.vacuum_regions += 1
            score.vacuum_unsupported += int(not region.supported)
    columns = np.asarray(columns_rc, np.float64).reshape(-1, 2)
    score.columns += len(columns)
    significance = result.regions[0].significance if result.regions else 0.05
    score.oracle_supported += oracle_support(clean, columns, level, dose_fraction, match, significance)
    for k in _match(centres, columns, match):
        if k < 0:
            continue
        region = result.regions[k]
        score.columns_detected += 1
        if region.decision != "undecided":
            score.columns_decided += 1
            score.decided_supported += int(region.supported)
    peaks = column_peaks(clean, level, vacuum)
    score.all_columns += len(peaks)
    for k in _match(centres, peaks, match):
        if k >= 0 and result.regions[k].decision != "undecided":
            score.all_decided += 1
            score.all_supported += int(result.regions[k].supported)


def run_bench(models: list[str], holdouts: list[str], *, limit: int = 0, match: float = 6.0, window: int = 21,
              tolerance: float = 0.05, split: float = 0.5, known_vacuum: bool = False, detection: dict | None = None,
              data: str = "test", log=print) -> list[Score]:
    """Score every (model, holdout) on a split (``data``: ``test``, or ``val`` for tuning) of the cross-domain set."""
    from emdenoise.client.embedded import EmbeddedClient
    from emdenoise.errors import UserError
    from emdenoise.simulate.crossdomain import ensure_crossdomain, load_split

    items = load_split(ensure_crossdomain(log=log)[data])
    if limit:
        items = items[:limit]
    client = EmbeddedClient(device="cpu")
    scores = []
    for model in models:
        for holdout in holdouts:
            score = Score(model, holdout)
            started = time.perf_counter()
            for clean, noisy, record in items:
                level = float(record.get("dose_counts_per_px", 0.45))
                options = dict(detection or {})
                if known_vacuum:
                    options["vacuum_level"] = level
                try:
                    result = client.likelihood(np.asarray(noisy), None, model, holdout=holdout, split=split, **options)
                except UserError as error:  # e.g. no vacuum found in the estimate: counted, not fatal
                    score.refused += 1
                    score.images += 1
                    score.columns += len(np.asarray(record["pt_columns_rc"]).reshape(-1, 2))
                    score.all_columns += len(column_peaks(clean, level, vacuum_mask(clean, level, window=window,
                                                                                     tolerance=tolerance)))
                    log(f"  image {record['index']}: {error}")
                    continue
                score_image(score, result, clean, record["pt_columns_rc"], level, match=match, window=window,
                            tolerance=tolerance, dose_fraction=(1.0 - split) if holdout == "thin" else 1.0)
            score.seconds = time.perf_counter() - started
            scores.append(score)
            log(format_row(score))
    return scores


def format_row(score: Score) -> str:
    f = score.fractions()
    return (f"{score.model:24s} {score.holdout:5s} images {score.images:3d}  "
            f"vacuum regions {score.vacuum_regions:5d}, unsupported {f['vacuum_unsupported']:6.1%}  |  "
            f"Pt columns {score.columns:4d}, detected {score.columns_detected:4d}, decided {f['columns_decided']:6.1%}, "
            f"decided supported {f['decided_supported']:6.1%} (oracle supports {f['oracle_pt_supported']:6.1%})  |  "
            f"all columns {score.all_columns:4d}, decided {f['all_columns_decided']:6.1%}, decided supported "
            f"{f['all_decided_supported']:6.1%}  |  regions {score.regions:5d}, refused images {score.refused}  "
            f"{score.seconds:6.1f} s")


def run(args) -> int:
    from emdenoise.client.embedded import EmbeddedClient
    from emdenoise.engine.repository import choose_default

    models = list(args.model)
    if not models:
        default = choose_default(EmbeddedClient(device="cpu").list_models(), "hrtem")
        models = [default] + (["sbd-unet32-hrtem"] if default != "sbd-unet32-hrtem" else [])
        print(f"hrtem default: {default}" + ("" if len(models) == 1 else " (not the SBD network; sbd-unet32-hrtem too)"))
    scores = run_bench(models, args.holdout, limit=args.limit, match=args.match, window=args.vacuum_window,
                       tolerance=args.vacuum_tolerance, split=args.split, known_vacuum=args.known_vacuum,
                       detection={"threshold": args.threshold, "min_sigma": args.min_sigma, "max_sigma": args.max_sigma,
                                  "significance": args.significance}, data=args.data)
    print(f"split: {args.data}" + (" (tuning images, seed 1700018)" if args.data == "val" else " (held-out images, seed 1700017)"))
    print("bars: " + ", ".join(f"{k} >= {v:.0%}" for k, v in BARS.items()))
    for score in scores:
        f = score.fractions()
        met = all(f[k] >= v for k, v in BARS.items())
        print(f"{score.model} ({score.holdout}): " + ", ".join(f"{k} {f[k]:.1%}" for k in BARS) + (" - met" if met else " - NOT met")
              + f"; all columns: decided {f['all_columns_decided']:.1%}, decided supported {f['all_decided_supported']:.1%}"
              + f"; oracle supports {f['oracle_pt_supported']:.1%} of Pt columns")
    if args.json:
        args.json.write_text(json.dumps([{**asdict(s), **s.fractions()} for s in scores], indent=2))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "likelihood",
        help="issue 21 bar: likelihood maps on the Pt/CeO2 HRTEM test set (vacuum regions unsupported, Pt columns supported)",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--model", action="append", default=[], metavar="ID",
                   help="estimate model (repeatable); default: the hrtem default, plus sbd-unet32-hrtem when that is not it")
    p.add_argument("--holdout", action="append", choices=("thin", "none"), default=None,
                   help="thin (default): estimate from a binomial half, test the other; none: the biased same-counts test")
    p.add_argument("--split", type=float, default=0.5, help="share of the counts the thinned estimate is made from")
    p.add_argument("--limit", type=int, default=0, help="first N images only (default: all 24 test / 8 val)")
    p.add_argument("--data", choices=("test", "val"), default="test",
                   help="test: the 24 held-out images (seed 1700017); val: the 8 tuning images (seed 1700018) - tune "
                   "thresholds on val, report test")
    p.add_argument("--significance", type=float, default=None, help="significance of each region's decision (default 0.05)")
    p.add_argument("--match", type=float, default=6.0, help="pixels between a Pt column and its region's centre")
    p.add_argument("--vacuum-window", type=int, default=21, help="px: neighbourhood that must be vacuum in the clean image")
    p.add_argument("--vacuum-tolerance", type=float, default=0.05, help="fraction of the vacuum level the clean image may deviate")
    p.add_argument("--threshold", type=float, default=None, help="blob detection threshold (default: the map's)")
    p.add_argument("--min-sigma", type=float, default=None, help="smallest column scale, px (default: the map's 1)")
    p.add_argument("--max-sigma", type=float, default=None, help="largest column scale, px (default: the map's 8)")
    p.add_argument("--known-vacuum", action="store_true",
                   help="give the map the simulated vacuum level (0.45 counts/px) instead of finding the vacuum in the estimate")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.set_defaults(func=lambda args: run(_with_defaults(args)))


def _with_defaults(args):
    if not args.holdout:
        args.holdout = ["thin"]
    return args
