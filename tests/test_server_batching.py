"""Dynamic batching across clients (issue 20, item 5): shared runs give the serial bits.

The server stacks the windows of concurrent Denoise calls for one model into one ONNX
Runtime run (:mod:`emdenoise.engine.batching`), after each frame's own normalisation.
These tests hold it to the serial result, bit for bit, with real models from export/ and
a real server on 127.0.0.1: per-frame ``min-mean`` scaling (kernel), counts with a
different gain per client (U-Net) and a ``global`` model with its card's tiles. No test
times anything; the batcher's counters say whether runs were shared.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from emdenoise.client import RemoteClient
from emdenoise.engine import Engine
from emdenoise.engine.backends import make_backend
from emdenoise.engine.batching import BatchPolicy, DynamicBatcher, batch_dimension
from emdenoise.server.app import create_server

KERNEL = "ede-kernel-stem-5"
UNET = "sim-vstunet32-stem-r2"
GLOBAL = "ede-xception-w025-tem-low"
CLIENTS = 4


def stack(seed: int, frames: int = 2, shape=(96, 80)) -> np.ndarray:
    """Poisson counts with a per-stack mean, so every frame normalises differently."""
    rng = np.random.default_rng(seed)
    return rng.poisson(10 + 5 * seed, (frames, *shape)).astype(np.uint16)


@pytest.fixture(scope="module")
def serial_engine():
    return Engine(None, device="cpu")


@pytest.fixture(scope="module")
def batching_server():
    """A server whose batcher waits (up to 5 s) for a full batch of one window per client
    while other frames are on their way through the engine, with one run at a time: frames
    that arrive during a run queue and share the next one."""
    engine = Engine(None, device="cpu", spinning=False,
                    batching=BatchPolicy(max_batch=CLIENTS, max_delay=5.0, instances=1, adaptive=False))
    server, port, _health = create_server(engine, host="127.0.0.1", port=0, max_parallel_frames=1)
    yield engine, f"127.0.0.1:{port}"
    server.stop(0)


def concurrently(address: str, jobs: list[tuple[str, np.ndarray, float]]) -> list:
    """Run each ``(model, stack, gain)`` job in its own client thread at once; their outputs."""
    results: list = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def client(index: int) -> None:
        model, frames, gain = jobs[index]
        try:
            with RemoteClient(address) as remote:
                start.wait(30)
                results[index] = np.stack(list(remote.denoise(list(frames), model, gain=gain, offset=0.0,
                                                              frame_count=len(frames))))
        except Exception as error:  # reported by the test
            results[index] = error

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return results


@pytest.mark.parametrize("model", [KERNEL, UNET, GLOBAL])
def test_concurrent_clients_get_the_serial_bits(model, batching_server, serial_engine):
    engine, address = batching_server
    jobs = [(model, stack(seed, frames=4), 1.0 + 0.5 * seed) for seed in range(CLIENTS)]
    before = engine._backend(engine.card(model)).batched_calls
    results = concurrently(address, jobs)
    for (model_id, frames, gain), result in zip(jobs, results):
        assert not isinstance(result, Exception), result
        card = serial_engine.card(model_id)
        serial = np.stack([serial_engine.denoise_frame(f, card, gain=gain, offset=0.0) for f in frames])
        assert result.dtype == np.float32 and np.array_equal(result, serial)
    batcher = engine._backend(engine.card(model))
    assert isinstance(batcher, DynamicBatcher)
    assert batcher.batched_calls > before  # the frames did share runs


def test_two_models_and_two_frame_sizes_at_once(serial_engine):
    """Defaults-like settings (short delay, two runs at once): whatever shares a run, the bits are serial."""
    engine = Engine(None, device="cpu", spinning=False, batching=BatchPolicy(max_batch=8, max_delay=0.02, instances=2))
    server, port, _health = create_server(engine, host="127.0.0.1", port=0, max_parallel_frames=2)
    try:
        jobs = [(KERNEL if i % 2 else UNET, stack(10 + i, frames=3, shape=(96, 80) if i % 3 else (64, 72)), 1.0)
                for i in range(8)]
        results = concurrently(f"127.0.0.1:{port}", jobs)
    finally:
        server.stop(0)
    for (model_id, frames, gain), result in zip(jobs, results):
        card = serial_engine.card(model_id)
        serial = np.stack([serial_engine.denoise_frame(f, card, gain=gain, offset=0.0) for f in frames])
        assert np.array_equal(result, serial)


def _run_together(batcher: DynamicBatcher, batches: list[np.ndarray], limits=None) -> list:
    """Each batch from its own thread; all are declared (``caller``) before any is submitted."""
    out: list = [None] * len(batches)
    start = threading.Barrier(len(batches))

    def call(index):
        with batcher.caller():
            start.wait(30)
            out[index] = batcher.run(batches[index], limit=None if limits is None else limits[index])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return out


@pytest.fixture(scope="module")
def kernel_backend(serial_engine):
    card = serial_engine.card(KERNEL)
    return make_backend(card, ["CPUExecutionProvider"])


def windows(seed: int, count: int, side: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.poisson(20, (count, 1, side, side)) / 20).astype(np.float32)


def test_calls_of_one_shape_share_one_run_and_get_their_own_rows(kernel_backend):
    assert batch_dimension(kernel_backend.session) is None  # ['N', 1, 'H', 'W']: free batch dimension
    batches = [windows(1, 1), windows(2, 2), windows(3, 1)]
    # The batch fills (4 windows) long before the 60 s delay: one run, whatever the timing.
    batcher = DynamicBatcher(kernel_backend, BatchPolicy(max_batch=4, max_delay=60.0))
    out = _run_together(batcher, batches)
    assert batcher.runs == 1 and batcher.batched_calls == 3
    for batch, result in zip(batches, out):
        assert np.array_equal(result, kernel_backend.run(batch))


def test_windows_of_another_shape_or_beyond_a_limit_run_apart(kernel_backend):
    batcher = DynamicBatcher(kernel_backend, BatchPolicy(max_batch=8, max_delay=0.0))
    batches = [windows(4, 1, 64), windows(5, 1, 48), windows(6, 3, 64)]
    out = _run_together(batcher, batches, limits=[8, 8, 1])  # the third fits no shared run
    assert batcher.batched_calls == 0
    for batch, result in zip(batches, out):
        assert np.array_equal(result, kernel_backend.run(batch))


def test_a_failed_shared_run_fails_only_the_call_that_caused_it(kernel_backend):
    class Picky:
        """Refuses any batch holding a NaN, as a frame running out of memory would fail."""

        provider = "test"

        def run(self, batch):
            if np.isnan(batch).any():
                raise MemoryError("simulated: failed to allocate")
            return kernel_backend.run(batch)

    bad = windows(7, 1)
    bad[0, 0, 0, 0] = np.nan
    batches = [windows(8, 1), bad, windows(9, 1)]
    batcher = DynamicBatcher(Picky(), BatchPolicy(max_batch=3, max_delay=60.0))
    out: list = [None] * 3
    start = threading.Barrier(3)

    def call(index):
        with batcher.caller():
            start.wait(30)
            try:
                out[index] = batcher.run(batches[index])
            except MemoryError as error:
                out[index] = error

    threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert isinstance(out[1], MemoryError)
    assert np.array_equal(out[0], kernel_backend.run(batches[0]))
    assert np.array_equal(out[2], kernel_backend.run(batches[2]))


def test_a_lone_call_does_not_wait_for_company_that_cannot_come(kernel_backend):
    """Nothing else declared: the leader runs at once although the delay is an hour (the test
    would hang otherwise), alone."""
    batcher = DynamicBatcher(kernel_backend, BatchPolicy(max_batch=8, max_delay=3600.0))
    batch = windows(11, 2)
    with batcher.caller():
        result = batcher.run(batch)
    assert batcher.runs == 0 and np.array_equal(result, kernel_backend.run(batch))


def test_a_leader_waits_no_longer_than_a_run_took_for_a_frame_that_does_not_come(kernel_backend):
    """Another frame is declared but never sends its windows: once a run of this shape was
    timed, the leader stops waiting after about that long instead of the hour allowed."""
    batcher = DynamicBatcher(kernel_backend, BatchPolicy(max_batch=8, max_delay=3600.0))
    batch = windows(12, 1)
    batcher.run(batch)  # times a run of this window shape
    declared, release = threading.Event(), threading.Event()

    def silent_frame():
        with batcher.caller():
            declared.set()
            release.wait(60)

    other = threading.Thread(target=silent_frame)
    other.start()
    declared.wait(30)
    try:
        with batcher.caller():
            result = batcher.run(batch)
    finally:
        release.set()
        other.join(30)
    assert np.array_equal(result, kernel_backend.run(batch))


def test_a_graph_with_a_fixed_batch_of_one_is_not_batched():
    class Session:
        def __init__(self, shape):
            self.shape = shape

        def get_inputs(self):
            return [type("Input", (), {"shape": self.shape})()]

    assert batch_dimension(Session([1, 1, "H", "W"])) == 1
    assert batch_dimension(Session(["batch", 1, "H", "W"])) is None
    assert batch_dimension(Session([None, 1, 64, 64])) is None


def test_the_engine_wraps_only_onnx_models_whose_batch_is_free():
    engine = Engine(None, device="cpu", batching=BatchPolicy(max_batch=4))
    assert isinstance(engine._backend(engine.card(KERNEL)), DynamicBatcher)
    assert not isinstance(engine._backend(engine.card("classical-gaussian3")), DynamicBatcher)
    assert Engine(None, device="cpu", batching=BatchPolicy(max_batch=1)).batching is None
