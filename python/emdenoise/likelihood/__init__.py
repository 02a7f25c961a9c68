"""Likelihood maps (seed 003, sec. 3): is each restored atom column supported by the raw counts?

* :mod:`.poisson` - eq. 1 and the constant-rate log-likelihood ratio;
* :mod:`.regions` - vacuum and column regions (scikit-image blob detection);
* :mod:`.compute` - :func:`likelihood_map`, the settings and the result;
* :mod:`.overlay`, :mod:`.export` - RGBA overlay, CSV table, ImageJ ROIs (``roifile``);
* :mod:`.job`, :mod:`.messages` - one job for the embedded client and the LikelihoodMap RPC;
* :mod:`.fiji_job` - the EM Likelihood Map job action;
* :mod:`.validation` - seed 003 Fig. 4 reproduction (``python -m emdenoise.likelihood.validation``).
"""

from emdenoise.likelihood.compute import (
    VACUUM_LABEL,
    Detection,
    LikelihoodResult,
    LikelihoodSettings,
    Region,
    detect_regions,
    likelihood_map,
)
from emdenoise.likelihood.poisson import constant_rate_llr, poisson_loglik

__all__ = [
    "VACUUM_LABEL",
    "Detection",
    "LikelihoodResult",
    "LikelihoodSettings",
    "Region",
    "constant_rate_llr",
    "detect_regions",
    "likelihood_map",
    "poisson_loglik",
]
