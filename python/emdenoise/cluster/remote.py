"""``emdenoise.dask.denoise(..., server="host:port")``: chunks of whole frames sent to a gRPC server.

The server normalises and tiles each frame itself, so the chunks it receives are whole
frames; each worker process keeps one client (one channel) per server address.
"""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np

_CLIENTS: dict[str, object] = {}
_LOCK = threading.Lock()


def _client(address: str):
    with _LOCK:
        client = _CLIENTS.get(address)
        if client is None:
            from emdenoise.client import connect

            client = _CLIENTS[address] = connect(address)
        return client


def server_chunk(block: np.ndarray, *, address: str, model_id: str, gain, offset) -> np.ndarray:
    """Denoise the whole frames of ``block`` on the server at ``address`` (one streamed job)."""
    frames = block.reshape((-1,) + block.shape[-2:])
    job = _client(address).denoise(iter(frames), model_id, gain=gain, offset=offset, frame_count=len(frames))
    job.start()
    results = np.stack([np.asarray(frame, np.float32) for frame in job])
    return results.reshape(block.shape)


def remote_denoise(x, model_id: str, address: str, *, gain=None, offset=None):
    """Lazy array of ``x`` (whole-frame chunks) denoised by the server at ``address``."""
    _client(address).wait_ready(timeout=10)  # an unreachable server fails here, with the client's sentence
    return da.map_blocks(server_chunk, x, address=address, model_id=model_id, gain=gain, offset=offset,
                         dtype=np.float32, meta=np.empty((0,) * x.ndim, np.float32),
                         name=f"emdenoise-server-{model_id}")
