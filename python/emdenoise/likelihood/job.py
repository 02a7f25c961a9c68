"""One likelihood-map job: denoise with a model when no estimate is given, then test the columns.

Shared by the embedded client and the server's LikelihoodMap RPC, so both return the
same map for the same inputs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from emdenoise._version import __version__
from emdenoise.errors import InvalidInput
from emdenoise.likelihood.compute import LikelihoodResult, LikelihoodSettings, likelihood_map
from emdenoise.likelihood.counts import counts_calibration
from emdenoise.likelihood.holdout import second_frame_estimate, thinned_estimate


def estimate_info(card=None, device: str = "") -> dict:
    """Provenance of the denoised estimate: the model's, or empty ids for a given estimate."""
    if card is None:
        return {"model_id": "", "model_version": "", "graph_sha256": "", "emdenoise_version": __version__, "device": device}
    return {
        "model_id": card.id,
        "model_version": card.version,
        "graph_sha256": card.graph_sha256(),
        "emdenoise_version": __version__,
        "device": device,
    }


def resolve_estimator(engine, denoised: np.ndarray | None, model_id: str | None, modality: str = "any"):
    """The model card that makes the estimate, or None when ``denoised`` is given."""
    if denoised is not None:
        if model_id:
            raise InvalidInput("give either a denoised frame or a model to make one, not both; drop one of them.")
        return None
    card = engine.card(model_id or None, modality=modality or "any")
    if card.task != "denoise":
        raise InvalidInput(f"model {card.id} is a {card.task} model, not a denoiser; choose a denoise model.")
    return card


def run_likelihood(
    engine,
    noisy: np.ndarray,
    denoised: np.ndarray | None = None,
    *,
    card=None,
    gain: float | None = None,
    offset: float | None = None,
    settings: LikelihoodSettings | None = None,
    estimate_frame: np.ndarray | None = None,
) -> LikelihoodResult:
    """Likelihood map of ``noisy``, with ``denoised`` or with ``card``'s estimate of it.

    Parameters
    ----------
    engine : emdenoise.engine.Engine
        Runs ``card`` when no estimate is given.
    noisy : ndarray
        Raw 2-D frame (counts, or readings with ``gain``/``offset``).
    denoised : ndarray, optional
        Estimate in the units of ``noisy``.
    card : ModelCard, optional
        From :func:`resolve_estimator`; required when ``denoised`` is None.
    gain, offset : float, optional
    settings : LikelihoodSettings, optional
    estimate_frame : ndarray, optional
        Another exposure of the same area (same calibration): ``card`` denoises it and
        ``noisy`` is tested at its whole dose (:func:`~emdenoise.likelihood.holdout.second_frame_estimate`);
        no thinning is needed since the frames' noise is independent.

    Returns
    -------
    LikelihoodResult
        ``info`` names the model that made the estimate (empty ``model_id`` when given).

    Notes
    -----
    Seed 003, sec. 3 (Fig. 2, bottom): denoise, extract structure, then quantify the
    agreement of the structure with the noisy data. When the model makes the estimate of
    a frame of whole counts and ``settings.holdout`` is ``thin`` (the default), the frame
    is split by binomial thinning (:func:`~emdenoise.likelihood.holdout.thinned_estimate`):
    the model denoises ``y1 ~ Binomial(y, p)`` (seen as ``y1 / p`` electrons) and the
    map tests ``y2 = y - y1`` at dose ``(1 - p) x``, with hypothesis 1 the region's mean
    of ``(1 - p) / p`` times the estimate and hypothesis 2 the mean of ``y2`` over the
    vacuum (or ``(1 - p)`` times a given ``vacuum_level``, which is stated for the whole
    frame). The result's ``estimate`` is then at the test half's dose and its
    ``message`` says which counts were tested.
    """
    settings = settings or LikelihoodSettings()
    gain, offset, source = counts_calibration(noisy, gain=gain, offset=offset)  # refuse non-counts before any work
    holdout = ""
    estimate_counts = None
    if estimate_frame is not None and denoised is not None:
        raise InvalidInput("give either a denoised frame or a second frame to make the estimate from, not both; drop one.")
    if denoised is None:
        if card is None:
            raise ValueError("run_likelihood needs a model card when no denoised frame is given")
        if estimate_frame is not None:
            estimate_frame = np.asarray(estimate_frame)
            denoised = _second_frame_readings(engine, card, estimate_frame, noisy, gain, offset)
            estimate_counts = np.rint((np.asarray(estimate_frame, np.float64) - offset) / gain)
            holdout = "tested on a second frame whose counts the estimate (made from the other frame) never saw"
        elif settings.holdout == "thin" and source == "counts":
            if settings.vacuum_level is not None:  # given for the whole frame; the test half has (1 - p) of it
                settings = replace(settings, vacuum_level=settings.vacuum_level * (1.0 - settings.split))
            noisy, denoised, estimate_counts = thinned_estimate(
                lambda half, p: engine.denoise_frame(half, card, gain=p, offset=0.0), noisy, settings.split,
                with_estimate_counts=True,
            )
            holdout = (f"tested on a binomial {1 - settings.split:.0%} of the counts that the estimate "
                       f"(made from the other {settings.split:.0%}) never saw")
        else:
            denoised = engine.denoise_frame(noisy, card, gain=gain, offset=offset)
            holdout = "tested on the counts the estimate was made from (biased towards supported)"
    result = likelihood_map(noisy, denoised, gain=gain, offset=offset, settings=settings, estimate_counts=estimate_counts)
    result.info = estimate_info(card, engine.device)
    if holdout:
        result.message = result.message.rstrip(".") + f"; {holdout}."
    return result


def _second_frame_readings(engine, card, estimate_frame, test_frame, gain, offset) -> np.ndarray:
    """:func:`second_frame_estimate` on counts (readings turned into counts and back; identity for counts)."""
    to_counts = lambda frame: (np.asarray(frame, np.float64) - offset) / gain  # noqa: E731
    counts = second_frame_estimate(
        lambda frame: (np.asarray(engine.denoise_frame(frame * gain + offset, card, gain=gain, offset=offset), np.float64)
                       - offset) / gain,
        to_counts(estimate_frame), to_counts(test_frame),
    )
    return counts * gain + offset
