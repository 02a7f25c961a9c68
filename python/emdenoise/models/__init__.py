"""PyTorch architectures, one module per family (training only: the runtime never imports torch).

* :mod:`~emdenoise.models.sbd_unet` -- SBD's large-field-of-view UNet (seed 003, C.1)
* :mod:`~emdenoise.models.dncnn` -- DnCNN (seed 003, C.2)
* :mod:`~emdenoise.models.durr_unet` -- DURR's small UNet (seed 003, C.3)
* :mod:`~emdenoise.models.ede_mlp` -- Ede's kernels and MLPs (seed 002, sec. 3)
* :mod:`~emdenoise.models.ede_xception` -- Ede & Beanland's atrous encoder-decoder (seed 001, sec. 2)
* :mod:`~emdenoise.models.autoencoder` -- Ede's denoising autoencoders (seed 002, sec. 2)
* :mod:`~emdenoise.models.adapt_unet` -- the small residual U-Net ``emdenoise adapt`` trains

:func:`build_model` makes one from the ``{"family": ..., **kwargs}`` spec that recipes,
checkpoints and model cards carry.
"""

from __future__ import annotations

from typing import Any

FAMILIES = ("sbd-unet", "dncnn", "durr-unet", "ede-mlp", "ede-xception", "ede-ae", "adapt-unet")


def build_model(spec: dict[str, Any]):
    """Instantiate the network a spec names.

    Parameters
    ----------
    spec : dict
        ``{"family": one of FAMILIES, **constructor keyword arguments}``.

    Returns
    -------
    torch.nn.Module
    """
    spec = dict(spec)
    family = spec.pop("family", None)
    if family == "sbd-unet":
        from emdenoise.models.sbd_unet import SBDUNet

        return SBDUNet(**spec)
    if family == "dncnn":
        from emdenoise.models.dncnn import DnCNN

        return DnCNN(**spec)
    if family == "durr-unet":
        from emdenoise.models.durr_unet import SmallUNet

        return SmallUNet(**spec)
    if family == "ede-mlp":
        from emdenoise.models.ede_mlp import KernelMLP

        return KernelMLP(**spec)
    if family == "ede-xception":
        from emdenoise.models.ede_xception import EdeXception

        return EdeXception(**spec)
    if family == "ede-ae":
        from emdenoise.models.autoencoder import DenoisingAutoencoder

        return DenoisingAutoencoder(**spec)
    if family == "adapt-unet":
        from emdenoise.models.adapt_unet import AdaptUNet

        return AdaptUNet(**spec)
    raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")


def count_parameters(model) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["FAMILIES", "build_model", "count_parameters"]
