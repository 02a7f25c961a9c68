"""One timing job of ``emdenoise bench engine``, run in a fresh interpreter of the version
under test (this tree, or a baseline commit installed in a temporary venv).

The bench passes this file's source to ``python -P -c`` with one JSON argument and reads
one line starting with ``@@`` back. It uses only APIs that f9f4b87 already had
(``EmbeddedClient``, ``RemoteClient``, ``ServerProcess``, ``Engine.tile_plan``), so the same
job times both versions. Each job is its own process: peak memory (VmHWM) is per job, and
a baseline that needs 8 GB never shares the machine with another version's process.

Jobs
----
``inproc``
    warm-up frame, then ``frames`` frames through the embedded engine; MP/s, sha256 of the
    outputs, the first output saved to ``save``, the tile plan, the process's peak memory.
``grpc``
    a real server of this version on loopback; the same frames through one stream.
``latency``
    a real server; for each client count, that many concurrent clients each send
    ``requests`` one-frame requests; per-request seconds and the level's MP/s.
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


def _timed(client, frames, job, save=None) -> dict:
    options = {"gain": 1.0, "offset": 0.0}  # same normalisation in every version: the timing is of the engine
    list(client.denoise(frames[:1], job["model"], **options))  # warm-up: sessions and shape plans
    digest = hashlib.sha256()
    started = time.perf_counter()
    for index, out in enumerate(client.denoise(frames, job["model"], frame_count=len(frames), **options)):
        out = np.asarray(out, np.float32)
        digest.update(out.tobytes())
        if index == 0 and save:
            np.save(save, out)
    seconds = time.perf_counter() - started
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


def grpc(job: dict) -> dict:
    from emdenoise.client import RemoteClient
    from emdenoise.server.subprocess_server import ServerProcess

    frames = _frames(job["frames"], job["size"], job["dtype"])
    with ServerProcess(device=job["device"]) as server, RemoteClient(server.address) as client:
        result = _timed(client, frames, job)
        result["server_peak_rss_mib"] = _hwm_kb(server.pid) / 1024
    return result


def latency(job: dict) -> dict:
    from emdenoise.client import RemoteClient
    from emdenoise.server.subprocess_server import ServerProcess

    size, requests = job["latency_size"], job["requests"]
    pool = _frames(4, size, job["dtype"], seed=1)
    levels = {}
    with ServerProcess(device=job["device"]) as server:
        with RemoteClient(server.address) as warm:
            list(warm.denoise(pool[:1], job["model"], gain=1.0, offset=0.0))

        for clients in job["clients"]:
            seconds: list[float] = []
            errors: list[str] = []
            lock = threading.Lock()

            def one_client(index: int) -> None:
                try:
                    with RemoteClient(server.address) as client:
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


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    result = {"inproc": inproc, "grpc": grpc, "latency": latency}[job["op"]](job)
    result["emdenoise_file"] = sys.modules["emdenoise"].__file__
    print("@@" + json.dumps(result), flush=True)
