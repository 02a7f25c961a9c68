"""HRTEM training images on the fly from the exit-wave bank (issue 17, item 2).

The lens, coherence, detector and dose of seed 003's image formation (appendix A.1) are
applied here to a stored exit wave (:mod:`emdenoise.simulate.exitwaves`) with a few NumPy
FFTs, so the network sees a new microscope for every image at no multislice cost.

Image formation (Kirkland, *Advanced Computing in Electron Microscopy*, 2nd ed. 2010,
sec. 3.3-3.4; the same formulas and sign conventions as abTEM's ``CTF``,
``TemporalEnvelope`` and ``Aberrations``), with ``alpha = lambda |k|`` and azimuth ``phi``:

* phase error ``chi = 2 pi / lambda * (1/2 alpha^2 (C10 + C12 cos 2(phi - phi12))
  + 1/4 C30 alpha^4 + 1/6 C50 alpha^6)``; the wave is multiplied by ``exp(-i chi)``.
  ``C10`` is the defocus (> 0 overfocus; Scherzer for ``C30 > 0`` is
  ``C10 = -sqrt(4/3 C30 lambda)``), ``C30`` = Cs, ``C12`` two-fold astigmatism;
* temporal envelope (quasi-coherent, focal spread ``Delta`` as a 1/e width)
  ``E_t = exp(-(pi Delta alpha^2 / (2 lambda))^2)``;
* spatial envelope (beam convergence ``beta``) ``E_s = exp(-(beta/2)^2 |grad chi|^2)`` with
  ``|grad chi|^2 = (d chi/d alpha)^2 + (alpha^-1 d chi/d phi)^2``, as abTEM evaluates it;
* optional objective aperture; image intensity ``|IFFT(psi_k exp(-i chi) E_t E_s)|^2``;
* Gaussian vibration of standard deviation ``sigma_v``: intensity spectrum times
  ``exp(-2 pi^2 sigma_v^2 k^2)``;
* pixel size by Fourier cropping (or zero padding) of the intensity spectrum of the whole
  periodic cell to ``M = extent / pixel`` points, an ideal anti-aliasing resampler;
* detector MTF ``sinc(q_x) sinc(q_y) exp(-(|q| / q_0)^2)`` (pixel aperture times a
  Gaussian spread; ``q`` in cycles per output pixel), applied to the expected counts
  (a counting detector: the shot noise itself is white);
* a random ``size x size`` crop, a random 90-degree rotation and flip;
* counts: the clean image is the intensity (incident beam = 1) times the vacuum dose in
  counts/px, drawn log-uniformly, and the noisy image a Poisson draw of it (seed 003,
  appendix B).

Speed (measured on this project's 2-core machine shared with two other busy processes, one thread,
512-point stored waves in the LRU): 19 images/s at 256 x 256 (53 ms each), 13 images/s at
512 x 512; two 512^2 complex FFTs, the transfer function and two real FFTs dominate.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.fft as sfft

from emdenoise.simulate.exitwaves import bank_files, default_bank_dir, load_wave


def wavelength_a(energy_ev: float) -> float:
    """Relativistic electron wavelength [Å] at ``energy_ev`` (Kirkland eq. 2.5)."""
    return 12.2643 / np.sqrt(energy_ev * (1.0 + 0.97845e-6 * energy_ev))


@dataclass(frozen=True)
class ImagingConfig:
    """Ranges of the on-the-fly microscope (issue 17, item 2).

    Attributes
    ----------
    pixel_size_a : (float, float)
        Log-uniform output pixel size [Å], capped so the image fits the cell.
    dose : (float, float)
        Log-uniform vacuum level of the clean image [counts/px].
    dose_jitter : float
        Relative standard deviation between the nominal dose (recorded) and the dose
        of the image (a frame-to-frame beam-current fluctuation).
    corrected_fraction : float
        Share of Cs-corrected lenses.
    defocus_nm : (float, float)
        Uniform C10 range [nm] (corrected lenses, and uncorrected ones off Scherzer).
    cs_corrected_um : (float, float)
        C30 of corrected lenses [um].
    c5_corrected_mm : (float, float)
        C50 of corrected lenses [mm] (0 for uncorrected ones).
    cs_uncorrected_mm : (float, float)
        C30 of uncorrected lenses [mm].
    scherzer_fraction : float
        Share of uncorrected images near Scherzer defocus (0.7-1.3 of it).
    astigmatism_nm : (float, float)
        Two-fold astigmatism C12 [nm], random azimuth.
    focal_spread_nm : (float, float)
        Focal spread, 1/e width [nm].
    convergence_mrad : (float, float)
        Beam convergence [mrad].
    vibration_pm : (float, float)
        Isotropic vibration, standard deviation [pm].
    aperture_fraction : float
        Share of images with an objective aperture of ``aperture_mrad``.
    aperture_mrad : (float, float)
    mtf_q0 : (float, float)
        Gaussian MTF width range [cycles/px]; ``mtf_none_fraction`` of images have the
        pixel aperture only.
    mtf_none_fraction : float
    lru_size : int
        Decoded waves kept in memory (2 MB each).
    """

    pixel_size_a: tuple = (0.05, 0.2)
    dose: tuple = (0.1, 5.0)
    dose_jitter: float = 0.1
    corrected_fraction: float = 0.5
    defocus_nm: tuple = (-30.0, 30.0)
    cs_corrected_um: tuple = (-40.0, 40.0)
    c5_corrected_mm: tuple = (0.0, 5.0)
    cs_uncorrected_mm: tuple = (0.5, 1.2)
    scherzer_fraction: float = 0.6
    astigmatism_nm: tuple = (0.0, 5.0)
    focal_spread_nm: tuple = (2.0, 6.0)
    convergence_mrad: tuple = (0.1, 0.5)
    vibration_pm: tuple = (10.0, 60.0)
    aperture_fraction: float = 0.2
    aperture_mrad: tuple = (10.0, 30.0)
    mtf_q0: tuple = (0.4, 1.5)
    mtf_none_fraction: float = 0.3
    lru_size: int = 16

    def as_dict(self) -> dict:
        """Return the configuration as a JSON-serialisable dict."""
        return asdict(self)


def _log_uniform(rng: np.random.Generator, bounds) -> float:
    lo, hi = bounds
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def sample_optics(rng: np.random.Generator, energy_ev: float, config: ImagingConfig = ImagingConfig()) -> dict:
    """Draw one microscope: aberrations [Å], envelopes, aperture, vibration, MTF."""
    lam = wavelength_a(energy_ev)
    corrected = bool(rng.random() < config.corrected_fraction)
    if corrected:
        c30 = rng.uniform(*config.cs_corrected_um) * 1e4
        c50 = rng.uniform(*config.c5_corrected_mm) * 1e7
        c10 = rng.uniform(*config.defocus_nm) * 10.0
    else:
        c30 = rng.uniform(*config.cs_uncorrected_mm) * 1e7
        c50 = 0.0
        if rng.random() < config.scherzer_fraction:
            c10 = -np.sqrt(4.0 / 3.0 * c30 * lam) * rng.uniform(0.7, 1.3)
        else:
            c10 = rng.uniform(*config.defocus_nm) * 10.0
    return {
        "corrected": corrected,
        "C10_A": float(c10),
        "C12_A": float(rng.uniform(*config.astigmatism_nm) * 10.0),
        "phi12_rad": float(rng.uniform(0, np.pi)),
        "C30_A": float(c30),
        "C50_A": float(c50),
        "focal_spread_A": float(rng.uniform(*config.focal_spread_nm) * 10.0),
        "convergence_mrad": float(rng.uniform(*config.convergence_mrad)),
        "aperture_mrad": float(rng.uniform(*config.aperture_mrad)) if rng.random() < config.aperture_fraction else None,
        "vibration_A": float(rng.uniform(*config.vibration_pm) / 100.0),
        "mtf_q0": None if rng.random() < config.mtf_none_fraction else float(rng.uniform(*config.mtf_q0)),
    }


@lru_cache(maxsize=8)
def _polar_grid(shape: tuple[int, int], sampling: float, lam: float) -> tuple[np.ndarray, ...]:
    """``alpha^2``, ``alpha``, ``cos 2 phi``, ``sin 2 phi`` on the FFT grid (float32, cached)."""
    kx = np.fft.fftfreq(shape[0], sampling).astype(np.float32)[:, None]
    ky = np.fft.fftfreq(shape[1], sampling).astype(np.float32)[None, :]
    k2 = kx * kx + ky * ky
    safe = np.where(k2 > 0, k2, np.float32(1.0))
    cos2 = np.where(k2 > 0, (kx * kx - ky * ky) / safe, np.float32(1.0)).astype(np.float32)
    sin2 = np.where(k2 > 0, 2 * kx * ky / safe, np.float32(0.0)).astype(np.float32)
    a2 = (np.float32(lam * lam) * k2).astype(np.float32)
    return a2, np.sqrt(a2), cos2, sin2


def transfer_function(shape: tuple[int, int], sampling: float, energy_ev: float, optics: dict) -> np.ndarray:
    """Coherent transfer times envelopes, ``exp(-i chi) E_t E_s A``, on the FFT grid (complex64).

    See the module notes for the formulas (Kirkland 2010, sec. 3.3-3.4; abTEM).
    """
    lam = float(wavelength_a(energy_ev))
    a2, alpha, cos2phi, sin2phi = _polar_grid(tuple(shape), float(sampling), lam)
    f32 = np.float32
    c10, c12, phi12 = optics["C10_A"], optics["C12_A"], optics["phi12_rad"]
    c30, c50 = optics["C30_A"], optics["C50_A"]
    # cos 2(phi - phi12) and sin 2(phi - phi12) from the cached cos 2 phi, sin 2 phi.
    cos2 = cos2phi * f32(np.cos(2 * phi12)) + sin2phi * f32(np.sin(2 * phi12))
    sin2 = sin2phi * f32(np.cos(2 * phi12)) - cos2phi * f32(np.sin(2 * phi12))
    k0 = f32(2.0 * np.pi / lam)
    defocus = f32(c10) + f32(c12) * cos2
    chi = k0 * a2 * (f32(0.5) * defocus + a2 * (f32(0.25 * c30) + f32(c50 / 6.0) * a2))
    dchi_da = k0 * alpha * (defocus + a2 * (f32(c30) + f32(c50) * a2))
    dchi_dphi = -k0 * f32(c12) * sin2 * alpha
    beta = f32(optics["convergence_mrad"] * 1e-3 / 2.0)
    temporal = f32(np.pi * optics["focal_spread_A"] / (2.0 * lam)) * a2
    exponent = -(temporal * temporal) - beta * beta * (dchi_da * dchi_da + dchi_dphi * dchi_dphi)
    if optics.get("aperture_mrad"):
        exponent[alpha >= f32(optics["aperture_mrad"] * 1e-3)] = -np.inf
    # Where the envelopes are below 1e-7 the transfer is set to 0: no trigonometry of
    # huge phases there, and no subnormal exponentials.
    live = exponent > f32(-16.0)
    envelope = np.exp(exponent[live])
    phase = chi[live]
    out = np.zeros(a2.shape, np.complex64)
    out[live] = envelope * np.cos(phase) - 1j * (envelope * np.sin(phase))
    return out


def _resample_rspectrum(spectrum: np.ndarray, n: int, m: int) -> np.ndarray:
    """Crop or zero-pad the ``rfft2`` of an ``n x n`` real image to that of an ``m x m`` one."""
    if m == n:
        return spectrum
    out = np.zeros((m, m // 2 + 1), spectrum.dtype)
    rows = min(n, m) // 2
    cols = min(n, m) // 2 + 1
    out[:rows, :cols] = spectrum[:rows, :cols]
    out[m - rows :, :cols] = spectrum[n - rows :, :cols]
    return out


def form_image(wave: np.ndarray, sampling: float, energy_ev: float, optics: dict, out_gpts: int) -> np.ndarray:
    """Expected intensity (incident beam = 1) of the whole cell on ``out_gpts`` points, ``[x, y]``.

    Parameters
    ----------
    wave : ndarray, complex, (n, n)
        Exit wave on abTEM's ``[x, y]`` grid.
    sampling : float
        Its sampling [Å].
    energy_ev : float
    optics : dict
        From :func:`sample_optics`.
    out_gpts : int
        Output points per side (pixel size = extent / out_gpts).
    """
    n = wave.shape[0]
    spectrum = sfft.fft2(np.asarray(wave, np.complex64), workers=1)
    spectrum *= transfer_function(wave.shape, sampling, energy_ev, optics)
    image_wave = sfft.ifft2(spectrum, overwrite_x=True, workers=1)
    intensity = (image_wave.real**2 + image_wave.imag**2).astype(np.float32)
    spectrum = _resample_rspectrum(sfft.rfft2(intensity, workers=1), n, out_gpts)
    extent = n * sampling
    pixel = extent / out_gpts
    q = np.fft.fftfreq(out_gpts).astype(np.float32)  # cycles per output pixel
    q_half = np.fft.rfftfreq(out_gpts).astype(np.float32)
    # Vibration and MTF are separable Gaussians and sincs: build them from 1D factors.
    width = -2.0 * np.pi**2 * (optics["vibration_A"] / pixel) ** 2
    if optics.get("mtf_q0"):
        width -= 1.0 / optics["mtf_q0"] ** 2
    rows = (np.sinc(q) * np.exp(np.float32(width) * q * q)).astype(np.float32)
    cols = (np.sinc(q_half) * np.exp(np.float32(width) * q_half * q_half)).astype(np.float32)
    spectrum *= rows[:, None] * cols[None, :]
    image = sfft.irfft2(spectrum, s=(out_gpts, out_gpts), overwrite_x=True, workers=1)
    image *= np.float32((out_gpts / n) ** 2)
    return image.astype(np.float32)


class ExitWaveImager:
    """Training images from the exit-wave bank: lens, coherence, detector, dose, noise.

    Parameters
    ----------
    bank_dir : path, optional
        Bank folder (default :func:`emdenoise.simulate.exitwaves.default_bank_dir`). Its
        file list is read at the first :meth:`sample` (call :meth:`refresh` to see waves
        added since); waves are decoded lazily and the last ``config.lru_size`` kept.
    config : ImagingConfig

    Examples
    --------
    >>> imager = ExitWaveImager()  # doctest: +SKIP
    >>> clean, noisy, params = imager.sample(np.random.default_rng(0), 256)  # doctest: +SKIP

    Notes
    -----
    One image costs about 50 ms on one thread (256 x 256 from 512-point waves), see the
    module notes; the output depends only on the bank's file list and the generator.
    """

    def __init__(self, bank_dir: str | Path | None = None, config: ImagingConfig = ImagingConfig()):
        self.bank_dir = Path(bank_dir) if bank_dir is not None else default_bank_dir()
        self.config = config
        self._files: list[Path] | None = None
        self._cache: OrderedDict[Path, tuple[np.ndarray, dict]] = OrderedDict()

    @property
    def files(self) -> list[Path]:
        """The bank's wave files (read once)."""
        if self._files is None:
            self.refresh()
        return self._files  # type: ignore[return-value]

    def refresh(self) -> None:
        """Re-read the bank's file list."""
        files = bank_files(self.bank_dir)
        if not files:
            raise FileNotFoundError(f"no exit waves in {self.bank_dir}; run 'emdenoise simulate exitwaves --n N' first")
        self._files = files

    def wave(self, index: int) -> tuple[np.ndarray, dict]:
        """Decoded wave ``index`` of the file list and its metadata (LRU-cached)."""
        path = self.files[index]
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        item = load_wave(path)
        self._cache[path] = item
        while len(self._cache) > max(1, self.config.lru_size):
            self._cache.popitem(last=False)
        return item

    def sample(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, dict]:
        """Make one training pair.

        Parameters
        ----------
        rng : numpy.random.Generator
            Drives every choice (wave, microscope, pixel size, crop, orientation, dose, noise).
        size : int
            Output side in pixels; at most the cell side over the smallest pixel size.

        Returns
        -------
        clean : ndarray, float32, (size, size)
            Expected counts per pixel (vacuum reads the dose).
        noisy : ndarray, float32, (size, size)
            Poisson counts.
        params : dict
            Wave file and structure, microscope, pixel size, dose, crop and orientation.
        """
        cfg = self.config
        index = int(rng.integers(len(self.files)))
        wave, meta = self.wave(index)
        sampling = float(meta["sampling_A"])
        extent = wave.shape[0] * sampling
        optics = sample_optics(rng, float(meta["energy_eV"]), cfg)
        hi = min(cfg.pixel_size_a[1], extent / size)
        lo = min(cfg.pixel_size_a[0], hi)
        out_gpts = max(size, int(round(extent / _log_uniform(rng, (lo, hi)))))
        image = form_image(wave, sampling, float(meta["energy_eV"]), optics, out_gpts)
        image = np.ascontiguousarray(image.T[::-1])  # [x, y] -> [row, col], +y up
        r0, c0 = (int(v) for v in rng.integers(0, out_gpts - size + 1, size=2))
        crop = image[r0 : r0 + size, c0 : c0 + size]
        turns, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
        crop = np.rot90(crop, turns)
        if flip:
            crop = crop[:, ::-1]
        nominal = _log_uniform(rng, cfg.dose)
        dose = float(nominal * max(0.05, 1.0 + cfg.dose_jitter * rng.standard_normal()))
        clean = np.ascontiguousarray(np.clip(crop, 0, None) * dose, dtype=np.float32)
        noisy = rng.poisson(clean).astype(np.float32)
        params = {
            "wave_file": self.files[index].name,
            "wave_index": index,
            **{k: meta.get(k) for k in ("morphology", "material", "metal", "elements", "energy_kV",
                                        "specimen_thickness_A", "parametrization")},
            **optics,
            "pixel_size_A": extent / out_gpts,
            "crop_rc": [r0, c0],
            "rot90": turns,
            "flip": flip,
            "dose_nominal": nominal,
            "dose": dose,
        }
        return clean, noisy, params
