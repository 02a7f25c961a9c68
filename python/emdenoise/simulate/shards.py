"""Sharded storage of simulated image pairs, and the reader training code uses.

A data set is a folder::

    dataset.json          format, kind, seed, shard size, full configuration, version
    shard-00000.npz       arrays ``clean`` and ``noisy``, float32, shape (k, H, W)
                          (series: (k, T, H, W)), zip-compressed
    shard-00000.json      {"shard": 0, "indices": [...], "images": [record, ...]}
    ...
    params.csv            one row per image: its scalar parameters (written at the end)

A shard is complete when its JSON exists: the JSON is written (atomically) after the
NPZ, so an interrupted run leaves at most a stray NPZ, which is redone on resume.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

FORMAT = "emdenoise-sim-shards/1"
MANIFEST = "dataset.json"


def shard_stem(index: int) -> str:
    """File stem of shard ``index``."""
    return f"shard-{index:05d}"


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; data sets are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_shard(directory: str | Path, index: int, clean: list, noisy: list, records: list[dict]) -> Path:
    """Write one shard (NPZ then JSON) and return the JSON path."""
    directory = Path(directory)
    stem = shard_stem(index)

    def write_npz(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, clean=np.stack(clean).astype(np.float32), noisy=np.stack(noisy).astype(np.float32))

    _atomic_write(directory / f"{stem}.npz", write_npz)
    body = {"shard": index, "indices": [r["index"] for r in records], "images": records}

    def write_json(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(body, indent=1, default=_jsonable))

    json_path = directory / f"{stem}.json"
    _atomic_write(json_path, write_json)
    return json_path


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a shard record")


def shard_is_complete(directory: str | Path, index: int, indices: list[int]) -> bool:
    """True when shard ``index`` exists with exactly the image ``indices`` expected."""
    directory = Path(directory)
    path = directory / f"{shard_stem(index)}.json"
    if not path.is_file() or not (directory / f"{shard_stem(index)}.npz").is_file():
        return False
    try:
        return json.loads(path.read_text()).get("indices") == list(indices)
    except (OSError, ValueError):
        return False


def read_manifest(directory: str | Path) -> dict | None:
    """Return the data set's manifest, or None when the folder has none."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def write_manifest(directory: str | Path, manifest: dict) -> None:
    """Write ``dataset.json`` atomically."""
    path = Path(directory) / MANIFEST
    _atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1, default=_jsonable)))


def load_shards(directory: str | Path) -> Iterator[tuple[np.ndarray, np.ndarray, dict]]:
    """Yield ``(clean, noisy, params)`` for every image of a generated data set.

    Shards are read in order, one at a time (memory stays at one shard). Incomplete
    shards (no JSON) are skipped.

    Parameters
    ----------
    directory : str or Path
        A folder written by ``emdenoise simulate KIND --out DIR``.

    Yields
    ------
    clean : ndarray, float32, (H, W) or (T, H, W) for series
        Expected counts per pixel.
    noisy : ndarray, float32, same shape
        Poisson counts.
    params : dict
        Every parameter of that image (its shard record).
    """
    directory = Path(directory)
    if read_manifest(directory) is None:
        raise FileNotFoundError(f"{directory} has no {MANIFEST}; it is not a simulated data set")
    for json_path in sorted(directory.glob("shard-*.json")):
        body = json.loads(json_path.read_text())
        with np.load(json_path.with_suffix(".npz")) as arrays:
            clean, noisy = arrays["clean"], arrays["noisy"]
        for k, record in enumerate(body["images"]):
            yield clean[k], noisy[k], record


def write_params_csv(directory: str | Path) -> Path:
    """Collect the scalar parameters of every image into ``params.csv``."""
    directory = Path(directory)
    rows = []
    for json_path in sorted(directory.glob("shard-*.json")):
        body = json.loads(json_path.read_text())
        for record in body["images"]:
            row = {"shard": json_path.stem}
            for key, value in record.items():
                if isinstance(value, (str, int, float, bool)) or value is None:
                    row[key] = value
                elif isinstance(value, dict):
                    row.update({f"{key}.{k}": v for k, v in value.items() if isinstance(v, (str, int, float, bool))})
                elif isinstance(value, list) and len(value) <= 3 and all(isinstance(v, (int, float)) for v in value):
                    row[key] = " ".join(str(v) for v in value)
            rows.append(row)
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    path = directory / "params.csv"

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    _atomic_write(path, write)
    return path
