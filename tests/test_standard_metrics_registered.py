"""The disentanglement_lib metrics as registered metrics: on a synthetic grid with a
known encoder, on both representations, and end to end on a trained toy run."""

import json
import re
import subprocess
import sys
from pathlib import Path

import gin
import numpy as np
import pytest
import torch

from disbench.cli import main
from disbench.data.dataset import FactorGridDataset, ImageDataset
from disbench.errors import DisbenchError
from disbench.evaluation import evaluate_model
from disbench.metrics import (SAMPLE_STREAM, Representation, SampledRepresentation, parse_metric_name,
                              parse_representations, resolve_metrics, with_representations)
from disbench.plugins import get_registry
from disbench.standard_metrics import (DCI, METRICS, SAP, BetaVAEScore, FactorVAEScore, Modularity, Unsupervised,
                                       beta_vae_score, dci_score, factor_vae_score, modularity_explicitness_score,
                                       sap_score, unsupervised_scores)
from disbench.standard_metrics._common import stream_rng
from tests.conftest import TOY_PROTOCOL

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels

FACTOR_NAMES = ("shape", "scale", "posx")
FACTOR_SIZES = (2, 3, 4)
SCALE = 10
SMALL = {DCI: dict(num_train=300, num_test=150), SAP: dict(num_train=300, num_test=150),
         Modularity: dict(num_train=300, num_test=150), FactorVAEScore: dict(num_train=200, num_eval=100,
                                                                            num_variance_estimate=200),
         BetaVAEScore: dict(num_train=200, num_eval=100), Unsupervised: dict(num_train=300)}

# the toy run's metric sizes: small enough for a test, and gin-bound as a user would
SMALL_GIN = """
DCI.num_train = 300
DCI.num_test = 150
SAP.num_train = 300
SAP.num_test = 150
Modularity.num_train = 300
Modularity.num_test = 150
FactorVAEScore.num_train = 200
FactorVAEScore.num_eval = 100
FactorVAEScore.num_variance_estimate = 200
BetaVAEScore.num_train = 200
BetaVAEScore.num_eval = 100
Unsupervised.num_train = 300
"""
ALL = "dci,sap,modularity,factorvae_score,betavae_score,unsupervised"


def make_dataset():
    """Image n stores its factors in its first pixels and noise in the rest."""
    n = int(np.prod(FACTOR_SIZES))
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, size=(n, 1, 3, 3), dtype=np.uint8))
    dataset = FactorGridDataset(name="grid", images=images, source="synthetic test grid",
                                factor_names=FACTOR_NAMES, factor_sizes=FACTOR_SIZES)
    images.view(n, -1)[:, :3] = torch.from_numpy((dataset.factors * SCALE).astype(np.uint8))
    return dataset


def encode(x):
    """A perfect encoder: latent k = factor k (σ = 0.1), and a noise latent (σ = 1)."""
    pixels = x.flatten(1) * 255
    mu = torch.cat([pixels[:, :3] / SCALE, pixels[:, 3:4] / 255 - 0.5], dim=1)
    logvar = torch.cat([torch.full((len(x), 3), np.log(0.01)), torch.zeros(len(x), 1)], dim=1)
    return mu, logvar


@pytest.fixture
def dataset():
    return make_dataset()


@pytest.fixture
def representation(dataset):
    return Representation(encode, dataset.images, batch_size=7)


def test_the_built_in_plugin_registers_the_suite_without_importing_scikit_learn():
    assert METRICS == {"dci": DCI, "sap": SAP, "modularity": Modularity, "factorvae_score": FactorVAEScore,
                       "betavae_score": BetaVAEScore, "unsupervised": Unsupervised}
    registry = get_registry("metrics")
    assert {registry.source(name) for name in METRICS} == {"disbench.standard_metrics"}
    code = ("import sys; from disbench.plugins import get_registry; get_registry('metrics').get('dci'); "
            "print('sklearn' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


@pytest.mark.parametrize("cls", list(SMALL))
def test_result_is_json_under_factor_names_and_scores_the_perfect_encoder(cls, representation, dataset):
    result = cls(**SMALL[cls])(representation, dataset, seed=0)
    assert json.loads(json.dumps(result)) == result
    assert result == cls(**SMALL[cls])(representation, dataset, seed=0)  # deterministic in the seed
    assert set(result["scores"]) == set(cls.headline) and result["score_name"] == cls.score_name
    if cls is Unsupervised:
        assert result["per_factor"] == {} and result["score"] < 0.05  # independent factors as codes
    elif cls is Modularity:  # the noise latent is not modular; the three factor latents are
        assert min(result["modularity_per_code"][:3]) > 0.99 and result["scores"]["explicitness_test"] > 0.95
    else:
        assert list(result["per_factor"]) == list(FACTOR_NAMES) == result["factor_names"]
        # a linear classifier on one latent cannot single out a middle value: SAP stays well below 1
        assert result["score"] > (0.25 if cls is SAP else 0.95)


def test_registered_results_equal_the_array_functions_on_the_shared_draws(representation, dataset):
    codes = representation.encode()[0]
    train = dataset.sample_indices(300, stream_rng(3, 1))
    test = dataset.sample_indices(150, stream_rng(3, 2))
    arrays = codes[train], dataset.factors[train], codes[test], dataset.factors[test]
    expected = {
        DCI: dci_score(*arrays, seed=3), SAP: sap_score(*arrays, seed=3),
        Modularity: modularity_explicitness_score(*arrays),
        FactorVAEScore: factor_vae_score(codes, dataset.factors, FACTOR_SIZES, num_train=200, num_eval=100,
                                         num_variance_estimate=200, seed=3),
        BetaVAEScore: beta_vae_score(codes, dataset.factors, FACTOR_SIZES, num_train=200, num_eval=100, seed=3),
        Unsupervised: unsupervised_scores(codes[train]),
    }
    for cls, want in expected.items():
        got = cls(**SMALL[cls])(representation, dataset, seed=3)
        assert got["score"] == want["score"], cls
        assert list(got["per_factor"].values()) == want["per_factor"], cls
        assert got["scores"] == {k: want[k] for k in cls.headline}, cls


def test_the_sampled_representation_is_one_fixed_sample_per_image(representation, dataset):
    sampled = SampledRepresentation(representation, seed=5)
    mu, logvar = representation.encode()
    eps = np.random.default_rng([5, SAMPLE_STREAM]).standard_normal(mu.shape, dtype=np.float32)
    z, same_logvar = sampled.encode()
    np.testing.assert_allclose(z, mu + np.exp(0.5 * logvar) * eps, rtol=1e-6, atol=1e-6)
    assert same_logvar is logvar and not np.allclose(z, mu)
    picked = np.array([4, 4, 0, 17])
    np.testing.assert_array_equal(sampled.encode(picked)[0], z[picked])  # one code per image, however drawn
    fresh = SampledRepresentation(Representation(encode, dataset.images), seed=5)
    np.testing.assert_array_equal(fresh.encode(picked)[0], z[picked])  # also before the whole set is encoded
    assert not np.allclose(SampledRepresentation(representation, seed=6).encode()[0], z)


def test_evaluate_model_scores_both_representations_from_one_encoding(dataset, monkeypatch):
    calls = []

    class Model(torch.nn.Module):
        def encode(self, x):
            calls.append(len(x))
            return encode(x)

    try:
        gin.parse_config("".join(f"{cls.__name__}.{k} = {v}\n" for cls, kw in SMALL.items() for k, v in kw.items()))
        results = evaluate_model(Model(), dataset, ["dci", "factorvae_score@sampled", "unsupervised"], seed=2,
                                 device="cpu", representations=("mean", "sampled"))
    finally:
        gin.clear_config()
    assert list(results) == ["dci", "dci@sampled", "factorvae_score@sampled", "unsupervised",
                             "unsupervised@sampled"]
    assert sum(calls) == len(dataset)  # the dataset was encoded once, for all five
    assert {name: r["representation"] for name, r in results.items()} == {
        "dci": "mean", "dci@sampled": "sampled", "factorvae_score@sampled": "sampled", "unsupervised": "mean",
        "unsupervised@sampled": "sampled"}
    # the sample's noise (σ = 0.1 on the factor latents, 1 on the noise latent) blurs, but keeps, the structure
    assert 0.6 < results["dci@sampled"]["score"] < results["dci"]["score"]


def test_names_with_representations():
    assert parse_metric_name("dci") == ("dci", "mean") and parse_metric_name("dci@sampled") == ("dci", "sampled")
    assert with_representations(["dci", "mig@sampled", "sap"], ("mean", "sampled")) == \
        ["dci", "dci@sampled", "mig@sampled", "sap", "sap@sampled"]
    assert with_representations(["dci@mean", "dci"], None) == ["dci"]
    assert parse_representations("sampled, mean") == ("sampled", "mean") and parse_representations(None) == ("mean",)
    assert [r[0] for r in resolve_metrics(["dci@mean", "sap@sampled"])] == ["dci", "sap@sampled"]


@pytest.mark.parametrize("call, message", [
    (lambda: parse_metric_name("dci@median"), "metric 'dci@median': representation 'median' is not a representation"),
    (lambda: parse_representations("mean,mode"), "--representation 'mode' is not a representation"),
    (lambda: parse_representations(" , "), "--representation is empty"),
    (lambda: parse_representations("mean,mean"), "--representation lists mean more than once"),
    (lambda: resolve_metrics(["rmig@sampled"]), "metric 'rmig' has no sampled form"),
    (lambda: resolve_metrics(["dcii@sampled"]), "unknown metric 'dcii'"),
    (lambda: DCI(backend="xgboost"), "DCI.backend must be one of 'gbt', 'hist', got 'xgboost'"),
    (lambda: FactorVAEScore(batch_size=1), "FactorVAEScore.batch_size must be at least 2"),
    (lambda: SAP(num_train=0), "SAP.num_train must be a positive integer, got 0"),
    (lambda: Modularity(n_jobs=0), "Modularity.n_jobs must be a positive integer or None"),
])
def test_bad_names_and_settings_are_one_line_errors(call, message):
    with pytest.raises(DisbenchError, match=re.escape(message)):
        call()


def test_only_unsupervised_runs_on_a_dataset_without_factors():
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, size=(40, 1, 3, 3), dtype=np.uint8))
    unlabelled = ImageDataset(name="chairs", images=images, source="none", likelihood="gaussian")
    rep = Representation(lambda x: (x.flatten(1)[:, :4], torch.zeros(len(x), 4)), images)
    result = Unsupervised(num_train=100)(rep, unlabelled, seed=0)
    assert result["per_factor"] == {} and np.isfinite(result["score"])
    assert Unsupervised.requires_factors is False
    with pytest.raises(DisbenchError, match="needs ground-truth factors"):
        DCI()(rep, unlabelled, seed=0)


@pytest.fixture
def toy_run(toy_host, tmp_path):
    gin_file = tmp_path / "small_metrics.gin"
    gin_file.write_text(SMALL_GIN)
    assert main(["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--out", "run", "--device", "cpu",
                 "--no-progress", "--no-eval", "--seed", "3", "--gin_file", str(gin_file)]) == 0
    return Path("run")


def test_evaluate_writes_every_metric_on_both_representations(toy_run, capsys):
    assert main(["evaluate", str(toy_run), "--metrics", ALL, "--representation", "mean,sampled", "--device", "cpu",
                 "--no-progress"]) == 0
    assert "dci@sampled" in capsys.readouterr().out
    metrics = json.loads((toy_run / "results.json").read_text())["metrics"]
    names = ALL.split(",")
    assert set(metrics) == set(names) | {f"{n}@sampled" for n in names}
    for name, result in metrics.items():
        base, kind = parse_metric_name(name)
        assert result["representation"] == kind and result["seed"] == 3, name
        assert np.isfinite(result["score"]), name
        if base != "unsupervised":
            assert set(result["per_factor"]) == {"pos_x", "pos_y", "size"}, name
            assert 0.0 <= result["score"] <= 1.0, name
    assert metrics["dci"]["num_train"] == 300 and metrics["factorvae_score"]["num_eval"] == 100  # the run's gin
    # scored again: the same numbers (seeds derive from the run's seed)
    assert main(["evaluate", str(toy_run), "--metrics", "dci@sampled,betavae_score", "--device", "cpu",
                 "--no-progress"]) == 0
    again = json.loads((toy_run / "results.json").read_text())["metrics"]
    assert again["dci@sampled"] == {**metrics["dci@sampled"], "seconds": again["dci@sampled"]["seconds"]}
    assert again["betavae_score"]["score"] == metrics["betavae_score"]["score"]


def test_evaluate_refuses_a_metric_without_a_sampled_form_before_building_anything(toy_run, capsys, monkeypatch):
    import disbench.trained as trained

    monkeypatch.setattr(trained, "load_trained", lambda *a, **k: pytest.fail("built the run"))
    assert main(["evaluate", str(toy_run), "--metrics", "toy_metric", "--representation", "sampled",
                 "--device", "cpu"]) == 2
    assert "metric 'toy_metric' has no sampled form" in capsys.readouterr().err
