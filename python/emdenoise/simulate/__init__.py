"""Simulated training data: abTEM HRTEM (SBD), a general TEM corpus, Noise2Atom STEM.

Kinds (``emdenoise simulate KIND --n N --out DIR``):

``hrtem``
    Seed 003 (SBD) appendix A: Pt nanoparticles on CeO2 (111) in [110] profile view,
    support 3-6 nm, tilt 0-4 degrees, defocus 0-20 nm, 300 kV, Cs -13 um, C5 5 mm,
    focal spread 4 nm, 0.2 mrad convergence, 50 pm vibration; 1024^2 grid binned by 2;
    vacuum level = dose (0.45 counts/px); contrast label white/black/intermediate.
``tem-corpus``
    Diverse HRTEM for the general denoiser of seed 001 (see :mod:`.corpus` for what it
    can and cannot stand in for).
``stem``
    Seed 004's clean domain: 75-150 positions, 1-4 atoms, 33x33 Gaussian of variance
    1-10, 128x128 centre crop; plus a Poisson copy.
``series``
    Low-dose HAADF movies of Pt atoms and clusters on amorphous carbon, with drift, scan
    noise and ground truth.

Issue 17's HRTEM training-data engine: ``emdenoise simulate exitwaves --n N`` fills a
bank of abTEM exit waves in the cache (:mod:`.exitwaves`; no Pt, no CeO2, lobato
potentials), :class:`.imaging.ExitWaveImager` makes training pairs from them on the fly
(lens, coherence, MTF, pixel size, dose, Poisson), and ``emdenoise simulate
crossdomain-hrtem`` writes the fixed cross-domain test set (:mod:`.crossdomain`: Pt on
CeO2, kirkland potentials) that ``emdenoise bench hrtem-xdomain`` scores.

Storage format (see :mod:`.shards`): a folder with ``dataset.json`` (format
``emdenoise-sim-shards/1``, kind, seed, shard size, configuration), shards
``shard-NNNNN.npz`` holding float32 arrays ``clean`` and ``noisy`` of shape (k, H, W)
(series: (k, T, H, W)) in counts per pixel, ``shard-NNNNN.json`` with one record of
every parameter per image (including ``contrast`` for ``hrtem``), and ``params.csv``
with the scalar parameters of all images. Image ``i`` depends only on (seed, i).
Read it with :func:`load_shards`, which yields ``(clean, noisy, params)``.

abTEM runs on the CPU here; ``device="gpu"`` hands CuPy arrays to abTEM where it is
installed.
"""

from emdenoise.simulate.shards import load_shards

__all__ = ["load_shards"]
