"""Throughput of each simulator, for planning training-data budgets.

``python -m emdenoise.simulate.benchmark [--device cpu|gpu] [--kinds ...] [--n N]``
prints, per kind, seconds per item and items per hour on one process (one core on the
CPU: thread pools are pinned to 1), after one warm-up item (numba compilation, FFT
plans). A 1024 x 1024 complex64 FFT is timed in the same run as a baseline, and each
figure is also given as a multiple of it so that runs on different machines compare.
"""

from __future__ import annotations

import argparse
import json
import os
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from emdenoise.simulate.generate import KINDS, default_config, make_item  # noqa: E402


def fft_baseline_seconds(device: str = "cpu", repeats: int = 20) -> float:
    """Median seconds of one 1024 x 1024 complex64 FFT with the array module of ``device``."""
    if device == "gpu":
        import cupy as xp
    else:
        xp = np
    a = (xp.random.standard_normal((1024, 1024)) + 1j * xp.random.standard_normal((1024, 1024))).astype(xp.complex64)
    times = []
    for _ in range(repeats + 2):
        start = time.perf_counter()
        xp.fft.fft2(a)
        if device == "gpu":
            xp.cuda.Device().synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times[2:]))


def time_kind(kind: str, n: int, device: str = "cpu", seed: int = 12345) -> dict:
    """Seconds per item of ``kind`` at its default configuration (after one warm-up)."""
    config = default_config(kind)
    make_item(kind, config, seed, 0, device)
    start = time.perf_counter()
    for i in range(1, n + 1):
        clean, _, _ = make_item(kind, config, seed, i, device)
    seconds = (time.perf_counter() - start) / n
    return {"kind": kind, "items": n, "shape": list(clean.shape), "seconds_per_item": seconds, "items_per_hour": 3600.0 / seconds}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON line per kind."""
    parser = argparse.ArgumentParser(prog="python -m emdenoise.simulate.benchmark")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--n", type=int, default=3, help="timed items per kind (stem uses 100 x n)")
    args = parser.parse_args(argv)
    baseline = fft_baseline_seconds(args.device)
    print(json.dumps({"baseline": "fft2 1024x1024 complex64", "device": args.device, "seconds": baseline}), flush=True)
    for kind in args.kinds:
        result = time_kind(kind, args.n * (100 if kind == "stem" else 1), args.device)
        result["per_item_in_baseline_ffts"] = result["seconds_per_item"] / baseline
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
