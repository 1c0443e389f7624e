"""The registered metric classes on a small synthetic factor grid with a known encoder."""

import json
import re

import gin
import numpy as np
import pytest
import torch

from disbench.data.dataset import FactorGridDataset, ImageDataset
from disbench.errors import DisbenchError
from disbench.metrics import Representation
from dvae_plugin.metrics import METRICS, MIG, RMIG, MIGSampled, mig_sampled_score, mig_score, rmig_score

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels

FACTOR_NAMES = ("shape", "scale", "posx")
FACTOR_SIZES = (3, 4, 6)
SCALE = 10  # pixel value = factor index * SCALE


def make_dataset():
    """Image n stores its factors in its first pixels and noise in the rest."""
    n = int(np.prod(FACTOR_SIZES))
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, size=(n, 1, 3, 3), dtype=np.uint8))
    dataset = FactorGridDataset(name="grid", images=images, source="synthetic test grid",
                                factor_names=FACTOR_NAMES, factor_sizes=FACTOR_SIZES)
    images.view(n, -1)[:, :3] = torch.from_numpy((dataset.factors * SCALE).astype(np.uint8))
    return dataset


def encode(x):
    """A perfect encoder: latent k = factor k - 2.5 (σ = e^-4, inside RMIG's range), two latents
    holding one random bit of the image each (on 72 images a finer noise latent
    would all but identify the image, and so carry information on every factor)."""
    pixels = x.flatten(1) * 255
    mu = torch.cat([pixels[:, :3] / SCALE - 2.5, (pixels[:, 3:5] >= 128).float() - 0.5], dim=1)
    logvar = torch.cat([torch.full((len(x), 3), -8.0), torch.zeros(len(x), 2)], dim=1)
    return mu, logvar


@pytest.fixture
def dataset():
    return make_dataset()


@pytest.fixture
def representation(dataset):
    return Representation(encode, dataset.images, batch_size=16)


def test_metrics_maps_registered_names_to_classes():
    assert METRICS == {"mig": MIG, "mig_sampled": MIGSampled, "rmig": RMIG}


@pytest.mark.parametrize("metric", [MIG(num_train=500), RMIG(), MIGSampled(num_entropy_samples=100)])
def test_result_is_json_under_factor_names(metric, representation, dataset):
    result = metric(representation, dataset, seed=0)
    assert json.loads(json.dumps(result)) == result
    assert list(result["per_factor"]) == list(FACTOR_NAMES) == result["factor_names"]
    assert list(result["entropy"]) == list(FACTOR_NAMES)
    assert np.array(result["mi"]).shape == (5, 3)
    assert result["score"] == pytest.approx(np.mean(list(result["per_factor"].values())))
    assert result["score"] > 0.9  # the encoder is perfect
    assert result == metric(representation, dataset, seed=0)


def test_mig_draws_num_train_uniform_factor_samples(representation, dataset):
    result = MIG(num_train=300, num_bins=10)(representation, dataset, seed=4)
    indices = dataset.sample_indices(300, np.random.default_rng(4))
    mu, _ = encode(dataset.images[indices].float() / 255)
    expected = mig_score(mu.numpy(), dataset.factors[indices], 10)
    assert list(result["per_factor"].values()) == expected["per_factor"]
    assert result["num_samples"] == 300 and result["num_bins"] == 10 and result["seed"] == 4
    other = MIG(num_train=300, num_bins=10)(representation, dataset, seed=5)
    assert other["mi"] != result["mi"]


def test_mig_scores_the_sampled_representation_too(representation, dataset):
    """mig@sampled: the same estimator on z = μ + σ·ε, one fixed ε per image."""
    from disbench.metrics import SampledRepresentation, resolve_metrics

    resolve_metrics(["mig@sampled"])  # declared: accepted by name
    with pytest.raises(DisbenchError, match="rmig"):
        resolve_metrics(["rmig@sampled"])  # reads the posterior itself: no sampled form
    sampled = SampledRepresentation(representation, seed=7)
    result = MIG(num_train=300, num_bins=10)(sampled, dataset, seed=4)
    indices = dataset.sample_indices(300, np.random.default_rng(4))
    expected = mig_score(sampled.codes()[indices], dataset.factors[indices], 10)
    assert list(result["per_factor"].values()) == expected["per_factor"]
    mean = MIG(num_train=300, num_bins=10)(representation, dataset, seed=4)
    assert result["mi"] != mean["mi"]  # the two noise latents carry σ = 1 noise now


def test_rmig_uses_the_whole_dataset_by_default(representation, dataset):
    result = RMIG()(representation, dataset, seed=0)
    mu, logvar = representation.encode()
    expected = rmig_score(mu, logvar, dataset.factors)
    assert list(result["per_factor"].values()) == expected["per_factor"]
    assert result["num_samples"] == len(dataset) and result["value_range"] == [-4.0, 4.0]


def test_rmig_subsample_is_deterministic_in_the_seed(representation, dataset):
    metric = RMIG(num_samples=40, num_bins=30)
    a, b, c = (metric(representation, dataset, seed=s) for s in (1, 1, 2))
    assert a == b and a["num_samples"] == 40
    assert a["mi"] != c["mi"]


def test_mig_sampled_matches_the_array_function(representation, dataset):
    result = MIGSampled(num_entropy_samples=25)(representation, dataset, seed=3)
    mu, logvar = representation.encode()
    expected = mig_sampled_score(mu, logvar, dataset.factors, FACTOR_SIZES, 25, seed=3)
    assert list(result["per_factor"].values()) == expected["per_factor"]
    assert result["marginal_entropy"] == expected["marginal_entropy"]
    assert result["num_entropy_samples"] == 25


def test_excluded_factors_are_reported_but_not_averaged(representation, dataset):
    full = MIGSampled(num_entropy_samples=25)(representation, dataset, seed=0)
    without = MIGSampled(num_entropy_samples=25, exclude_factors=["shape"])(representation, dataset, seed=0)
    assert without["per_factor"] == full["per_factor"]
    assert without["score"] == pytest.approx((full["per_factor"]["scale"] + full["per_factor"]["posx"]) / 2)
    assert without["excluded_factors"] == ["shape"]
    assert MIGSampled(num_entropy_samples=25, exclude_factors="shape")(representation, dataset, seed=0) == without


@pytest.mark.parametrize("exclude, message", [
    (["colour"], "exclude_factors ['colour'] are not factors of dataset 'grid'"),
    (list(FACTOR_NAMES), "leaves no factor to score"),
])
def test_bad_exclusions_are_clear_errors(exclude, message, representation, dataset):
    with pytest.raises(DisbenchError, match=re.escape(message)):
        RMIG(exclude_factors=exclude)(representation, dataset, seed=0)


@pytest.mark.parametrize("metric_class", [MIG, RMIG, MIGSampled])
def test_datasets_without_factors_are_refused(metric_class):
    images = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    dataset = ImageDataset(name="chairs", images=images, source="none")
    with pytest.raises(DisbenchError, match="needs ground-truth factors"):
        metric_class()(Representation(encode, images), dataset, seed=0)


def test_sample_sizes_bins_and_seeds_are_gin_configurable(representation, dataset):
    try:
        gin.parse_config("""
            MIG.num_train = 123
            MIG.num_bins = 7
            dvae_plugin.metrics.RMIG.num_samples = 50
            MIGSampled.num_entropy_samples = 11
            MIGSampled.exclude_factors = ["shape"]
        """)
        assert MIG()(representation, dataset, seed=0)["num_samples"] == 123
        assert MIG().num_bins == 7
        assert RMIG()(representation, dataset, seed=0)["num_samples"] == 50
        assert MIGSampled().num_entropy_samples == 11 and MIGSampled().exclude_factors == ("shape",)
    finally:
        gin.clear_config()


@pytest.mark.parametrize("make, message", [
    (lambda: MIG(num_train=0), "MIG.num_train must be a positive integer"),
    (lambda: RMIG(num_samples=-1), "RMIG.num_samples must be a positive integer"),
    (lambda: MIGSampled(num_samples=0), "MIGSampled.num_samples must be a positive integer"),
    (lambda: MIGSampled(num_entropy_samples=0), "MIGSampled.num_entropy_samples must be a positive integer"),
    (lambda: MIG(num_bins=1), "num_bins must be an integer >= 2"),
    (lambda: RMIG(num_bins=0), "num_bins must be an integer >= 2"),
])
def test_bad_settings_are_clear_errors_at_construction(make, message):
    with pytest.raises(DisbenchError, match=re.escape(message)):
        make()
