"""MIG-family disentanglement metrics for disbench (docs/metrics.md).

* :func:`mig_score` — MIG, disentanglement_lib's histogram form (``mig``);
* :func:`mig_sampled_score` — MIG, Chen et al. 2018's sampled form (``mig_sampled``);
* :func:`rmig_score` — robust MIG of Do & Tran 2020 (``rmig``), the paper's headline metric.

:data:`METRICS` maps the registered names to the gin-configurable metric
classes (gin names ``MIG``, ``MIGSampled``, ``RMIG``) the plugin registers.
"""

from .mig import mig_score
from .mig_sampled import mig_sampled_score
from .registered import MIG, RMIG, MIGSampled
from .rmig import rmig_score

METRICS = {"mig": MIG, "mig_sampled": MIGSampled, "rmig": RMIG}

__all__ = ["METRICS", "MIG", "MIGSampled", "RMIG", "mig_score", "mig_sampled_score", "rmig_score"]
