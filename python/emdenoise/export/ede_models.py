"""Export Ede's encoder-decoder (seed 001) and autoencoders (seed 002) as model folders.

``ede-xception-*`` folders hold one graph, ``image`` (N, 1, H, W; H, W multiples of 16) ->
``denoised``, with ``range01`` normalisation (seed 001, sec. 3.1: crops are scaled to
[0, 1]) and ``global: true``: the ASPP image-pooling branch makes every output pixel
depend on the whole tile, so the engine tiles with the card's overlap and the seams are
measured at export (``export.seam_max_abs_error``).

``ede-ae-d<d>`` folders hold two graphs under ``task: "encode"`` (seed 002, sec. 2):
``graphs.encode`` maps ``image`` (N, 1, H, W; multiples of 8) to ``latent`` (N, d, H/8,
W/8) and ``graphs.decode`` maps ``latent`` back to ``denoised``; both are checked
against PyTorch. Inputs use the ``min-mean`` normalisation the autoencoders were
trained with. The PyTorch state dict ships as ``weights.npz`` under the card key
``torch_state`` (these cards do not follow the counts-normalised single-graph layout
that ``tests/test_export_parity.py`` checks under ``torch_weights``;
``tests/test_ede_models.py`` checks them instead).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from emdenoise.errors import UserError
from emdenoise.export.torch_export import (
    MAX_GRAPH_BYTES,
    OPSET,
    PARITY_TOLERANCE,
    _quiet_exporter,
    save_weights,
)


def export_graph(module, path: str | Path, *, channels: int, multiple: int, input_name: str, output_name: str) -> Path:
    """Export ``module`` to one self-contained ONNX file, dynamic in batch, height and width.

    Parameters
    ----------
    module : torch.nn.Module
        ``(N, channels, H, W) -> (N, C, H', W')``.
    path : path-like
    channels : int
        Input channels.
    multiple : int
        H and W must be multiples of this (1: any size).
    input_name, output_name : str

    Returns
    -------
    Path
    """
    import onnx
    import torch
    from torch.export import Dim

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    side = 4 * max(multiple, 4)
    example = torch.rand(2, channels, side, side + multiple)
    if multiple > 1:
        height = multiple * Dim(f"{input_name}_hb", min=1, max=65536 // multiple)
        width = multiple * Dim(f"{input_name}_wb", min=1, max=65536 // multiple)
    else:
        height, width = Dim(f"{input_name}_h", min=2, max=65536), Dim(f"{input_name}_w", min=2, max=65536)
    argument = next(iter(inspect.signature(module.forward).parameters))
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            module, (example,), dynamo=True, input_names=[input_name], output_names=[output_name],
            opset_version=OPSET, dynamic_shapes={argument: {0: Dim("batch", min=1, max=4096), 2: height, 3: width}},
            external_data=False, optimize=True, verbose=False,
        )
    proto = program.model_proto
    proto.producer_name = "emdenoise"
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, path)
    if path.stat().st_size > MAX_GRAPH_BYTES:
        raise UserError(f"{path} is {path.stat().st_size / 2**20:.1f} MiB, above the 16 MiB a shipped graph may take; use a smaller width.")
    return path


def graph_parity(module, path: str | Path, x: np.ndarray, *, input_name: str, output_name: str) -> float:
    """Max abs difference between PyTorch and ONNX Runtime (CPU) on ``x``."""
    import onnxruntime as ort
    import torch

    with torch.no_grad():
        expected = module.eval()(torch.from_numpy(x)).numpy()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (got,) = session.run([output_name], {input_name: x})
    if got.shape != expected.shape:
        return float("inf")
    return float(np.max(np.abs(got.astype(np.float64) - expected)))


def parity_input(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A min-max-scaled Poisson image batch (what the graphs see after normalisation)."""
    rng = np.random.default_rng(seed)
    x = rng.poisson(rng.uniform(5.0, 60.0, size=shape)).astype(np.float32)
    lo = x.min(axis=(-2, -1), keepdims=True)
    hi = x.max(axis=(-2, -1), keepdims=True)
    return ((x - lo) / np.maximum(hi - lo, 1.0)).astype(np.float32)


def seam_error(module, *, size: int = 256, tile: int = 128, overlap: int = 32, seed: int = 0) -> float:
    """Max abs difference between a whole-image pass and an overlapped-tile pass (core crops stitched).

    Measures what ``global: true`` costs when the engine tiles: the image-pooling branch
    sees each tile's mean instead of the image's.
    """
    import torch

    x = parity_input((1, 1, size, size), seed)
    with torch.no_grad():
        whole = module.eval()(torch.from_numpy(x)).numpy()[0, 0]
        stitched = np.zeros_like(whole)
        core = tile - 2 * overlap
        padded = np.pad(x[0, 0], overlap, mode="reflect")
        for y in range(0, size, core):
            for xx in range(0, size, core):
                window = padded[y:y + tile, xx:xx + tile]
                out = module(torch.from_numpy(np.ascontiguousarray(window))[None, None]).numpy()[0, 0]
                h, w = min(core, size - y), min(core, size - xx)
                stitched[y:y + h, xx:xx + w] = out[overlap:overlap + h, overlap:overlap + w]
    return float(np.max(np.abs(stitched - whole)))


def _training_section(state: dict[str, Any], last: dict[str, Any]) -> dict[str, Any]:
    section = {
        "recipe": state["recipe"],
        "checkpoint_step": int(state["step"]),
        "steps_run": int(last["step"]),
        "wall_seconds": round(float(last["seconds"]), 1),
        "torch_version": state.get("torch_version"),
        "history_step_mse_valmse": [[int(h["step"]), round(float(h["loss"]), 6), round(float(h["val_mse"]), 6)]
                                    for h in last["history"]],
    }
    origin = last.get("init")
    if origin:
        section["initialised_from"] = {
            "checkpoint_step": origin["step"], "wall_seconds": round(float(origin["seconds"]), 1),
            "dose": origin["recipe"]["data"].get("dose"),
            "history_step_mse_valmse": [[int(h["step"]), round(float(h["loss"]), 6), round(float(h["val_mse"]), 6)]
                                        for h in origin["history"]],
        }
    return section


def _load(checkpoint: str | Path):
    from emdenoise.models import build_model
    from emdenoise.train.checkpoints import LAST, load_checkpoint

    state = load_checkpoint(checkpoint)
    model = build_model(state["recipe"]["model"])
    model.load_state_dict(state["model"])
    folder = Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent
    last = load_checkpoint(folder / LAST) if (folder / LAST).is_file() else state
    return state, last, model.eval()


def export_ede_network(checkpoint: str | Path, out_dir: str | Path, model_id: str, *, name: str | None = None,
                       tile: int = 512, overlap: int = 64, notes: list[str] | None = None, log=print) -> Path:
    """Export an ``ede-xception`` checkpoint as ``out_dir/model_id`` (seed 001, sec. 2).

    Returns
    -------
    Path
        The model folder (``model.onnx``, ``weights.npz``, ``card.json``; metrics empty).
    """
    from emdenoise.engine.cards import file_sha256
    from emdenoise.export.cards import write_card
    from emdenoise.models import count_parameters

    state, last, model = _load(checkpoint)
    spec = state["recipe"]["model"]
    if spec["family"] != "ede-xception":
        raise UserError(f"{checkpoint} holds a {spec['family']} model; export_ede_network takes ede-xception checkpoints.")
    folder = Path(out_dir) / model_id
    folder.mkdir(parents=True, exist_ok=True)
    graph = export_graph(model, folder / "model.onnx", channels=1, multiple=16, input_name="image", output_name="denoised")
    error = graph_parity(model, graph, parity_input((2, 1, 96, 160)), input_name="image", output_name="denoised")
    if not error <= PARITY_TOLERANCE:
        raise UserError(f"ONNX Runtime differs from PyTorch by {error:.2e}; do not ship {graph}.")
    seams = seam_error(model)
    log(f"{model_id}: {graph.stat().st_size / 2**20:.2f} MiB, parity {error:.2e}, tile seams {seams:.3e}")
    weights = save_weights(model, folder / "weights.npz")
    dose = state["recipe"]["data"].get("dose", "low")
    card = {
        "id": model_id, "name": name or model_id, "version": "1", "task": "denoise", "backend": "onnx",
        "architecture": {
            "description": (f"Ede & Beanland atrous encoder-decoder (seed 001, sec. 2): modified Xception entry flow, "
                            f"{spec.get('middle', 12)} middle-flow skip-3 blocks, ASPP rates 6/12/18 with image pooling, "
                            f"two-concatenation decoder, transposed convolutions; width x{spec.get('width', 1.0)}"),
            "spec": dict(spec), "parameters": int(count_parameters(model)), "source": state["recipe"]["source"],
        },
        "modality": "tem",
        "default": False,
        "graphs": {"denoise": {"file": graph.name, "input": "image", "output": "denoised", "precision": "fp32"}},
        "torch_state": {"file": weights.name, "sha256": file_sha256(weights),
                        "note": "PyTorch state dict (npz) for the parity test; not needed to run the model"},
        "normalization": {"kind": "range01", "note": "seed 001, sec. 3.1: the noisy crop is scaled to [0, 1] by min and max; the engine inverts the map"},
        "receptive_field": None,
        "global": True,
        "global_note": "ASPP image pooling (seed 001, sec. 2.3): each output depends on the whole tile",
        "tile": {"size": int(tile), "multiple_of": 16, "overlap": int(overlap)},
        "dose_range": [25.0, 2500.0] if dose == "ordinary" else [25.0, 300.0],
        "dose_range_note": ("counts at the crop's brightest pixel: low dose 25 + Exp(75) (seed 001, eq. 1), "
                            "ordinary dose 200-2500 (sec. 3.1)"),
        "training_data": state["data"]["train"], "validation_data": state["data"]["validation"],
        "training": _training_section(state, last),
        "export": {"opset": OPSET, "parity_max_abs_error": error, "parity_input": "min-max scaled Poisson, 2 x 1 x 96 x 160",
                   "seam_max_abs_error": seams,
                   "seam_protocol": "256x256 min-max Poisson image: whole pass vs 128 px tiles with 32 px overlap, reflection padded"},
        "metrics": {},
        "notes": list(notes or []),
    }
    write_card(folder, card)
    return folder


def export_autoencoder(checkpoint: str | Path, out_dir: str | Path, model_id: str, *, name: str | None = None,
                       notes: list[str] | None = None, log=print) -> Path:
    """Export an ``ede-ae`` checkpoint as encoder and decoder graphs in ``out_dir/model_id`` (seed 002, sec. 2)."""
    from emdenoise.engine.cards import file_sha256
    from emdenoise.export.cards import write_card
    from emdenoise.models import count_parameters

    state, last, model = _load(checkpoint)
    spec = state["recipe"]["model"]
    if spec["family"] != "ede-ae":
        raise UserError(f"{checkpoint} holds a {spec['family']} model; export_autoencoder takes ede-ae checkpoints.")
    folder = Path(out_dir) / model_id
    folder.mkdir(parents=True, exist_ok=True)
    encoder = export_graph(model.encoder, folder / "encoder.onnx", channels=1, multiple=8, input_name="image", output_name="latent")
    decoder = export_graph(model.decoder, folder / "decoder.onnx", channels=model.depth, multiple=1, input_name="latent", output_name="denoised")
    x = parity_input((2, 1, 160, 160))
    enc_error = graph_parity(model.encoder, encoder, x, input_name="image", output_name="latent")
    import torch

    with torch.no_grad():
        latent = model.encoder(torch.from_numpy(x)).numpy()
    dec_error = graph_parity(model.decoder, decoder, latent, input_name="latent", output_name="denoised")
    if not max(enc_error, dec_error) <= PARITY_TOLERANCE:
        raise UserError(f"ONNX Runtime differs from PyTorch by {max(enc_error, dec_error):.2e}; do not ship {folder}.")
    log(f"{model_id}: encoder {encoder.stat().st_size / 2**20:.2f} MiB parity {enc_error:.2e}, "
        f"decoder {decoder.stat().st_size / 2**20:.2f} MiB parity {dec_error:.2e}")
    weights = save_weights(model, folder / "weights.npz")
    card = {
        "id": model_id, "name": name or model_id, "version": "1", "task": "encode", "backend": "onnx",
        "architecture": {
            "description": (f"Ede denoising autoencoder (seed 002, sec. 2, fig. 1): 160x160 -> 20x20x{model.depth} latent "
                            f"(64:{model.depth} compression), conv-BN-ReLU layers, width {model.width}"),
            "spec": dict(spec), "parameters": int(count_parameters(model)), "source": state["recipe"]["source"],
        },
        "modality": "tem",
        "default": False,
        "latent": {"depth": model.depth, "downsampling": 8, "compression": f"64:{model.depth}"},
        "graphs": {
            "encode": {"file": encoder.name, "input": "image", "output": "latent", "precision": "fp32"},
            "decode": {"file": decoder.name, "input": "latent", "output": "denoised", "precision": "fp32"},
        },
        "torch_state": {"file": weights.name, "sha256": file_sha256(weights),
                        "note": "PyTorch state dict (npz) for the parity test; not needed to run the model"},
        "normalization": {"kind": "min-mean", "note": "seed 002, sec. 2.2: subtract the minimum, divide by the mean; keep the map to invert after decoding"},
        "receptive_field": None,
        "global": False,
        "tile": {"size": 160, "multiple_of": 8, "overlap": 0},
        "training_data": state["data"]["train"], "validation_data": state["data"]["validation"],
        "training_noise": f"Ede's {state['recipe']['data'].get('dose', 'ordinary')} dose law (seed 001, sec. 3.1) on the input crop",
        "training": _training_section(state, last),
        "export": {"opset": OPSET, "parity_max_abs_error": {"encode": enc_error, "decode": dec_error},
                   "parity_input": "min-max scaled Poisson, 2 x 1 x 160 x 160 (decoder: the encoder's latents)"},
        "metrics": {},
        "notes": list(notes or []),
    }
    write_card(folder, card)
    return folder


def attach_ede_metrics(folder: str | Path, bench_json: str | Path) -> dict[str, Any]:
    """Copy this model's row of an ``emdenoise bench ede --method ID`` result onto its card (seed 001, Table 1).

    Metrics per dose go under ``metrics[dose]``, with the best classical method of the
    same run and the relative MSE change against it.
    """
    from emdenoise.export.cards import card_and_bench_result, write_card

    folder = Path(folder)
    card, result = card_and_bench_result(
        folder, bench_json, f"cannot read {bench_json} ({{error}}); give the ede-<dose>.json that 'emdenoise bench ede' wrote."
    )
    rows = {row["key"]: row for row in result.get("methods", [])}
    row = rows.get(card["id"])
    if row is None:
        raise UserError(f"{bench_json} has no row for {card['id']}; rerun 'emdenoise bench ede --method {card['id']}'.")
    keep = ("mse_mean", "mse_std", "ssim_mean", "ssim_std")
    classical = [r for r in rows.values() if r["kind"] == "classical" and r["key"] != "unfiltered"]
    best = min(classical, key=lambda r: r["mse_mean"], default=None)
    entry = {
        "benchmark": "emdenoise bench ede", "law": result.get("law"), "n": result.get("n"), "crop": result.get("crop"),
        "seed": result.get("seed"), "clean": result.get("clean"),
        **{k: row[k] for k in keep}, "seconds_per_megapixel": row.get("seconds_per_megapixel"),
        "best_classical": None if best is None else {"key": best["key"], **{k: best[k] for k in keep}},
        "mse_change_vs_best_classical": None if best is None else row["mse_mean"] / best["mse_mean"] - 1.0,
        "command": (result.get("provenance") or {}).get("command"),
    }
    card.setdefault("metrics", {})[result.get("dose", "low")] = entry
    write_card(folder, card)
    return entry


def attach_table3_metrics(folder: str | Path, bench_json: str | Path) -> dict[str, Any]:
    """Copy this model's row of an ``emdenoise bench autoencoders`` result onto its card (seed 002, Table 3).

    Works for autoencoders (errors against truth and input) and for the kernels/MLPs
    distilled from one (errors against truth and against their teacher); the entry goes
    under ``metrics["table3_<dose>"]``.
    """
    from emdenoise.export.cards import card_and_bench_result, write_card

    unreadable = (f"cannot read {bench_json} ({{error}}); give the autoencoders-<dose>.json that "
                  "'emdenoise bench autoencoders' wrote.")
    folder = Path(folder)
    card, result = card_and_bench_result(folder, bench_json, unreadable)
    try:
        rows = {row["id"]: row for row in result["rows"]}
    except (KeyError, TypeError) as error:
        raise UserError(unreadable.format(error=error)) from None
    row = rows.get(card["id"])
    if row is None:
        raise UserError(f"{bench_json} has no row for {card['id']}; install the model and rerun 'emdenoise bench autoencoders'.")
    entry = {"benchmark": "emdenoise bench autoencoders", "n": result.get("n"), "dose": result.get("dose"),
             "seed": result.get("seed"), "clean": result.get("clean"), "teacher": result.get("teacher"),
             "units": "MSE after the noisy 160x160 crop's min-mean map (seed 002, sec. 2.2)",
             **{k: v for k, v in row.items() if k.endswith(("_mean", "_std")) or k == "seconds_per_megapixel"},
             "unfiltered_truth_mean": rows.get("Unfiltered", {}).get("truth_mean"),
             "command": (result.get("provenance") or {}).get("command")}
    card.setdefault("metrics", {})[f"table3_{result.get('dose', 'ordinary')}"] = entry
    write_card(folder, card)
    return entry
