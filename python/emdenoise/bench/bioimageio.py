"""``emdenoise bench bioimageio``: every shipped ONNX denoiser through bioimage.io and back (issue 21, item 5).

For each onnx ``denoise`` card of the bundled repository: export a bioimage.io package
(:func:`emdenoise.bioimageio.export_package`), run bioimageio.core's test on it offline
(:func:`emdenoise.bioimageio.check_package`: the packaged graph must reproduce the
engine's test output, and run at three sizes and two batch sizes), and print PASS or FAIL
with the reason. Needs the ``[bioimageio]`` extra.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bioimageio",
        help="export every shipped ONNX denoiser as a bioimage.io package and run bioimageio.core's test on it",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--model", action="append", default=[], metavar="ID",
                   help="only these models (repeatable; default: every bundled onnx denoiser)")
    p.add_argument("--out", type=Path, help="keep the packages in this folder (default: a temporary one)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.set_defaults(func=run)


def shipped_onnx_denoisers() -> list[str]:
    """Ids of the bundled models with task denoise and backend onnx."""
    from emdenoise.engine import ModelRepository, bundled_models_dir

    return [c.id for c in ModelRepository([bundled_models_dir()]).cards() if c.backend == "onnx" and c.task == "denoise"]


def check_all(model_ids: list[str], folder: Path) -> list[dict]:
    """Export and test each model; one result dict (id, passed, seconds, reason) per model."""
    from emdenoise.bioimageio import check_package, export_package
    from emdenoise.engine import Engine
    from emdenoise.errors import UserError

    engine = Engine(device="cpu")
    results = []
    for model_id in model_ids:
        started = time.perf_counter()
        try:
            export_package(model_id, folder / model_id, engine=engine, overwrite=True)
            passed, failed = check_package(folder / model_id)
            reason = " | ".join(failed)
        except UserError as error:
            passed, reason = False, str(error)
        seconds = time.perf_counter() - started
        results.append({"id": model_id, "passed": passed, "seconds": round(seconds, 2), "reason": reason})
        print(f"{'PASS' if passed else 'FAIL'}  {model_id:32s} {seconds:6.1f} s  {reason}", flush=True)
    return results


def run(args) -> int:
    model_ids = args.model or shipped_onnx_denoisers()
    with tempfile.TemporaryDirectory(prefix="emdenoise-bioimageio-") as scratch:
        folder = args.out or Path(scratch)
        results = check_all(model_ids, folder)
    passed = sum(r["passed"] for r in results)
    print(f"{passed}/{len(results)} shipped ONNX denoisers pass bioimageio.core's test")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if passed == len(results) else 1
