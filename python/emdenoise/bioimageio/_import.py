"""``emdenoise import-bioimageio``: install a bioimage.io ONNX model as an emdenoise model.

The package (folder, ``rdf.yaml`` or zip; any format bioimageio.spec reads, converted to
the current one) becomes ``<user models>/<id>/`` (``$EMDENOISE_MODELS``, else the platform's
user data folder: :func:`emdenoise.engine.repository.user_models_dir`) with ``model.onnx``,
``card.json`` and the package's ``rdf.yaml``, so ``emdenoise models`` lists it and
``emdenoise denoise --model ID`` runs it.

What is carried over, and how:

- A package written by ``emdenoise export-bioimageio`` keeps its emdenoise card under
  ``config.emdenoise.card``: normalisation, receptive field, tiling, modality and dose
  range come back from it (a counts model again takes each image's gain and offset), the
  package's own pre/postprocessing, which only stands in for them, is not applied, and the
  reflection padding built into its graph is taken out again (the engine pads each tile;
  padding twice would move a pooling network's grid and change its pixels).
- Any other package: one 2-D input and one output, axes a permutation of batch, y, x and
  an optional channel of size 1, ONNX weights. Fixed steps (``scale_linear``,
  ``fixed_zero_mean_unit_variance``) are built into the graph; ``scale_range`` with
  percentiles 0 and 100 over y and x becomes the card's ``range01`` normalisation, so the
  engine returns the image's own units; other per-image steps (e.g. percentile
  normalisation 1-99.8 or ``zero_mean_unit_variance``) are refused. The output halo gives
  the receptive field (``2 * halo + 1``); without one the model is treated as global.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import onnx

from emdenoise._version import __version__
from emdenoise.bioimageio import _spec
from emdenoise.bioimageio._graph import adapt_for_engine, graph_io_names, without_reflection_padding
from emdenoise.engine.cards import MODEL_ID_PATTERN, file_sha256, load_card
from emdenoise.errors import UserError

DEFAULT_TILE = 512
DEFAULT_GLOBAL_OVERLAP = 32


def _slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-") or "model"


def default_id(descr, emdenoise_card: dict | None) -> str:
    """``bioimageio-<original id or name>``: never one of the shipped ids."""
    if emdenoise_card:
        return f"bioimageio-{emdenoise_card['id']}"
    return f"bioimageio-{_slug(str(descr.id or descr.name))}"[:80].rstrip("-")


def _axis_ids(tensor) -> list[str]:
    ids = []
    for axis in tensor.axes:
        kind = getattr(axis, "type", None)
        if kind == "batch":
            ids.append("batch")
        elif kind == "channel":
            if axis.size != 1:
                raise UserError(
                    f"tensor {tensor.id} has {axis.size} channels; emdenoise runs grayscale models (one channel)."
                )
            ids.append("channel")
        elif kind == "space" and str(axis.id) in ("y", "x"):
            ids.append(str(axis.id))
        else:
            raise UserError(
                f"tensor {tensor.id} has a {kind} axis {axis.id}; emdenoise runs 2-D models with axes batch, "
                "(channel,) y, x."
            )
    if "batch" not in ids or "y" not in ids or "x" not in ids:
        raise UserError(f"tensor {tensor.id} has axes {ids}; emdenoise needs batch, y and x axes.")
    return ids


def _fixed_affine(step, where: str) -> tuple[float, float] | None:
    """(gain, offset) of a fixed bioimage.io step, or None for a per-image one."""
    kind = step.id
    kwargs = step.kwargs
    if kind == "ensure_dtype":
        if str(kwargs.dtype) not in ("float32", "float64"):
            raise UserError(f"the {where} casts to {kwargs.dtype}; emdenoise runs float32 models only.")
        return (1.0, 0.0)
    if kind == "scale_linear":
        gain, offset = kwargs.gain, kwargs.offset
        if not isinstance(gain, (int, float)) or not isinstance(offset, (int, float)):
            raise UserError(f"the {where} scales each channel differently; emdenoise runs one-channel models.")
        return (float(gain), float(offset))
    if kind == "fixed_zero_mean_unit_variance":
        mean, std = kwargs.mean, kwargs.std
        if not isinstance(mean, (int, float)) or not isinstance(std, (int, float)):
            raise UserError(f"the {where} normalises each channel differently; emdenoise runs one-channel models.")
        return (1.0 / float(std), -float(mean) / float(std))
    return None


def _steps(descr_steps, where: str, *, allow_range: bool) -> tuple[str, list[tuple[float, float]]]:
    """The card normalisation kind and the fixed affine steps for a pre/postprocessing list."""
    kind, affine = "none", []
    for index, step in enumerate(descr_steps):
        fixed = _fixed_affine(step, where)
        if fixed is not None:
            if fixed != (1.0, 0.0):
                affine.append(fixed)
            continue
        kwargs = step.kwargs
        is_frame_range = (
            step.id == "scale_range"
            and float(kwargs.min_percentile) == 0.0
            and float(kwargs.max_percentile) == 100.0
            and kwargs.reference_tensor is None
            and {str(a) for a in (kwargs.axes or ("y", "x"))} >= {"y", "x"}
            and "channel" not in {str(a) for a in (kwargs.axes or ())}
        )
        if allow_range and is_frame_range and index == 0:
            kind = "range01"
            continue
        raise UserError(
            f"the {where} step {step.id} ({kwargs}) has no emdenoise equivalent; only fixed scale_linear, "
            "fixed_zero_mean_unit_variance and a first scale_range with percentiles 0-100 are supported."
        )
    return kind, affine


def _tiling(descr, tensor_in, tensor_out) -> dict[str, Any]:
    """Receptive field, tile and global flag from the input sizes and output halos."""
    multiple, fixed = 1, None
    for axis in tensor_in.axes:
        if str(axis.id) not in ("y", "x"):
            continue
        size = axis.size
        if isinstance(size, int):
            fixed = size
        elif hasattr(size, "step"):
            from math import lcm

            multiple = lcm(multiple, int(size.step or 1))
    if fixed is not None:
        raise UserError(
            f"model input {tensor_in.id} has a fixed size of {fixed} px; emdenoise tiles images and needs "
            "models that accept variable sizes."
        )
    halos = [int(getattr(a, "halo", 0) or 0) for a in tensor_out.axes if str(a.id) in ("y", "x")]
    halo = max(halos) if halos else 0
    tile = {"size": max(DEFAULT_TILE // multiple, 1) * multiple, "multiple_of": multiple}
    if halo:
        return {"receptive_field": 2 * halo + 1, "global": False, "tile": {**tile, "overlap": halo}}
    return {"global": True, "tile": {**tile, "overlap": DEFAULT_GLOBAL_OVERLAP}}


def _onnx_bytes(descr) -> bytes:
    weights = descr.weights.onnx
    if weights is None:
        formats = ", ".join(sorted(w for w, entry in descr.weights if entry is not None)) or "none"
        raise UserError(
            f"the package has no ONNX weights (it has: {formats}); convert them with bioimageio.core's weight "
            "converters first."
        )
    if getattr(weights, "external_data", None) is not None:
        raise UserError("the package's ONNX weights keep their data in a separate file; emdenoise needs one .onnx file.")
    return weights.get_reader().read()


def import_package(
    source: str | Path,
    *,
    model_id: str | None = None,
    models_dir: str | Path | None = None,
    modality: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Install a bioimage.io ONNX model package as an emdenoise model.

    Parameters
    ----------
    source : path-like
        The package: a folder holding ``rdf.yaml`` (or ``bioimageio.yaml``), that file, or a zip.
    model_id : str, optional
        Id of the installed model; default ``bioimageio-<package id or name>``.
    models_dir : path-like, optional
        Where to install; default the user model folder
        (:func:`emdenoise.engine.repository.user_models_dir`).
    modality : str, optional
        The card's modality (tem, hrtem, stem); default the emdenoise card's, else ``any``.
    overwrite : bool
        Replace an installed model of the same id.

    Returns
    -------
    Path
        The installed model folder.

    Raises
    ------
    UserError
        bioimageio.spec missing, an unreadable or invalid package, no ONNX weights, a
        layout or processing step emdenoise cannot run, an id that is malformed or taken.

    References
    ----------
    bioimage.io model description format 0.5 (bioimageio.spec); ARCHITECTURE.md, "Where
    models live" and "A model" for the card.
    """
    spec = _spec.require("bioimageio.spec")
    from emdenoise.engine.repository import ModelRepository, bundled_models_dir, user_models_dir

    path = Path(source)
    if path.is_dir():
        found = [path / name for name in ("rdf.yaml", "bioimageio.yaml") if (path / name).is_file()]
        found += sorted(path.glob("*.bioimageio.yaml"))
        if not found:
            raise UserError(f"{path} holds no rdf.yaml or bioimageio.yaml; give a bioimage.io model package.")
        path = found[0]
    if not path.exists():
        raise UserError(f"{path} does not exist; give a bioimage.io package folder, its rdf.yaml or its zip.")
    descr = spec.load_model_description(str(path), format_version="latest", perform_io_checks=True)
    if not isinstance(descr, spec.model.v0_5.ModelDescr):
        problems = "; ".join(_spec.summary_failed(descr.validation_summary))[:500] or "not a model description"
        raise UserError(f"{source} is not a valid bioimage.io model package ({problems}); check it with bioimageio.spec.")
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise UserError(
            f"the model has {len(descr.inputs)} inputs and {len(descr.outputs)} outputs; emdenoise runs models "
            "with one image in and one image out."
        )
    tensor_in, tensor_out = descr.inputs[0], descr.outputs[0]
    graph = onnx.load_from_string(_onnx_bytes(descr))
    config = descr.config.model_extra or {}
    emdenoise_card = (config.get("emdenoise") or {}).get("card")

    target_id = model_id or default_id(descr, emdenoise_card)
    if not MODEL_ID_PATTERN.match(target_id):
        raise UserError(f"model id {target_id!r} must be lowercase family-variant[-detail], e.g. bioimageio-my-model.")
    root = Path(models_dir) if models_dir else user_models_dir()
    folder = root / target_id
    taken = ModelRepository([bundled_models_dir(), root])
    if any(card.id == target_id and card.folder != folder for card in taken.cards()):
        raise UserError(f"model id {target_id} is already taken by another model; choose one with --id.")
    if folder.exists() and not overwrite:
        raise UserError(f"{folder} already exists; pass --overwrite or choose another id with --id.")

    source_info = {
        "bioimageio": {
            "name": descr.name,
            "id": str(descr.id) if descr.id else None,
            "version": str(descr.version) if descr.version else None,
            "format_version": descr.format_version,
            "license": str(descr.license) if descr.license else None,
            "authors": [a.name for a in descr.authors],
            "cite": [c.text for c in descr.cite],
            "package": str(Path(source).resolve()),
        },
        "imported_by": f"emdenoise {__version__}",
    }
    if emdenoise_card:
        card = {k: v for k, v in emdenoise_card.items() if k not in ("graphs", "torch_weights", "default")}
        card["notes"] = list(card.get("notes") or []) + [
            f"Imported from a bioimage.io package of emdenoise model {emdenoise_card['id']}: the graph has the "
            "engine's reflection padding removed again (the engine pads each tile itself); normalisation and tiling "
            "are the original card's."
        ]
        input_axes, output_axes = _axis_ids(tensor_in), _axis_ids(tensor_out)
        graph = adapt_for_engine(without_reflection_padding(graph), input_axes=input_axes, output_axes=output_axes)
    else:
        input_axes, output_axes = _axis_ids(tensor_in), _axis_ids(tensor_out)
        kind, pre = _steps(tensor_in.preprocessing, "preprocessing", allow_range=True)
        post_kind, post = _steps(tensor_out.postprocessing, "postprocessing", allow_range=False)
        graph = adapt_for_engine(graph, input_axes=input_axes, output_axes=output_axes, pre=pre, post=post)
        card = {
            "name": descr.name,
            "version": str(descr.version or "1"),
            "task": "denoise",
            "backend": "onnx",
            "modality": "any",
            "normalization": {
                "kind": kind,
                "note": "from the package's preprocessing"
                + (": scale_range 0-100 per image, and the engine maps the output back to the image's units"
                   if kind == "range01" else "; fixed steps are built into the graph"),
            },
            **_tiling(descr, tensor_in, tensor_out),
            "notes": [f"Imported from bioimage.io package {descr.name!r}: {descr.description}"[:1000]],
        }
    card.update({"id": target_id, "backend": "onnx", "task": "denoise", "default": False, "source": source_info})
    if modality:
        card["modality"] = modality
    name_in, name_out = graph_io_names(graph)

    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target_id}-", dir=root))
    try:
        onnx.save(graph, str(staging / "model.onnx"))
        card["graphs"] = {"denoise": {"file": "model.onnx", "input": name_in, "output": name_out, "precision": "fp32",
                                      "sha256": file_sha256(staging / "model.onnx")}}
        (staging / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        _copy_description(path, staging / "rdf.yaml")
        if folder.exists():
            _replace(staging, folder)
        else:
            staging.rename(folder)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    try:
        load_card(folder)
    except UserError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _copy_description(path: Path, target: Path) -> None:
    """Keep the package's description next to the card (from the folder or out of the zip)."""
    if path.suffix in (".yaml", ".yml"):
        shutil.copyfile(path, target)
        return
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n in ("rdf.yaml", "bioimageio.yaml") or n.endswith(".bioimageio.yaml")]
        if names:
            target.write_bytes(archive.read(names[0]))


def _replace(staging: Path, folder: Path) -> Path:
    """Swap ``folder`` for ``staging`` (an installed model replaced with --overwrite)."""
    old = folder.with_name(f".{folder.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder
