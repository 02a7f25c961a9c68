"""Cancelled uploads give back their memory and their stream at once (issue 22, item 5).

Before: a servicer waiting for the next chunk of a cancelled upload waited out the whole
idle limit (120 s) holding the partial frame and a stream slot; grpc kept the upload
reader's frame (and its last 2 MiB chunk) in a reference cycle; and glibc kept what the
worker threads freed in per-thread arenas. The server's resident memory stood 40 % above
its level before 8 cancelled 4 MiB uploads, and higher after each further round.
"""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np

from emdenoise.bench.load import cancelled_uploads
from emdenoise.client import RemoteClient
from emdenoise.client.retry import NO_RETRY
from emdenoise.server.subprocess_server import ServerProcess, process_memory
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.v1 import denoiser_pb2_grpc as pb_grpc
from emdenoise.wire import frame_to_chunks

MODEL = "ede-kernel-tem-3"


def rss_mib(pid: int, settle: float = 3.0) -> float:
    time.sleep(settle)
    return process_memory(pid)["rss_kb"] / 1024


def test_memory_is_back_within_10_percent_after_cancelled_uploads():
    with ServerProcess() as server:
        with RemoteClient(server.address) as client:  # the model and the pools are warm before the baseline
            list(client.denoise([np.ones((1024, 1024), np.float32)], MODEL))
        before = rss_mib(server.pid)
        rounds = []
        for _ in range(3):  # growth that repeats round after round would be a leak
            cancelled_uploads(server.address, 8)
            rounds.append(rss_mib(server.pid))
        print(f"server RSS {before:.1f} MiB before, " + ", ".join(f"{r:.1f}" for r in rounds)
              + " MiB after each round of 8 cancelled 4 MiB uploads")
        for after in rounds:
            assert after <= 1.10 * before, (before, rounds)
        assert server.alive


def test_a_cancelled_upload_frees_its_stream_at_once():
    """With one stream allowed (and no queue), a new call is served right after an upload is cancelled mid-frame."""
    with ServerProcess("--max-streams", "1", "--max-queued", "0") as server:
        release = threading.Event()

        def requests():
            yield pb.DenoiseRequest(options=pb.DenoiseOptions(model_id=MODEL, frame_count=1))
            yield pb.DenoiseRequest(chunk=next(iter(frame_to_chunks(np.ones((1024, 1024), np.float32), 0))))
            release.wait(60)

        try:
            with grpc.insecure_channel(server.address) as channel:
                call = pb_grpc.DenoiserStub(channel).Denoise(requests(), timeout=60)
                time.sleep(1.0)  # the server holds the half-received frame
                call.cancel()
            time.sleep(1.0)
            with RemoteClient(server.address, retry=NO_RETRY) as client:  # refused if the place were still held
                (result,) = list(client.denoise([np.ones((16, 16), np.uint16)], MODEL))
            assert result.shape == (16, 16)
        finally:
            release.set()
