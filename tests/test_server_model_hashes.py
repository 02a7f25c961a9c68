"""ListModels does not re-hash the ONNX graphs on every call (issue 22, item 5)."""

from __future__ import annotations

import shutil

from emdenoise.client import RemoteClient
from emdenoise.engine.repository import bundled_models_dir
from emdenoise.server.subprocess_server import ServerProcess


def bytes_read(pid: int) -> int:
    """Bytes the process read through read(2) and friends (/proc/PID/io, rchar)."""
    for line in open(f"/proc/{pid}/io"):
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/PID/io")


def graphs_bytes() -> int:
    return sum(p.stat().st_size for p in bundled_models_dir().rglob("*.onnx"))


def test_list_models_reads_the_graphs_once_and_rehashes_a_changed_one(tmp_path):
    extra = tmp_path / "models"
    shutil.copytree(bundled_models_dir() / "ede-kernel-tem-5", extra / "test-kernel-copy")
    card = (extra / "test-kernel-copy" / "card.json")
    card.write_text(card.read_text().replace('"ede-kernel-tem-5"', '"test-kernel-copy"'))
    total = graphs_bytes()
    with ServerProcess("--models", str(extra)) as server, RemoteClient(server.address) as client:
        assert "test-kernel-copy" in {c["id"] for c in client.list_models()}
        before = bytes_read(server.pid)
        for _ in range(3):
            client.list_models()
        read = bytes_read(server.pid) - before
        assert read < total / 4, f"3 ListModels read {read / 1e6:.1f} MB of {total / 1e6:.1f} MB of graphs"
        graph = next((extra / "test-kernel-copy").glob("*.onnx"))
        data = bytearray(graph.read_bytes())
        data[-1] ^= 0xFF  # same size, new content and mtime: hashed again, refused
        graph.write_bytes(bytes(data))
        assert "test-kernel-copy" not in {c["id"] for c in client.list_models()}
