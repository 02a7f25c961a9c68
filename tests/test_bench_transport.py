"""``emdenoise bench transport`` (issue 20, item 3) on a tiny job: every path runs for real (embedded
engine, a real server through shared memory and through gRPC messages, a loopback socket) and
every figure is a measured, positive number. What the figures say is in docs/benchmarks.md."""

from __future__ import annotations

import json

import pytest

from emdenoise.cli import main

pytestmark = pytest.mark.slow


def test_bench_transport_measures_every_path(tmp_path, capsys):
    out = tmp_path / "transport.json"
    code = main(["bench", "transport", "--model", "ede-kernel-tem-3", "--size", "64", "--frames", "4",
                 "--seconds", "0.3", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    for words in ("in-process", "shared memory", "gRPC messages", "plain TCP", "transport CPU"):
        assert words in printed
    assert "WARNING" not in printed
    rows = json.loads(out.read_text())["rows"]
    assert set(rows) == {"in-process", "in-process, no spin", "shared memory", "gRPC messages", "plain TCP"}
    for name, row in rows.items():
        assert row["frames"] > 0 and row["wall_ms"] > 0, name
    assert rows["shared memory"]["travelled_as"] == "shared memory"
    assert rows["gRPC messages"]["travelled_as"] == "messages"
    for name in ("shared memory", "gRPC messages"):
        assert rows[name]["server_cpu_ms"] > 0  # the server process's own CPU, read from /proc


def test_bench_transport_refuses_a_meaningless_run(capsys):
    assert main(["bench", "transport", "--seconds", "0"]) != 0
    assert "--seconds > 0" in capsys.readouterr().err
