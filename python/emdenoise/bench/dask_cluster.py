"""``emdenoise bench dask``: megapixels/s and peak worker memory of ``emdenoise.dask`` on a LocalCluster.

A uint16 stack of ``--gb`` gigabytes is generated lazily on the workers (random counts,
``--chunk``-pixel chunks one frame deep, never whole in memory anywhere), denoised with ``--model``
(``ede-kernel-stem-5``) through :func:`emdenoise.dask.denoise` and streamed into a Zarr
array, once per cluster shape in ``--workers`` (N worker processes of one thread each,
``--memory-limit`` each). The time counts everything: the per-frame statistics pass of the
``min-mean`` normalisation (which generates the stack once more), denoising and writing.
Peak memory is each worker process's high-water resident set (``ru_maxrss``), read at
the end from a fresh cluster per row. Issue 19 asks for >= 2 GB at 512 MB per worker and
a speed-up >= 1.6 from 1 to 2 workers, which needs two otherwise idle cores.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "dask",
        help="MP/s and peak worker memory of emdenoise.dask on a LocalCluster (1 vs 2 workers, Zarr output)",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--model", default="ede-kernel-stem-5", help="model id (default: ede-kernel-stem-5)")
    p.add_argument("--gb", type=float, default=2.0, help="size of the uint16 input stack in GB (default: 2)")
    p.add_argument("--frame", type=int, default=2048, help="frame side in pixels (default: 2048)")
    p.add_argument("--chunk", type=int, default=1024, help="chunk side in pixels, one frame deep (default: 1024)")
    p.add_argument("--workers", default="1,2", help="worker counts to compare, one thread each (default: 1,2)")
    p.add_argument("--memory-limit", default="512MB", help="memory limit per worker (default: 512MB)")
    p.add_argument("--out", type=Path, default=Path("bench-dask"), help="folder for the Zarr output and JSON")
    p.add_argument("--keep", action="store_true", help="keep the Zarr outputs (default: removed after each row)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def _peak_rss() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB


def _limit_bytes(text: str) -> int:
    from dask.utils import parse_bytes

    return int(parse_bytes(text))


def measure(workers: int, *, model: str, frames: int, side: int, chunk: int, memory_limit: str, target: Path,
            seed: int) -> dict:
    """One row: a fresh LocalCluster of ``workers`` x 1 thread denoising the generated stack into ``target``."""
    import dask.array as da
    import numpy as np
    from distributed import Client, LocalCluster

    from emdenoise.dask import denoise

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("emdenoise.dask"))  # imports are not part of the time
        baseline = max(client.run(_peak_rss).values())
        rng = da.random.default_rng(seed)
        stack = rng.integers(0, 4096, size=(frames, side, side), dtype=np.uint16, chunks=(1, chunk, chunk))
        started = time.perf_counter()
        result = denoise(stack, model)  # computes the per-frame statistics on the cluster
        statistics = time.perf_counter() - started
        client.compute(result.to_zarr(str(target), compute=False)).result()
        seconds = time.perf_counter() - started
        peaks = sorted(client.run(_peak_rss).values())
    megapixels = frames * side * side / 1e6
    return {"workers": workers, "threads_per_worker": 1, "seconds": seconds, "statistics_seconds": statistics,
            "megapixels": megapixels, "mp_per_s": megapixels / seconds, "peak_worker_rss_bytes": peaks,
            "memory_limit_bytes": _limit_bytes(memory_limit), "worker_rss_after_imports_bytes": baseline}


def run(args) -> int:
    from emdenoise.errors import UserError

    counts = [int(n) for n in str(args.workers).split(",") if n.strip()]
    if not counts or min(counts) < 1:
        raise UserError(f"--workers {args.workers}: give worker counts such as 1,2.")
    frame_bytes = args.frame * args.frame * 2
    frames = max(int(args.gb * 1e9 // frame_bytes), 1)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{args.model}: {frames} x {args.frame} x {args.frame} uint16 ({frames * frame_bytes / 1e9:.2f} GB) in "
          f"1 x {args.chunk} x {args.chunk} chunks, "
          f"{args.memory_limit} per worker, {os.cpu_count()} CPUs on this machine, load average "
          f"{os.getloadavg()[0]:.1f}")
    rows = []
    for count in counts:
        target = args.out / f"denoised-{count}w.zarr"
        shutil.rmtree(target, ignore_errors=True)
        row = measure(count, model=args.model, frames=frames, side=args.frame, chunk=args.chunk,
                      memory_limit=args.memory_limit,
                      target=target, seed=args.seed)
        rows.append(row)
        if not args.keep:
            shutil.rmtree(target, ignore_errors=True)
        peak = max(row["peak_worker_rss_bytes"])
        print(f"  {count} worker(s) x 1 thread: {row['seconds']:7.1f} s ({row['statistics_seconds']:.1f} s statistics "
              f"pass), {row['mp_per_s']:7.1f} MP/s, peak worker RSS {peak / 2**20:6.0f} MiB "
              f"({row['worker_rss_after_imports_bytes'] / 2**20:.0f} after imports) "
              f"(limit {row['memory_limit_bytes'] / 2**20:.0f} MiB{', EXCEEDED' if peak > row['memory_limit_bytes'] else ''})")
    if len(rows) > 1:
        print(f"  speed-up {rows[-1]['workers']} vs {rows[0]['workers']} worker(s): "
              f"{rows[-1]['mp_per_s'] / rows[0]['mp_per_s']:.2f}x (load average now {os.getloadavg()[0]:.1f})")
    report = {"model": args.model, "frames": frames, "frame": args.frame, "chunk": args.chunk, "gb": frames * frame_bytes / 1e9,
              "memory_limit": args.memory_limit, "cpus": os.cpu_count(), "rows": rows}
    (args.out / "bench_dask.json").write_text(json.dumps(report, indent=2))
    return 0
