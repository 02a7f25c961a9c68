"""Frames through POSIX shared memory between a client and a server on one host (issue 20, item 3).

Real servers on 127.0.0.1 (one in this process, and child processes where one side is
killed) and real ONNX Runtime: results through shared memory are the same bits as
through gRPC messages; a segment of another user, a missing segment, a wrong key or a
slot outside the segment are refused with a sentence; and no segment is left in
/dev/shm after a normal run, after the client is killed with SIGKILL in the middle of a
stream, after the server is, or when a client dies before any server mapped its segment.
A client keeps its segment between calls and the server its mapping: the second call maps
nothing, a client killed between calls has its segment freed, a restarted server does not
trust a kept segment, two clients never share one, and results lent out of a slot (no copy)
are never overwritten.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tifffile

from emdenoise.client import RemoteClient
from emdenoise.client.shared_call import SharedCall, is_loopback, parse_mode, resolve_mode
from emdenoise.engine import Engine
from emdenoise.errors import UserError
from emdenoise.server.app import create_server
from emdenoise.server.subprocess_server import ServerProcess
from emdenoise.shm import segments
from emdenoise.shm.ring import SharedRing
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.v1 import denoiser_pb2_grpc as pb_grpc

pytestmark = pytest.mark.skipif(not segments.available(), reason="needs Linux with a writable /dev/shm")

MODEL = "ede-kernel-stem-5"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def address():
    engine = Engine(None, device="cpu")
    server, port, _health = create_server(engine, port=0)
    yield f"127.0.0.1:{port}"
    server.stop(0)


def frames(shape=(256, 192), count=4, dtype=np.uint16, seed=5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.poisson(20, shape).astype(dtype) for _ in range(count)]


def denoised(address, stack, mode, **options) -> tuple[list[np.ndarray], str]:
    with RemoteClient(address, shared_memory=mode) as client:
        out = list(client.denoise(stack, MODEL, frame_count=len(stack), **options))
        return out, client.last_transport


def segments_of(pid: int) -> list[str]:
    """Names under /dev/shm that process ``pid`` created."""
    return [n for n in os.listdir(segments.SHM_DIR) if (segments.creator(n) or (None,))[0] == pid]


def mapped_segments(pid: int) -> list[str]:
    """Shared-memory segments process ``pid`` still maps (removed names show as '(deleted)')."""
    return [line for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if segments.PREFIX in line]


def wait_until(condition, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {limit:.0f} s")
        time.sleep(0.05)


def raw_call(address, options: pb.DenoiseOptions, *items: pb.DenoiseRequest):
    """Responses of a Denoise call sending ``options`` and ``items`` as they are, and the error if any."""
    with grpc.insecure_channel(address) as channel:
        call = pb_grpc.DenoiserStub(channel).Denoise(iter([pb.DenoiseRequest(options=options), *items]))
        responses = []
        try:
            for response in call:
                responses.append(response)
        except grpc.RpcError as error:
            return responses, error
        return responses, None


# -- results -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.uint8])
def test_results_through_shared_memory_are_the_bits_of_the_message_path(address, dtype):
    stack = frames(dtype=dtype)
    by_messages, how = denoised(address, stack, "off", gain=1.0, offset=0.0)
    assert how == "messages"
    shared, how = denoised(address, stack, "on", gain=1.0, offset=0.0)
    assert how == "shared memory"
    assert len(shared) == len(stack)
    for a, b in zip(by_messages, shared):
        assert a.dtype == b.dtype == np.float32 and np.array_equal(a, b)
    assert segments_of(os.getpid()) == []


def test_auto_uses_shared_memory_for_a_loopback_server_and_frames_too_big_for_a_slot_go_as_chunks(address):
    # the ring is sized for the first frame; the larger second one travels as chunks in the same call
    stack = [frames((128, 128), 1)[0], frames((300, 260), 1, seed=6)[0], frames((128, 128), 1, seed=7)[0]]
    by_messages, _ = denoised(address, stack, "off")
    shared, how = denoised(address, stack, "auto")
    assert how == "shared memory"
    assert all(np.array_equal(a, b) for a, b in zip(by_messages, shared)) and len(shared) == 3
    assert segments_of(os.getpid()) == []


def test_a_long_stack_reuses_the_slots_and_a_big_endian_frame_is_swapped(address):
    stack = frames((64, 64), 11, seed=9) + [frames((64, 64), 1, seed=10)[0].astype(">u2")]
    by_messages, _ = denoised(address, stack, "off", gain=1.0, offset=0.0)
    shared, how = denoised(address, stack, "on", gain=1.0, offset=0.0)
    assert how == "shared memory"
    assert all(np.array_equal(a, b) for a, b in zip(by_messages, shared)) and len(shared) == 12


def test_frames_go_as_chunks_when_no_slot_comes_free_because_results_are_not_read(address, monkeypatch):
    # A caller that reads no result keeps every slot taken; rather than wait (and let the server end the
    # call as idle), later frames go as chunks. Here no result is read until the source is spent, so
    # frames 0-3 take the 4 slots and 4-9 go as chunks, in one call.
    from emdenoise.shm import ring

    monkeypatch.setattr(ring, "SLOT_PATIENCE", 0.0)
    stack = frames((64, 64), 10, seed=11)
    spent = threading.Event()

    def source():
        yield from stack
        spent.set()

    by_messages, _ = denoised(address, stack, "off")
    with RemoteClient(address, shared_memory="on") as client:
        job = client.denoise(source(), MODEL, frame_count=len(stack))
        job.start()
        assert spent.wait(60), "the client did not send every frame"
        shared = list(job)
        assert client.last_transport == "shared memory"
    assert len(shared) == 10 and all(np.array_equal(a, b) for a, b in zip(by_messages, shared))
    assert segments_of(os.getpid()) == []


def test_a_user_error_after_some_frames_still_arrives_as_its_sentence(address):
    stack = frames((64, 64), 2) + [np.zeros((2, 2, 2), np.uint16)]
    with RemoteClient(address, shared_memory="on") as client:
        with pytest.raises(UserError, match="2-D frames"):
            list(client.denoise(stack, MODEL))
    assert segments_of(os.getpid()) == []


def test_the_command_line_switch_gives_the_same_file_either_way_and_refuses_unknown_values(server, calibrated_stack,
                                                                                          tmp_path):
    def run(*args, env=None):
        return subprocess.run([sys.executable, "-m", "emdenoise", *map(str, args)], capture_output=True, text=True,
                              timeout=300, env=dict(os.environ, **(env or {})))

    outputs = {}
    for mode, env in (("on", None), ("off", None), (None, {"EMDENOISE_SHARED_MEMORY": "on"})):
        out = tmp_path / f"{mode or 'env'}.tif"
        switch = ["--shared-memory", mode] if mode else []
        done = run("denoise", calibrated_stack, "-o", out, "--server", server.address, *switch, env=env)
        assert done.returncode == 0, done.stderr
        outputs[mode] = tifffile.imread(out)
    assert np.array_equal(outputs["on"], outputs["off"]) and np.array_equal(outputs[None], outputs["off"])
    wrong = run("denoise", calibrated_stack, "-o", tmp_path / "x.tif", "--server", server.address,
                env={"EMDENOISE_SHARED_MEMORY": "sometimes"})
    assert wrong.returncode != 0 and "shared memory must be auto, on or off, not 'sometimes'" in wrong.stderr
    assert "Traceback" not in wrong.stderr


# -- refusals ----------------------------------------------------------------------------------
def _offer(name: str, key: bytes = b"k" * segments.KEY_BYTES, size: int = 2 * segments.HEADER_BYTES):
    return pb.DenoiseOptions(model_id=MODEL, shared_memory=pb.SharedMemory(segment=name, key=key, size=size))


def test_a_missing_segment_is_refused_with_a_sentence_and_the_call_goes_on_as_messages(address):
    name = segments.new_name()
    responses, error = raw_call(address, _offer(name))
    started = responses[0].started
    assert not started.shared_memory
    assert started.shared_memory_refused == (
        f"there is no shared-memory segment {name} on the server's host; "
        "shared memory works only with a client on the same machine.")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # no frames followed: the usual empty-stack sentence
    assert "the stack is empty" in error.details()


def test_a_name_that_is_not_a_segment_is_refused(address):
    responses, _ = raw_call(address, _offer("../etc/passwd"))
    assert "is not an emdenoise shared-memory segment name" in responses[0].started.shared_memory_refused


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a segment to another user needs root")
def test_a_segment_of_another_user_is_refused_and_left_alone(address):
    segment = segments.create(2 * segments.HEADER_BYTES)
    try:
        os.chown(segment.path, 65534, 65534)
        responses, _ = raw_call(address, _offer(segment.name, segment.key, segment.size))
        refused = responses[0].started.shared_memory_refused
        assert refused == (f"shared-memory segment {segment.name} belongs to uid 65534, not to the server's user "
                           f"(uid {os.geteuid()}); shared memory works only between processes of one user.")
        assert os.path.exists(segment.path)  # a refused segment is not the server's to remove
    finally:
        segment.unlink()
        segment.close()


def test_the_checks_themselves_refuse_a_segment_of_another_uid_or_too_large_for_the_server():
    segment = segments.create(2 * segments.HEADER_BYTES)
    try:
        with pytest.raises(segments.SegmentRefused, match=f"belongs to uid {os.geteuid()}, not to the server's user"):
            segments.open_private(segment.name, segment.key, uid=os.geteuid() + 1)
        with pytest.raises(segments.SegmentRefused, match="more than the 0 MiB the server maps for one call"):
            segments.open_private(segment.name, segment.key, max_size=segments.HEADER_BYTES)
    finally:
        segment.unlink()
        segment.close()


def test_a_wrong_key_or_a_segment_others_can_read_is_refused(address):
    segment = segments.create(2 * segments.HEADER_BYTES)
    try:
        responses, _ = raw_call(address, _offer(segment.name, b"x" * segments.KEY_BYTES, segment.size))
        assert "does not carry the key of this call" in responses[0].started.shared_memory_refused
        os.chmod(segment.path, 0o644)
        responses, _ = raw_call(address, _offer(segment.name, segment.key, segment.size))
        assert "has mode 0644; it must be private to its user (0600)." in responses[0].started.shared_memory_refused
        assert os.path.exists(segment.path)
    finally:
        segment.unlink()
        segment.close()


def test_a_shared_frame_without_a_segment_or_outside_it_is_an_invalid_argument(address):
    header = pb.ArrayHeader(dtype="uint16", shape=[16, 16])
    shared = pb.DenoiseRequest(shared=pb.SharedFrame(frame_index=0, header=header, offset=4096, capacity=4096))
    _, error = raw_call(address, pb.DenoiseOptions(model_id=MODEL), shared)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == ("a frame in shared memory arrived, but this call has no shared-memory segment; "
                               "send frames as chunks.")

    ring = SharedRing(16 * 16 * 4, slots=1)
    try:
        outside = pb.DenoiseRequest(shared=pb.SharedFrame(frame_index=0, header=header, offset=ring.segment.size,
                                                          capacity=4096))
        responses, error = raw_call(address, pb.DenoiseOptions(model_id=MODEL, shared_memory=ring.offer()), outside)
        assert responses[0].started.shared_memory
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "lies outside the shared-memory segment" in error.details()
    finally:
        ring.close()
    assert segments_of(os.getpid()) == []


def test_insisting_on_shared_memory_a_server_refuses_is_a_user_error_and_auto_falls_back():
    strict = SharedCall(strict=True)
    strict.offer(np.zeros((8, 8), np.uint16))
    with pytest.raises(UserError, match="shared memory was asked for but cannot be used: the server does not "
                                        "offer shared memory \\(an older emdenoise\\); use --shared-memory auto"):
        strict.answer(pb.JobInfo())  # what a server without the fast path answers
    assert segments_of(os.getpid()) == []
    lenient = SharedCall(strict=False)
    lenient.offer(np.zeros((8, 8), np.uint16))
    lenient.answer(pb.JobInfo(shared_memory_refused="the server's host has no usable /dev/shm."))
    assert not lenient.accepted and lenient.request(np.zeros((8, 8), np.uint16), 0) is None
    assert segments_of(os.getpid()) == []


def test_modes_and_loopback_addresses():
    assert [is_loopback(a) for a in ("127.0.0.1:5", "localhost:5", "[::1]:5", "10.0.0.2:5", "gpu-box:5")] == [
        True, True, True, False, False]
    assert resolve_mode("auto", "gpu-box:50051") == "off"
    assert resolve_mode(None, "127.0.0.1:50051") == "auto"
    assert (parse_mode(True), parse_mode(False), parse_mode("OFF")) == ("on", "off", "off")
    with pytest.raises(UserError, match="shared memory must be auto, on or off, not 'sometimes'"):
        parse_mode("sometimes")


# -- nothing left behind -------------------------------------------------------------------------
CLIENT = textwrap.dedent("""
    import sys
    import numpy as np
    from emdenoise.client import RemoteClient

    def stack():
        rng = np.random.default_rng(0)
        while True:
            yield rng.poisson(20, (256, 256)).astype(np.uint16)

    with RemoteClient(sys.argv[1], shared_memory="on") as client:
        for index, _ in enumerate(client.denoise(stack(), "ede-kernel-stem-5")):
            if index == 2:
                print("streaming", client.last_transport, flush=True)
""")


def test_no_segment_is_left_when_the_client_is_killed_mid_stream():
    with ServerProcess() as server:
        child = subprocess.Popen([sys.executable, "-c", CLIENT, server.address], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "streaming shared memory"
            assert segments_of(child.pid) == []  # the server removed the name once it mapped the segment
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
        assert segments_of(child.pid) == []
        wait_until(lambda: mapped_segments(server.pid) == [], "the server letting go of the dead client's segment")
        assert server.alive
        out, how = denoised(server.address, frames((64, 64), 2), "on")  # and it serves the next client
        assert how == "shared memory" and len(out) == 2
    assert segments_of(os.getpid()) == []


def test_no_segment_is_left_when_the_server_is_killed_mid_stream():
    server = ServerProcess()
    try:
        with RemoteClient(server.address, shared_memory="on") as client:
            def stack():
                rng = np.random.default_rng(1)
                for index in range(100000):
                    if index == 3:
                        os.kill(server.pid, signal.SIGKILL)
                    yield rng.poisson(20, (256, 256)).astype(np.uint16)

            with pytest.raises(UserError):
                list(client.denoise(stack(), MODEL))
    finally:
        server.process.kill()
        server.stop()
    assert segments_of(os.getpid()) == []


def test_a_segment_whose_client_died_before_any_server_mapped_it_is_removed_at_server_start():
    maker = "from emdenoise.shm import segments; s = segments.create(8192); print(s.name, flush=True); import time; time.sleep(600)"
    child = subprocess.Popen([sys.executable, "-c", maker], stdout=subprocess.PIPE, text=True)
    try:
        name = child.stdout.readline().strip()
        assert segments_of(child.pid) == [name]
        assert name not in segments.sweep_stale()  # its maker still runs: left alone
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    assert segments_of(child.pid) == [name]  # a SIGKILL runs no clean-up ...
    with ServerProcess() as server:  # ... the next server start removes it
        assert any("removed 1 shared-memory segment(s) left by ended clients" in line for line in server.lines)
    assert segments_of(child.pid) == []


def test_a_ring_has_no_more_slots_than_the_call_has_frames():
    frame = np.zeros((64, 48), np.uint16)
    sizes = []
    for count in (1, 2, 0, 100):
        ring = SharedRing.for_frame(frame, count)
        sizes.append(ring.slots)
        assert ring.slot_bytes == 64 * 48 * 4 + (-(64 * 48 * 4) % 4096) and ring.fits(frame)
        assert not ring.fits(np.zeros((65, 48), np.float32))
        ring.close()
    assert sizes == [1, 2, 4, 4]
    assert segments_of(os.getpid()) == []


def test_no_segment_is_made_for_an_attempt_that_ended_before_its_first_frame_arrived():
    # a slow frame source: the call can fail (idle, refused, cancelled) before the first frame is read
    attempt = SharedCall(strict=False)
    attempt.close()
    assert attempt.offer(np.zeros((8, 8), np.uint16)) is None and attempt.ring is None
    assert segments_of(os.getpid()) == []


@pytest.mark.slow
def test_a_server_from_before_the_fast_path_gets_messages_from_a_new_client(tmp_path):
    """Backwards compatible both ways: the old server ignores the offer, the new client then sends chunks."""
    import re

    from emdenoise.bench.engine import install_baseline

    python, _sha = install_baseline("7cd1619", tmp_path / "old")  # the commit before the shared-memory path
    old = subprocess.Popen([python, "-m", "emdenoise", "serve", "--host", "127.0.0.1", "--port", "0", "--device", "cpu"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                           env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        for line in old.stdout:
            match = re.search(r"listening on (\S+:\d+)", line)
            if match:
                break
        else:
            pytest.fail("the old server did not start")
        address = match.group(1)
        stack = frames((64, 64), 3)
        by_messages, how = denoised(address, stack, "off")
        assert how == "messages"
        fallback, how = denoised(address, stack, "auto")
        assert how == "messages" and all(np.array_equal(a, b) for a, b in zip(by_messages, fallback))
        with RemoteClient(address, shared_memory="on") as client:
            with pytest.raises(UserError, match=r"the server does not offer shared memory \(an older emdenoise\)"):
                list(client.denoise(stack, MODEL))
    finally:
        old.kill()
        old.wait()
        old.stdout.close()
    assert segments_of(os.getpid()) == []


# -- a client's segment kept between its calls -------------------------------------------------------
def segment_names(lines: list[str]) -> set[str]:
    """Segment names in lines of /proc/PID/maps."""
    return {line.split("/dev/shm/")[1].split()[0] for line in lines}


def is_lent(array: np.ndarray) -> bool:
    """True for a result lent out of a slot (no copy)."""
    while isinstance(array, np.ndarray):
        array = array.base
    return type(array).__name__ == "_Lent"


def test_a_second_call_reuses_the_segment_and_the_servers_mapping_and_close_releases_both():
    stack = frames((128, 96), 6, seed=21)
    with ServerProcess() as server:
        by_messages, _ = denoised(server.address, stack, "off")
        with RemoteClient(server.address, shared_memory="on") as client:
            first = list(client.denoise(stack, MODEL, frame_count=len(stack)))
            mapped = segment_names(mapped_segments(server.pid))
            assert len(mapped) == 1 and client._rings.idle == 1  # the server and the client both kept it
            second = list(client.denoise(stack[:2], MODEL))  # fewer frames, no count: the same ring serves
            assert client.last_transport == "shared memory"
            assert segment_names(mapped_segments(server.pid)) == mapped  # not mapped again
            assert mapped <= segment_names(mapped_segments(os.getpid()))  # (this process's other tests' may linger)
        assert all(np.array_equal(a, b) for a, b in zip(by_messages, first)) and len(first) == 6
        assert all(np.array_equal(a, b) for a, b in zip(by_messages[:2], second))
        # the first results were lent (the slot itself, no copy), those after them copied: a caller keeping
        # every result holds at most LENDABLE slots, and the lent ones keep the memory mapped here
        assert [is_lent(out) for out in first] == [True, True, False, False, False, False]
        assert mapped <= segment_names(mapped_segments(os.getpid()))
        del first, second
        assert not mapped & segment_names(mapped_segments(os.getpid()))
        wait_until(lambda: mapped_segments(server.pid) == [], "the server letting go of the released segment")
    assert segments_of(os.getpid()) == []


KEEPING_CLIENT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from emdenoise.client import RemoteClient

    stack = [np.random.default_rng(0).poisson(20, (128, 128)).astype(np.uint16) for _ in range(3)]
    client = RemoteClient(sys.argv[1], shared_memory="on")
    for _ in range(2):
        list(client.denoise(stack, "ede-kernel-stem-5"))
    print("kept", client.last_transport, flush=True)
    time.sleep(600)
""")


def test_the_kept_segment_of_a_client_killed_between_calls_is_freed_by_the_server():
    with ServerProcess() as server:
        child = subprocess.Popen([sys.executable, "-c", KEEPING_CLIENT, server.address], stdout=subprocess.PIPE,
                                 text=True)
        try:
            assert child.stdout.readline().strip() == "kept shared memory"
            kept = segment_names(mapped_segments(server.pid))
            assert len(kept) == 1 and segments_of(child.pid) == []  # mapped on both sides, no name left
            assert segment_names(mapped_segments(child.pid)) == kept
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
        wait_until(lambda: mapped_segments(server.pid) == [], "the server letting go of the dead client's segment")
        assert server.alive
    assert segments_of(child.pid) == []


def test_a_restarted_server_does_not_trust_a_kept_segment_and_the_client_makes_a_new_one():
    stack = frames((96, 96), 3, seed=22)
    server = ServerProcess()
    port = server.address.rsplit(":", 1)[1]
    try:
        with RemoteClient(server.address, shared_memory="on") as client:
            first = list(client.denoise(stack, MODEL))
            old = client._rings._idle[0].segment
            old_name, old_key, old_size = old.name, old.key, old.size
            server.process.kill()
            server.stop()
            server = ServerProcess("--port", port)
            # the old segment is named to the new server with its key: it has no such segment
            responses, _ = raw_call(server.address, pb.DenoiseOptions(model_id=MODEL, shared_memory=pb.SharedMemory(
                segment=old_name, key=old_key, size=old_size, reuse=True)))
            assert not responses[0].started.shared_memory
            assert "there is no shared-memory segment" in responses[0].started.shared_memory_refused
            again = list(client.denoise(stack, MODEL))  # the client offers it, is refused, and retries with a new ring
            assert client.last_transport == "shared memory"
            new = segment_names(mapped_segments(server.pid))
            assert len(new) == 1 and old_name not in new
        assert all(np.array_equal(a, b) for a, b in zip(first, again)) and len(again) == 3
    finally:
        server.process.kill()
        server.stop()
    assert segments_of(os.getpid()) == []


def test_two_clients_never_share_a_segment_and_one_in_use_is_refused_to_another_call():
    stack = frames((64, 64), 3, seed=23)
    gate = threading.Event()

    def held():  # keeps client a's call, and its segment, in use until the gate opens
        yield stack[0]
        gate.wait(60)
        yield from stack[1:]

    with ServerProcess() as server, RemoteClient(server.address, shared_memory="on") as a, \
            RemoteClient(server.address, shared_memory="on") as b:
        list(a.denoise(stack, MODEL))
        list(b.denoise(stack, MODEL))
        ring_a, ring_b = a._rings._idle[0], b._rings._idle[0]
        assert ring_a.segment.name != ring_b.segment.name
        assert len(segment_names(mapped_segments(server.pid))) == 2
        job = a.denoise(held(), MODEL, frame_count=3)
        results = []
        worker = threading.Thread(target=lambda: results.extend(job))
        worker.start()
        try:
            wait_until(lambda: a._rings.idle == 0 and len(results) == 1, "client a's call to hold its segment")
            offer = pb.SharedMemory(segment=ring_a.segment.name, key=ring_a.segment.key, size=ring_a.segment.size,
                                    reuse=True)
            responses, _ = raw_call(server.address, pb.DenoiseOptions(model_id=MODEL, shared_memory=offer))
            assert not responses[0].started.shared_memory
            assert responses[0].started.shared_memory_refused == (
                f"shared-memory segment {ring_a.segment.name} is in use by another call; "
                "a segment serves one call at a time.")
            offer.key = b"x" * segments.KEY_BYTES  # and while idle, b's kept segment needs b's key
            offer.segment, offer.size = ring_b.segment.name, ring_b.segment.size
            responses, _ = raw_call(server.address, pb.DenoiseOptions(model_id=MODEL, shared_memory=offer))
            assert "does not carry the key of this call" in responses[0].started.shared_memory_refused
        finally:
            gate.set()
            worker.join(60)
        by_messages, _ = denoised(server.address, stack, "off")
        assert len(results) == 3 and all(np.array_equal(x, y) for x, y in zip(by_messages, results))
        assert a._rings._idle[0] is ring_a  # refusals did not disturb either client
        assert len(segment_names(mapped_segments(server.pid))) == 2
    assert segments_of(os.getpid()) == []


def test_a_segment_offered_without_reuse_is_unmapped_after_the_call_as_before():
    # what a client from before the kept segments sends: the server maps the segment for that call only
    frame = frames((64, 64), 1, seed=24)[0]
    ring = SharedRing.for_frame(frame, 1)
    with ServerProcess() as server:
        try:
            message = ring.put(frame, 0)
            responses, error = raw_call(server.address, pb.DenoiseOptions(model_id=MODEL, frame_count=1,
                                                                          shared_memory=ring.offer()),
                                        pb.DenoiseRequest(shared=message))
            assert error is None and responses[0].started.shared_memory
            assert not responses[0].started.shared_memory_kept
            assert ring.take(responses[1].shared).shape == (64, 64)
            wait_until(lambda: mapped_segments(server.pid) == [], "the server unmapping the segment")
        finally:
            ring.close()
    assert segments_of(os.getpid()) == []


def test_a_ring_is_kept_only_after_a_clean_call_to_a_server_that_kept_it():
    from emdenoise.shm.pool import RingPool

    pool = RingPool()
    frame = np.zeros((8, 8), np.uint16)
    for info, clean, kept in ((pb.JobInfo(shared_memory=True), True, 0),  # a server from before kept segments
                              (pb.JobInfo(shared_memory=True, shared_memory_kept=True), False, 0),  # call failed
                              (pb.JobInfo(shared_memory=True, shared_memory_kept=True), True, 1)):
        attempt = SharedCall(pool=pool)
        assert attempt.offer(frame).reuse
        attempt.answer(info)
        attempt.close(clean=clean)
        assert pool.idle == kept
    reused = SharedCall(pool=pool)
    reused.offer(frame)
    assert reused.reused and pool.idle == 0
    assert reused.stale(pb.DenoiseResponse(started=pb.JobInfo()))  # a server that no longer maps it
    reused.close()
    pool.close()
    assert segments_of(os.getpid()) == []


def test_a_caller_that_drops_each_result_gets_every_one_lent_and_lent_results_are_never_overwritten(address):
    stack = frames((64, 80), 12, seed=25)
    by_messages, _ = denoised(address, stack, "off")
    with RemoteClient(address, shared_memory="on") as client:
        list(client.denoise(stack[:1], MODEL))  # the ring this client keeps
        lent = []
        for index, out in enumerate(client.denoise(stack, MODEL, frame_count=len(stack))):
            lent.append(is_lent(out))
            assert np.array_equal(out, by_messages[index])
            if index == 3:
                kept = out[10:20]  # a view keeps its slot lent until the end; the frames after go elsewhere
        # lent while the caller holds fewer than LENDABLE (the previous result, until the next one is
        # taken); once a view holds one slot, about every other result is a copy
        assert all(lent[:5]) and any(lent[5:]) and not all(lent[5:]) and client.last_transport == "shared memory"
        assert np.array_equal(kept, by_messages[3][10:20]) and is_lent(kept)
    assert segments_of(os.getpid()) == []


def test_the_engine_writes_a_result_into_its_frames_slot_and_put_result_names_it_without_a_copy():
    from emdenoise.server.shared_frames import SharedFrames
    from emdenoise.shm.ring import SharedRing

    frame = np.arange(120, dtype=np.uint16).reshape(12, 10)
    ring = SharedRing.for_frame(frame)
    try:
        message = ring.put(frame, 0)
        frames = SharedFrames(ring.segment)  # this process's own mapping stands in for the server's
        view = frames.frame(message)
        place = frames.result_buffer(0, view.shape)
        assert place is not None and place.dtype == np.float32 and place.flags.writeable
        assert place.__array_interface__["data"][0] == view.__array_interface__["data"][0]  # the frame's own slot
        assert frames.result_buffer(1, view.shape) is None  # a frame that did not come through the segment
        assert frames.result_buffer(0, (100, 100)) is None  # a result larger than the slot
        place[...] = view * np.float32(2.5)  # what Engine.denoise_frame(out=place) does after reading the frame
        del view
        placed = frames.put_result(0, place)
        assert placed.offset == message.offset and list(placed.header.shape) == [12, 10]
        np.testing.assert_array_equal(ring.take(placed), frame * np.float32(2.5))
    finally:
        ring.close()
