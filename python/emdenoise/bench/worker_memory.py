"""``emdenoise bench worker-memory``: resident memory of the Fiji warm worker over one long stack.

Issue 20 asks the worker's peak memory on a 100 x 1024x1024 stack with a U-Net to stay within
1.5 GB and flat in the stack's length. This bench runs what an EM Denoise command runs: it
writes a uint16 ImageJ TIFF stack, makes a job folder with the macro's request, and starts
the warm worker with ``python -m emdenoise.fiji.bridge start JOBDIR`` (this process plays
ImageJ, the worker's owner), keeping the job's heartbeat as the polling macro does. While the
job runs, the worker's ``VmRSS`` is read from ``/proc`` every ``--interval`` seconds next to
the ``done`` count of the job's status file; it prints the largest RSS seen by the time 10,
50 and 100 frames (``--marks``) were done, and the worker's ``VmHWM`` (its peak) at the end.
Each model gets a worker of its own (a fresh ImageJ temp folder), so one model's sessions
never count against another's. Linux only (``/proc``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

#: The U-Nets issue 20 names: the STEM default and the SBD HRTEM U-Net.
DEFAULT_MODELS = ("sim-vstunet32-stem-r2", "sbd-unet32-hrtem")
#: Issue 20's bar, 1.5 GB.
BAR_BYTES = 1.5e9


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "worker-memory",
        help="resident memory of the Fiji warm worker denoising a 100 x 1024^2 uint16 stack (at 10/50/100 frames, peak)",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--model", action="append", help=f"model id (repeatable; default: {', '.join(DEFAULT_MODELS)})")
    p.add_argument("--frames", type=int, default=100, help="frames in the stack (default: 100)")
    p.add_argument("--size", type=int, default=1024, help="frame side in pixels (default: 1024)")
    p.add_argument("--marks", default="10,50,100", help="frame counts at which RSS is reported (default: 10,50,100)")
    p.add_argument("--interval", type=float, default=0.05, help="seconds between RSS samples (default: 0.05)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds one job may take")
    p.add_argument("--json", type=Path, help="also write the figures and every sample here")
    p.set_defaults(func=run)


def _status_kb(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of process ``pid`` in KiB (empty once it is gone)."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(line.split()[1])
    except OSError:
        pass
    return values


def _stop(pid: int, wait: float = 10.0) -> None:
    """SIGTERM the worker this bench started and wait until it is gone."""
    import signal

    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return  # gone
        if state in ("Z", "X"):  # exited; its parent (the bridge's spawner) reaps it
            return
        time.sleep(0.05)


def write_stack(path: Path, frames: int, size: int, seed: int = 0) -> Path:
    """A uint16 TYX ImageJ TIFF of Poisson counts (mean 20), written frame by frame."""
    import numpy as np
    import tifffile

    rng = np.random.default_rng(seed)
    pool = [rng.poisson(20, (size, size)).astype(np.uint16) for _ in range(4)]
    tifffile.imwrite(path, (pool[i % 4] for i in range(frames)), shape=(frames, size, size), dtype=np.uint16,
                     imagej=True, metadata={"axes": "TYX"})
    return path


class _Macro:
    """The polling macro's side of a job: the folder, its request and a heartbeat every 0.3 s."""

    def __init__(self, temp: Path, request: dict[str, str]):
        from emdenoise.fiji.jobdir import HEARTBEAT

        self.path = temp / "emdenoise-job-memory"
        self.path.mkdir(mode=0o700)
        (self.path / "request.txt").write_text("".join(f"{k}={v}\n" for k, v in request.items()))
        self._beat_file = self.path / HEARTBEAT
        self._beat_file.write_text(str(time.time()))
        self._stop = threading.Event()
        threading.Thread(target=self._beat, daemon=True).start()

    def _beat(self) -> None:
        while not self._stop.wait(0.3):
            try:
                self._beat_file.write_text(str(time.time()))
            except OSError:
                return

    def status(self) -> dict[str, str]:
        from emdenoise.fiji.jobdir import read_keyvalues

        try:
            return read_keyvalues(self.path / "status.txt")
        except OSError:
            return {}

    def stop(self) -> None:
        self._stop.set()


def measure(model: str, frames: int, size: int, marks: list[int], interval: float, timeout: float) -> dict:
    """One job of ``model`` on a ``frames`` x ``size``^2 stack in a fresh warm worker; its RSS figures."""
    with tempfile.TemporaryDirectory(prefix="emdenoise-bench-worker-") as scratch:
        scratch = Path(scratch)
        temp = scratch / "imagej-temp"
        temp.mkdir(mode=0o700)
        source = write_stack(scratch / "stack.tif", frames, size)
        macro = _Macro(temp, {"action": "denoise", "input": str(source), "output": str(scratch / "out.tif"),
                              "model": model})
        started = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "emdenoise.fiji.bridge", "start", str(macro.path)],
                             capture_output=True, text=True, timeout=120)
        if run.returncode != 0 or not run.stdout.startswith("started "):
            raise RuntimeError(f"bridge start failed: {run.stdout}{run.stderr}")
        pid = int(run.stdout.split()[1])
        samples, at_mark, peak_so_far = [], {}, 0
        try:
            while time.perf_counter() - started < timeout:
                status = macro.status()
                memory = _status_kb(pid)
                done = int(status.get("done") or 0)
                rss = memory.get("VmRSS", 0)
                peak_so_far = max(peak_so_far, rss)
                samples.append((round(time.perf_counter() - started, 3), done, rss))
                for mark in marks:
                    if done >= mark and mark not in at_mark:
                        at_mark[mark] = peak_so_far / 1024
                if status.get("state") in ("done", "error"):
                    if status.get("state") == "done":  # the final status carries no count: every frame is done
                        at_mark.update({mark: peak_so_far / 1024 for mark in marks if mark not in at_mark})
                    break
                time.sleep(interval)
            seconds = time.perf_counter() - started
            final = macro.status()
            hwm = _status_kb(pid).get("VmHWM", 0) / 1024
        finally:
            macro.stop()
            _stop(pid)
    if final.get("state") != "done":
        raise RuntimeError(f"the job ended {final.get('state')!r}: {final.get('message', '')}")
    return {"model": model, "frames": frames, "size": size, "seconds": seconds,
            "mpix_s": frames * size * size / 1e6 / seconds, "rss_mib_at": at_mark, "peak_rss_mib": hwm, "worker_pid": pid,
            "job_peak_memory_mib": float(final.get("peak_memory_mib") or 0), "samples": samples}


def run(args) -> int:
    if not Path("/proc/self/status").exists():
        from emdenoise.errors import UserError

        raise UserError("bench worker-memory reads /proc; it runs on Linux only.")
    marks = sorted({int(m) for m in str(args.marks).split(",") if m.strip() and int(m) <= args.frames} | {args.frames})
    results = []
    print(f"{args.frames} x {args.size}x{args.size} uint16 through the Fiji warm worker (one worker per model); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for model in args.model or DEFAULT_MODELS:
        result = measure(model, args.frames, args.size, marks, args.interval, args.timeout)
        results.append(result)
        figures = ", ".join(f"{result['rss_mib_at'].get(m, float('nan')):.0f} MiB at {m}" for m in marks)
        verdict = "within" if result["peak_rss_mib"] * 2**20 <= BAR_BYTES else "ABOVE"
        print(f"  {model}: RSS (largest so far) {figures}; peak (VmHWM) {result['peak_rss_mib']:.0f} MiB, {verdict} "
              f"1.5 GB ({BAR_BYTES / 2**20:.0f} MiB); {result['seconds']:.0f} s, {result['mpix_s']:.2f} MP/s with the model load")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items() if k != "func"},
                                         "results": results}, indent=2))
    return 0
