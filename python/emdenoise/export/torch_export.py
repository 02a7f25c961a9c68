"""PyTorch -> ONNX: export, receptive field, parity check and the model folder.

A trained checkpoint becomes a model folder the engine serves (ARCHITECTURE.md, "A model")::

    export/<id>/model.onnx      one self-contained graph (weights inside: external_data=False),
                                input "image" (N,1,H,W) float32 -> output "denoised"
    export/<id>/weights.npz     the PyTorch state dict, for the parity test of the shipped graph
    export/<id>/card.json       architecture, recipe, steps, data, dose range, normalisation,
                                receptive field (measured), tile, sha256, benchmark metrics

The receptive field is measured, not assumed (CSBDeep habit): the support of the gradient
of single output pixels with respect to the input (seed 003 sec. 3 and fig. 3 use the same
gradient analysis), at every pooling phase, taken on a copy of the network in which no
connection is silenced. The engine uses half of it as the tile halo.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from pathlib import Path
from typing import Any

import numpy as np

from emdenoise.errors import UserError

OPSET = 18
MAX_GRAPH_BYTES = 16 * 1024 * 1024
PARITY_TOLERANCE = 1e-4


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter logs a warning per missing torchvision op; none of ours uses them."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _multiple_of(model) -> int:
    return int(getattr(model, "multiple_of", 1))


def export_onnx(model, path: str | Path, *, opset: int = OPSET, fp16: bool = False) -> Path:
    """Export ``model`` (eval mode) to a single ONNX file with dynamic batch, height and width.

    Parameters
    ----------
    model : torch.nn.Module
        ``(N, 1, H, W) -> (N, 1, H, W)``; an attribute ``multiple_of`` constrains H and W.
    path : path-like
        Destination ``.onnx`` file.
    opset : int
        ONNX opset (>= 17).
    fp16 : bool
        Store weights and compute in float16, keeping float32 input and output.

    Returns
    -------
    Path
    """
    import onnx
    import torch
    from torch.export import Dim

    if opset < 17:
        raise UserError(f"opset {opset} is too old; use 17 or newer.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    multiple = _multiple_of(model)
    example = torch.rand(2, 1, 4 * max(multiple, 8), 4 * max(multiple, 8))
    batch = Dim("batch", min=1, max=4096)
    if multiple > 1:
        height = multiple * Dim("height_blocks", min=1, max=65536 // multiple)
        width = multiple * Dim("width_blocks", min=1, max=65536 // multiple)
    else:
        height, width = Dim("height", min=2, max=65536), Dim("width", min=2, max=65536)
    argument = next(iter(inspect.signature(model.forward).parameters))
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            input_names=["image"],
            output_names=["denoised"],
            opset_version=opset,
            dynamic_shapes={argument: {0: batch, 2: height, 3: width}},
            external_data=False,
            optimize=True,
            verbose=False,
        )
    proto = program.model_proto
    proto.producer_name = "emdenoise"
    if fp16:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        proto = convert_float_to_float16(proto, keep_io_types=True)
        _topological_sort(proto.graph)  # the converter appends its input casts at the end
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, path)
    size = path.stat().st_size
    if size > MAX_GRAPH_BYTES:
        raise UserError(f"{path} is {size / 2**20:.1f} MiB, above the 16 MiB a shipped graph may take; export with --fp16 or a smaller width.")
    return path


@contextlib.contextmanager
def _max_pool_as_average():
    """Route max-pooling through average pooling (same window, every input connected)."""
    import torch.nn.functional as F

    original = F.max_pool2d

    def average(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        return F.avg_pool2d(input, kernel_size, stride, padding, ceil_mode)

    F.max_pool2d = average
    try:
        yield
    finally:
        F.max_pool2d = original


def _structural_probe(model):
    """A float64 copy whose every path carries signal: convolutions average their inputs
    (positive weights 1/fan-in, zero bias), batch norms are identities, so with a positive
    input no ReLU is ever off and no connection is silenced by the trained weights.
    """
    import copy

    import torch
    from torch import nn

    probe = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for module in probe.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                module.weight.fill_(1.0 / module.weight[0].numel())
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_parameters()
                module.reset_running_stats()
    return probe


def _topological_sort(graph) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(name in available for name in n.input)]
        if not ready:
            raise UserError("the exported graph has a cycle or a dangling input; report this as a bug.")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [n for n in pending if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


def receptive_field(model, *, size: int | None = None, max_size: int = 2048) -> int:
    """Measure the receptive field: the side of the square of inputs that can change one output pixel.

    The network's structure is probed, not its trained weights (which can silence a
    connection for one input and not another): in a copy whose convolutions average their
    inputs, whose batch norms are identities and whose max-pooling is average pooling,
    every connection carries signal. For every pooling phase ``p`` in
    ``0 .. multiple_of - 1`` the output pixel ``(c + p, c + p)`` is back-propagated to a
    positive input; the largest Chebyshev distance of a non-zero gradient from that pixel
    is the radius ``r`` and the field is ``2 r + 1``. The input grows until the support no
    longer reaches its border.

    Parameters
    ----------
    model : torch.nn.Module
    size : int, optional
        First input side tried (default 64, rounded up to ``multiple_of``).
    max_size : int
        Give up above this input side.

    Returns
    -------
    int
        Odd receptive-field side in pixels.
    """
    import torch

    multiple = _multiple_of(model)
    side = -(-int(size or 64) // multiple) * multiple
    probe = _structural_probe(model)
    with _max_pool_as_average():
        while side <= max_size:
            radius, touches = 0, False
            centre = (side // 2) // multiple * multiple
            for phase in range(multiple):
                x = torch.ones(1, 1, side, side, dtype=torch.float64, requires_grad=True)
                probe(x)[0, 0, centre + phase, centre + phase].backward()
                rows, cols = np.nonzero(x.grad[0, 0].numpy())
                radius = max(radius, int(np.abs(rows - centre - phase).max()), int(np.abs(cols - centre - phase).max()))
                touches = bool(rows.min() == 0 or cols.min() == 0 or rows.max() == side - 1 or cols.max() == side - 1)
                if touches:
                    break
            if not touches:
                return 2 * radius + 1
            side *= 2
    raise UserError(f"the receptive field exceeds {max_size} px; the model looks global: mark its card global instead.")


def parity(model, onnx_path: str | Path, *, shape: tuple[int, int, int, int] | None = None, seed: int = 0) -> float:
    """Max abs difference between PyTorch and ONNX Runtime (CPU) on Poisson-count input.

    Parameters
    ----------
    model : torch.nn.Module
    onnx_path : path-like
    shape : (N, 1, H, W), optional
        Default: two frames of 96 x 160 (rounded up to ``multiple_of``), so batch, height
        and width all differ from the export example.
    seed : int

    Returns
    -------
    float
    """
    import onnxruntime as ort
    import torch

    multiple = _multiple_of(model)
    if shape is None:
        shape = (2, 1, -(-96 // multiple) * multiple, -(-160 // multiple) * multiple)
    rng = np.random.default_rng(seed)
    x = rng.poisson(rng.uniform(0.2, 1.5, size=shape)).astype(np.float32)
    model = model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    (got,) = session.run(["denoised"], {"image": x})
    return float(np.max(np.abs(got.astype(np.float64) - expected)))


def save_weights(model, path: str | Path) -> Path:
    """The state dict as ``.npz`` (plain arrays: loads without pickle)."""
    path = Path(path)
    arrays = {name: tensor.detach().cpu().numpy() for name, tensor in model.state_dict().items()}
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return path


def load_weights(model, path: str | Path):
    """Load a state dict written by :func:`save_weights` into ``model``; returns ``model``."""
    import torch

    with np.load(path, allow_pickle=False) as arrays:
        state = {name: torch.from_numpy(np.array(arrays[name])) for name in arrays.files}
    model.load_state_dict(state)
    return model


def model_from_folder(folder: str | Path):
    """Rebuild the PyTorch model of an exported folder from its card and ``weights.npz``."""
    import json

    from emdenoise.models import build_model

    folder = Path(folder)
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    spec = (card.get("architecture") or {}).get("spec")
    # "torch_state" is the key the first Ede/autoencoder cards used.
    weights = (card.get("torch_weights") or card.get("torch_state") or {}).get("file")
    if not spec or not weights:
        raise UserError(f"{folder} was not exported from PyTorch by emdenoise (no architecture spec or weights); nothing to compare.")
    model = build_model(spec)
    return load_weights(model, folder / weights).eval()


__all__ = [
    "OPSET",
    "PARITY_TOLERANCE",
    "export_onnx",
    "load_weights",
    "model_from_folder",
    "parity",
    "receptive_field",
    "save_weights",
]


def checkpoint_model(state: dict[str, Any]):
    """The model of a checkpoint, in eval mode, ready to export (distilled students padded)."""
    from emdenoise.models import build_model

    model = build_model(state["recipe"]["model"])
    model.load_state_dict(state["model"])
    if hasattr(model, "set_padding"):
        model.set_padding(True)
    return model.eval()


_ARCHITECTURE = {
    "sbd-unet": "SBD large-field-of-view UNet (seed 003, appendix C.1): 4 scales of conv-BN-ReLU-conv-BN-ReLU "
                "blocks, max-pool down, bilinear up, concatenated skips, base width {width} (authors' channel "
                "layout, which gives Table 2's parameter counts)",
    "dncnn": "DnCNN (seed 003, appendix C.2): {depth} 3x3 convolutional layers of {width} channels with batch "
             "normalisation and ReLU, residual output (input minus predicted noise)",
    "durr-unet": "DURR small UNet (seed 003, appendix C.3): 5x5 and 3x3 convolutions, one stride-2 level with "
                 "dilated convolutions (2, 4), transposed-convolution upsampling and one skip",
    "ede-mlp": "{kind} on a {size}x{size} input (seed 002, sec. 3.1, fig. 3){hidden_text}",
}

_NORMALIZATION_NOTE = (
    "input is detected electrons per pixel: the engine applies (raw - offset) / gain with the image's "
    "calibration (gain 1, offset 0 when none is given) and returns the output in the same counts"
)


def _architecture(spec: dict[str, Any], parameters: int, source: str) -> dict[str, Any]:
    kwargs = {k: v for k, v in spec.items() if k != "family"}
    if spec["family"] == "ede-mlp":
        hidden = int(kwargs.get("hidden", 0))
        kwargs["kind"] = "kernel (0 hidden layers)" if hidden == 0 else f"MLP with {hidden} hidden layer{'s' * (hidden > 1)}"
        kwargs["hidden_text"] = "" if hidden == 0 else f" of w^2 = {int(kwargs['size']) ** 2} sigmoid units each, linear output"
    description = _ARCHITECTURE[spec["family"]].format(**kwargs)
    return {"description": description, "spec": dict(spec), "parameters": int(parameters), "source": source}


def _compact_history(history: list[dict[str, Any]]) -> list[list[float]]:
    return [[int(h["step"]), round(float(h["loss"]), 6), round(float(h["val_psnr"]), 3)] for h in history]


def export_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    model_id: str,
    *,
    name: str | None = None,
    modality: str = "hrtem",
    default: bool = False,
    tile: int = 512,
    fp16: bool = False,
    notes: list[str] | None = None,
    log=print,
) -> Path:
    """Export a training checkpoint as the model folder ``out_dir/model_id``.

    Writes ``model.onnx`` (checked against PyTorch: max abs error <= 1e-4 in fp32),
    ``weights.npz`` and ``card.json`` (metrics empty until :func:`attach_metrics`).

    Parameters
    ----------
    checkpoint : path-like
        ``best.pt``/``last.pt`` or a training ``--out`` folder (its ``best.pt``).
    out_dir : path-like
        Model repository (``export/`` for shipped models).
    model_id : str
        Lowercase ``family-variant[-detail]``.
    name, modality, default, tile, notes
        Card fields.
    fp16 : bool
        Export a float16 graph (parity then checked at 1e-2 relative to the output range).
    log : callable

    Returns
    -------
    Path
        The model folder.
    """
    from emdenoise.engine.cards import MODEL_ID_PATTERN, file_sha256
    from emdenoise.export.cards import write_card
    from emdenoise.models import count_parameters
    from emdenoise.train.checkpoints import LAST, load_checkpoint
    from emdenoise.train.recipes import Recipe

    if not MODEL_ID_PATTERN.match(model_id):
        raise UserError(f"model id {model_id!r} must be lowercase family-variant[-detail], e.g. sbd-unet32-hrtem.")
    state = load_checkpoint(checkpoint)
    recipe = Recipe.from_dict(state["recipe"])
    model = checkpoint_model(state)
    folder = Path(out_dir) / model_id
    folder.mkdir(parents=True, exist_ok=True)
    graph = export_onnx(model, folder / "model.onnx", fp16=fp16)
    error = parity(model, graph)
    limit = PARITY_TOLERANCE if not fp16 else 1e-2
    if not error <= limit:
        raise UserError(f"ONNX Runtime differs from PyTorch by {error:.2e} (limit {limit:g}); the export is wrong, do not ship {graph}.")
    log(f"{model_id}: exported {graph.stat().st_size / 2**20:.2f} MiB, parity max abs error {error:.2e}")
    weights = save_weights(model, folder / "weights.npz")
    rf = receptive_field(model)
    log(f"{model_id}: measured receptive field {rf} px")
    last_path = Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent
    last = load_checkpoint(last_path / LAST) if (last_path / LAST).is_file() else state
    best_val = max((h["val_psnr"] for h in state["history"] if h["step"] == state["step"]), default=None)
    data = state.get("data") or {}
    card: dict[str, Any] = {
        "id": model_id,
        "name": name or model_id,
        "version": "1",
        "task": "denoise",
        "backend": "onnx",
        "architecture": _architecture(recipe.model, count_parameters(model), recipe.source),
        "modality": modality,
        "default": bool(default),
        "graphs": {"denoise": {"file": graph.name, "input": "image", "output": "denoised",
                               "precision": "fp16" if fp16 else "fp32"}},
        "torch_weights": {"file": weights.name, "sha256": file_sha256(weights),
                          "note": "PyTorch state dict (npz) for the parity test; not needed to run the model"},
        "normalization": {"kind": "counts", "note": _NORMALIZATION_NOTE},
        "receptive_field": rf,
        "receptive_field_method": "measured: support of d(output pixel)/d(input) at every pooling phase, on a structural copy (averaging convolutions, identity batch norms, average pooling)",
        "global": False,
        "tile": {"size": int(tile), "multiple_of": _multiple_of(model), "overlap": rf // 2},
        "dose_range": [round(v, 3) for v in data.get("mean_counts_per_px", [])] or None,
        "dose_range_note": (f"mean counts per pixel of the training images, whose vacuum reads {recipe.dose} counts/px "
                            "(seed 003, sec. 4: one 0.025 s frame)"),
        "training_data": data.get("train", ""),
        "validation_data": data.get("validation", ""),
        "training": {
            "recipe": recipe.as_dict(),
            "checkpoint_step": int(state["step"]),
            "steps_run": int(last["step"]),
            "wall_seconds": round(float(last["seconds"]), 1),
            "val_psnr_at_checkpoint": best_val,
            "torch_version": state.get("torch_version"),
            "history_step_loss_valpsnr": _compact_history(last["history"]),
        },
        "export": {"opset": OPSET, "parity_max_abs_error": error, "parity_input": "Poisson counts, 2 x 1 x ~96 x 160"},
        "metrics": {},
        "notes": list(notes or []),
    }
    origin = last.get("init")
    if origin:
        before = origin["recipe"]
        card["training"]["initialised_from"] = {
            "checkpoint_step": origin["step"],
            "wall_seconds": round(float(origin["seconds"]), 1),
            "recipe_differences": {k: v for k, v in before.items() if recipe.as_dict().get(k) != v},
            "history_step_loss_valpsnr": _compact_history(origin["history"]),
        }
        card["training"]["total_steps"] = int(origin["step"]) + int(last["step"])
        card["training"]["total_wall_seconds"] = round(float(origin["seconds"]) + float(last["seconds"]), 1)
    if recipe.task == "distill":
        card["teacher"] = _teacher_provenance(recipe.teacher)
    write_card(folder, card)
    return folder


def _teacher_provenance(teacher: str | None) -> dict[str, Any]:
    from emdenoise.engine.repository import ModelRepository

    try:
        card = ModelRepository().get(teacher)
    except Exception:  # the teacher may have been removed since; keep its id
        return {"id": teacher}
    return {"id": teacher, "graph_sha256": card.graph_sha256()}


def attach_metrics(folder: str | Path, bench_json: str | Path) -> dict[str, Any]:
    """Copy this model's row of an ``emdenoise bench sbd --method ID`` result onto its card.

    Returns
    -------
    dict
        The ``metrics`` written.
    """
    from emdenoise.export.cards import card_and_bench_result, write_card

    folder = Path(folder)
    card, result = card_and_bench_result(
        folder, bench_json, f"cannot read benchmark result {bench_json} ({{error}}); give the sbd.json that 'emdenoise bench sbd' wrote."
    )
    rows = {row["key"]: row for row in result.get("methods", [])}
    row = rows.get(card["id"])
    if row is None:
        raise UserError(f"{bench_json} has no row for {card['id']}; rerun 'emdenoise bench {result.get('protocol', 'sbd')} --method {card['id']}'.")
    classical = [r for r in rows.values() if r["kind"] == "classical" and r["key"] != "unfiltered"]
    best = max(classical, key=lambda r: r["psnr_mean"], default=None)
    keep = ("psnr_mean", "psnr_std", "ssim_mean", "ssim_std", "seconds_per_megapixel")
    metrics = {
        "benchmark": f"emdenoise bench {result.get('protocol')}",
        "reference": result.get("reference"),
        "test_set": {k: result.get(k) for k in ("n", "size", "seed", "vacuum_counts", "clean")},
        **{k: row[k] for k in keep},
        "best_classical": None if best is None else {"name": best["name"], **{k: best[k] for k in keep[:4]}},
        "others": {r["key"]: {k: r[k] for k in keep[:4]} for r in rows.values() if r["key"] != card["id"]},
        "command": (result.get("provenance") or {}).get("command"),
        "created": (result.get("provenance") or {}).get("created"),
    }
    card["metrics"] = metrics
    write_card(folder, card)
    return metrics
