"""``emdenoise bench engine``: per model, in-process, gRPC and shared-memory megapixels/s, halo fraction,
latency under 1/4/16 concurrent clients and peak memory; with ``--baseline REV`` the same
jobs time commit REV (installed into a temporary venv) in the same run, and the ratios are
printed.

Every timing is one job of :mod:`emdenoise.bench._engine_probe` in a fresh interpreter of
the version under test: each round runs in-process A, B, then gRPC A, B, and the next
round the reverse (latency: one server per client count and version, alternating), so a machine
whose load drifts hurts both alike, and each job's peak memory (VmHWM) is its own. Figures
are megapixels of input per second; all versions get gain 1 / offset 0, so their outputs
are compared bit for bit (sha256 of every output frame, and the first frame's largest
difference against the baseline).

The shared-memory path (issue 20, item 3) is timed in the same rounds for every version:
a server of that version on loopback, the client with ``shared_memory="on"`` (the gRPC job
sends messages: ``shared_memory="off"``); its MP/s and its ratio to in-process are
printed, and its outputs join the digest check. A baseline older than the path sends
messages in that job, and its shared-memory figures print as "-".

``--stack-frames N`` also streams N frames of 1024x1024 through a server of this tree and
prints its resident memory at 10 % and at the end (flat: the stack is never held whole).

``--throughput-stacks S`` (issue 20, item 5) times a server of this tree with one client
denoising S distinct stacks in turn, then ``--throughput-clients`` clients at once each
denoising all S, once with dynamic batching off (``--max-batch 1``) and once on, in
alternating order over ``--throughput-rounds``; it prints MP/s of both, their ratio, the
errors and how many stack outputs equal the serial run's (sha256 of every frame).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

PROBE = Path(__file__).with_name("_engine_probe.py")
CURRENT = "this tree"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "engine",
        help="megapixels/s per model (in-process vs gRPC vs shared memory), halo, latency at 1/4/16 clients, peak memory; --baseline REV",
    )
    p.add_argument("--model", action="append", help="model id (repeatable); default: every shipped onnx denoiser")
    p.add_argument("--frames", type=int, default=4, help="frames per timing (after one warm-up frame)")
    p.add_argument("--size", type=int, default=1024, help="frame side in pixels")
    p.add_argument("--dtype", default="uint16", choices=("uint8", "uint16", "float32"), help="pixel type sent")
    p.add_argument("--rounds", type=int, default=2, help="timings per version and path (alternating versions)")
    p.add_argument("--clients", default="1,4,16", help="concurrent client counts for the latency run ('' skips it)")
    p.add_argument("--requests", type=int, default=2, help="one-frame requests per client in the latency run")
    p.add_argument("--latency-size", type=int, help="frame side for the latency run (default: --size)")
    p.add_argument("--baseline", metavar="REV", help="also time this commit (git archive -> wheel -> temporary venv)")
    p.add_argument("--stack-frames", type=int, default=0, help="frames for the server memory run on this tree (0: skip)")
    p.add_argument("--throughput-stacks", type=int, default=0, metavar="S",
                   help="stacks per client for the 1-client vs many-clients throughput run (0: skip)")
    p.add_argument("--throughput-clients", type=int, default=16, metavar="C", help="concurrent clients in that run")
    p.add_argument("--throughput-frames", type=int, default=2, metavar="N", help="frames per stack in that run")
    p.add_argument("--throughput-size", type=int, default=256, metavar="PX", help="frame side in that run")
    p.add_argument("--throughput-rounds", type=int, default=1, help="rounds of that run (batching off and on, alternating)")
    p.add_argument("--max-batch", type=int, default=8, help="the batching server's --max-batch in that run")
    p.add_argument("--max-queue-delay-ms", type=float, default=2.0,
                   help="the batching server's --max-queue-delay-ms in that run")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    p.add_argument("--timeout", type=float, default=3600, help="seconds one job may take")
    p.add_argument("--json", type=Path, help="also write every figure here")
    p.set_defaults(func=run)


# -- versions --------------------------------------------------------------------------------
def repository_root() -> Path:
    """The git checkout this package was imported from."""
    here = Path(__file__).resolve().parent
    done = subprocess.run(["git", "-C", str(here), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit("--baseline needs a git checkout of emdenoise (this package is not imported from one).")
    return Path(done.stdout.strip())


def install_baseline(rev: str, folder: Path) -> tuple[str, str]:
    """``git archive REV`` -> wheel (no deps, no network) -> a venv in ``folder`` that reuses this
    venv's site-packages for the dependencies. Returns (python, full commit id)."""
    root = repository_root()
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                            capture_output=True, text=True)
    if commit.returncode != 0:
        raise SystemExit(f"--baseline {rev}: not a commit of {root} ({commit.stderr.strip()}).")
    sha = commit.stdout.strip()
    source, wheels, venv = folder / "src", folder / "wheel", folder / "venv"
    source.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(root), "archive", sha], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(source)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise SystemExit(f"git archive {sha} failed.")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(wheels), str(source)], check=True)
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import zipfile

    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive_file:
        archive_file.extractall(site)  # a wheel is installed by unpacking it into site-packages
    # Dependencies come from this venv; its own (editable) emdenoise finder runs after the
    # path finder, so `import emdenoise` resolves to the baseline installed above.
    (Path(site) / "zz_emdenoise_bench_deps.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    shutil.rmtree(source)
    return str(python), sha


def run_job(python: str, job: dict, timeout: float) -> dict:
    """Run one probe job in a fresh ``python``; its result dict (``error`` when it failed)."""
    with tempfile.TemporaryDirectory(prefix="emdenoise-bench-job-") as cwd:
        try:
            done = subprocess.run([python, "-P", "-c", PROBE.read_text(), json.dumps(job)], cwd=cwd,
                                  capture_output=True, text=True, timeout=timeout,
                                  env=dict(os.environ, PYTHONUNBUFFERED="1"))
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith("@@"):
            return json.loads(line[2:])
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {done.returncode}: " + " | ".join(tail)}


# -- figures ---------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def _ok(results: list[dict]) -> list[dict]:
    return [r for r in results if "error" not in r]


def summarise(model_rows: dict) -> dict:
    """Medians per version and path, latency percentiles, identity of outputs."""
    out = {}
    for version, row in model_rows.items():
        inproc, wire, shared = _ok(row["inproc"]), _ok(row["grpc"]), _ok(row.get("shm", []))
        summary = {
            "in_process_mpix_s": median([r["mpix_s"] for r in inproc]),
            "grpc_mpix_s": median([r["mpix_s"] for r in wire]),
            "in_process_runs": [round(r["mpix_s"], 4) for r in inproc],
            "grpc_runs": [round(r["mpix_s"], 4) for r in wire],
            "shm_mpix_s": median([r["mpix_s"] for r in shared]),
            "shm_runs": [round(r["mpix_s"], 4) for r in shared],
            "shm_transports": sorted({r.get("transport", "?") for r in shared}),
            "halo_fraction": inproc[0]["halo_fraction"] if inproc else float("nan"),
            "work_over_frame": inproc[0]["work_over_frame"] if inproc else float("nan"),
            "tiles": f"{inproc[0]['tiles']} x {inproc[0]['window'][0]}x{inproc[0]['window'][1]}" if inproc else "?",
            "peak_rss_mib_in_process": max([r["peak_rss_mib"] for r in inproc], default=float("nan")),
            "peak_rss_mib_server": max([r["server_peak_rss_mib"] for r in wire + shared + _ok(row["latency"])],
                                       default=float("nan")),
            "digests": sorted({r["sha256"] for r in inproc + wire + shared}),
            "errors": [r["error"] for key in ("inproc", "grpc", "shm", "latency") for r in row.get(key, [])
                       if "error" in r],
            "latency": {},
        }
        for result in _ok(row["latency"]):
            for clients, level in result["levels"].items():
                summary["latency"][clients] = {
                    "p50_s": percentile(level["seconds"], 50), "p95_s": percentile(level["seconds"], 95),
                    "requests": len(level["seconds"]), "errors": len(level["errors"]), "mpix_s": level["mpix_s"],
                }
        out[version] = summary
    return out


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and np.isfinite(a) and np.isfinite(b) else "-"


def print_model(model: str, summary: dict, versions: list[str], args, comparison: dict | None) -> None:
    cur = summary[CURRENT]
    base = summary.get(versions[1]) if len(versions) > 1 else None
    print(f"\n{model}  ({args.frames} frames of {args.size}x{args.size} {args.dtype} per timing, "
          f"{args.rounds} rounds; latency frames {args.latency_size or args.size}px)")
    header = f"  {'':<28}{'this tree':>18}"
    if base:
        header += f"{versions[1]:>22}{'ratio':>10}"
    print(header)

    def line(name, key, fmt, ratio=True):
        text = f"  {name:<28}{format(cur[key], fmt) if isinstance(cur[key], float) else cur[key]:>18}"
        if base:
            value = base[key]
            text += f"{format(value, fmt) if isinstance(value, float) else value:>22}"
            if ratio and isinstance(value, float):
                text += f"{_ratio(cur[key], value):>10}"
        print(text)

    line("in-process MP/s", "in_process_mpix_s", ".3g")
    line("gRPC MP/s", "grpc_mpix_s", ".3g")
    print(f"  {'gRPC / in-process':<28}{cur['grpc_mpix_s'] / cur['in_process_mpix_s']:>18.2f}"
          + (f"{base['grpc_mpix_s'] / base['in_process_mpix_s']:>22.2f}" if base else ""))
    base_shm = bool(base) and base["shm_transports"] == ["shared memory"]  # a baseline older than the path: "-"
    print(f"  {'shared-memory MP/s':<28}{cur['shm_mpix_s']:>18.3g}"
          + ((f"{base['shm_mpix_s']:>22.3g}{_ratio(cur['shm_mpix_s'], base['shm_mpix_s']):>10}" if base_shm
              else f"{'-':>22}") if base else ""))
    print(f"  {'shared-memory / in-process':<28}{cur['shm_mpix_s'] / cur['in_process_mpix_s']:>18.2f}"
          + ((f"{base['shm_mpix_s'] / base['in_process_mpix_s']:>22.2f}" if base_shm else f"{'-':>22}") if base else ""))
    if cur["shm_runs"] and cur["shm_transports"] != ["shared memory"]:
        print(f"  WARNING: the shared-memory jobs' frames travelled as {', '.join(cur['shm_transports'])}")
    line("tiles per frame", "tiles", "", ratio=False)
    line("halo fraction of work", "halo_fraction", ".3f", ratio=False)
    line("computed px / frame px", "work_over_frame", ".2f")
    for clients in sorted(cur["latency"], key=int):
        c = cur["latency"][clients]
        b = base["latency"].get(clients) if base else None
        text = f"  {f'latency p50/p95, {clients} clients':<28}{c['p50_s']:>8.2f}/{c['p95_s']:.2f} s"
        if b:
            text += f"{b['p50_s']:>12.2f}/{b['p95_s']:.2f} s{_ratio(b['p50_s'], c['p50_s']):>10}"
        print(text + ("" if not c["errors"] else f"  ({c['errors']} failed)"))
    line("peak RSS in-process, MiB", "peak_rss_mib_in_process", ".0f")
    line("peak RSS server, MiB", "peak_rss_mib_server", ".0f")
    same_here = len(cur["digests"]) == 1
    text = f"  {'outputs':<28}{'one digest' if same_here else 'DIFFER':>18}"
    if comparison is not None:
        text += f"   vs baseline: {comparison['verdict']}"
    print(text)
    for version in versions:
        runs = summary[version]
        shared = f", shared memory {runs['shm_runs']}" if runs["shm_runs"] else ""
        print(f"  MP/s per round, {version}: in-process {runs['in_process_runs']}, gRPC {runs['grpc_runs']}{shared}")
    if base:
        print("  (ratio: this tree / baseline for MP/s and memory, baseline / this tree for latency: > 1 is faster here)")
    for version in versions:
        for error in summary[version]["errors"]:
            print(f"  ERROR ({version}): {error}")


def compare_outputs(model_rows: dict, versions: list[str], files: dict) -> dict:
    """Bit-identity of the two versions' outputs: every frame's digest, and the first frame's
    largest difference."""
    if len(versions) < 2:
        return None
    a, b = (model_rows[v] for v in versions)
    da = {r["sha256"] for r in _ok(a["inproc"]) + _ok(a["grpc"])}
    db = {r["sha256"] for r in _ok(b["inproc"]) + _ok(b["grpc"])}
    first = [np.load(files[v]) for v in versions if Path(files[v]).exists()]
    max_diff = float(np.abs(first[0] - first[1]).max()) if len(first) == 2 else float("nan")
    identical = len(da) == 1 and da == db
    verdict = "bit-identical" if identical else f"differ (first frame max |diff| {max_diff:.3g})"
    return {"identical": identical, "first_frame_max_abs_diff": max_diff, "verdict": verdict}


# -- the run ---------------------------------------------------------------------------------
def run(args) -> int:
    clients = [int(c) for c in str(args.clients).split(",") if c.strip()]
    with tempfile.TemporaryDirectory(prefix="emdenoise-bench-engine-") as scratch:
        scratch = Path(scratch)
        pythons = {CURRENT: sys.executable}
        versions = [CURRENT]
        baseline_sha = None
        if args.baseline:
            started = time.perf_counter()
            python, baseline_sha = install_baseline(args.baseline, scratch / "baseline")
            name = f"{args.baseline} ({baseline_sha[:7]})" if baseline_sha[:7] != args.baseline else args.baseline
            pythons[name] = python
            versions.append(name)
            print(f"baseline {baseline_sha[:12]} installed into a temporary venv in {time.perf_counter() - started:.1f} s")
        models = args.model or _default_models(args.device)
        print(f"device: {args.device}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the start")
        report = {"args": {k: str(v) for k, v in vars(args).items() if k != "func"}, "baseline_sha": baseline_sha,
                  "models": {}}
        for model in models:
            rows = {v: {"inproc": [], "grpc": [], "shm": [], "latency": []} for v in versions}
            files = {v: str(scratch / f"{model}-{i}.npy") for i, v in enumerate(versions)}
            base_job = {"model": model, "size": args.size, "frames": args.frames, "dtype": args.dtype,
                        "device": args.device}
            for round_index in range(args.rounds):  # A-in B-in A-grpc B-grpc A-shm, then the reverse, ...
                jobs = [(op, version) for op in ("inproc", "grpc", "shm") for version in versions]
                for op, version in jobs if round_index % 2 == 0 else jobs[::-1]:
                    job = dict(base_job, op=op, save=files[version] if round_index == 0 else None)
                    rows[version][op].append(run_job(pythons[version], job, args.timeout))
            for level_index, level in enumerate(clients):  # one server per level and version, alternating
                for version in versions if level_index % 2 == 0 else versions[::-1]:
                    job = dict(base_job, op="latency", clients=[level], requests=args.requests,
                               latency_size=args.latency_size or args.size)
                    rows[version]["latency"].append(run_job(pythons[version], job, args.timeout))
            report["models"][model] = {}
            if args.rounds or clients:
                summary = summarise(rows)
                comparison = compare_outputs(rows, versions, files)
                print_model(model, summary, versions, args, comparison)
                report["models"][model] = {"summary": summary, "comparison": comparison, "raw": rows}
            if args.throughput_stacks:
                report["models"][model]["throughput"] = throughput_run(model, args)
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        if args.stack_frames:
            report["memory"] = _memory_run(models[0], args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


def throughput_configs(args) -> list[tuple[str, list[str]]]:
    """The two servers of the throughput run: batching off, and on with the given settings."""
    on = ["--max-batch", str(args.max_batch), "--max-queue-delay-ms", f"{args.max_queue_delay_ms:g}"]
    return [("--max-batch 1", ["--max-batch", "1"]), (" ".join(on), on)]


def throughput_run(model: str, args) -> dict:
    """1 client vs ``--throughput-clients`` clients x ``--throughput-stacks`` stacks, batching off and
    on (one server per job, alternating); printed, and returned with every job's figures."""
    configs = throughput_configs(args)
    jobs = {name: [] for name, _ in configs}
    base = {"op": "throughput", "model": model, "stacks": args.throughput_stacks, "clients": args.throughput_clients,
            "depth": args.throughput_frames, "size": args.throughput_size, "dtype": args.dtype, "device": args.device}
    for round_index in range(max(1, args.throughput_rounds)):
        for name, server_args in configs if round_index % 2 == 0 else configs[::-1]:
            jobs[name].append(run_job(sys.executable, dict(base, server_args=server_args), args.timeout))
    reference = next((j["serial_digests"] for j in jobs[configs[0][0]] if "error" not in j), None)
    print(f"\n{model}: throughput, 1 client vs {args.throughput_clients} clients x {args.throughput_stacks} stacks of "
          f"{args.throughput_frames} x {args.throughput_size}^2 {args.dtype} ({args.throughput_rounds} round(s), "
          f"server of this tree; medians)")
    print(f"  {'server':<34}{'1 client MP/s':>14}{'C clients MP/s':>16}{'C / 1':>8}{'errors':>8}  identical to serial")
    figures = {}
    for name, _ in configs:
        done = _ok(jobs[name])
        one = median([j["one_client_mpix_s"] for j in done])
        many = median([j["many_clients_mpix_s"] for j in done])
        errors = sum(len(j["errors"]) for j in done) + len(jobs[name]) - len(done)
        same = sum(j["same_as_serial"] if reference and j["serial_digests"] == reference else 0 for j in done)
        expected = sum(j["stacks_expected"] for j in done)
        figures[name] = {"one_client_mpix_s": one, "many_clients_mpix_s": many, "errors": errors,
                         "same_as_serial": same, "stacks_expected": expected,
                         "per_round": [(round(j["one_client_mpix_s"], 3), round(j["many_clients_mpix_s"], 3)) for j in done]}
        print(f"  {name:<34}{one:>14.3g}{many:>16.3g}{_ratio(many, one):>8}{errors:>8}  {same}/{expected} stacks")
    (off, _), (on, _) = configs
    print(f"  {args.throughput_clients} clients, batching on / off: "
          f"{_ratio(figures[on]['many_clients_mpix_s'], figures[off]['many_clients_mpix_s'])}; "
          f"batching on, {args.throughput_clients} clients / 1 client (off): "
          f"{_ratio(figures[on]['many_clients_mpix_s'], figures[off]['one_client_mpix_s'])}")
    for name, _ in configs:
        print(f"  MP/s per round (1 client, C clients), {name}: {figures[name]['per_round']}")
        shared = [line for job in _ok(jobs[name]) for line in job.get("shared_runs", [])]
        if shared:
            print(f"  server ({name}): " + "; ".join(shared))
        for job in jobs[name]:
            for error in ([job["error"]] if "error" in job else job["errors"])[:3]:
                print(f"  ERROR ({name}): {error}")
    return {"figures": figures, "raw": jobs}


def _default_models(device: str) -> list[str]:
    from emdenoise.engine import Engine

    return [c.id for c in Engine(device=device).list_cards() if c.backend == "onnx" and c.task == "denoise"]


def _memory_run(model_id: str, args) -> dict:
    from emdenoise.server.subprocess_server import ServerProcess

    with ServerProcess(device=args.device) as server:
        memory = memory_run(server, model_id, args.stack_frames)
    print(
        f"memory: {memory['frames']} frames of 1024x1024 ({memory['stack_gib_float32']:.1f} GiB as float32) through "
        f"the server with {model_id} in {memory['seconds']:.0f} s: server RSS {memory['rss_mib_at_10pct']:.0f} MiB at "
        f"10 %, {memory['rss_mib_at_end']:.0f} MiB at the end (peak {memory['peak_rss_mib']:.0f} MiB)"
    )
    return memory


def memory_run(server, model_id: str, frames: int, size: int = 1024) -> dict:
    """Stream ``frames`` frames through ``server``; its RSS at 10 % and at the end."""
    from emdenoise.client import RemoteClient

    rng = np.random.default_rng(0)
    pool = [rng.poisson(20, (size, size)).astype(np.uint16) for _ in range(4)]
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
