"""disentanglement_lib's metric suite (docs/metrics.md), built into the harness.

Plain array functions (codes ``[N, L]`` float, factors ``[N, K]`` integer
indices, as in ``dvae_plugin.metrics``), each returning ``{"score",
"per_factor", ...}``:

* :func:`dci_score` — DCI disentanglement / completeness / informativeness (``dci``);
* :func:`sap_score` — SAP (``sap``);
* :func:`modularity_explicitness_score` — modularity and explicitness (``modularity``);
* :func:`factor_vae_score` — the FactorVAE score (``factorvae_score``);
* :func:`beta_vae_score` — the BetaVAE score (``betavae_score``);
* :func:`unsupervised_scores` — Gaussian total and Wasserstein correlation,
  mutual information between latents (``unsupervised``).

:data:`METRICS` maps the registered names (in brackets) to the gin-configurable
classes the built-in plugin :mod:`disbench.standard_metrics.plugin` registers.
scikit-learn is needed when a metric runs, not to import this package
(``pip install -e ".[metrics]"``).
"""

from .beta_vae import beta_vae_score
from .dci import dci_score
from .factor_vae import factor_vae_score
from .modularity import modularity_explicitness_score
from .registered import DCI, METRICS, SAP, BetaVAEScore, FactorVAEScore, Modularity, Unsupervised
from .sap import sap_score
from .unsupervised import unsupervised_scores

__all__ = ["METRICS", "DCI", "SAP", "Modularity", "FactorVAEScore", "BetaVAEScore", "Unsupervised",
           "dci_score", "sap_score", "modularity_explicitness_score", "factor_vae_score", "beta_vae_score",
           "unsupervised_scores"]
