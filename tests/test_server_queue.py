"""Calls beyond --max-streams wait in a bounded queue; clients retry a busy server (issue 20, item 5).

A real server on 127.0.0.1 with one stream allowed: a stalled upload holds that place.
A second call then waits in the queue and is served once the place frees; a call that
finds the queue full is refused at once with RESOURCE_EXHAUSTED and a sentence saying the
server is busy and what to do; a queued call that waits its whole time is refused too.
The client retries a refused call with backoff and succeeds once the place frees, sending
again the frames of a generator it had started to send. No test times anything: each
waits for the state it needs (a call queued, a refusal seen) before it goes on.
"""

from __future__ import annotations

import random
import threading
import time

import grpc
import numpy as np
import pytest

from emdenoise.client import RemoteClient
from emdenoise.client.retry import NO_RETRY, Replay, RetryPolicy, retryable
from emdenoise.engine import Engine
from emdenoise.errors import ResourceExhausted
from emdenoise.server.app import create_server
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.v1 import denoiser_pb2_grpc as pb_grpc

MODEL = "ede-kernel-stem-5"


def frames(seed: int = 0, count: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.poisson(20, (64, 48)).astype(np.uint16) for _ in range(count)]


@pytest.fixture(scope="module")
def engine():
    return Engine(None, device="cpu")


def serial(engine, stack):
    card = engine.card(MODEL)
    return [engine.denoise_frame(f, card) for f in stack]


def start_server(engine, **limits):
    server, port, _health = create_server(engine, host="127.0.0.1", port=0, max_streams=1, **limits)
    return server, f"127.0.0.1:{port}"


class Holder:
    """A Denoise stream that sends its options and then nothing until released: it holds one place."""

    def __init__(self, address: str):
        self.release = threading.Event()
        self.channel = grpc.insecure_channel(address)
        self.call = pb_grpc.DenoiserStub(self.channel).Denoise(self._requests(), timeout=120)
        self.started = next(self.call)  # the server took the call: the place is held

    def _requests(self):
        yield pb.DenoiseRequest(options=pb.DenoiseOptions(model_id=MODEL))
        self.release.wait(120)

    def free(self) -> None:
        """End the upload (empty stack: the server answers INVALID_ARGUMENT and frees the place)."""
        self.release.set()
        try:
            for _ in self.call:
                pass
        except grpc.RpcError:
            pass
        self.channel.close()


def wait_until(condition, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


def test_a_call_beyond_the_limit_waits_and_is_served_and_a_full_queue_refuses_clearly(engine):
    server, address = start_server(engine, max_queued=1)
    limits = server.emdenoise_limits
    holder = Holder(address)
    queued: dict = {}
    try:
        def queued_client():
            with RemoteClient(address, retry=NO_RETRY) as client:
                queued["out"] = list(client.denoise(frames(1), MODEL))

        thread = threading.Thread(target=queued_client)
        thread.start()
        wait_until(lambda: limits.streams.waiting == 1, "the second call queued")
        with RemoteClient(address, retry=NO_RETRY) as client:  # the queue (1) is full: refused at once
            with pytest.raises(ResourceExhausted) as refused:
                list(client.denoise(frames(2), MODEL))
        message = str(refused.value)
        assert "the server is busy: 1 streams are running and 1 more are waiting" in message
        assert "try again in a minute" in message and "--max-queued" in message
        assert thread.is_alive() and "out" not in queued  # the queued call still waits...
        holder.free()
        thread.join(120)
        assert all(np.array_equal(a, b) for a, b in zip(queued["out"], serial(engine, frames(1))))  # ...and is served
        assert limits.streams.active == 0 and limits.streams.waiting == 0
    finally:
        holder.release.set()
        server.stop(0)


def test_a_queued_call_that_waits_its_whole_time_is_refused(engine):
    server, address = start_server(engine, max_queued=4, queue_seconds=0.5)
    holder = Holder(address)
    try:
        with RemoteClient(address, retry=NO_RETRY) as client:
            with pytest.raises(ResourceExhausted, match="the server stayed busy: this call waited 0.5 s in the queue"):
                list(client.denoise(frames(3), MODEL))
        assert server.emdenoise_limits.streams.waiting == 0
    finally:
        holder.free()
        server.stop(0)


def test_a_client_that_leaves_the_queue_frees_its_place_in_it(engine):
    server, address = start_server(engine, max_queued=1)
    limits = server.emdenoise_limits
    holder = Holder(address)
    try:
        with RemoteClient(address, retry=NO_RETRY) as client:
            job = client.denoise(frames(4), MODEL)
            outcome: list = []

            def wait_for_start():
                try:
                    job.start()
                    outcome.append("started")
                except Exception as error:
                    outcome.append(str(error))

            waiter = threading.Thread(target=wait_for_start)
            waiter.start()
            wait_until(lambda: limits.streams.waiting == 1, "the call queued")
            job.cancel()
            waiter.join(30)
        assert outcome == ["the job was cancelled."]
        wait_until(lambda: limits.streams.waiting == 0, "the cancelled call left the queue")
        assert limits.streams.active == 1  # the holder's place only
    finally:
        holder.free()
        server.stop(0)


class ObservedRetry(RetryPolicy):
    """A short backoff that tells the test each time a refused call is about to be retried."""

    def __init__(self, **settings):
        super().__init__(**settings)
        object.__setattr__(self, "refusals", [])
        object.__setattr__(self, "refused", threading.Event())

    def delay(self, retry, rng=None):
        self.refusals.append(retry)
        self.refused.set()
        return super().delay(retry, rng)


def test_the_client_retries_with_backoff_and_succeeds_when_the_place_frees(engine):
    server, address = start_server(engine, max_queued=0)  # no queue: a second call is refused at once
    holder = Holder(address)
    policy = ObservedRetry(attempts=50, initial=0.05, maximum=0.2)
    sent: list[int] = []

    def stack():  # a generator: frames taken by a refused attempt are sent again from the client's copy
        for index, frame in enumerate(frames(5, count=3)):
            sent.append(index)
            yield frame

    freer = threading.Thread(target=lambda: (policy.refused.wait(60), holder.free()))
    freer.start()
    try:
        with RemoteClient(address, retry=policy) as client:
            out = list(client.denoise(stack(), MODEL, frame_count=3))
        freer.join(60)
        assert policy.refusals and policy.refusals == list(range(len(policy.refusals)))  # backing off further each time
        assert sent == [0, 1, 2]  # each frame taken once from the generator
        assert len(out) == 3 and all(np.array_equal(a, b) for a, b in zip(out, serial(engine, frames(5, count=3))))
    finally:
        holder.release.set()
        server.stop(0)


def test_retries_are_bounded_and_end_with_the_busy_sentence(engine):
    server, address = start_server(engine, max_queued=0)
    holder = Holder(address)
    policy = ObservedRetry(attempts=3, initial=0.01, maximum=0.02)
    try:
        with RemoteClient(address, retry=policy) as client:
            with pytest.raises(ResourceExhausted, match="the server is busy"):
                list(client.denoise(frames(6), MODEL))
        assert policy.refusals == [0, 1]  # three tries: two backoffs
    finally:
        holder.free()
        server.stop(0)


def test_backoff_grows_exponentially_with_jitter_within_bounds():
    policy = RetryPolicy(attempts=8, initial=0.25, maximum=2.0)
    rng = random.Random(0)
    for retry, step in enumerate([0.25, 0.5, 1.0, 2.0, 2.0]):
        delays = [policy.delay(retry, rng) for _ in range(200)]
        assert min(delays) >= step / 2 and max(delays) <= step
        assert len(set(delays)) > 100  # jittered, not in step


def test_only_busy_or_unreachable_is_retried():
    class Failure(grpc.RpcError):
        def __init__(self, code, details=""):
            self._code, self._details = code, details

        def code(self):
            return self._code

        def details(self):
            return self._details

    assert retryable(Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "the server is busy"))
    assert retryable(Failure(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"))
    assert not retryable(Failure(grpc.StatusCode.UNAVAILABLE, "SSL routines:WRONG_VERSION_NUMBER"))
    assert not retryable(Failure(grpc.StatusCode.INVALID_ARGUMENT, "bad gain"))
    assert not retryable(Failure(grpc.StatusCode.CANCELLED))


def test_replay_sends_kept_items_again_until_committed():
    taken: list[int] = []

    def source():
        for value in range(5):
            taken.append(value)
            yield value

    replay = Replay(source())
    first = replay.attempt()
    assert [next(first), next(first)] == [0, 1]
    second = replay.attempt()  # a retry: the first attempt's items again, then the rest
    assert next(second) == 0 and next(second) == 1
    assert list(first) == []  # the failed attempt takes nothing more from the source
    replay.commit()
    assert list(second) == [2, 3, 4]
    assert taken == [0, 1, 2, 3, 4]


def test_replay_loses_no_item_an_ended_attempt_was_waiting_for_and_commit_never_waits_for_the_source():
    waiting, gate = threading.Event(), threading.Event()

    def source():
        yield 0
        waiting.set()
        gate.wait(30)  # a slow reader: the refused attempt's request thread blocks here
        yield 1
        yield 2

    replay = Replay(source())
    first = replay.attempt()
    assert next(first) == 0
    stuck: list = []
    reader = threading.Thread(target=lambda: stuck.append(next(first, "ended")))
    reader.start()
    waiting.wait(30)
    second = replay.attempt()  # the retry starts while the first attempt still waits for item 1
    assert next(second) == 0
    replay.commit()  # returns although the source is blocked
    gate.set()
    reader.join(30)
    assert stuck == ["ended"]  # the ended attempt sends nothing more...
    assert list(second) == [1, 2]  # ...and its item goes to the current one
