"""``emdenoise bench engine``: throughput of every shipped model, in-process and through
gRPC in the same run, and server memory while a long stack streams through it.

Figures are megapixels per second of input; the gRPC/in-process ratio is the cost of the
wire on this machine. The memory run streams ``--stack-frames`` frames of 1024x1024
through a live server and prints its resident memory at 10 % and 100 % of the stack: flat
memory means the stack is never held whole.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from emdenoise.client import EmbeddedClient, RemoteClient
from emdenoise.server.subprocess_server import ServerProcess


def register(subparsers) -> None:
    p = subparsers.add_parser("engine", help="megapixels/s per model (in-process vs gRPC) and server memory on a long stack")
    p.add_argument("--model", action="append", help="model id (repeatable); default: every shipped onnx model")
    p.add_argument("--frames", type=int, default=8, help="frames per timing")
    p.add_argument("--size", type=int, default=1024, help="frame side in pixels")
    p.add_argument("--stack-frames", type=int, default=1000, help="frames for the memory run (0: skip)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    p.add_argument("--json", type=Path, help="also write the results here")
    p.set_defaults(func=run)


def _frames(count: int, size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.poisson(20, (size, size)).astype(np.uint16) for _ in range(count)]


def _throughput(client, frames: list[np.ndarray], model_id: str) -> float:
    """Megapixels per second for denoising ``frames`` (one warm-up frame first)."""
    list(client.denoise(frames[:1], model_id))
    started = time.perf_counter()
    for _ in client.denoise(frames, model_id):
        pass
    elapsed = time.perf_counter() - started
    return sum(f.size for f in frames) / 1e6 / elapsed


def memory_run(server: ServerProcess, model_id: str, frames: int, size: int = 1024) -> dict:
    """Stream ``frames`` frames through ``server``; its RSS at 10 % and at the end."""
    pool = _frames(4, size)
    marks = {}
    with RemoteClient(server.address) as client:
        count = 0
        started = time.perf_counter()
        for _ in client.denoise((pool[i % 4] for i in range(frames)), model_id, frame_count=frames):
            count += 1
            if count == max(frames // 10, 1):
                marks["rss_mib_at_10pct"] = server.memory()["rss_kb"] / 1024
        elapsed = time.perf_counter() - started
    end = server.memory()
    marks.update(
        frames=count,
        rss_mib_at_end=end["rss_kb"] / 1024,
        peak_rss_mib=end["hwm_kb"] / 1024,
        stack_gib_float32=frames * size * size * 4 / 2**30,
        seconds=elapsed,
    )
    return marks


def run(args) -> int:
    embedded = EmbeddedClient(device=args.device)
    models = args.model or [c.id for c in embedded.engine.list_cards() if c.backend == "onnx" and c.task == "denoise"]
    frames = _frames(args.frames, args.size)
    rows = []
    with ServerProcess(device=args.device) as server, RemoteClient(server.address) as remote:
        for model_id in models:
            local = _throughput(embedded, frames, model_id)
            wire = _throughput(remote, frames, model_id)
            rows.append({"model": model_id, "in_process_mpix_s": local, "grpc_mpix_s": wire, "grpc_over_in_process": wire / local})
        print(f"device: {embedded.engine.device}; {args.frames} frames of {args.size}x{args.size} uint16 per timing")
        print(f"{'model':<24} {'in-process MP/s':>16} {'gRPC MP/s':>10} {'gRPC/in-process':>16}")
        for row in rows:
            print(f"{row['model']:<24} {row['in_process_mpix_s']:>16.3g} {row['grpc_mpix_s']:>10.3g} {row['grpc_over_in_process']:>16.2f}")
        memory = None
        if args.stack_frames:
            memory = memory_run(server, models[0], args.stack_frames)
            print(
                f"memory: {memory['frames']} frames of 1024x1024 ({memory['stack_gib_float32']:.1f} GiB as float32) through "
                f"the server with {models[0]} in {memory['seconds']:.0f} s: server RSS {memory['rss_mib_at_10pct']:.0f} MiB at 10 %, "
                f"{memory['rss_mib_at_end']:.0f} MiB at the end (peak {memory['peak_rss_mib']:.0f} MiB)"
            )
    if args.json:
        args.json.write_text(json.dumps({"throughput": rows, "memory": memory}, indent=2))
    return 0
