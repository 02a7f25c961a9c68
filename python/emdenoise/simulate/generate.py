"""Deterministic, resumable, parallel generation of simulated data sets into shards.

Image ``i`` of a data set with seed ``s`` is drawn from
``numpy.random.default_rng(SeedSequence([s, i]))`` whatever the shard size, worker count
or device, so a data set can be extended, resumed or split across machines and stays the
same. Shards are the unit of work: each worker process simulates whole shards.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

import numpy as np

from emdenoise._version import __version__
from emdenoise.simulate import shards as _shards

KINDS = ("hrtem", "tem-corpus", "stem", "series")


def default_config(kind: str):
    """The default configuration object of ``kind``."""
    if kind == "hrtem":
        from emdenoise.simulate.hrtem import HrtemConfig

        return HrtemConfig()
    if kind == "tem-corpus":
        from emdenoise.simulate.corpus import CorpusConfig

        return CorpusConfig()
    if kind == "stem":
        from emdenoise.simulate.stem import Noise2AtomConfig

        return Noise2AtomConfig()
    if kind == "series":
        from emdenoise.simulate.stem import SeriesConfig

        return SeriesConfig()
    raise ValueError(f"unknown kind {kind!r}; choose one of {KINDS}")


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index`` in a data set with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def make_item(kind: str, config, seed: int, index: int, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, dict]:
    """Simulate item ``index`` of a ``kind`` data set: ``(clean, noisy, record)``."""
    rng = image_rng(seed, index)
    if kind == "hrtem":
        from emdenoise.simulate.hrtem import sample_hrtem_params, simulate_hrtem

        clean, noisy, record = simulate_hrtem(sample_hrtem_params(rng, config), rng, config, device=device)
    elif kind == "tem-corpus":
        from emdenoise.simulate.corpus import sample_corpus_params, simulate_corpus_image

        clean, noisy, record = simulate_corpus_image(sample_corpus_params(rng, config), rng, config, device=device)
    elif kind == "stem":
        from emdenoise.simulate.stem import noise2atom_pair

        clean, noisy, record = noise2atom_pair(rng, config)
    elif kind == "series":
        from emdenoise.simulate.stem import haadf_series

        clean, noisy, record = haadf_series(rng, config, device=device)
    else:
        raise ValueError(f"unknown kind {kind!r}; choose one of {KINDS}")
    return clean, noisy, {"kind": kind, "seed": int(seed), "index": int(index), **record}


def _make_shard(kind: str, config, seed: int, shard: int, indices: list[int], directory: str, device: str) -> tuple[int, float]:
    start = time.perf_counter()
    clean, noisy, records = [], [], []
    for i in indices:
        c, n, r = make_item(kind, config, seed, i, device)
        clean.append(c)
        noisy.append(n)
        records.append(r)
    _shards.write_shard(directory, shard, clean, noisy, records)
    return shard, time.perf_counter() - start


def _config_dict(config) -> dict:
    return config.as_dict()


def generate(
    kind: str,
    directory: str | Path,
    *,
    n: int,
    seed: int = 0,
    shard_size: int = 32,
    workers: int = 1,
    device: str = "cpu",
    config=None,
    log: Callable[[str], None] = print,
) -> dict:
    """Generate (or resume, or extend) a data set of ``n`` items of ``kind`` in ``directory``.

    Parameters
    ----------
    kind : str
        ``hrtem`` (seed 003), ``tem-corpus`` (seed 001 stand-in), ``stem`` (seed 004 clean
        domain) or ``series`` (HAADF movies).
    directory : str or Path
        Output folder; created if missing. A folder holding a data set with another kind,
        seed, shard size or configuration is refused.
    n : int
        Number of items (images, or series for ``series``).
    seed : int
    shard_size : int
        Items per shard file.
    workers : int
        Worker processes (1: in this process). A GPU device uses one.
    device : str
        'cpu' or 'gpu' (abTEM with CuPy).
    config : dataclass or None
        The kind's configuration; None for its defaults.
    log : callable
        Receives one line per finished shard.

    Returns
    -------
    dict
        ``made`` and ``skipped`` shard counts, ``seconds`` and ``seconds_per_item`` (of
        items made in this call).
    """
    config = default_config(kind) if config is None else config
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    identity = {"format": _shards.FORMAT, "kind": kind, "seed": int(seed), "shard_size": int(shard_size), "config": _config_dict(config)}
    existing = _shards.read_manifest(directory)
    if existing is not None:
        mismatch = [k for k in identity if _normalise(existing.get(k)) != _normalise(identity[k])]
        if mismatch:
            raise ValueError(
                f"{directory} holds a data set with a different {', '.join(mismatch)}; "
                "use a new --out folder or the same settings to resume"
            )
    _shards.write_manifest(directory, {**identity, "n": max(int(n), int((existing or {}).get("n", 0))), "emdenoise_version": __version__})
    jobs = []
    for shard in range((n + shard_size - 1) // shard_size):
        indices = list(range(shard * shard_size, min(n, (shard + 1) * shard_size)))
        if not _shards.shard_is_complete(directory, shard, indices):
            jobs.append((shard, indices))
    skipped = (n + shard_size - 1) // shard_size - len(jobs)
    start = time.perf_counter()
    made_items = 0
    if device == "gpu":
        workers = 1
    if workers <= 1 or len(jobs) <= 1:
        for shard, indices in jobs:
            _, seconds = _make_shard(kind, config, seed, shard, indices, str(directory), device)
            made_items += len(indices)
            log(f"{_shards.shard_stem(shard)}: {len(indices)} items in {seconds:.1f} s")
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {
                pool.submit(_make_shard, kind, config, seed, shard, indices, str(directory), device): indices
                for shard, indices in jobs
            }
            for future in as_completed(futures):
                shard, seconds = future.result()
                made_items += len(futures[future])
                log(f"{_shards.shard_stem(shard)}: {len(futures[future])} items in {seconds:.1f} s")
    seconds = time.perf_counter() - start
    _shards.write_params_csv(directory)
    return {
        "made": len(jobs),
        "skipped": skipped,
        "items": made_items,
        "seconds": seconds,
        "seconds_per_item": seconds / made_items if made_items else None,
    }


def _normalise(value):
    """Tuples and lists compare equal after a JSON round trip."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value
