"""One timing job of ``emdenoise bench engine``, run in a fresh interpreter of the version
under test (this tree, or a baseline commit installed in a temporary venv).

The bench passes this file's source to ``python -P -c`` with one JSON argument and reads
one line starting with ``@@`` back. It uses only APIs that f9f4b87 already had
(``EmbeddedClient``, ``RemoteClient``, ``ServerProcess``, ``Engine.tile_plan``; ``shared_memory``
only where the version has it), so the same job times both versions. Each job is its own process: peak memory (VmHWM) is per job, and
a baseline that needs 8 GB never shares the machine with another version's process.

Jobs
----
``inproc``
    warm-up frame, then ``frames`` frames through the embedded engine; MP/s, sha256 of the
    outputs, the first output saved to ``save``, the tile plan, the process's peak memory.
``grpc``
    a real server of this version on loopback; the same frames through one stream, as
    gRPC messages (``shared_memory="off"`` where the version has the option).
``shm``
    the same through POSIX shared memory (``shared_memory="on"``; this tree only, issue
    20 item 3); ``transport`` says how the frames really travelled.
``latency``
    a real server; for each client count, that many concurrent clients each send
    ``requests`` one-frame requests; per-request seconds and the level's MP/s.
``throughput``
    a real server started with ``server_args`` (this tree only: ``--max-batch`` and
    ``--max-queue-delay-ms`` are newer than f9f4b87); one client denoises ``stacks``
    distinct stacks one after the other, then ``clients`` concurrent clients each denoise
    all of them (starting at different stacks); MP/s of both, errors, and the sha256 of
    every stack's output in each run (the parent compares them with a serial run).
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np


def _frames(count: int, size: int, dtype: str, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.poisson(20, (size, size)).astype(dtype) for _ in range(count)]


def _hwm_kb(pid: str | int = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _remote(address: str, shared_memory: str = "off"):
    """A RemoteClient of ``address``; frames as gRPC messages unless ``shared_memory`` says otherwise
    (versions before the shared-memory path have no such option and always send messages)."""
    import inspect

    from emdenoise.client import RemoteClient

    if "shared_memory" in inspect.signature(RemoteClient).parameters:
        return RemoteClient(address, shared_memory=shared_memory)
    return RemoteClient(address)


def _timed(client, frames, job, save=None) -> dict:
    options = {"gain": 1.0, "offset": 0.0}  # same normalisation in every version: the timing is of the engine
    list(client.denoise(frames[:1], job["model"], **options))  # warm-up: sessions and shape plans
    started = time.perf_counter()
    outputs = [np.asarray(out, np.float32) for out in client.denoise(frames, job["model"], frame_count=len(frames),
                                                                      **options)]
    seconds = time.perf_counter() - started
    # Hashed and saved after the clock stops: sha256 of a 4 MiB frame took 2-8 ms here, as long
    # as the engine's whole frame of ede-kernel-stem-5, and it is the bench's cost, not the engine's.
    digest = hashlib.sha256()
    for out in outputs:
        digest.update(np.ascontiguousarray(out).data)
    if save and outputs:
        np.save(save, outputs[0])
    return {"seconds": seconds, "mpix_s": sum(f.size for f in frames) / 1e6 / seconds, "sha256": digest.hexdigest()}


def inproc(job: dict) -> dict:
    from emdenoise.client import EmbeddedClient

    frames = _frames(job["frames"], job["size"], job["dtype"])
    client = EmbeddedClient(device=job["device"])
    card = client.engine.card(job["model"])
    plan = client.engine.tile_plan((job["size"], job["size"]), card)
    work = len(plan.tiles) * plan.window[0] * plan.window[1]
    result = _timed(client, frames, job, job.get("save"))
    result.update(tiles=len(plan.tiles), window=list(plan.window), work_over_frame=work / job["size"] ** 2,
                  halo_fraction=1 - job["size"] ** 2 / work, peak_rss_mib=_hwm_kb() / 1024)
    return result


def grpc(job: dict, shared_memory: str = "off") -> dict:
    from emdenoise.server.subprocess_server import ServerProcess

    frames = _frames(job["frames"], job["size"], job["dtype"])
    with ServerProcess(device=job["device"]) as server, _remote(server.address, shared_memory) as client:
        result = _timed(client, frames, job)
        result["server_peak_rss_mib"] = _hwm_kb(server.pid) / 1024
        result["transport"] = getattr(client, "last_transport", "messages")
    return result


def shm(job: dict) -> dict:
    return grpc(job, shared_memory="on")


def latency(job: dict) -> dict:
    from emdenoise.server.subprocess_server import ServerProcess

    size, requests = job["latency_size"], job["requests"]
    pool = _frames(4, size, job["dtype"], seed=1)
    levels = {}
    with ServerProcess(device=job["device"]) as server:
        with _remote(server.address) as warm:
            list(warm.denoise(pool[:1], job["model"], gain=1.0, offset=0.0))

        for clients in job["clients"]:
            seconds: list[float] = []
            errors: list[str] = []
            lock = threading.Lock()

            def one_client(index: int) -> None:
                try:
                    with _remote(server.address) as client:
                        for request in range(requests):
                            frame = pool[(index + request) % len(pool)]
                            started = time.perf_counter()
                            list(client.denoise([frame], job["model"], frame_count=1, gain=1.0, offset=0.0))
                            with lock:
                                seconds.append(time.perf_counter() - started)
                except Exception as error:  # reported, not raised: a failed level is a result
                    with lock:
                        errors.append(f"{type(error).__name__}: {error}")

            threads = [threading.Thread(target=one_client, args=(i,)) for i in range(clients)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
            levels[str(clients)] = {"seconds": seconds, "errors": errors, "wall_s": wall,
                                    "mpix_s": len(seconds) * size * size / 1e6 / wall}
        peak = _hwm_kb(server.pid) / 1024
    return {"levels": levels, "server_peak_rss_mib": peak}


def _stack_digest(client, stack, job) -> str:
    digest = hashlib.sha256()
    for out in client.denoise(list(stack), job["model"], frame_count=len(stack), gain=1.0, offset=0.0):
        digest.update(np.asarray(out, np.float32).tobytes())
    return digest.hexdigest()


def throughput(job: dict) -> dict:
    from emdenoise.server.subprocess_server import ServerProcess

    stacks = [_frames(job["depth"], job["size"], job["dtype"], seed=100 + i) for i in range(job["stacks"])]
    pixels = sum(f.size for f in stacks[0])
    clients = job["clients"]
    with ServerProcess(*job["server_args"], device=job["device"]) as server:
        with _remote(server.address) as client:
            _stack_digest(client, stacks[0], job)  # warm-up: session and shape plans
            started = time.perf_counter()
            serial = [_stack_digest(client, stack, job) for stack in stacks]
            one_seconds = time.perf_counter() - started

        digests: list[list] = [[None] * len(stacks) for _ in range(clients)]
        errors: list[str] = []
        lock = threading.Lock()
        gate = threading.Barrier(clients + 1)

        def one_client(index: int) -> None:
            with _remote(server.address) as remote:
                remote.wait_ready()
                gate.wait()
                for step in range(len(stacks)):
                    which = (index + step) % len(stacks)
                    try:
                        digests[index][which] = _stack_digest(remote, stacks[which], job)
                    except Exception as error:  # counted, not raised: errors are a figure
                        with lock:
                            errors.append(f"{type(error).__name__}: {error}")

        threads = [threading.Thread(target=one_client, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        gate.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        many_seconds = time.perf_counter() - started
        peak = _hwm_kb(server.pid) / 1024
    shared = [line.strip() for line in server.lines if line.startswith("dynamic batching")]  # printed at stop
    done = [d for row in digests for d in row if d is not None]
    same = sum(1 for row in digests for which, d in enumerate(row) if d == serial[which])
    return {"one_client_mpix_s": len(stacks) * pixels / 1e6 / one_seconds,
            "many_clients_mpix_s": clients * len(stacks) * pixels / 1e6 / many_seconds,
            "one_client_s": one_seconds, "many_clients_s": many_seconds, "stacks_done": len(done),
            "stacks_expected": clients * len(stacks), "same_as_serial": same, "errors": errors,
            "serial_digests": serial, "server_peak_rss_mib": peak, "shared_runs": shared}


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    result = {"inproc": inproc, "grpc": grpc, "shm": shm, "latency": latency, "throughput": throughput}[job["op"]](job)
    result["emdenoise_file"] = sys.modules["emdenoise"].__file__
    print("@@" + json.dumps(result), flush=True)
