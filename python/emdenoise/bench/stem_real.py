"""``emdenoise bench stem-real``: sim-trained STEM denoisers on a real frame pair (issue 17).

The pair (two frames of one field with independent noise, e.g. the SerialEM HAADF pair of
``../shared/data``) is converted to counts with the project's own gain/offset estimate
(:func:`emdenoise.noise.calibration.estimate_counts`). Every row restores each frame and is
scored against the other by the unbiased paired error, both directions averaged
(:func:`emdenoise.adapt.scores.paired_error`); no model trains on, or is chosen with, the
pair. Rows:

* **Gaussian, sigma tuned on the simulated STEM validation set** (the classical row a
  sim-trained model must beat by 10 %: its sigma is chosen where the models are);
* **Gaussian, oracle**: the sigma best on this very pair (labelled as such);
* the served ``classical-auto`` (sigma per frame by the blind-spot error);
* each ``--models`` id, run by the embedded engine as ``emdenoise denoise`` runs it, given
  the estimated gain and offset;
* each ``--checkpoint`` (a training run's ``carry.npz``), run in PyTorch on whole frames.

Every row gives its error [counts^2] and its ratios to both Gaussians.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from emdenoise.errors import UserError

#: The simulated STEM validation set the classical row is tuned on.
TUNING_IMAGES, TUNING_SIZE = 48, 256


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("stem-real", help="sim-trained STEM models against tuned Gaussians on a real frame pair")
    p.add_argument("--pair", type=Path, required=True, help="a file with two frames of one field")
    p.add_argument("--models", default="", help="comma-separated model ids (bundled or user models)")
    p.add_argument("--models-dir", type=Path, action="append", default=[], help="extra model folder (repeatable)")
    p.add_argument("--checkpoint", type=Path, action="append", default=[], help="a training run's carry.npz (repeatable)")
    p.add_argument("--out", type=Path, required=True, help="folder for stem-real.json / stem-real.md")
    p.set_defaults(func=run)


def sim_tuned_sigma() -> dict[str, Any]:
    """The Gaussian sigma best on the simulated STEM validation set (by mean normalised error)."""
    from emdenoise.simulate.stem_imager import StemImager
    from emdenoise.train.sim_denoiser import gaussian_reference, validation_set

    return gaussian_reference(validation_set(StemImager(), TUNING_IMAGES, TUNING_SIZE))


def checkpoint_restorer(path: Path):
    """``counts -> counts`` of a ``carry.npz`` (averaged weights), in PyTorch on the whole frame."""
    from emdenoise.train.sim_denoiser import model_from_carry, restore_whole

    model, meta = model_from_carry(path)
    return (lambda image: restore_whole(model, image)), meta


def served_restorer(model_id: str, folders: list[Path], gain: float, offset: float):
    """``counts -> counts`` through the embedded engine: raw frames in, given gain and offset."""
    from emdenoise.engine import Engine
    from emdenoise.engine.repository import bundled_models_dir, user_models_dir

    engine = Engine([bundled_models_dir(), user_models_dir(), *folders], device="cpu")
    card = engine.repository.get(model_id)

    def restore(counts: np.ndarray) -> np.ndarray:
        raw = counts * np.float32(gain) + np.float32(offset)
        out = engine.denoise_frame(raw.astype(np.float32), card, gain=gain, offset=offset)
        return (np.asarray(out, np.float32) - np.float32(offset)) / np.float32(gain)

    return restore, card


def pair_rows(path: Path, models: list[str], folders: list[Path], checkpoints: list[Path]) -> dict[str, Any]:
    """Every row of the benchmark (see the module docstring)."""
    from emdenoise.adapt import classical, scores
    from emdenoise.noise.calibration import estimate_counts
    from emdenoise.train.series_checks import read_series_file
    from emdenoise.tuning import GAUSSIAN_SIGMAS, tune

    raw = np.stack(read_series_file(path)[:2]).astype(np.float32)
    if len(raw) < 2:
        raise UserError(f"{path} holds one frame; stem-real needs two frames of one field.")
    fit = estimate_counts(raw)
    counts = fit.to_counts(raw)

    def scored(restore) -> float:
        return scores.paired_error(restore, counts[0], counts[1])

    sim = sim_tuned_sigma()
    rows: list[dict[str, Any]] = []
    rows.append({"method": "Unfiltered", "error": scored(lambda image: image)})
    sim_error = scored(classical.restorer("gaussian", sim["sigma"]))
    rows.append({"method": f"Gaussian sigma {sim['sigma']:g} px (tuned on the simulated STEM validation set)",
                 "error": sim_error, "key": "gaussian_sim"})
    oracle = tune(GAUSSIAN_SIGMAS, lambda s: scored(classical.restorer("gaussian", s)))
    rows.append({"method": f"Gaussian sigma {oracle.value:g} px (oracle: best on this pair)", "error": oracle.score,
                 "key": "gaussian_oracle"})
    rows.append({"method": "classical-auto as served (sigma per frame by the blind-spot error)",
                 "error": scored(classical.gaussian_auto), "key": "classical-auto"})
    for model_id in models:
        restore, card = served_restorer(model_id, folders, fit.gain, fit.offset)
        started = time.perf_counter()
        error = scored(restore)
        rows.append({"method": f"{model_id} (served)", "error": error, "key": model_id,
                     "seconds": round(time.perf_counter() - started, 2)})
    for checkpoint in checkpoints:
        restore, meta = checkpoint_restorer(checkpoint)
        rows.append({"method": f"checkpoint {checkpoint} (step {meta['steps']}, {meta['cpu_seconds'] / 3600:.2f} CPU h)",
                     "error": scored(restore), "key": str(checkpoint)})
    for row in rows:
        row["ratio_to_sim_gaussian"] = row["error"] / sim_error
        row["ratio_to_oracle"] = row["error"] / oracle.score
    return {"file": str(path), "gain": fit.gain, "offset": fit.offset, "dose": float(counts.mean()),
            "calibration": f"estimated ({fit.method}, {fit.quality})", "sim_sigma": sim, "oracle_sigma": oracle.value,
            "rows": rows}


def markdown(result: dict[str, Any]) -> str:
    """The table of ``stem-real.md``."""
    lines = ["# bench stem-real", "",
             f"Pair `{result['file']}`: gain {result['gain']:.4g}, offset {result['offset']:.6g} ({result['calibration']}), "
             f"{result['dose']:.3g} counts/px; unbiased paired error of whole frames, both directions [counts^2].", "",
             "| Method | paired error | / sim-tuned Gaussian | / oracle Gaussian |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['method']} | {r['error']:.4f} | {r['ratio_to_sim_gaussian']:.3f} | {r['ratio_to_oracle']:.3f} |"
              for r in result["rows"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    result = pair_rows(args.pair, models, list(args.models_dir), list(args.checkpoint))
    (args.out / "stem-real.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    text = markdown(result)
    (args.out / "stem-real.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0
