"""``emdenoise bench likelihood``: do likelihood maps flag noise and support real columns?

Issue 21, item 4, on seed 003's own family (the cross-domain Pt/CeO2 HRTEM test set,
:mod:`emdenoise.simulate.crossdomain`, 0.45 counts/px in vacuum): each noisy image goes
through :func:`emdenoise.likelihood.job.run_likelihood` with a model as the estimate
(binomial thinning by default, ``--holdout none`` for the biased old test), and its
regions are scored against the ground truth:

* **vacuum regions**: regions centred where the clean image is vacuum (within
  ``--vacuum-tolerance`` of the vacuum level over a ``--vacuum-window`` neighbourhood)
  are noise only; the bar is >= 95 % of them unsupported (LLR <= 0);
* **Pt columns** (each record's ``pt_columns_rc``): a column is *decided* when a region
  centred within ``--match`` pixels of it has power >= 95 %; the bars are >= 50 % of the
  columns decided and >= 95 % of the decided ones supported (LLR > 0).

Support columns (CeO2) are real but have no ground-truth list; their regions are in
neither figure.
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
        }


def vacuum_mask(clean: np.ndarray, level: float, *, window: int = 21, tolerance: float = 0.05) -> np.ndarray:
    """Where the clean image stays within ``tolerance x level`` of the vacuum ``level`` over a ``window``."""
    deviation = np.abs(np.asarray(clean, np.float64) - level)
    return ndimage.maximum_filter(deviation, size=window) <= tolerance * level


def score_image(score: Score, result, clean: np.ndarray, columns_rc: np.ndarray, level: float, *,
                match: float, window: int, tolerance: float) -> None:
    """Add one image's regions to ``score``."""
    from emdenoise.likelihood.compute import DECISIVE_POWER

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
    used: set[int] = set()
    for column in columns:  # nearest unused region within `match` pixels
        if not len(centres):
            break
        distance = np.hypot(*(centres - column).T)
        order = [k for k in np.argsort(distance) if distance[k] <= match and k not in used]
        if not order:
            continue
        used.add(order[0])
        region = result.regions[order[0]]
        score.columns_detected += 1
        if region.power >= DECISIVE_POWER:
            score.columns_decided += 1
            score.decided_supported += int(region.supported)


def run_bench(models: list[str], holdouts: list[str], *, limit: int = 0, match: float = 6.0, window: int = 21,
              tolerance: float = 0.05, split: float = 0.5, known_vacuum: bool = False, detection: dict | None = None, log=print) -> list[Score]:
    """Score every (model, holdout) on the cross-domain test split."""
    from emdenoise.client.embedded import EmbeddedClient
    from emdenoise.errors import UserError
    from emdenoise.simulate.crossdomain import ensure_crossdomain, load_split

    items = load_split(ensure_crossdomain(log=log)["test"])
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
                    log(f"  image {record['index']}: {error}")
                    continue
                score_image(score, result, clean, record["pt_columns_rc"], level,
                            match=match, window=window, tolerance=tolerance)
            score.seconds = time.perf_counter() - started
            scores.append(score)
            log(format_row(score))
    return scores


def format_row(score: Score) -> str:
    f = score.fractions()
    return (f"{score.model:24s} {score.holdout:5s} images {score.images:3d}  "
            f"vacuum regions {score.vacuum_regions:5d}, unsupported {f['vacuum_unsupported']:6.1%}  |  "
            f"Pt columns {score.columns:4d}, detected {score.columns_detected:4d}, decided {f['columns_decided']:6.1%}, "
            f"decided supported {f['decided_supported']:6.1%}  |  regions {score.regions:5d}, refused images {score.refused}  "
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
                       detection={"threshold": args.threshold, "min_sigma": args.min_sigma, "max_sigma": args.max_sigma})
    print("bars: " + ", ".join(f"{k} >= {v:.0%}" for k, v in BARS.items()))
    for score in scores:
        f = score.fractions()
        met = all(f[k] >= v for k, v in BARS.items())
        print(f"{score.model} ({score.holdout}): " + ", ".join(f"{k} {f[k]:.1%}" for k in BARS) + (" - met" if met else " - NOT met"))
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
    p.add_argument("--limit", type=int, default=0, help="first N test images only (default: all 24)")
    p.add_argument("--match", type=float, default=6.0, help="pixels between a Pt column and its region's centre")
    p.add_argument("--vacuum-window", type=int, default=21, help="px: neighbourhood that must be vacuum in the clean image")
    p.add_argument("--vacuum-tolerance", type=float, default=0.05, help="fraction of the vacuum level the clean image may deviate")
    p.add_argument("--threshold", type=float, default=None, help="blob detection threshold (default: the map's 0.05)")
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
