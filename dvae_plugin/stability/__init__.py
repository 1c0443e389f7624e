"""Stability analysis and system identification of DynamicVAE's PI loop (paper §3.1, app. C).

* :func:`analyze` — eigenvalues / spectral radius of the linearised loop (the authority),
  an exact Routh–Hurwitz verdict, and the paper's Eq. 19 conditions (sufficient, not
  necessary: docs/stability.md).
* :func:`identify` — a and g(β) = A·exp(-b·β) from logged runs (appendix C.1).
* :func:`plot_region` — the stable region in the (Kp, Ki) plane.
* :mod:`.cli` — the ``disbench stability`` command (``add_parser``).
"""

from .analysis import (
    PAPER_COUNTEREXAMPLE,
    TABLE5_PLANTS,
    StabilityResult,
    analyze,
    exact_stable,
    jacobian,
    paper_stable,
    spectral_radius,
)
from .region import plot_region
from .sysid import fit_kl_map, fit_rise, identify, load_run

__all__ = [
    "PAPER_COUNTEREXAMPLE", "TABLE5_PLANTS", "StabilityResult", "analyze", "exact_stable",
    "jacobian", "paper_stable", "spectral_radius", "plot_region", "fit_kl_map", "fit_rise",
    "identify", "load_run",
]
