"""``emdenoise bench engine`` (issue 20, item 7) on a tiny job: every figure is there, and
``--baseline REV`` really runs REV's code from a temporary venv (not this tree's).

Speed claims come from the benchmark's own figures (docs/benchmarks.md), never from here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emdenoise.cli import main

pytestmark = pytest.mark.slow


def test_bench_engine_times_this_tree_and_a_baseline_commit(tmp_path, capsys):
    out = tmp_path / "engine.json"
    code = main(["bench", "engine", "--model", "ede-kernel-tem-3", "--size", "64", "--frames", "1", "--rounds", "1",
                 "--clients", "1,2", "--requests", "1", "--baseline", "HEAD", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    for words in ("in-process MP/s", "gRPC MP/s", "shared-memory MP/s", "shared-memory / in-process", "halo fraction",
                  "latency p50/p95, 1 clients", "latency p50/p95, 2 clients", "peak RSS server", "vs baseline"):
        assert words in printed
    report = json.loads(out.read_text())
    model = report["models"]["ede-kernel-tem-3"]
    versions = list(model["raw"])
    assert versions[0] == "this tree" and versions[1].startswith("HEAD")
    import emdenoise

    here = Path(emdenoise.__file__).resolve().parent  # this tree as installed: editable here, a wheel in CI
    for version, rows in model["raw"].items():
        jobs = rows["inproc"] + rows["grpc"] + rows["shm"] + rows["latency"]
        assert jobs and all("error" not in job for job in jobs), jobs
        files = {Path(job["emdenoise_file"]).resolve() for job in jobs}
        from_tree = {f.is_relative_to(here) for f in files}
        assert from_tree == {version == "this tree"}, (version, files)  # the baseline ran its own installed copy
        summary = model["summary"][version]
        assert len(summary["digests"]) == 1  # in-process, gRPC and shared memory give the same bytes
        assert summary["in_process_mpix_s"] > 0 and summary["grpc_mpix_s"] > 0
        assert {job.get("transport", "messages") for job in rows["grpc"]} == {"messages"}
        # every version is timed through shared memory; HEAD has the path, so its frames really went there
        assert summary["shm_mpix_s"] > 0 and summary["shm_transports"] == ["shared memory"]
        assert {"1", "2"} == set(summary["latency"])
        assert summary["latency"]["2"]["requests"] == 2 and summary["latency"]["2"]["errors"] == 0
        assert 0 <= summary["halo_fraction"] < 0.2 and summary["peak_rss_mib_server"] > 0
    assert model["comparison"]["verdict"]


def test_bench_engine_throughput_run_compares_one_client_with_many(tmp_path, capsys):
    out = tmp_path / "throughput.json"
    code = main(["bench", "engine", "--model", "ede-kernel-tem-3", "--rounds", "0", "--clients", "",
                 "--throughput-stacks", "2", "--throughput-clients", "3", "--throughput-frames", "1",
                 "--throughput-size", "64", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    for words in ("1 client MP/s", "C clients MP/s", "identical to serial", "--max-batch 1",
                  "--max-batch 8 --max-queue-delay-ms 2", "batching on / off"):
        assert words in printed
    figures = json.loads(out.read_text())["models"]["ede-kernel-tem-3"]["throughput"]["figures"]
    assert len(figures) == 2
    for figure in figures.values():
        assert figure["errors"] == 0 and figure["same_as_serial"] == figure["stacks_expected"] == 6
        assert figure["one_client_mpix_s"] > 0 and figure["many_clients_mpix_s"] > 0
