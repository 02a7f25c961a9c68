"""Distillation data for kernels and MLPs (seed 002, sec. 3.2).

Seed 002 fits each kernel or MLP to the outputs of a denoising network (its latent-depth-16
autoencoder) on crops of the training images, scoring only pixels at least (w - 1) / 2
from a crop's edge. Here the teacher is any installed model, run through the engine (its
ONNX graph, tiled exactly as for users) on noisy images drawn like the SBD recipes' data.
An autoencoder teacher (``task: encode``, e.g. ``ede-ae-d16`` as in the paper) gives its
encode-then-decode round trip (:class:`emdenoise.compress.codec.LatentCodec`: 160x160
tiles, each min-mean normalised and restored to counts).
"""

from __future__ import annotations

import numpy as np

from emdenoise.train.data import CleanPool


def teacher_pairs(pool: CleanPool, teacher: str, *, draws: int, seed: int, stream: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Noisy images and the teacher's outputs on them.

    Parameters
    ----------
    pool : CleanPool
        Clean images in counts.
    teacher : str
        Installed model id (``emdenoise models``).
    draws : int
        Poisson draws per clean image.
    seed, stream : int
        Draw ``k`` of image ``i`` uses ``default_rng([seed, stream, i, k])``.

    Returns
    -------
    list of (noisy, target) float32 arrays
    """
    from emdenoise.engine import Engine

    engine = Engine(device="cpu")
    run = teacher_function(engine, teacher)
    pairs = []
    for i, clean in enumerate(pool.images):
        for k in range(int(draws)):
            noisy = np.random.default_rng([int(seed), int(stream), i, k]).poisson(clean).astype(np.float32)
            pairs.append((noisy, run(noisy)))
    return pairs


def teacher_function(engine, teacher: str):
    """``frame -> teacher output`` in counts: a denoiser's output, or an autoencoder's round trip."""
    card = engine.card(teacher)
    if card.task == "encode":
        from emdenoise.compress.codec import codec_for

        codec = codec_for(engine)
        spec = codec.spec(teacher)
        return lambda frame: codec.decode_frame(codec.encode_frame(frame, spec), spec)
    return lambda frame: engine.denoise_frame(frame, card)


def crop_batch(
    pairs: list[tuple[np.ndarray, np.ndarray]], *, batch: int, patch: int, margin: int, rng: np.random.Generator, flips: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Random ``patch`` crops of the inputs and the matching interior of the targets.

    The target crop drops ``margin`` = (w - 1) / 2 pixels on each side: the student runs
    without padding, so it predicts exactly those pixels (seed 002, sec. 3.2).

    Returns
    -------
    inputs : (batch, 1, patch, patch); targets : (batch, 1, patch - 2 margin, patch - 2 margin)
    """
    inputs, targets = [], []
    for _ in range(batch):
        noisy, target = pairs[int(rng.integers(len(pairs)))]
        y = int(rng.integers(0, noisy.shape[0] - patch + 1))
        x = int(rng.integers(0, noisy.shape[1] - patch + 1))
        a = noisy[y : y + patch, x : x + patch]
        b = target[y + margin : y + patch - margin, x + margin : x + patch - margin]
        if flips and rng.random() < 0.5:
            a, b = a[::-1], b[::-1]
        if flips and rng.random() < 0.5:
            a, b = a[:, ::-1], b[:, ::-1]
        inputs.append(a)
        targets.append(b)
    return np.stack(inputs)[:, None].astype(np.float32), np.stack(targets)[:, None].astype(np.float32)
