"""Likelihood maps: is each column of a denoised image supported by the raw counts?

Seed 003, sec. 3 "Likelihood maps": (1) find regions of interest (columns by blob
detection, and the vacuum) in the denoised image; (2) fit a constant intensity per region
by averaging the denoised pixels; (3) compare, per region, the Poisson likelihood (eq. 1)
of the noisy counts under "the column is there" (the fitted intensity) with "it is an
artifact" (the mean of the noisy vacuum pixels). The log-likelihood ratio is positive (red
in Fig. 1e) where the data support the column, negative (blue; Fig. 4's spurious atom)
where they favour vacuum.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
from emdenoise.errors import InvalidInput
from emdenoise.likelihood.counts import counts_calibration, to_counts
from emdenoise.likelihood.holdout import HOLDOUTS
from emdenoise.likelihood.poisson import SIGNIFICANCE, decide, decision_power, region_llrs, tail_p_values
from emdenoise.likelihood.regions import (
    MIN_VACUUM_PIXELS,
    Blob,
    POLARITIES,
    VACUUM_METHODS,
    choose_polarity,
    detect_columns,
    find_vacuum,
    label_regions,
)

MAP_UNITS = ("per-pixel", "total")

#: Power (:attr:`Region.power`) from which a region's test counts as decisive.
DECISIVE_POWER = 0.95


#: Label of vacuum pixels in :attr:`LikelihoodResult.labels` (columns are 1..K, 0 is neither).
VACUUM_LABEL = -1


@dataclass(frozen=True)
class LikelihoodSettings:
    """How regions are found and what the map shows.

    Attributes
    ----------
    polarity : {"auto", "bright", "dark"}
        Whether columns are brighter or darker than the vacuum (HRTEM columns can be
        either, seed 003 sec. 5); ``auto`` decides from the estimate.
    vacuum : {"flat", "dark"}
        How the vacuum is found (:func:`emdenoise.likelihood.regions.find_vacuum`).
    vacuum_level : float or None
        Hypothesis-2 rate in counts/px, when known; skips the vacuum search for the rate
        (a frame without vacuum then still gets a map).
    min_sigma, max_sigma : float
        Column scales searched by the blob detector [pixels].
    threshold : float
        Blob detection threshold on the contrast image (peak contrast / 2, in units of
        the larger of the vacuum level and the strongest deviation from it).
    map_units : {"per-pixel", "total"}
        ``per-pixel``: the region's log-likelihood ratio divided by its pixel count (the
        scale of seed 003 Fig. 1e, about +-0.03 at 0.45 counts/px); ``total``: the ratio
        itself, which grows with region size and dose.
    holdout : {"thin", "none"}
        When a model makes the estimate of a frame of whole counts: ``thin`` makes it from
        a binomial half of the counts and tests the other half
        (:mod:`emdenoise.likelihood.holdout`); ``none`` tests the counts the estimate was
        made from (biased towards "supported"). A given estimate is never thinned.
    split : float
        Share of the counts the thinned estimate is made from (``p``; the test half has
        dose ``(1 - p) x``).
    significance : float
        Significance of each region's decision (:func:`emdenoise.likelihood.poisson.decide`):
        the largest chance that a region whose counts are vacuum comes out ``supported``
        (or a real column at the estimate's intensity ``contradicted``). Library use only:
        the LikelihoodMap RPC always uses the default.
    """

    polarity: str = "auto"
    vacuum: str = "flat"
    vacuum_level: float | None = None
    min_sigma: float = 1.0
    max_sigma: float = 8.0
    threshold: float = 0.05
    map_units: str = "per-pixel"
    holdout: str = "thin"
    split: float = 0.5
    significance: float = SIGNIFICANCE

    def __post_init__(self):
        choices = {"polarity": POLARITIES, "vacuum": VACUUM_METHODS, "map_units": MAP_UNITS, "holdout": HOLDOUTS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InvalidInput(f"{name} {getattr(self, name)!r} is not known; choose one of {', '.join(allowed)}.")
        if not (0 < self.min_sigma <= self.max_sigma):
            raise InvalidInput(
                f"blob sizes min_sigma={self.min_sigma:g}, max_sigma={self.max_sigma:g} are invalid; "
                "give 0 < min-sigma <= max-sigma (pixels)."
            )
        if not self.threshold > 0:
            raise InvalidInput(f"the detection threshold must be positive, not {self.threshold:g}; correct --threshold.")
        if not 0 < self.significance < 0.5:
            raise InvalidInput(f"the significance must lie between 0 and 0.5, not {self.significance:g}; 0.05 is usual.")
        if not 0 < self.split < 1:
            raise InvalidInput(f"the split must lie between 0 and 1, not {self.split:g}; 0.5 halves the counts.")
        if self.vacuum_level is not None and not self.vacuum_level > 0:
            raise InvalidInput(f"the vacuum level must be a positive count rate, not {self.vacuum_level:g}; correct --vacuum-level.")

    @classmethod
    def from_options(cls, **options) -> "LikelihoodSettings":
        """Settings from keyword options; None (or empty strings) keep the defaults."""
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise TypeError(f"unknown likelihood options: {', '.join(sorted(unknown))}")
        return replace(cls(), **{k: v for k, v in options.items() if v is not None and v != ""})

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Region:
    """One column region and its test (seed 003, sec. 3).

    Attributes
    ----------
    id : int
        Label in :attr:`LikelihoodResult.labels` (1-based).
    row, col : float
        Blob centre [pixels].
    radius : float
        Blob radius, ``sqrt(2) sigma`` [pixels].
    pixels : int
        Pixels in the region (the disc where the estimate lies on the columns' side of the
        vacuum level, shared discs split between blobs).
    intensity : float
        Hypothesis 1: mean of the denoised estimate over the region [counts/px].
    observed : float
        Mean of the noisy counts over the region [counts/px].
    llr : float
        ``log L(column) - log L(vacuum)``.
    llr_per_pixel : float
        ``llr / pixels``.
    power : float
        Probability that the test says ``supported`` if the column really is there at
        ``intensity`` (:func:`~emdenoise.likelihood.poisson.decision_power`). Low power
        means the column is too faint or too small for this dose to be decided.
    vacuum_rate : float
        Hypothesis-2 rate the region was tested against [counts/px].
    significance : float
        Significance of :attr:`decision`.
    """

    id: int
    row: float
    col: float
    radius: float
    pixels: int
    intensity: float
    observed: float
    llr: float
    llr_per_pixel: float
    power: float
    vacuum_rate: float = float("nan")
    significance: float = SIGNIFICANCE

    @property
    def count_sum(self) -> int:
        """The region's observed counts (whole electrons)."""
        return int(round(self.observed * self.pixels))

    @property
    def p_values(self) -> tuple[float, float]:
        """``(p_vacuum, p_column)`` of :func:`~emdenoise.likelihood.poisson.tail_p_values`."""
        if not np.isfinite(self.vacuum_rate):
            return float("nan"), float("nan")
        return tail_p_values(self.count_sum, self.pixels, self.intensity, self.vacuum_rate)

    @property
    def decision(self) -> str:
        """``supported``, ``contradicted`` or ``undecided`` (:func:`~emdenoise.likelihood.poisson.decide`).

        Without a vacuum rate (a region built by hand) the LLR's sign decides, as in seed 003.
        """
        if not np.isfinite(self.vacuum_rate):
            return "supported" if self.llr > 0 else "contradicted"
        return decide(self.count_sum, self.pixels, self.intensity, self.vacuum_rate, self.significance)

    @property
    def supported(self) -> bool:
        """True when the test rejects vacuum in favour of the column at the region's significance."""
        return self.decision == "supported"

    @property
    def contradicted(self) -> bool:
        """True when the test rejects the column in favour of vacuum."""
        return self.decision == "contradicted"


@dataclass
class LikelihoodResult:
    """A likelihood map and everything it was made from.

    Attributes
    ----------
    llr_map : ndarray, float32
        Per region, its log-likelihood ratio (per pixel or total, see ``map_units``);
        NaN outside the regions.
    labels : ndarray, int32
        Region id (1..K) per pixel, :data:`VACUUM_LABEL` in the vacuum, 0 elsewhere.
    estimate : ndarray, float32
        The denoised estimate in counts.
    regions : list of Region
    vacuum_level : float
        Hypothesis-2 rate [counts/px].
    vacuum_pixels : int
        Noisy pixels averaged for ``vacuum_level`` (0 when it was given).
    polarity : str
        ``bright`` or ``dark``: the columns' side of the vacuum level.
    map_units : str
    message : str
        One sentence for the user (how many columns, how many supported; or why none).
    info : dict
        What made the estimate (model id, graph sha256, versions, device), for provenance.
    """

    llr_map: np.ndarray
    labels: np.ndarray
    estimate: np.ndarray
    regions: list[Region]
    vacuum_level: float
    vacuum_pixels: int
    polarity: str
    map_units: str
    message: str
    info: dict = field(default_factory=dict)

    @property
    def supported_fraction(self) -> float:
        """Fraction of regions the test supports (NaN with no regions)."""
        if not self.regions:
            return float("nan")
        return sum(r.supported for r in self.regions) / len(self.regions)


@dataclass
class Detection:
    """Regions found in a denoised estimate (seed 003, sec. 3, step 1).

    Attributes
    ----------
    vacuum : ndarray of bool
        The vacuum region.
    labels : ndarray of int32
        Column region ``k`` (1-based index into ``blobs``) per pixel, 0 elsewhere.
    blobs : list of Blob
    reference : float
        Vacuum level of the estimate [counts/px] that contrasts are measured from.
    polarity : str
        ``bright`` or ``dark``.
    """

    vacuum: np.ndarray
    labels: np.ndarray
    blobs: list[Blob]
    reference: float
    polarity: str


def detect_regions(estimate: np.ndarray, settings: LikelihoodSettings | None = None, *,
                   counts: np.ndarray | None = None) -> Detection:
    """Find the vacuum and the column regions of a denoised estimate in counts.

    Parameters
    ----------
    estimate : ndarray
        Denoised frame in counts (float).
    settings : LikelihoodSettings, optional
    counts : ndarray, optional
        Whole counts of the same area for the ``flat`` vacuum finder
        (:func:`emdenoise.likelihood.regions.flat_by_counts`); without them the vacuum is
        found in the estimate.

    Returns
    -------
    Detection

    Raises
    ------
    InvalidInput
        No vacuum region and no ``vacuum_level`` to measure contrast from.

    Notes
    -----
    Seed 003, sec. 3, step 1: columns by blob detection and the vacuum. Each column
    region is its blob's disc (radius ``sqrt(2) sigma``) limited to the pixels where the
    estimate lies on the columns' side of the vacuum level, so that the dark fringes around
    an HRTEM column do not dilute its constant-intensity fit.
    """
    settings = settings or LikelihoodSettings()
    d = np.asarray(estimate, dtype=np.float64)
    vacuum = find_vacuum(d, method=settings.vacuum, scale=settings.max_sigma, counts=counts)
    if settings.vacuum_level is not None:
        reference = float(settings.vacuum_level)
    elif vacuum.sum() >= MIN_VACUUM_PIXELS:
        reference = float(np.median(d[vacuum]))
    else:
        raise InvalidInput(
            f"the frame shows no vacuum region (found {int(vacuum.sum())} pixels, {MIN_VACUUM_PIXELS} needed) "
            "to test the columns against; include some vacuum in the field of view or give --vacuum-level in counts/px."
        )
    deviation = d - reference
    outside = deviation[~vacuum] if (~vacuum).any() else deviation.ravel()
    # Contrast unit: the vacuum level (HRTEM), or the strongest deviation when the vacuum
    # is near zero counts (annular dark field), so one threshold suits both.
    scale = max(abs(reference), float(np.percentile(np.abs(outside), 99.5)), 1e-12)
    polarity = choose_polarity(deviation, vacuum, settings.polarity)
    sign = 1.0 if polarity == "bright" else -1.0
    blobs = detect_columns(
        sign * deviation / scale, min_sigma=settings.min_sigma, max_sigma=settings.max_sigma, threshold=settings.threshold
    )
    labels = label_regions(d.shape, blobs, keep=sign * deviation > 0)
    return Detection(vacuum=vacuum, labels=labels, blobs=blobs, reference=reference, polarity=polarity)


def likelihood_map(
    noisy: np.ndarray,
    denoised: np.ndarray,
    *,
    gain: float | None = None,
    offset: float | None = None,
    settings: LikelihoodSettings | None = None,
    estimate_counts: np.ndarray | None = None,
) -> LikelihoodResult:
    """Likelihood map of a denoised frame against its raw counts (seed 003, sec. 3).

    Parameters
    ----------
    noisy : ndarray
        The raw 2-D frame: counts, or detector readings with ``gain``/``offset``.
    denoised : ndarray
        The denoised estimate of ``noisy``, in the same units as ``noisy``.
    gain, offset : float, optional
        ``reading = offset + gain * electrons``; without them ``noisy`` must hold counts.
    settings : LikelihoodSettings, optional
    estimate_counts : ndarray, optional
        Whole counts the estimate was made from, when they are not ``noisy`` (the
        estimate half of a thinned frame, or the other frame of a pair), scaled to
        nothing: they only locate the vacuum (:func:`detect_regions`), so that the
        vacuum's mean is measured on ``noisy`` pixels chosen without looking at them.
        Without them the vacuum is located in the estimate alone (as before issue 21).

    Returns
    -------
    LikelihoodResult
        With no detectable column the result is empty (no regions, all-NaN map) and its
        ``message`` says so; this is not an error.

    Raises
    ------
    InvalidInput
        Non-count data without gain/offset, frames of different shapes, or no vacuum to
        estimate the hypothesis-2 rate from (give ``vacuum_level``).

    Notes
    -----
    Seed 003, sec. 3 "Likelihood maps", eq. 1 and the text after it: per region, hypothesis
    (1) takes the region's average denoised intensity as the Poisson rate of every pixel,
    hypothesis (2) the average of the noisy vacuum pixels; the map shows the difference of
    their log-likelihoods (a log-likelihood ratio test). Fig. 4 is the case of a spurious
    column: its ratio is negative.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[:96, :96]
    >>> clean = 0.45 + 2.0 * np.exp(-((yy - 48) ** 2 + (xx - 48) ** 2) / (2 * 3.0**2))
    >>> result = likelihood_map(rng.poisson(clean).astype(np.uint16), clean)
    >>> len(result.regions), result.regions[0].llr > 0
    (1, True)
    """
    settings = settings or LikelihoodSettings()
    gain, offset, _ = counts_calibration(noisy, gain=gain, offset=offset)
    y = to_counts(noisy, gain, offset)
    d = to_counts(denoised, gain, offset)
    if d.shape != y.shape:
        raise InvalidInput(
            f"the denoised frame is {d.shape[0]}x{d.shape[1]} but the noisy frame is {y.shape[0]}x{y.shape[1]}; "
            "give the denoised result of this very frame."
        )
    locate = None if estimate_counts is None else np.asarray(estimate_counts, dtype=np.float64)
    if locate is not None and locate.shape != y.shape:
        raise InvalidInput(
            f"the estimate's counts are {locate.shape[0]}x{locate.shape[1]} but the tested frame is "
            f"{y.shape[0]}x{y.shape[1]}; give frames of the same area and size."
        )
    # The counts' vacuum test only on counts the test never sees: selecting the vacuum on the
    # tested counts themselves would bias its mean (a given estimate keeps the estimate's test).
    found = detect_regions(d, settings, counts=locate if settings.vacuum == "flat" else None)
    vacuum, labels, blobs, polarity = found.vacuum, found.labels.copy(), found.blobs, found.polarity
    # Blobs that the estimate put inside the vacuum stay in it: they are the ones on trial,
    # and cutting them out would keep only the vacuum's low-count pixels and bias its rate.
    if settings.vacuum_level is not None:
        vacuum_level, vacuum_pixels = float(settings.vacuum_level), 0
    else:
        vacuum_pixels = int(vacuum.sum())
        vacuum_level = float(y[vacuum].mean())  # hypothesis 2: mean of the *noisy* vacuum pixels
        if not vacuum_level > 0:
            raise InvalidInput(
                "the vacuum holds no counts at all, so every column would be infinitely likely; "
                "check --offset, or give --vacuum-level in counts/px."
            )
    regions, llr_map = _test_regions(y, d, labels, blobs, vacuum_level, settings.map_units, settings.significance)
    labels = np.where(vacuum & (labels == 0), VACUUM_LABEL, labels).astype(np.int32)
    return LikelihoodResult(
        llr_map=llr_map,
        labels=labels,
        estimate=d.astype(np.float32),
        regions=regions,
        vacuum_level=vacuum_level,
        vacuum_pixels=vacuum_pixels,
        polarity=polarity,
        map_units=settings.map_units,
        message=summary_message(regions, polarity, vacuum_level, settings.significance),
    )


def _test_regions(y, d, labels, blobs, vacuum_level, map_units, significance=SIGNIFICANCE) -> tuple[list[Region], np.ndarray]:
    """Fit the constant model per region and compute its log-likelihood ratio."""
    count = len(blobs)
    flat = labels.ravel()
    sizes = np.bincount(flat, minlength=count + 1)[1:]
    intensity = np.bincount(flat, weights=d.ravel(), minlength=count + 1)[1:] / np.maximum(sizes, 1)
    observed = np.bincount(flat, weights=y.ravel(), minlength=count + 1)[1:] / np.maximum(sizes, 1)
    llr = region_llrs(y, labels, intensity, vacuum_level)
    # Renumber so that ids are 1..K over the regions that kept pixels.
    kept = np.flatnonzero(sizes > 0)
    renumber = np.zeros(count + 1, np.int32)
    renumber[kept + 1] = np.arange(1, kept.size + 1)
    labels[...] = renumber[labels]
    regions = []
    values = np.full(kept.size + 1, np.nan)
    for new_id, k in enumerate(kept, start=1):
        blob = blobs[k]
        regions.append(
            Region(
                id=new_id, row=blob.row, col=blob.col, radius=blob.radius, pixels=int(sizes[k]),
                intensity=float(intensity[k]), observed=float(observed[k]),
                llr=float(llr[k]), llr_per_pixel=float(llr[k] / sizes[k]),
                power=decision_power(int(sizes[k]), intensity[k], vacuum_level, significance),
                vacuum_rate=float(vacuum_level), significance=float(significance),
            )
        )
        values[new_id] = llr[k] / sizes[k] if map_units == "per-pixel" else llr[k]
    llr_map = values[labels].astype(np.float32)  # label 0 -> values[0] = NaN
    return regions, llr_map


def summary_message(regions: list[Region], polarity: str, vacuum_level: float, significance: float = SIGNIFICANCE) -> str:
    """One sentence on the outcome, for the CLI, the Fiji log and the RPC summary."""
    if not regions:
        return (
            f"no atom columns were detected in the denoised image (vacuum {vacuum_level:.3g} counts/px); "
            "the map is empty - lower the detection threshold or widen the blob sizes if columns are visible."
        )
    decisions = [r.decision for r in regions]
    supported, contradicted = decisions.count("supported"), decisions.count("contradicted")
    undecided = decisions.count("undecided")
    faint = sum(r.power < DECISIVE_POWER for r in regions)
    return (
        f"{len(regions)} {polarity} column regions tested against vacuum at {vacuum_level:.3g} counts/px "
        f"(likelihood-ratio test, significance {significance:g}): {supported} supported by the counts, "
        f"{contradicted} contradicted, {undecided} undecided (too few counts or too little contrast to tell)"
        + (f"; {faint} too faint to decide at this dose (power < {DECISIVE_POWER:.0%}, see the table)." if faint else ".")
    )
