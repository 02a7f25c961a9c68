"""Result files of a benchmark run: JSON (everything), Markdown (the tables)."""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from emdenoise._version import __version__


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (first column left-aligned, others right)."""
    align = ["---"] + ["---:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float | None, digits: int = 3) -> str:
    """Format a number for a table ('-' for missing or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def stats(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (NaN for an empty list)."""
    if len(values) == 0:
        return float("nan"), float("nan")
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std())


def _library_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for dist in ("numpy", "scipy", "scikit-image", "opencv-python-headless", "bm3d", "PyWavelets"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def provenance(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Who made a result file and how (versions matter: defaults of the filters change)."""
    return {
        "emdenoise_version": __version__,
        "python": platform.python_version(),
        "libraries": _library_versions(),
        "machine": platform.machine(),
        "command": " ".join(argv if argv is not None else sys.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def write_results(out_dir: Path, stem: str, result: dict[str, Any], markdown: str) -> list[Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` under ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{stem}.json"
    md_path = out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(_jsonable(result), indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown + "\n", encoding="utf-8")
    return [json_path, md_path]
