"""Dynamic batching: windows of concurrent calls for one model stacked into one model run.

Triton's dynamic batcher, in small: each call of :meth:`DynamicBatcher.run` brings a batch
of windows (the tiles of one frame, already normalised by the engine, frame by frame); the
oldest waiting call leads. It waits at most ``max_delay`` seconds (counted from its own
arrival) for later calls with windows of the same shape, then stacks them all into one
ONNX Runtime run of at most ``max_batch`` windows and hands each call its own rows back.
While ``instances`` runs are already in progress, calls queue and the next leader takes
what gathered meanwhile, so a busy model batches without any delay at all.

Unlike Triton's, the wait is only spent when it can pay: frames being denoised declare
themselves (:meth:`DynamicBatcher.caller`, for the whole frame), and a leader stops
waiting as soon as every declared frame is queued or in a run, so a lone client never
waits for company that cannot come; nor does it wait longer than a run of one call of its
window shape took so far (a batch can save at most that), so a model whose runs take
less than the delay (a small kernel: 0.4 ms for 256^2) is not held up by it.

Only the session call is shared: normalisation, tiling and stitching stay per frame in the
caller's thread, so frames with different gains, offsets or ``global`` per-frame scaling
batch together and each gets exactly the rows it sent. ONNX Runtime's CPU kernels compute
each row of a batch alone, so a row's output has the same bits whichever rows share its
run (``tests/test_server_batching.py`` checks that against serial runs through a real server).

A graph whose input has a fixed batch dimension of 1 is never batched
(:func:`batch_dimension`); the engine then runs its calls one by one, as before.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

#: Default longest wait of a call for others to share its run (``serve --max-queue-delay-ms``).
DEFAULT_MAX_DELAY = 0.002
#: Default most windows in one batched run (``serve --max-batch``).
DEFAULT_MAX_BATCH = 8


@dataclass(frozen=True)
class BatchPolicy:
    """How calls for one model are batched.

    Parameters
    ----------
    max_batch : int
        Most windows stacked into one run (1: no batching across calls).
    max_delay : float
        Seconds the oldest waiting call may wait for others before its run starts.
    instances : int
        Runs of one model at the same time (each takes a batch).
    adaptive : bool
        Wait no longer than a run of one call of the same window shape took so far
        (False: the whole ``max_delay`` while declared frames may still come; tests use it).
    """

    max_batch: int = DEFAULT_MAX_BATCH
    max_delay: float = DEFAULT_MAX_DELAY
    instances: int = 1
    adaptive: bool = True

    def __post_init__(self):
        object.__setattr__(self, "max_batch", max(1, int(self.max_batch)))
        object.__setattr__(self, "max_delay", max(0.0, float(self.max_delay)))
        object.__setattr__(self, "instances", max(1, int(self.instances)))

    @property
    def enabled(self) -> bool:
        """True when calls may share a run (``max_batch`` above 1)."""
        return self.max_batch > 1


def batch_dimension(session) -> int | None:
    """The fixed batch size of an ONNX Runtime session's first input; None when it is free.

    Parameters
    ----------
    session : onnxruntime.InferenceSession
        The model's session.

    Returns
    -------
    int or None
        The leading dimension when the graph fixes it (a number), None when it is symbolic.
    """
    shape = session.get_inputs()[0].shape
    first = shape[0] if shape else None
    return first if isinstance(first, int) and first > 0 else None


class _Call:
    """One caller's windows, waiting for a run, and then its rows of the output (or the error)."""

    __slots__ = ("batch", "limit", "arrived", "taken", "done", "result", "error", "wake")

    def __init__(self, batch: np.ndarray, limit: int, lock: threading.Lock):
        self.wake = threading.Condition(lock)  # this caller's own wake-up: no thundering herd of 16 threads
        self.batch = batch
        self.limit = limit
        self.arrived = time.monotonic()
        self.taken = False
        self.done = False
        self.result = None
        self.error: BaseException | None = None


class DynamicBatcher:
    """A backend whose :meth:`run` stacks the windows of concurrent calls into shared runs.

    Parameters
    ----------
    backend : object
        What runs a batch: ``backend.run(batch)`` with a float32 array of shape
        (N, 1, H, W) returning one of the same leading size (:class:`OnnxBackend`).
    policy : BatchPolicy
        Largest batch, longest delay, runs at once.

    Notes
    -----
    No thread of its own: the oldest waiting caller leads the run, so nothing is left
    running when the engine is dropped. A failed shared run is redone call by call, so one
    call's error (its frame ran out of memory, say) reaches that call alone.
    """

    def __init__(self, backend, policy: BatchPolicy):
        self.backend = backend
        self.policy = policy
        self.provider = getattr(backend, "provider", "")
        self._pending: list[_Call] = []
        self._running = 0
        self._inside = 0  # frames between caller()'s entry and exit
        self._in_runs = 0  # calls of the runs in progress
        self._seconds: dict[tuple, float] = {}  # window shape -> seconds one call's share of a run took (running mean)
        self._lock = threading.Lock()
        self.runs = 0  # shared runs made (for tests and the log)
        self.batched_calls = 0  # calls that shared a run with another

    @contextmanager
    def caller(self):
        """Declare one frame on its way to :meth:`run` (a leader may wait for its windows)
        until the block ends. Calls of :meth:`run` outside such a block never make a leader wait."""
        with self._lock:
            self._inside += 1
        try:
            yield self
        finally:
            with self._lock:
                self._inside -= 1
                self._wake_head()

    def run(self, batch: np.ndarray, *, limit: int | None = None) -> np.ndarray:
        """Model output for ``batch``, computed in a run shared with concurrent calls.

        Parameters
        ----------
        batch : ndarray
            float32 windows, shape (N, 1, H, W), normalised by the caller.
        limit : int, optional
            Most windows the run holding these may take (the engine's memory budget for
            this window shape); default :attr:`BatchPolicy.max_batch`.

        Returns
        -------
        ndarray
            float32, the model's output rows for ``batch`` (same bits as ``backend.run(batch)``).
        """
        call = _Call(batch, max(1, min(int(limit or self.policy.max_batch), self.policy.max_batch)), self._lock)
        with self._lock:
            self._pending.append(call)
            self._wake_head()
            group = self._wait_or_lead(call)
        if group is None:  # another caller ran it
            return self._outcome(call)
        try:
            self._execute(group)
        finally:
            with self._lock:
                self._running -= 1
                self._in_runs -= len(group)
                for member in group:
                    if member.result is None and member.error is None:  # the leader was interrupted
                        member.error = RuntimeError("the shared model run was interrupted; send the frame again.")
                    member.done = True
                    member.wake.notify()
                self._wake_head()  # a run's place is free
        return self._outcome(call)

    @staticmethod
    def _outcome(call: _Call) -> np.ndarray:
        if call.error is not None:
            error, call.error = call.error, None
            raise error
        result, call.result = call.result, None
        return result

    def _wait_or_lead(self, call: _Call) -> list[_Call] | None:
        """Under the lock: wait until ``call`` is done (None) or leads a group it takes (the group)."""
        while not call.done:
            if call.taken or self._running >= self.policy.instances or self._pending[0] is not call:
                call.wake.wait()
                continue
            group = self._gather(call)
            windows = sum(len(member.batch) for member in group)
            delay = self.policy.max_delay
            if self.policy.adaptive:
                delay = min(delay, self._seconds.get(call.batch.shape[1:], delay))
            remaining = call.arrived + delay - time.monotonic()
            coming = self._inside - len(self._pending) - self._in_runs  # declared frames not queued yet
            if windows >= call.limit or remaining <= 0 or coming <= 0:
                for member in group:
                    member.taken = True
                    self._pending.remove(member)
                self._running += 1
                self._in_runs += len(group)
                self._wake_head()  # the next oldest may lead while this group runs
                return group
            call.wake.wait(remaining)
        return None

    def _wake_head(self) -> None:
        """Under the lock: the oldest waiting call looks again (it may lead now, or stop waiting)."""
        if self._pending:
            self._pending[0].wake.notify()

    def _gather(self, head: _Call) -> list[_Call]:
        """``head`` and the later calls of the same window shape that fit its and their limits."""
        group = [head]
        windows = len(head.batch)
        limit = head.limit
        shape = head.batch.shape[1:]
        for other in self._pending:
            if other is head or other.taken or other.batch.shape[1:] != shape or other.batch.dtype != head.batch.dtype:
                continue
            if windows + len(other.batch) > min(limit, other.limit):
                continue
            group.append(other)
            windows += len(other.batch)
            limit = min(limit, other.limit)
        return group

    def _execute(self, group: list[_Call]) -> None:
        """Run ``group`` as one batch (call by call when that fails) and give each call its rows."""
        shape = group[0].batch.shape[1:]
        started = time.monotonic()
        if len(group) == 1:
            self._run_alone(group[0])
            self._timed(shape, time.monotonic() - started)
            return
        self.runs += 1
        self.batched_calls += len(group)
        try:
            output = self.backend.run(np.concatenate([member.batch for member in group]))
        except Exception:
            for member in group:
                self._run_alone(member)
            return
        self._timed(shape, (time.monotonic() - started) / len(group))
        start = 0
        for member in group:
            stop = start + len(member.batch)
            member.result = output[start:stop]
            member.batch = None
            start = stop

    def _timed(self, shape: tuple, seconds: float) -> None:
        """Fold one call's share of a run into the running mean for its window shape."""
        with self._lock:
            before = self._seconds.get(shape)
            self._seconds[shape] = seconds if before is None else 0.8 * before + 0.2 * seconds

    def _run_alone(self, call: _Call) -> None:
        try:
            call.result = self.backend.run(call.batch)
        except Exception as error:  # raised again in the caller's thread
            call.error = error
        call.batch = None


__all__ = ["BatchPolicy", "DEFAULT_MAX_BATCH", "DEFAULT_MAX_DELAY", "DynamicBatcher", "batch_dimension"]
