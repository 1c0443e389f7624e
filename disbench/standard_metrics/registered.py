"""The disentanglement_lib metrics as registered disbench metrics (docs/metrics.md).

Gin-configurable classes in the module ``disbench.standard_metrics`` (gin
names ``DCI``, ``SAP``, ``Modularity``, ``FactorVAEScore``, ``BetaVAEScore``,
``Unsupervised``), called as the harness calls every metric::

    metric(representation, dataset, seed=run_seed) -> {"score", "per_factor": {factor: value},
        "scores": {name: value}, "score_name", "per_factor_name", ...details}

Each encodes the whole dataset once (``representation.encode()``, cached and
shared by every metric of an evaluation) and draws its points from those
codes. The training points of DCI, SAP, modularity and the unsupervised scores
are the same ``num_train`` images (``dataset.sample_indices`` with
``default_rng([seed, 1])``), their test points the same ``num_test`` images
(``default_rng([seed, 2])``), as in disentanglement_lib, where every metric
starts from one seed. All list ``representations = ("mean", "sampled")``.
"""

from __future__ import annotations

import gin
import numpy as np

from ..errors import DisbenchError
from ..metrics import MEAN, SAMPLED, require_factors
from ._common import TEST_STREAM, TRAIN_STREAM, check_n_jobs, check_num_bins, check_positive_int, stream_rng
from .beta_vae import beta_vae_score
from .dci import BACKENDS, dci_score
from .factor_vae import factor_vae_score
from .modularity import modularity_explicitness_score
from .sap import sap_score
from .unsupervised import unsupervised_scores

GIN_MODULE = "disbench.standard_metrics"


def _json(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class StandardMetric:
    """What the registered disentanglement_lib metrics share."""

    name = ""
    representations = (MEAN, SAMPLED)
    requires_factors = True
    score_name = ""
    per_factor_name = ""
    headline = ()  # keys of the array function's result shown as extra table columns

    def _codes(self, representation) -> np.ndarray:
        return representation.encode()[0]  # the whole dataset, encoded once per evaluation

    def _train_test(self, representation, dataset, seed: int, num_train: int, num_test: int):
        require_factors(dataset, self.name)
        codes = self._codes(representation)
        train = dataset.sample_indices(num_train, stream_rng(seed, TRAIN_STREAM))
        test = dataset.sample_indices(num_test, stream_rng(seed, TEST_STREAM))
        return codes[train], dataset.factors[train], codes[test], dataset.factors[test]

    def _named(self, result: dict, dataset, **details) -> dict:
        names = list(getattr(dataset, "factor_names", ()) if dataset.has_factors else ())
        out = {
            "score": float(result["score"]),
            "per_factor": dict(zip(names, (float(v) for v in result["per_factor"]))),
            "scores": {key: _json(result[key]) for key in self.headline},
            "score_name": self.score_name,
            "per_factor_name": self.per_factor_name,
        }
        if names:
            out["factor_names"] = names
        for key, value in result.items():
            if key not in out and key not in ("per_factor",):
                out[key] = _json(value)
        out.update({key: _json(value) for key, value in details.items()})
        return out


def _check_choice(value, choices, owner: str):
    if value not in choices:
        raise DisbenchError(f"{owner} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


@gin.configurable("DCI", module=GIN_MODULE)
class DCI(StandardMetric):
    """DCI (docs/metrics.md ``dci``): score = disentanglement; factor columns = completeness."""

    name = "dci"
    score_name = "disentanglement"
    per_factor_name = "completeness of the factor"
    headline = ("completeness", "informativeness_train", "informativeness_test")

    def __init__(self, num_train: int = 10000, num_test: int = 5000, backend: str = "gbt", n_jobs: int | None = None):
        self.num_train = check_positive_int(num_train, "DCI.num_train")
        self.num_test = check_positive_int(num_test, "DCI.num_test")
        self.backend = _check_choice(backend, BACKENDS, "DCI.backend")
        self.n_jobs = check_n_jobs(n_jobs, "DCI.n_jobs")

    def __call__(self, representation, dataset, *, seed: int = 0) -> dict:
        arrays = self._train_test(representation, dataset, seed, self.num_train, self.num_test)
        result = dci_score(*arrays, seed=seed, backend=self.backend, n_jobs=self.n_jobs,
                           factor_names=dataset.factor_names)
        return self._named(result, dataset, num_train=self.num_train, num_test=self.num_test, seed=seed)


@gin.configurable("SAP", module=GIN_MODULE)
class SAP(StandardMetric):
    """SAP (docs/metrics.md ``sap``): score = mean gap; factor columns = each factor's gap."""

    name = "sap"
    score_name = "mean over factors of the gap between the two most predictive latents"
    per_factor_name = "gap between the factor's two most predictive latents"

    def __init__(self, num_train: int = 10000, num_test: int = 5000, continuous_factors: bool = False,
                 n_jobs: int | None = None):
        self.num_train = check_positive_int(num_train, "SAP.num_train")
        self.num_test = check_positive_int(num_test, "SAP.num_test")
        if not isinstance(continuous_factors, bool):
            raise DisbenchError(f"SAP.continuous_factors must be True or False, got {continuous_factors!r}")
        self.continuous_factors = continuous_factors
        self.n_jobs = check_n_jobs(n_jobs, "SAP.n_jobs")

    def __call__(self, representation, dataset, *, seed: int = 0) -> dict:
        arrays = self._train_test(representation, dataset, seed, self.num_train, self.num_test)
        result = sap_score(*arrays, continuous_factors=self.continuous_factors, seed=seed, n_jobs=self.n_jobs,
                           factor_names=dataset.factor_names)
        return self._named(result, dataset, num_train=self.num_train, num_test=self.num_test, seed=seed)


@gin.configurable("Modularity", module=GIN_MODULE)
class Modularity(StandardMetric):
    """Modularity and explicitness (docs/metrics.md ``modularity``): score = modularity;
    factor columns = explicitness (test ROC-AUC) of each factor."""

    name = "modularity"
    score_name = "modularity"
    per_factor_name = "explicitness of the factor (test ROC-AUC)"
    headline = ("explicitness_train", "explicitness_test")

    def __init__(self, num_train: int = 10000, num_test: int = 5000, num_bins: int = 20, n_jobs: int | None = None):
        self.num_train = check_positive_int(num_train, "Modularity.num_train")
        self.num_test = check_positive_int(num_test, "Modularity.num_test")
        self.num_bins = check_num_bins(num_bins, "Modularity.num_bins")
        self.n_jobs = check_n_jobs(n_jobs, "Modularity.n_jobs")

    def __call__(self, representation, dataset, *, seed: int = 0) -> dict:
        arrays = self._train_test(representation, dataset, seed, self.num_train, self.num_test)
        result = modularity_explicitness_score(*arrays, num_bins=self.num_bins, n_jobs=self.n_jobs,
                                               factor_names=dataset.factor_names)
        return self._named(result, dataset, num_train=self.num_train, num_test=self.num_test, seed=seed)


@gin.configurable("FactorVAEScore", module=GIN_MODULE)
class FactorVAEScore(StandardMetric):
    """The FactorVAE score (docs/metrics.md ``factorvae_score``): score = eval accuracy;
    factor columns = accuracy on the votes of each factor."""

    name = "factorvae_score"
    score_name = "accuracy of the majority-vote classifier on the evaluation votes"
    per_factor_name = "accuracy on the evaluation votes of the factor"
    headline = ("train_accuracy", "num_active_dims")

    def __init__(self, batch_size: int = 64, num_train: int = 10000, num_eval: int = 5000,
                 num_variance_estimate: int = 10000, prune_threshold: float = 0.05):
        self.batch_size = check_positive_int(batch_size, "FactorVAEScore.batch_size")
        if self.batch_size < 2:
            raise DisbenchError("FactorVAEScore.batch_size must be at least 2: a batch's variance needs two codes")
        self.num_train = check_positive_int(num_train, "FactorVAEScore.num_train")
        self.num_eval = check_positive_int(num_eval, "FactorVAEScore.num_eval")
        self.num_variance_estimate = check_positive_int(num_variance_estimate,
                                                        "FactorVAEScore.num_variance_estimate")
        if not (isinstance(prune_threshold, (int, float)) and prune_threshold >= 0):
            raise DisbenchError(f"FactorVAEScore.prune_threshold must be a number >= 0, got {prune_threshold!r}")
        self.prune_threshold = float(prune_threshold)

    def __call__(self, representation, dataset, *, seed: int = 0) -> dict:
        require_factors(dataset, self.name)
        result = factor_vae_score(self._codes(representation), dataset.factors, dataset.factor_sizes,
                                  batch_size=self.batch_size, num_train=self.num_train, num_eval=self.num_eval,
                                  num_variance_estimate=self.num_variance_estimate,
                                  prune_threshold=self.prune_threshold, seed=seed)
        return self._named(result, dataset, batch_size=self.batch_size, num_train=self.num_train,
                           num_eval=self.num_eval, num_variance_estimate=self.num_variance_estimate,
                           prune_threshold=self.prune_threshold, seed=seed)


@gin.configurable("BetaVAEScore", module=GIN_MODULE)
class BetaVAEScore(StandardMetric):
    """The BetaVAE score (docs/metrics.md ``betavae_score``): score = eval accuracy;
    factor columns = accuracy on the evaluation points of each factor."""

    name = "betavae_score"
    score_name = "accuracy of the logistic regression on the evaluation points"
    per_factor_name = "accuracy on the evaluation points of the factor"
    headline = ("train_accuracy",)

    def __init__(self, batch_size: int = 64, num_train: int = 10000, num_eval: int = 5000):
        self.batch_size = check_positive_int(batch_size, "BetaVAEScore.batch_size")
        self.num_train = check_positive_int(num_train, "BetaVAEScore.num_train")
        self.num_eval = check_positive_int(num_eval, "BetaVAEScore.num_eval")

    def __call__(self, representation, dataset, *, seed: int = 0) -> dict:
        require_factors(dataset, self.name)
        result = beta_vae_score(self._codes(representation), dataset.factors, dataset.factor_sizes,
                                batch_size=self.batch_size, num_train=self.num_train, num_eval=self.num_eval,
                                seed=seed)
        return self._named(result, dataset, batch_size=self.batch_size, num_train=self.num_train,
                           num_eval=self.num_eval, seed=seed)


@gin.configurable("Unsupervised", module=GIN_MODULE)
class Unsupervised(StandardMetric):
    """The unsupervised scores (docs/metrics.md ``unsupervised``): score = Gaussian total
    correlation; no factor columns; works on datasets without factors."""

    name = "unsupervised"
    requires_factors = False
    score_name = "Gaussian total correlation (nats; lower = less correlated latents)"
    per_factor_name = ""
    headline = ("gaussian_wasserstein_correlation", "gaussian_wasserstein_correlation_norm", "mutual_info_score")

    def __init__(self, num_train: int = 10000, num_bins: int = 20):
        self.num_train = check_positive_int(num_train, "Unsupervised.num_train")
        self.num_bins = check_num_bins(num_bins, "Unsupervised.num_bins")

    def __call__(self, representation, dataset, *, seed: int = 0) -> dict:
        codes = self._codes(representation)
        rng = stream_rng(seed, TRAIN_STREAM)
        if dataset.has_factors:  # the training points of the other metrics
            indices = dataset.sample_indices(self.num_train, rng)
        else:
            indices = rng.integers(0, len(dataset), size=self.num_train)
        result = unsupervised_scores(codes[indices], self.num_bins)
        return self._named(result, dataset, num_train=self.num_train, seed=seed)


METRICS = {
    "dci": DCI,
    "sap": SAP,
    "modularity": Modularity,
    "factorvae_score": FactorVAEScore,
    "betavae_score": BetaVAEScore,
    "unsupervised": Unsupervised,
}
