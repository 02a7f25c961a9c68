"""HyperSpy signals in and out of :func:`emdenoise.dask.denoise` (``pip install 'emdenoise[dask]'``).

A ``Signal2D`` keeps its frames on the last two axes of ``signal.data`` (navigation axes
lead), which is what :func:`~emdenoise.cluster.lazy.plan` takes. The result is a
``LazySignal2D`` built from the input's axes dictionary and metadata, so names, scales,
offsets and units survive, with the provenance under ``metadata.emdenoise``.
"""

from __future__ import annotations

from emdenoise.cluster.lazy import plan
from emdenoise.errors import InvalidInput
from emdenoise.io.metadata import ImageMetadata


def _signal_classes():
    try:
        import hyperspy.api as hs
    except ImportError:
        raise InvalidInput("HyperSpy is not installed; install it with: pip install 'emdenoise[dask]'.") from None
    return hs.signals.Signal2D, hs.signals.LazySignal2D


def _detector(signal) -> ImageMetadata:
    """Gain and offset HyperSpy records (``Signal.Noise_properties.Variance_linear_model``)."""
    model = signal.metadata.get_item("Signal.Noise_properties.Variance_linear_model")
    gain = offset = None
    if model is not None:
        gain = model.get_item("gain_factor")
        offset = model.get_item("gain_offset")
    return ImageMetadata(gain=float(gain) if gain else None, offset=float(offset) if offset is not None else None)


def denoise_signal(signal, model: str | None = None, **options):
    """See :func:`emdenoise.dask.denoise_signal`."""
    signal2d, lazy2d = _signal_classes()
    if not isinstance(signal, signal2d):
        raise InvalidInput(f"emdenoise denoises image signals (Signal2D), not {type(signal).__name__}; convert it "
                           "with signal.as_signal2D((0, 1)) or load the file as images.")
    planned = plan(signal.data, model, metadata=_detector(signal), **options)
    metadata = signal.metadata.as_dictionary()
    general = metadata.setdefault("General", {})
    title = general.get("title") or "signal"
    general["title"] = f"{title} (denoised, {planned.card.id})"
    metadata["emdenoise"] = dict(planned.provenance)
    axes = [axis for _, axis in sorted(signal.axes_manager.as_dictionary().items())]
    return lazy2d(planned.array, axes=axes, metadata=metadata,
                  original_metadata=signal.original_metadata.as_dictionary())
