"""ONNX graph surgery for bioimage.io packages: built-in reflection padding, fixed affine steps, axis order.

A bioimage.io consumer runs the packaged graph on the whole image (bioimageio.core's test
does exactly that), while the emdenoise engine reflect-pads every tile by the model's
receptive-field radius before running it (seed 001, sec. 3.2; :mod:`emdenoise.engine.tiling`).
:func:`with_reflection_padding` puts the engine's padding inside the graph, so that the
packaged graph run on a frame gives the engine's pixels, borders included. The other
helpers let an imported bioimage.io graph take and return the engine's (N, 1, H, W) float32
batches.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from emdenoise.errors import UserError

ENGINE_AXES = ("batch", "channel", "y", "x")
_INT64_MAX = np.iinfo(np.int64).max


def graph_io_names(model: onnx.ModelProto) -> tuple[str, str]:
    """The single real input and the single output of ``model``.

    Raises
    ------
    UserError
        The graph has more than one input (initializers excluded) or output.
    """
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    outputs = [o.name for o in model.graph.output]
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserError(
            f"the ONNX graph has {len(inputs)} inputs and {len(outputs)} outputs; emdenoise runs graphs with "
            "exactly one image in and one image out."
        )
    return inputs[0], outputs[0]


def _rename(model: onnx.ModelProto, old: str, new: str, *, inputs: bool) -> None:
    """Rename tensor ``old`` to ``new`` where nodes consume it (``inputs``) or produce it."""
    for node in model.graph.node:
        names = node.input if inputs else node.output
        names[:] = [new if name == old else name for name in names]


def _set_symbolic_dims(value: onnx.ValueInfoProto, dims: Sequence[str | int]) -> None:
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for dim in dims:
        entry = shape.dim.add()
        if isinstance(dim, str):
            entry.dim_param = dim
        else:
            entry.dim_value = int(dim)


def _fresh(base: str, used: set[str]) -> str:
    """``base``, or ``base_1``, ``base_2``... when a graph wrapped before already uses it."""
    name, index = base, 0
    while name in used:
        index += 1
        name = f"{base}_{index}"
    return name


def _wrap(model: onnx.ModelProto, before: list, after: list, initializers: list, *, dims_in, dims_out) -> onnx.ModelProto:
    """Put ``before`` ahead of the graph and ``after`` behind it, keeping the io names."""
    wrapped = onnx.ModelProto()
    wrapped.CopyFrom(model)
    name_in, name_out = graph_io_names(wrapped)
    graph = wrapped.graph
    used = {name for node in graph.node for name in list(node.input) + list(node.output)}
    pre, post = _fresh("emdenoise_pre", used), _fresh("emdenoise_post", used)
    if before:
        _rename(wrapped, name_in, pre, inputs=True)
        before[-1].output[:] = [pre]
        before[0].input[0] = name_in
    if after:
        _rename(wrapped, name_out, post, inputs=False)
        _rename(wrapped, name_out, post, inputs=True)
        after[0].input[0] = post
        after[-1].output[:] = [name_out]
    nodes = before + list(graph.node) + after
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(initializers)
    # Shapes inside the graph were inferred for the old input; ONNX Runtime re-infers them.
    del graph.value_info[:]
    if dims_in is not None:
        _set_symbolic_dims(next(i for i in graph.input if i.name == name_in), dims_in)
    if dims_out is not None:
        _set_symbolic_dims(graph.output[0], dims_out)
    onnx.checker.check_model(wrapped)
    return wrapped


def with_reflection_padding(model: onnx.ModelProto, left: int, right: int) -> onnx.ModelProto:
    """Return ``model`` with the engine's reflection padding and crop built in.

    The input (N, C, H, W) is reflect-padded by ``left`` pixels before and ``right`` after
    on both image axes, the original graph runs, and the same margins are cropped from its
    output. With ``left`` the engine's halo (receptive-field radius, or a global model's
    overlap) and ``right`` what the engine adds to reach the card's ``tile.multiple_of``,
    the result equals :meth:`emdenoise.engine.Engine.denoise` on any frame that the engine
    runs as one tile (and on any frame for models with a finite receptive field).

    Parameters
    ----------
    model : onnx.ModelProto
        A graph mapping (N, C, H, W) to (N, C, H, W).
    left, right : int
        Margins in pixels; ONNX reflection needs each to be smaller than the image side.

    Returns
    -------
    onnx.ModelProto
        Same input and output names; image dims are left symbolic (``height``, ``width``).
    """
    if left == 0 and right == 0:
        return model
    pads = numpy_helper.from_array(np.array([0, 0, left, left, 0, 0, right, right], np.int64), "emdenoise_pads")
    starts = numpy_helper.from_array(np.array([left, left], np.int64), "emdenoise_crop_starts")
    ends = numpy_helper.from_array(np.array([-right or _INT64_MAX] * 2, np.int64), "emdenoise_crop_ends")
    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "emdenoise_crop_axes")
    pad = helper.make_node("Pad", ["", "emdenoise_pads"], [""], mode="reflect", name="emdenoise_reflect_pad")
    crop = helper.make_node(
        "Slice", ["", "emdenoise_crop_starts", "emdenoise_crop_ends", "emdenoise_crop_axes"], [""], name="emdenoise_crop"
    )
    dims = ["batch", "channel", "height", "width"]
    dims_in = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if len(dims_in) == 4:
        dims = ["batch", dims_in[1], "height", "width"]
    return _wrap(model, [pad], [crop], [pads, starts, ends, axes], dims_in=dims, dims_out=dims)


def without_reflection_padding(model: onnx.ModelProto) -> onnx.ModelProto:
    """Undo :func:`with_reflection_padding`: the original graph, for the engine to pad itself.

    The engine pads each tile by the card's halo; a graph that pads again would shift the
    pooling grid of networks that pool (by the halo, not a multiple of the pooling factor)
    and change their pixels. A graph without the built-in padding is returned unchanged.
    """
    names = {"emdenoise_reflect_pad", "emdenoise_crop"}
    if not any(node.name in names for node in model.graph.node):
        return model
    plain = onnx.ModelProto()
    plain.CopyFrom(model)
    name_in, name_out = graph_io_names(plain)
    graph = plain.graph
    kept = [node for node in graph.node if node.name not in names]
    del graph.node[:]
    graph.node.extend(kept)
    _rename(plain, "emdenoise_pre", name_in, inputs=True)
    _rename(plain, "emdenoise_post", name_out, inputs=False)
    _rename(plain, "emdenoise_post", name_out, inputs=True)
    constants = [t for t in graph.initializer if not t.name.startswith(("emdenoise_pads", "emdenoise_crop_"))]
    del graph.initializer[:]
    graph.initializer.extend(constants)
    onnx.checker.check_model(plain)
    return plain


def affine_nodes(steps: Sequence[tuple[float, float]], prefix: str) -> tuple[list, list]:
    """Nodes computing ``x * gain + offset`` for each (gain, offset) in ``steps``, in order.

    Returns the nodes (first input and last output left for :func:`_wrap` to connect) and
    their constant initializers.
    """
    nodes, constants = [], []
    for index, (gain, offset) in enumerate(steps):
        g = numpy_helper.from_array(np.array(gain, np.float32), f"{prefix}_gain_{index}")
        o = numpy_helper.from_array(np.array(offset, np.float32), f"{prefix}_offset_{index}")
        mid = f"{prefix}_scaled_{index}"
        out = f"{prefix}_affine_{index}"
        nodes.append(helper.make_node("Mul", ["", g.name], [mid], name=f"{prefix}_mul_{index}"))
        nodes.append(helper.make_node("Add", [mid, o.name], [out], name=f"{prefix}_add_{index}"))
        constants += [g, o]
    # Chain: each Mul reads the previous Add's output.
    for index in range(1, len(steps)):
        nodes[2 * index].input[0] = nodes[2 * index - 1].output[0]
    return nodes, constants


def _layout_nodes(axes: Sequence[str], prefix: str, *, to_model: bool) -> tuple[list, list]:
    """Nodes converting the engine's (batch, channel, y, x) to ``axes`` (or back)."""
    nodes, constants = [], []
    has_channel = "channel" in axes
    plain = list(ENGINE_AXES) if has_channel else ["batch", "y", "x"]
    order = [plain.index(a) for a in axes] if to_model else [list(axes).index(a) for a in plain]
    squeeze = numpy_helper.from_array(np.array([1], np.int64), f"{prefix}_channel_axis")
    if to_model and not has_channel:
        nodes.append(helper.make_node("Squeeze", ["", squeeze.name], [f"{prefix}_squeezed"], name=f"{prefix}_squeeze"))
        constants.append(squeeze)
    if order != list(range(len(order))):
        nodes.append(helper.make_node("Transpose", [""], [f"{prefix}_transposed"], perm=order, name=f"{prefix}_transpose"))
    if not to_model and not has_channel:
        nodes.append(helper.make_node("Unsqueeze", ["", squeeze.name], [f"{prefix}_unsqueezed"], name=f"{prefix}_unsqueeze"))
        constants.append(squeeze)
    for index in range(1, len(nodes)):
        nodes[index].input[0] = nodes[index - 1].output[0]
    return nodes, constants


def adapt_for_engine(
    model: onnx.ModelProto,
    *,
    input_axes: Sequence[str],
    output_axes: Sequence[str],
    pre: Sequence[tuple[float, float]] = (),
    post: Sequence[tuple[float, float]] = (),
) -> onnx.ModelProto:
    """Return ``model`` taking and returning the engine's (N, 1, H, W) float32 batches.

    Parameters
    ----------
    model : onnx.ModelProto
        An imported bioimage.io graph with one input and one output.
    input_axes, output_axes : sequence of str
        The bioimage.io axis ids of the graph's input and output, a permutation of
        ``batch``, ``y``, ``x`` and optionally ``channel`` (of size 1).
    pre, post : sequence of (gain, offset)
        Fixed ``scale_linear`` steps of the package's pre- and postprocessing, applied in
        the engine's layout before and after the graph.

    Returns
    -------
    onnx.ModelProto
    """
    before, constants = affine_nodes(pre, "emdenoise_pre")
    layout_in, c_in = _layout_nodes(input_axes, "emdenoise_in", to_model=True)
    layout_out, c_out = _layout_nodes(output_axes, "emdenoise_out", to_model=False)
    after, c_post = affine_nodes(post, "emdenoise_post")
    before = before + layout_in
    after = layout_out + after
    for chain in (before, after):
        for index in range(1, len(chain)):
            chain[index].input[0] = chain[index - 1].output[0]
    dims = ["batch", 1, "height", "width"]
    return _wrap(model, before, after, constants + c_in + c_out + c_post, dims_in=dims, dims_out=dims)
