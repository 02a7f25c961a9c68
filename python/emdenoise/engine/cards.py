"""Model cards: what a model folder promises (``export/<id>/card.json``).

The card is the contract between the model repository and everything that runs a model:
the engine reads normalisation, tiling and receptive field from it, the server lists its
fields, provenance quotes its id and graph sha256. See ARCHITECTURE.md, "A model".
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emdenoise.errors import UserError

MODEL_ID_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9+.]+)+$")
TASKS = ("denoise", "encode", "decode", "likelihood")
BACKENDS = ("onnx", "classical")


class CardError(UserError):
    """A model folder whose card is missing, malformed or does not match its graphs."""


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX graph of a model: file, digest and tensor names."""

    file: str
    sha256: str
    input: str = "image"
    output: str = "denoised"


@dataclass(frozen=True)
class ModelCard:
    """Parsed ``card.json``; ``raw`` keeps every field for ListModels and provenance."""

    id: str
    task: str
    backend: str
    modality: str
    folder: Path
    raw: dict[str, Any] = field(repr=False)
    graphs: dict[str, GraphSpec] = field(default_factory=dict)

    @property
    def is_default(self) -> bool:
        return bool(self.raw.get("default", False))

    @property
    def receptive_field(self) -> int | None:
        value = self.raw.get("receptive_field")
        return int(value) if value is not None else None

    @property
    def is_global(self) -> bool:
        """True when the output depends on the whole input (no finite receptive field)."""
        return bool(self.raw.get("global", False)) or self.receptive_field is None

    @property
    def normalization(self) -> dict[str, Any]:
        return dict(self.raw.get("normalization") or {"kind": "none"})

    @property
    def tile(self) -> dict[str, Any]:
        return dict(self.raw.get("tile") or {})

    @property
    def dose_range(self) -> tuple[float, float] | None:
        value = self.raw.get("dose_range")
        return (float(value[0]), float(value[1])) if value else None

    @property
    def version(self) -> str:
        return str(self.raw.get("version", ""))

    def graph_sha256(self) -> str:
        """Digest of the main graph (``""`` for classical models)."""
        if not self.graphs:
            return ""
        return next(iter(self.graphs.values())).sha256


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_DIGESTS: dict[tuple, str] = {}
_DIGESTS_LOCK = threading.Lock()


def cached_file_sha256(path: Path) -> str:
    """:func:`file_sha256`, remembered per (path, device, inode, size, mtime).

    ListModels re-scans the model folders on every call; without this it re-read every
    ONNX graph (39 MB for the bundled models) each time. A graph replaced or rewritten
    changes its size, inode or mtime and is hashed again.
    """
    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _DIGESTS_LOCK:
        digest = _DIGESTS.get(key)
    if digest is None:
        digest = file_sha256(path)
        with _DIGESTS_LOCK:
            _DIGESTS[key] = digest
    return digest


def load_card(folder: str | Path, *, verify: bool = True) -> ModelCard:
    """Read and check ``folder/card.json``.

    Parameters
    ----------
    folder : path-like
        A model folder: ``card.json`` plus its ONNX graph(s) for the onnx backend.
    verify : bool
        Check each graph's sha256 against the card (a corrupt or swapped graph is refused).

    Returns
    -------
    ModelCard

    Raises
    ------
    CardError
        Missing or malformed card, unknown task/backend, missing graph, digest mismatch.
    """
    folder = Path(folder)
    path = folder / "card.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CardError(f"model folder {folder} has no card.json; every model needs one.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CardError(f"{path} is not valid JSON ({error}); fix or remove the model folder.") from None
    model_id = str(raw.get("id", ""))
    if not MODEL_ID_PATTERN.match(model_id):
        raise CardError(f"{path}: model id {model_id!r} must be lowercase family-variant[-detail].")
    if model_id != folder.name:
        raise CardError(f"{path}: model id {model_id!r} differs from its folder name {folder.name!r}.")
    task, backend = raw.get("task"), raw.get("backend")
    if task not in TASKS:
        raise CardError(f"{path}: task {task!r} is not one of {', '.join(TASKS)}.")
    if backend not in BACKENDS:
        raise CardError(f"{path}: backend {backend!r} is not one of {', '.join(BACKENDS)}.")
    graphs = {}
    for name, spec in (raw.get("graphs") or {}).items():
        graph = GraphSpec(
            file=spec["file"],
            sha256=spec.get("sha256", ""),
            input=spec.get("input", "image"),
            output=spec.get("output", "denoised"),
        )
        graph_path = folder / graph.file
        if not graph_path.is_file():
            raise CardError(f"{path}: graph file {graph.file} is missing; re-export the model.")
        if verify and cached_file_sha256(graph_path) != graph.sha256:
            raise CardError(f"{graph_path} does not match the sha256 on its card; re-export the model.")
        graphs[name] = graph
    if backend == "onnx" and not graphs:
        raise CardError(f"{path}: an onnx model needs at least one graph under 'graphs'.")
    return ModelCard(
        id=model_id,
        task=task,
        backend=backend,
        modality=str(raw.get("modality", "any")),
        folder=folder,
        raw=raw,
        graphs=graphs,
    )
