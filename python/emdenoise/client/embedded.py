"""The embedded default: the engine in this process, behind the client interface."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from emdenoise._version import __version__
from emdenoise.client.job import DenoiseJob
from emdenoise.engine import Engine


class EmbeddedClient:
    """Same methods as :class:`emdenoise.client.remote.RemoteClient`, no server needed."""

    address = "embedded"

    def __init__(self, engine: Engine | None = None, *, models: list[Path] | None = None, device: str = "auto", **engine_options):
        self.engine = engine or Engine(models, device=device, **engine_options)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def wait_ready(self, timeout: float | None = None) -> None:
        pass

    @property
    def training(self):
        """Noise2Atom jobs trained by a worker of this process (:class:`emdenoise.client.training.EmbeddedTraining`)."""
        if getattr(self, "_training", None) is None:
            from emdenoise.client.training import EmbeddedTraining

            self._training = EmbeddedTraining(self.engine)
        return self._training

    def list_models(self) -> list[dict]:
        cards = []
        for card in self.engine.list_cards():
            raw = dict(card.raw)
            raw["graph_sha256"] = card.graph_sha256()
            cards.append(raw)
        return cards

    def denoise(
        self,
        frames: Iterable[np.ndarray],
        model_id: str | None = None,
        *,
        modality: str = "any",
        gain: float | None = None,
        offset: float | None = None,
        frame_count: int = 0,
        tile_size: int | None = None,
    ) -> DenoiseJob:
        card = self.engine.card(model_id, modality=modality)

        def stream() -> Iterator:
            yield {
                "model_id": card.id,
                "model_version": card.version,
                "graph_sha256": card.graph_sha256(),
                "emdenoise_version": __version__,
                "device": self.engine.device,
            }
            for index, frame in enumerate(frames):
                yield self.engine.denoise_frame(frame, card, index=index, gain=gain, offset=offset, tile_size=tile_size)

        return DenoiseJob(stream())

    def likelihood(
        self,
        noisy: np.ndarray,
        denoised: np.ndarray | None = None,
        model_id: str | None = None,
        *,
        modality: str = "any",
        gain: float | None = None,
        offset: float | None = None,
        estimate_frame: np.ndarray | None = None,
        **settings,
    ):
        """Likelihood map of ``noisy`` (seed 003, sec. 3); ``estimate_frame``: another frame of
        the same area that the model's estimate is made from (see :func:`run_likelihood`)."""
        from emdenoise.likelihood import LikelihoodSettings
        from emdenoise.likelihood.job import resolve_estimator, run_likelihood

        card = resolve_estimator(self.engine, denoised, model_id, modality)
        return run_likelihood(
            self.engine, noisy, denoised, card=card, gain=gain, offset=offset,
            settings=LikelihoodSettings.from_options(**settings), estimate_frame=estimate_frame,
        )

    def encode(self, frames: Iterable[np.ndarray], model_id: str, *, frame_count: int = 0) -> DenoiseJob:
        """Autoencoder latents of ``frames`` (seed 002, sec. 2); see :mod:`emdenoise.compress.calls`."""
        from emdenoise.compress.calls import embedded_encode

        return embedded_encode(self.engine, frames, model_id)

    def decode(self, latents, model_id: str, *, encoder_sha256: str, frame_count: int = 0) -> DenoiseJob:
        """Restored frames from latents of ``model_id``'s encoder; see :mod:`emdenoise.compress.calls`."""
        from emdenoise.compress.calls import embedded_decode

        return embedded_decode(self.engine, latents, model_id, encoder_sha256=encoder_sha256)
