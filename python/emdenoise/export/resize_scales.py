"""Give the U-Nets' upsampling constant scales: a one-off rewrite of shipped ``model.onnx`` files.

The SBD U-Net was exported from ``F.interpolate(x, size=skip.shape[-2:])``, so each ``Resize``
takes its output ``sizes`` from ``Shape`` nodes. ONNX Runtime's NCHWc layout transformer only
takes a ``Resize`` with constant ``scales``; the shape-fed one stays in NCHW, and every
decoder level then pays a reorder out of and back into NCHWc around it (18 % of the time of
a 1280^2 window of ``sbd-unet32-hrtem``, issue 20). On windows that are multiples of the
pooling multiple, each ``sizes`` is exactly twice the ``Resize`` input, so constant scales
``[1, 1, 2, 2]`` define the same bilinear upsampling (same coordinate transform, the scale
ONNX Runtime derives from ``sizes`` is the same 2.0). The weights are untouched. The
outputs are not the same bits: ONNX Runtime's NCHWc ``Upsample`` rounds its interpolation
differently from the NCHW ``Resize``, which moves outputs by float32 rounding (the new graph
is as close to the float64 PyTorch model as the old one; docs/benchmarks.md, issue 20).

The script measures each ``Resize``'s factor on the old graph at several window shapes (it
refuses a factor that is not a constant integer), rewrites, prunes the dead shape arithmetic,
checks old against new outputs, and records the revision on the card.

Run once per model (maintenance, needs ``onnx``; the engine never imports this)::

    python -m emdenoise.export.resize_scales export/sbd-unet32-hrtem
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

#: Largest |old - new| accepted, relative to the largest |old| (float32 rounding of the sums).
TOLERANCE = 2e-6


def shape_fed_resizes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """``Resize`` nodes whose ``sizes`` input is computed in the graph (not an initializer)."""
    constants = {init.name for init in model.graph.initializer}
    constants |= {node.output[0] for node in model.graph.node if node.op_type == "Constant"}
    return [node for node in model.graph.node
            if node.op_type == "Resize" and len(node.input) == 4 and node.input[3] and node.input[3] not in constants]


def _session(model: onnx.ModelProto, outputs: list[str] = ()) -> ort.InferenceSession:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for name in outputs:
        model.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _input(shape: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).poisson(0.6, (1, 1, *shape)).astype(np.float32)


def resize_factors(model: onnx.ModelProto, shapes: list[tuple[int, int]]) -> dict[str, list[int]]:
    """Each shape-fed ``Resize``'s output/input size ratio per axis, measured on the old graph.

    Raises
    ------
    ValueError
        When a ratio is not an integer, or differs between ``shapes``.
    """
    nodes = shape_fed_resizes(model)
    names = [name for node in nodes for name in (node.input[0], node.output[0])]
    session = _session(model, names)
    input_name = session.get_inputs()[0].name
    factors: dict[str, list[int]] = {}
    for index, shape in enumerate(shapes):
        values = dict(zip([o.name for o in session.get_outputs()], session.run(None, {input_name: _input(shape, index)})))
        for node in nodes:
            before, after = values[node.input[0]].shape, values[node.output[0]].shape
            ratio = [a / b for a, b in zip(after, before)]
            if any(r != int(r) for r in ratio):
                raise ValueError(f"{node.name}: {before} -> {after} at input {shape} is not an integer scale")
            ratio = [int(r) for r in ratio]
            if factors.setdefault(node.output[0], ratio) != ratio:
                raise ValueError(f"{node.name}: scale {ratio} at input {shape}, {factors[node.output[0]]} before")
    return factors


def _prune(graph: onnx.GraphProto) -> int:
    """Drop nodes none of whose outputs reach a graph output; the number dropped."""
    needed = {output.name for output in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(name for name in node.input if name)
    dropped = len(graph.node) - len(kept)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    unused = [init for init in graph.initializer if init.name not in needed]
    for init in unused:
        graph.initializer.remove(init)
    return dropped


def with_constant_scales(model: onnx.ModelProto, factors: dict[str, list[int]]) -> onnx.ModelProto:
    """A copy of ``model`` whose shape-fed ``Resize`` nodes read constant ``scales`` instead."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    taken = {init.name for init in graph.initializer} | {name for node in graph.node for name in node.output}
    names = {}
    for node in shape_fed_resizes(model):
        factor = tuple(factors[node.output[0]])
        if factor not in names:
            name = f"resize_scales_{'x'.join(map(str, factor))}"
            while name in taken:
                name += "_"
            names[factor] = name
            taken.add(name)
            graph.initializer.append(numpy_helper.from_array(np.asarray(factor, np.float32), names[factor]))
        data = node.input[0]
        del node.input[:]
        node.input.extend([data, "", names[factor]])
    _prune(graph)
    onnx.checker.check_model(model, full_check=True)
    return model


def max_difference(old: onnx.ModelProto, new: onnx.ModelProto, shapes: list[tuple[int, int]]) -> tuple[float, float]:
    """Largest |old - new| over ``shapes`` and the largest |old| (both graphs in ONNX Runtime)."""
    sessions = [_session(model) for model in (old, new)]
    name = sessions[0].get_inputs()[0].name
    worst = scale = 0.0
    for index, shape in enumerate(shapes):
        x = _input(shape, 100 + index)
        a, b = (session.run(None, {name: x})[0] for session in sessions)
        worst = max(worst, float(np.abs(a - b).max()))
        scale = max(scale, float(np.abs(a).max()))
    return worst, scale


def rewrite_folder(folder: str | Path, *, check_shapes: list[tuple[int, int]] | None = None) -> dict:
    """Rewrite ``folder``'s denoise graph in place and note the revision on its card.

    Returns
    -------
    dict
        The ``graph_revision`` entry written to the card (empty when nothing was shape-fed).
    """
    from emdenoise.export.cards import write_card

    folder = Path(folder)
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    spec = next(iter(card["graphs"].values()))
    path = folder / spec["file"]
    old = onnx.load(path)
    if not shape_fed_resizes(old):
        return {}
    multiple = int(card.get("tile", {}).get("multiple_of", 1))
    shapes = check_shapes or [(multiple * a, multiple * b) for a, b in ((8, 8), (12, 20), (17, 9), (48, 40))]
    factors = resize_factors(old, shapes)
    new = with_constant_scales(old, factors)
    worst, scale = max_difference(old, new, shapes)
    if worst > TOLERANCE * max(scale, 1.0):
        raise ValueError(f"{folder.name}: new graph differs from the old by {worst:.3g} (largest output {scale:.3g})")
    onnx.save(new, path)
    revision = {
        "revision": int(card.get("graph_revision", {}).get("revision", 1)) + 1,
        "change": f"Resize takes constant scales {' / '.join(sorted({str(f) for f in factors.values()}))} instead of "
                  "output sizes computed by Shape nodes, so ONNX Runtime keeps the decoder in its NCHWc layout; "
                  "same weights (python -m emdenoise.export.resize_scales, issue 20)",
        "previous_sha256": spec["sha256"],
        "max_abs_difference_to_previous": worst,
        "checked_on": [list(shape) for shape in shapes],
    }
    card["graph_revision"] = revision
    write_card(folder, card)
    return revision


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="model folders (export/<id>)")
    for folder in parser.parse_args(argv).folders:
        revision = rewrite_folder(folder)
        print(f"{folder.name}: " + (f"revision {revision['revision']}, max |old - new| "
                                     f"{revision['max_abs_difference_to_previous']:.3g}" if revision else "no shape-fed Resize"))


if __name__ == "__main__":
    main()
