"""One ONNX Runtime session per model per worker process, loaded once and reused.

Dask runs many chunk tasks in each worker process; loading a graph for each would cost
more than running it (and was the top complaint about plugins that reload models per
frame). :func:`backend_for` keeps the sessions of this process in a module-level cache
keyed by model id, graph sha256, execution providers and thread count.
"""

from __future__ import annotations

import threading
from pathlib import Path

from emdenoise.engine.backends import ClassicalBackend, OnnxBackend
from emdenoise.engine.cards import ModelCard, load_card
from emdenoise.engine.devices import providers_for
from emdenoise.engine.engine import Engine
from emdenoise.errors import UserError

_BACKENDS: dict[tuple, object] = {}
_CARDS: dict[tuple[str, str], ModelCard] = {}
_LOCK = threading.Lock()


def worker_threads() -> int | None:
    """Threads of the Dask worker running this code, or None outside a worker."""
    try:
        from distributed import get_worker
    except ImportError:
        return None
    try:
        return int(get_worker().state.nthreads)
    except ValueError:  # not inside a worker
        return None


def session_threads(threads: int | None = None) -> int:
    """ONNX Runtime intra-op threads for one chunk task.

    ``threads`` when given; inside a Dask worker 1, because the worker already runs as
    many chunk tasks at once as it has threads (``--nthreads``), each on one core;
    elsewhere 0 (ONNX Runtime's default: every core).
    """
    if threads:
        return int(threads)
    return 1 if worker_threads() else 0


def card_at(folder: str | Path, sha256: str) -> ModelCard:
    """The card in ``folder``, checked once per process against the ``sha256`` the caller saw.

    Raises
    ------
    UserError
        The worker's copy of the model differs from the one the array was planned with.
    """
    key = (str(folder), sha256)
    with _LOCK:
        card = _CARDS.get(key)
    if card is None:
        card = load_card(folder)
        if card.graph_sha256() != sha256:
            raise UserError(f"model {card.id} at {folder} on this worker differs from the client's copy (graph "
                            "sha256); install the same emdenoise and models on every worker.")
        with _LOCK:
            _CARDS[key] = card
    return card


def backend_for(card: ModelCard, *, device: str = "cpu", threads: int | None = None):
    """The cached backend (ONNX Runtime session or classical filter) for ``card`` in this process.

    Parameters
    ----------
    card : ModelCard
    device : {"cpu", "cuda", "auto"}
        A GPU worker (one per GPU, pinned with ``CUDA_VISIBLE_DEVICES``) passes ``cuda``
        or ``auto``.
    threads : int, optional
        Intra-op threads; see :func:`session_threads`.
    """
    providers = providers_for(device)
    count = session_threads(threads)
    key = (card.id, card.graph_sha256(), tuple(providers), count)
    with _LOCK:
        backend = _BACKENDS.get(key)
        if backend is None:
            if card.backend == "classical":
                backend = ClassicalBackend(card)
            else:
                backend = OnnxBackend(card, providers, threads=count)
            _BACKENDS[key] = backend
        return backend


def cached_sessions() -> int:
    """How many backends this process holds (the tests check that chunks reuse them)."""
    with _LOCK:
        return len(_BACKENDS)


class WorkerEngine(Engine):
    """An :class:`~emdenoise.engine.Engine` whose sessions come from :func:`backend_for`.

    Folder runs on Dask workers build one of these per task; the sessions outlive it.
    """

    def __init__(self, model_dirs=None, *, device: str = "auto", threads: int | None = None, **options):
        super().__init__(model_dirs, device=device, **options)
        self._device_name = device
        self._threads = threads

    def _backend(self, card: ModelCard):
        return backend_for(card, device=self._device_name, threads=self._threads)
