"""``emdenoise bench load``: many clients, a server killed and restarted midway (issue 22, item 7).

A bounded load test, run by hand, not in CI:

1. A serial run: one client denoises every stack through a fresh server (the reference).
2. The load run: ``--clients`` threads, each denoising its ``--stacks`` files through its own
   :class:`~emdenoise.client.RemoteClient`; when half the outputs are written the server is
   killed (SIGKILL) and restarted on the same port. The calls that failed are run again.
   Every output must then exist, hold every frame and equal the serial run's pixels; no
   failed call may have left an output or a temporary file.
3. Memory: the server's resident memory before and after ``--uploads`` uploads of large
   frames cancelled mid-stream, and after a second round (growth that repeats is a leak);
   the bar: both back within 10 % of the level before.
4. Shutdown: seconds from SIGTERM to exit with a large frame being denoised; the bar:
   less than the server's ``--grace``.

Prints one line per figure; ``--json`` also writes them. Exits 1 when an output is
missing or differs, or a bar is not met.
"""

from __future__ import annotations

import json
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "load",
        help="16 clients x 20 stacks, server killed and restarted midway; memory after cancelled uploads; SIGTERM time",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default: 16)")
    p.add_argument("--stacks", type=int, default=20, help="stacks per client (default: 20)")
    p.add_argument("--frames", type=int, default=3, help="frames per stack (default: 3)")
    p.add_argument("--size", type=int, default=64, help="frame side in pixels (default: 64)")
    p.add_argument("--model", default="ede-kernel-tem-3", help="model id (default: ede-kernel-tem-3)")
    p.add_argument("--uploads", type=int, default=8, help="cancelled uploads for the memory figure (default: 8)")
    p.add_argument("--grace", type=float, default=5.0, help="the server's --grace in seconds (default: 5)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.set_defaults(func=run)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(port: int, grace: float):
    from emdenoise.server.subprocess_server import ServerProcess

    return ServerProcess("--port", str(port), "--grace", str(grace))


def make_stacks(folder: Path, count: int, frames: int, size: int) -> list[Path]:
    """``count`` small uint16 TIFF stacks (Poisson counts), one seed each."""
    import tifffile

    paths = []
    for index in range(count):
        data = np.random.default_rng(index).poisson(30, (frames, size, size)).astype(np.uint16)
        path = folder / f"stack-{index:04d}.tif"
        tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TYX"})
        paths.append(path)
    return paths


def _denoise_one(address: str, source: Path, target: Path, model: str) -> None:
    from emdenoise.client import RemoteClient
    from emdenoise.workflow import denoise_file

    with RemoteClient(address, connect_timeout=5.0) as client:
        denoise_file(client, source, target, model_id=model)


def load_run(address: str, jobs: list[tuple[Path, Path]], clients: int, model: str,
             midway=None) -> list[tuple[Path, Path, str]]:
    """Run ``jobs`` on ``clients`` threads; ``midway()`` is called once half are written.

    Returns the failed jobs with their error sentences.
    """
    failed: list[tuple[Path, Path, str]] = []
    lock = threading.Lock()
    done = [0]
    fired = threading.Event()

    def worker(mine: list[tuple[Path, Path]]) -> None:
        for source, target in mine:
            try:
                _denoise_one(address, source, target, model)
            except Exception as error:  # a UserError sentence from the client, mostly
                with lock:
                    failed.append((source, target, f"{type(error).__name__}: {error}"))
                continue
            with lock:
                done[0] += 1
                trigger = midway is not None and not fired.is_set() and done[0] >= len(jobs) // 2
                if trigger:
                    fired.set()
            if trigger:
                midway()

    threads = [threading.Thread(target=worker, args=(jobs[i::clients],)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failed


def cancelled_uploads(address: str, count: int, size: int = 1024) -> None:
    """Start ``count`` Denoise uploads of large float32 frames, stall each mid-stream, then cancel them."""
    import grpc

    from emdenoise.v1 import denoiser_pb2 as pb
    from emdenoise.v1 import denoiser_pb2_grpc as pb_grpc
    from emdenoise.wire import frame_to_chunks

    frame = np.random.default_rng(0).gamma(3.0, 10.0, (size, size)).astype(np.float32)
    release = threading.Event()
    sent = threading.Semaphore(0)

    def requests():
        yield pb.DenoiseRequest(options=pb.DenoiseOptions(model_id="ede-kernel-tem-3", frame_count=4))
        chunks = list(frame_to_chunks(frame, 0))
        for chunk in chunks[: max(1, len(chunks) - 1)]:  # all but the last chunk: a frame held half-received
            yield pb.DenoiseRequest(chunk=chunk)
        sent.release()
        release.wait(60)

    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.DenoiserStub(channel)
        calls = [stub.Denoise(requests(), timeout=120) for _ in range(count)]
        for _ in calls:
            sent.acquire(timeout=60)
        time.sleep(1.0)  # the server holds the partial frames now
        for call in calls:
            call.cancel()
        release.set()


def sigterm_seconds(server, size: int = 2048) -> float:
    """Seconds from SIGTERM to exit while a ``size``-square frame is being denoised."""
    from emdenoise.client import RemoteClient

    frame = np.random.default_rng(1).poisson(30, (size, size)).astype(np.uint16)
    busy = threading.Thread(target=_swallow, args=(server.address, frame, RemoteClient), daemon=True)
    busy.start()
    time.sleep(2.0)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=120)
    seconds = time.monotonic() - started
    server.stop()
    return seconds


def _swallow(address, frame, client_class) -> None:
    try:
        with client_class(address) as client:
            for _ in client.denoise([frame] * 8, "classical-nlm", frame_count=8):
                pass
    except Exception:  # the server went away, as intended
        pass


def _settle(server, seconds: float = 3.0) -> int:
    time.sleep(seconds)
    return server.memory()["rss_kb"]


def run(args) -> int:
    import tifffile

    from emdenoise.errors import UserError

    if args.clients < 1 or args.stacks < 1 or args.frames < 1 or args.size < 8:
        raise UserError("bench load needs --clients, --stacks and --frames of at least 1 and --size of at least 8.")
    figures: dict[str, object] = {"clients": args.clients, "stacks": args.stacks, "frames": args.frames,
                                  "size": args.size, "model": args.model}
    with tempfile.TemporaryDirectory(prefix="emdenoise-bench-load-") as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        (folder / "serial").mkdir()
        (folder / "load").mkdir()
        sources = make_stacks(folder / "in", args.clients * args.stacks, args.frames, args.size)
        port = _free_port()
        address = f"127.0.0.1:{port}"

        server = _start(port, args.grace)
        started = time.perf_counter()
        for source in sources:
            _denoise_one(address, source, folder / "serial" / source.name, args.model)
        figures["serial_seconds"] = round(time.perf_counter() - started, 2)
        server.stop()

        server = _start(port, args.grace)
        holder = {"server": server}

        def kill_and_restart() -> None:
            victim = holder["server"]
            victim.process.kill()
            victim.stop()
            time.sleep(0.5)
            holder["server"] = _start(port, args.grace)

        jobs = [(source, folder / "load" / source.name) for source in sources]
        started = time.perf_counter()
        failed = load_run(address, jobs, args.clients, args.model, midway=kill_and_restart)
        figures["load_seconds"] = round(time.perf_counter() - started, 2)
        figures["failed_by_the_kill"] = len(failed)
        figures["failed_examples"] = sorted({message[:160] for _, _, message in failed})[:3]
        leftovers = [t.name for _, t, _ in failed if t.exists()]
        leftovers += [p.name for p in (folder / "load").iterdir() if p.name.startswith(".")]
        figures["partial_outputs_after_failures"] = len(leftovers)
        rerun = load_run(address, [(s, t) for s, t, _ in failed], args.clients, args.model)
        figures["failed_after_rerun"] = len(rerun)
        complete = identical = 0
        for source in sources:
            target = folder / "load" / source.name
            if not target.is_file():
                continue
            ours, reference = tifffile.imread(target), tifffile.imread(folder / "serial" / source.name)
            complete += ours.shape == reference.shape
            identical += ours.shape == reference.shape and np.array_equal(ours, reference)
        figures["outputs_complete"] = f"{complete}/{len(sources)}"
        figures["outputs_identical_to_serial"] = f"{identical}/{len(sources)}"

        server = holder["server"]
        _denoise_one(address, sources[0], folder / "warm.tif", args.model)  # warm the model before the baseline
        before = _settle(server)
        cancelled_uploads(address, args.uploads)
        after = _settle(server)
        cancelled_uploads(address, args.uploads)  # a second round: growth that repeats is a leak
        again = _settle(server)
        figures["rss_before_cancelled_uploads_mib"] = round(before / 1024, 1)
        figures["rss_after_cancelled_uploads_mib"] = round(after / 1024, 1)
        figures["rss_after_second_round_mib"] = round(again / 1024, 1)
        figures["rss_change_percent"] = round(100.0 * (after - before) / before, 1)
        figures["rss_change_second_round_percent"] = round(100.0 * (again - after) / after, 1)
        figures["server_alive_after_uploads"] = server.alive
        figures["sigterm_exit_seconds"] = round(sigterm_seconds(server), 2)
        figures["grace_seconds"] = args.grace
        figures["rss_within_10_percent"] = after <= 1.10 * before and again <= 1.10 * before
        figures["sigterm_within_grace"] = figures["sigterm_exit_seconds"] < args.grace

    for key, value in figures.items():
        print(f"{key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    ok = (figures["failed_after_rerun"] == 0 and figures["partial_outputs_after_failures"] == 0
          and identical == len(sources) and figures["rss_within_10_percent"] and figures["sigterm_within_grace"])
    return 0 if ok else 1
