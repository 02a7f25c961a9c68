"""Start-up of the command line (issue 20, item 2): what `--help` imports, not how long it takes.

Times belong to ``emdenoise bench startup``; here the import set is checked, which does
not depend on the machine's load: listing the verbs must not import the libraries behind
them, and every declared verb must load into the parser its module registers.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from emdenoise.bench.cli import SUBVERBS
from emdenoise.cli import VERBS, build_parser
from emdenoise.verbs import LazySubParsersAction

#: Libraries the inference path or the verbs' own code use, none of which `--help` needs.
HEAVY = (
    "numpy", "onnx", "onnxruntime", "torch", "scipy", "skimage", "cv2", "grpc", "google.protobuf",
    "tifffile", "PIL", "matplotlib", "zstandard", "jpype", "scyjava", "imagej", "dask",
    "emdenoise.client", "emdenoise.engine", "emdenoise.v1", "emdenoise.baselines",
)

_PROBE = """
import contextlib, io, json, sys
from emdenoise.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(sys.argv[1:])
print(json.dumps(sorted(sys.modules)))
"""


def _imported_by(*argv: str) -> set[str]:
    """Module names in ``sys.modules`` after a fresh interpreter ran ``emdenoise ARGV``."""
    done = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(name for name in HEAVY if name in modules)


@pytest.mark.parametrize("argv", [("--help",), ("denoise", "--help"), ("bench", "--help"), ("fiji", "--help")])
def test_help_imports_no_heavy_library(argv):
    assert _heavy(_imported_by(*argv)) == []


def test_bench_sub_verb_help_imports_that_bench_only():
    modules = _imported_by("bench", "engine", "--help")
    others = {v.loader.partition(":")[0] for v in SUBVERBS} - {"emdenoise.bench.engine"}
    assert "emdenoise.bench.engine" in modules
    assert sorted(others & modules) == []


def test_models_imports_no_onnx_scipy_or_torch():
    assert {"onnx", "scipy", "torch", "skimage", "cv2"} & _imported_by("models") == set()


def _listing(action: LazySubParsersAction) -> list[tuple[str, str]]:
    return [(a.dest, a.help) for a in action._choices_actions]


def _verbs_action(parser) -> LazySubParsersAction:
    return next(a for a in parser._actions if isinstance(a, LazySubParsersAction))


def test_declared_verbs_match_what_their_modules_register():
    action = _verbs_action(build_parser())
    declared = _listing(action)
    assert declared == [(v.name, v.help) for v in VERBS]
    action.load_all()
    assert _listing(action) == declared  # same names, same help, same order
    assert list(action.choices) == [v.name for v in VERBS]
    bench = _verbs_action(action.choices["bench"])
    declared = _listing(bench)
    bench.load_all()
    assert _listing(bench) == declared == [(v.name, v.help) for v in SUBVERBS]


def test_a_lazily_loaded_verb_parses_like_an_eager_one(tmp_path):
    args = build_parser().parse_args(["decompress", "x.emz", "-o", str(tmp_path)])
    assert args.command == "decompress" and callable(args.func)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["no-such-verb"])


def test_cuda_probe_graph_is_the_identity_model_onnx_builds():
    helper = pytest.importorskip("onnx.helper")
    from onnx import TensorProto

    import onnxruntime as ort
    from emdenoise.engine.devices import IDENTITY_GRAPH

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    assert model.SerializeToString() == IDENTITY_GRAPH
    session = ort.InferenceSession(IDENTITY_GRAPH, providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": np.full(1, 3.0, np.float32)})[0].tolist() == [3.0]


def test_bench_startup_prints_ratios(tmp_path, capsys):
    from emdenoise.cli import main

    assert main(["bench", "startup", "--runs", "1", "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "| emdenoise --help |" in out and "x python -c pass" in out
    rows = json.loads((tmp_path / "s.json").read_text())["rows"]
    assert [r["command"] for r in rows] == ["python -c pass", "emdenoise --help", "emdenoise models",
                                           "emdenoise denoise --help"]
    assert all(r["median_s"] > 0 for r in rows)
