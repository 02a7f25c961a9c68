"""``emdenoise bench transport``: CPU time per frame of each way a frame reaches the engine.

Issue 20, item 3 asks the server paths to keep up with the in-process engine (gRPC >= 0.8,
shared memory >= 0.9 of its MP/s). On a machine whose cores the engine already fills, a
path's wall time per frame follows the CPU time it adds, so this bench measures that: for
one model and frame size it runs, one after the other for ``--seconds`` each,

- ``in-process``: the embedded engine (ONNX Runtime's threads spin while they wait, the
  default there), and again with spinning off, as the server runs it: the engine's own CPU;
- ``shared memory`` and ``gRPC messages``: a real server on loopback (``emdenoise serve``),
  one client streaming ``--frames``-frame calls;
- ``plain TCP``: the same bytes (the frame up, its float32 result down) over a loopback
  socket with ``sendall``/``recv_into`` and no engine, the least any TCP transport costs,

and prints wall milliseconds per frame, the CPU milliseconds per frame of the client and of
the server process (``/proc/PID/stat``, all threads, finished ones included), and the
transport's CPU per frame: the two processes' sum minus the engine's own (in-process, no spin). Results are
dropped as they arrive, so no path pays for keeping them. The CPU figures are steadier
than the MP/s of ``bench engine`` on a shared machine; they say what a path costs, not how
fast it runs.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

TICKS = os.sysconf("SC_CLK_TCK")
#: The engine's own CPU per frame: in-process with ONNX Runtime's threads sleeping when idle, as
#: the server's do (spinning threads burn CPU while they wait, which is no one's work).
ENGINE_ROW = "in-process, no spin"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "transport",
        help="CPU ms per frame: in-process, shared memory, gRPC messages and plain TCP (issue 20, item 3)",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("--model", default="ede-kernel-stem-5", help="model id (default: %(default)s)")
    p.add_argument("--size", type=int, default=1024, help="frame side in pixels (default: %(default)s)")
    p.add_argument("--dtype", default="uint16", choices=("uint8", "uint16", "float32"), help="frame type")
    p.add_argument("--frames", type=int, default=32, help="frames per call (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=8.0, help="time per path (default: %(default)s)")
    p.add_argument("--json", default="", help="also write the figures to this JSON file")
    p.set_defaults(func=run)


def process_cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds of process ``pid`` so far (every thread, ended ones included)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _timed_calls(client, frames, model: str, seconds: float, server_pid: int | None = None) -> dict:
    """Calls of ``len(frames)`` frames for ``seconds``; wall and CPU per frame of this process and the server."""
    options = {"gain": 1.0, "offset": 0.0}
    list(client.denoise(frames[:2], model, **options))  # warm-up: session, plans, a kept segment
    server_cpu = process_cpu_seconds(server_pid) if server_pid else 0.0
    client_cpu, started, done = process_cpu_seconds(), time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        for _ in client.denoise(frames, model, frame_count=len(frames), **options):
            done += 1
    wall = time.perf_counter() - started
    figures = {"wall_ms": wall / done * 1e3, "client_cpu_ms": (process_cpu_seconds() - client_cpu) / done * 1e3,
               "frames": done}
    figures["server_cpu_ms"] = (process_cpu_seconds(server_pid) - server_cpu) / done * 1e3 if server_pid else 0.0
    return figures


def _recv_exactly(sock: socket.socket, buffer: bytearray) -> None:
    view, got = memoryview(buffer), 0
    while got < len(buffer):
        received = sock.recv_into(view[got:])
        if not received:
            raise ConnectionError("the loopback peer closed the socket")
        got += received


def plain_tcp(up_bytes: int, down_bytes: int, seconds: float) -> dict:
    """Wall and CPU (both ends, one process) per round trip of ``up_bytes`` then ``down_bytes`` over loopback TCP."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        frame, result = bytearray(up_bytes), bytearray(down_bytes)
        with connection:
            while not stop.is_set():
                try:
                    _recv_exactly(connection, frame)
                except ConnectionError:
                    return
                connection.sendall(result)

    peer = threading.Thread(target=serve, daemon=True)
    peer.start()
    with socket.create_connection(listener.getsockname()) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        frame, result = bytearray(up_bytes), bytearray(down_bytes)
        cpu, started, done = process_cpu_seconds(), time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            sock.sendall(frame)
            _recv_exactly(sock, result)
            done += 1
        wall = time.perf_counter() - started
        cpu = process_cpu_seconds() - cpu
        stop.set()
    peer.join(5)
    listener.close()
    return {"wall_ms": wall / done * 1e3, "client_cpu_ms": cpu / done * 1e3, "server_cpu_ms": 0.0, "frames": done}


def measure(model: str, size: int, dtype: str, frames: int, seconds: float) -> dict:
    """The figures of every path (see the module's docstring)."""
    from emdenoise.bench._engine_probe import _frames  # the frames bench engine times
    from emdenoise.client import EmbeddedClient, RemoteClient
    from emdenoise.server.subprocess_server import ServerProcess

    stack = _frames(frames, size, dtype)
    rows = {"in-process": _timed_calls(EmbeddedClient(device="cpu"), stack, model, seconds),
            ENGINE_ROW: _timed_calls(EmbeddedClient(device="cpu", spinning=False), stack, model, seconds)}
    for name, mode in (("shared memory", "on"), ("gRPC messages", "off")):
        with ServerProcess(device="cpu") as server, RemoteClient(server.address, shared_memory=mode) as client:
            rows[name] = _timed_calls(client, stack, model, seconds, server.pid)
            rows[name]["travelled_as"] = client.last_transport
    rows["plain TCP"] = plain_tcp(stack[0].nbytes, size * size * 4, seconds)
    engine = rows[ENGINE_ROW]["client_cpu_ms"]
    for name, row in rows.items():
        total = row["client_cpu_ms"] + row["server_cpu_ms"]
        row["transport_cpu_ms"] = total if name == "plain TCP" else total - engine
    return rows


def run(args) -> int:
    from emdenoise.errors import UserError

    if args.size < 16 or args.frames < 1 or args.seconds <= 0:
        raise UserError("give --size >= 16, --frames >= 1 and --seconds > 0.")
    print(f"device: cpu; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the start")
    rows = measure(args.model, args.size, args.dtype, args.frames, args.seconds)
    print(f"\n{args.model}: {args.size}x{args.size} {args.dtype} frames, {args.frames} per call, "
          f"{args.seconds:g} s per path; CPU over all threads of each process")
    print(f"  {'path':<21}{'wall ms/frame':>15}{'client CPU':>12}{'server CPU':>12}{'transport CPU':>15}")
    for name, row in rows.items():
        print(f"  {name:<21}{row['wall_ms']:>15.2f}{row['client_cpu_ms']:>12.2f}{row['server_cpu_ms']:>12.2f}"
              f"{row['transport_cpu_ms']:>15.2f}")
    print("  (transport CPU: client + server minus the engine's own CPU, the no-spin row; plain TCP: both ends, no engine)")
    for name in ("shared memory", "gRPC messages"):
        if rows[name].get("travelled_as") not in (None, "shared memory" if name == "shared memory" else "messages"):
            print(f"  WARNING: the {name} path's frames travelled as {rows[name]['travelled_as']}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"model": args.model, "size": args.size, "dtype": args.dtype, "frames": args.frames,
                       "seconds": args.seconds, "rows": rows}, handle, indent=2)
    return 0
