"""EM Benchmark in the Fiji bridge's worker: ``emdenoise bench series`` on the image, as CSV.

:data:`emdenoise.fiji.job_actions.ACTIONS` runs :func:`run_benchmark` for
``action=benchmark``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emdenoise.fiji.jobdir import JobDir


def run_benchmark(job: JobDir, request: dict[str, str]) -> dict[str, object]:
    """``emdenoise bench series`` on the image; the table goes to ``request['output']`` (CSV).

    Classical baselines and models on a series of the same field: CSS (seed 004 eq. 10)
    and the paired-frame error for stacks, timings for every method.
    """
    import csv
    import json

    from emdenoise.errors import UserError

    try:
        from emdenoise.bench import series
    except ImportError:
        raise UserError("EM Benchmark needs 'emdenoise bench series', which this emdenoise lacks; update emdenoise.") from None
    out = job.path / "bench"
    argv = ["series", "--stack", request["input"], "--out", str(out)]
    for key in ("frames", "crop", "gain", "offset"):
        value = request.get(key, "").strip()
        if value and float(value) > 0:
            argv += [f"--{key}", str(int(float(value))) if key in ("frames", "crop") else value]
    baselines = request.get("baselines", "").strip()
    if baselines and baselines != "none" and "unfiltered" not in baselines.split(","):
        baselines = "unfiltered," + baselines  # the row every error is compared with
    if baselines:
        argv += ["--baselines", baselines]
    for model in filter(None, (m.strip() for m in request.get("models", "").split(","))):
        argv += ["--method", model]
    parser = argparse.ArgumentParser(prog="emdenoise bench")
    series.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    job.write_status("running", done=0, total=1)
    args.func(args)
    result = json.loads((out / "series.json").read_text(encoding="utf-8"))
    target = Path(request["output"])
    with open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Method", "CSS", "Paired MSE (counts^2)", "x Unfiltered MSE", "s per megapixel", "Time ratio"])
        for row in result["methods"]:
            writer.writerow([
                row["name"], _number(row.get("css"), ".4f"), _number(row.get("paired_mse"), ".4g"),
                _number(row.get("paired_mse_vs_unfiltered"), ".3f"), _number(row.get("seconds_per_megapixel"), ".4g"),
                _number(row.get("time_ratio"), ".2f"),
            ])
    reference = result["methods"][0].get("time_reference", "") if result["methods"] else ""
    return {"output": target, "frames": result["frames"], "reference": reference}


def _number(value, spec: str) -> str:
    return "NaN" if value is None else format(value, spec)
