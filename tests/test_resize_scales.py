"""Issue 20: the U-Nets' upsampling with constant scales (``emdenoise.export.resize_scales``).

Real graphs and real ONNX Runtime sessions. The shape-fed form the SBD U-Net was exported in
is rebuilt from the shipped graph (``sizes = Shape(x) * [1, 1, 2, 2]``), so the rewrite is
checked against that form on the shipped weights; the shipped graph is checked for tile
invariance in tests/test_tiling_plan.py and against PyTorch in tests/test_export_parity.py.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from emdenoise.engine.cards import load_card
from emdenoise.export.resize_scales import (
    TOLERANCE,
    max_difference,
    resize_factors,
    rewrite_folder,
    shape_fed_resizes,
    with_constant_scales,
)

EXPORT = Path(__file__).resolve().parents[1] / "export"
REWRITTEN = ["sbd-unet32-hrtem"]


def _shape_fed(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every constant-scale Resize turned back into one fed by ``Shape`` (as exported)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    scales = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    nodes = []
    for node in graph.node:
        if node.op_type == "Resize" and len(node.input) == 3 and node.input[2] in scales:
            factor = scales[node.input[2]].astype(np.int64)
            name = node.output[0]
            graph.initializer.append(numpy_helper.from_array(factor, f"{name}_factor"))
            nodes += [helper.make_node("Shape", [node.input[0]], [f"{name}_shape"]),
                      helper.make_node("Mul", [f"{name}_shape", f"{name}_factor"], [f"{name}_sizes"])]
            node.input[1:] = ["", "", f"{name}_sizes"]
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model


def _optimized_ops(model: onnx.ModelProto, tmp_path: Path) -> Counter:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return Counter(node.op_type for node in onnx.load(tmp_path / "optimized.onnx").graph.node)


@pytest.mark.parametrize("model_id", REWRITTEN)
def test_shipped_unet_upsamples_with_constant_scales_and_says_so(model_id):
    card = load_card(EXPORT / model_id)  # checks the graph's sha256
    model = onnx.load(EXPORT / model_id / "model.onnx")
    assert not shape_fed_resizes(model)
    assert not any(node.op_type == "Shape" for node in model.graph.node)  # the size arithmetic is gone
    revision = card.raw["graph_revision"]
    assert revision["revision"] == 2 and revision["max_abs_difference_to_previous"] <= TOLERANCE
    assert revision["previous_sha256"] != card.graph_sha256


def test_rewrite_matches_the_shape_fed_graph_and_drops_the_layout_reorders(tmp_path):
    shipped = onnx.load(EXPORT / "sbd-unet32-hrtem" / "model.onnx")
    old = _shape_fed(shipped)
    shapes = [(128, 128), (176, 240)]
    factors = resize_factors(old, shapes)
    assert len(factors) == 4 and all(f == [1, 1, 2, 2] for f in factors.values())
    new = with_constant_scales(old, factors)
    assert not shape_fed_resizes(new)
    worst, scale = max_difference(old, new, shapes)
    assert worst <= TOLERANCE * max(scale, 1.0)
    before, after = _optimized_ops(old, tmp_path), _optimized_ops(new, tmp_path)
    reorders = lambda ops: ops["ReorderInput"] + ops["ReorderOutput"]  # noqa: E731
    # ONNX Runtime's NCHWc layout (x86) reorders around each shape-fed Resize, not around the new one
    assert reorders(after) <= 1 and (reorders(before) == 0 or reorders(before) > reorders(after))


def test_a_resize_whose_scale_is_not_a_constant_integer_is_refused(tmp_path):
    # output size = input size + 1: a fractional scale that changes with the input
    x = helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, 1, "h", "w"])
    y = helper.make_tensor_value_info("denoised", onnx.TensorProto.FLOAT, None)
    one = numpy_helper.from_array(np.array([0, 0, 1, 1], np.int64), "one")
    graph = helper.make_graph(
        [helper.make_node("Shape", ["image"], ["shape"]), helper.make_node("Add", ["shape", "one"], ["sizes"]),
         helper.make_node("Resize", ["image", "", "", "sizes"], ["denoised"], mode="linear")],
        "odd", [x], [y], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    with pytest.raises(ValueError, match="not an integer scale"):
        resize_factors(model, [(16, 16)])


def test_rewrite_folder_leaves_a_graph_without_shape_fed_resize_alone(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("model.onnx", "card.json"):
        (folder / name).write_bytes((EXPORT / "sbd-unet32-hrtem" / name).read_bytes())
    before = (folder / "card.json").read_text()
    assert rewrite_folder(folder) == {}
    assert (folder / "card.json").read_text() == before and json.loads(before)["graph_revision"]["revision"] == 2
