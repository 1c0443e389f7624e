"""disbench.standard_metrics: each array function against a slow literal form of
its definition (disentanglement_lib's loops, pair by pair), a representation
equal to the factors (a score of 1 where the definition says so) and codes
independent of the factors (chance)."""

import re

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from sklearn import ensemble, linear_model, svm
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.preprocessing import MultiLabelBinarizer

from disbench.errors import DisbenchError
from disbench.standard_metrics import (beta_vae_score, dci_score, factor_vae_score, modularity_explicitness_score,
                                       sap_score, unsupervised_scores)
from disbench.standard_metrics._common import stream_rng
from disbench.standard_metrics.dci import completeness, disentanglement
from disbench.standard_metrics.sampling import FactorLookup

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels

SIZES = (2, 3, 4)


def grid(sizes=SIZES):
    """Every factor combination once, row-major (the last factor fastest)."""
    return np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), axis=-1).reshape(-1, len(sizes))


def draws(n, sizes=SIZES, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, s, size=n) for s in sizes], axis=1)


def entangled_codes(factors, seed=0):
    """Latents mixing the factors plus noise, and one pure-noise latent."""
    rng = np.random.default_rng(seed)
    f = factors.astype(np.float64)
    codes = np.stack([f[:, 0] + 0.5 * f[:, 1], f[:, 1] - 0.3 * f[:, 2], f[:, 2] + 0.2 * f[:, 0],
                      np.zeros(len(f))], axis=1)
    return (codes + rng.normal(0, 0.4, size=codes.shape)).astype(np.float32)


def train_test(n_train=400, n_test=200, seed=0, codes_of=entangled_codes):
    ftr, fte = draws(n_train, seed=seed), draws(n_test, seed=seed + 1)
    return codes_of(ftr, seed), ftr, codes_of(fte, seed + 7), fte


# -- literal forms (disentanglement_lib's loops) ---------------------------------

def literal_histogram(x, num_bins=20):
    return np.digitize(x, np.histogram(x, num_bins)[1][:-1])


def literal_dci(xtr, ytr, xte, yte, seed):
    num_latents, num_factors = xtr.shape[1], ytr.shape[1]
    importance = np.zeros((num_latents, num_factors))
    train, test = [], []
    for k in range(num_factors):
        model = ensemble.GradientBoostingClassifier(random_state=seed).fit(xtr, ytr[:, k])
        importance[:, k] = np.abs(model.feature_importances_)
        train.append(np.mean(model.predict(xtr) == ytr[:, k]))
        test.append(np.mean(model.predict(xte) == yte[:, k]))
    return importance, np.mean(train), np.mean(test)


def literal_disentanglement(r):
    per_code = 1.0 - scipy.stats.entropy(r.T + 1e-11, base=r.shape[1])
    weights = r if r.sum() != 0 else np.ones_like(r)
    return np.sum(per_code * weights.sum(axis=1) / weights.sum())


def literal_completeness(r):
    per_factor = 1.0 - scipy.stats.entropy(r + 1e-11, base=r.shape[0])
    weights = r if r.sum() != 0 else np.ones_like(r)
    return np.sum(per_factor * weights.sum(axis=0) / weights.sum())


def literal_sap_matrix(xtr, ytr, xte, yte, continuous, seed):
    matrix = np.zeros((xtr.shape[1], ytr.shape[1]))
    for i in range(xtr.shape[1]):
        for j in range(ytr.shape[1]):
            if continuous:
                cov = np.cov(xtr[:, i], ytr[:, j], ddof=1)
                matrix[i, j] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0.0
            else:
                # disentanglement_lib's LinearSVC(C=0.01, class_weight="balanced"), on the
                # dual solver that was scikit-learn's default then
                classifier = svm.LinearSVC(C=0.01, class_weight="balanced", random_state=seed, dual=True)
                classifier.fit(xtr[:, i:i + 1], ytr[:, j])
                matrix[i, j] = np.mean(classifier.predict(xte[:, i:i + 1]) == yte[:, j])
    return matrix


def literal_modularity(mi):
    squared = mi ** 2
    theta = squared.max(axis=1)
    score = 1.0 - (squared.sum(axis=1) - theta) / (theta * (squared.shape[1] - 1.0))
    score[theta == 0] = 0.0
    return np.mean(score)


def literal_explicitness(xtr, ytr, xte, yte):
    mean, std = xtr.mean(axis=0), xtr.std(axis=0)
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    train, test = [], []
    for k in range(ytr.shape[1]):
        clf = linear_model.LogisticRegression().fit(xtr, ytr[:, k])
        mlb = MultiLabelBinarizer()
        train.append(roc_auc_score(mlb.fit_transform(ytr[:, k][:, None]), clf.predict_proba(xtr)))
        test.append(roc_auc_score(mlb.fit_transform(yte[:, k][:, None]), clf.predict_proba(xte)))
    return np.mean(train), np.mean(test), test


# -- DCI -------------------------------------------------------------------------

def test_dci_equals_its_literal_form():
    xtr, ytr, xte, yte = train_test()
    result = dci_score(xtr, ytr, xte, yte, seed=3, n_jobs=2)
    importance, train, test = literal_dci(xtr, ytr, xte, yte, seed=3)
    np.testing.assert_allclose(result["importance"], importance, rtol=0, atol=1e-12)
    assert result["score"] == result["disentanglement"] == pytest.approx(literal_disentanglement(importance), abs=1e-12)
    assert result["completeness"] == pytest.approx(literal_completeness(importance), abs=1e-12)
    assert result["per_factor"] == pytest.approx(1.0 - scipy.stats.entropy(importance + 1e-11, base=4), abs=1e-12)
    assert (result["informativeness_train"], result["informativeness_test"]) == (pytest.approx(train),
                                                                                 pytest.approx(test))
    assert 0.2 < result["score"] < 0.95  # entangled codes: neither extreme


@pytest.mark.parametrize("importance", [np.zeros((4, 3)), np.eye(4)[:, :3], np.random.default_rng(1).random((4, 3)),
                                        np.array([[1.0, 0, 0], [0, 0, 0], [0, 2.0, 0], [0, 0, 0]])])
def test_dci_scores_of_an_importance_matrix_equal_scipys_entropy_form(importance):
    assert disentanglement(importance) == pytest.approx(literal_disentanglement(importance), abs=1e-12)
    assert completeness(importance) == pytest.approx(literal_completeness(importance), abs=1e-12)


def test_dci_of_the_factors_themselves_is_one_and_of_noise_is_near_zero():
    xtr, ytr, xte, yte = train_test(codes_of=lambda f, s: f.astype(np.float32))
    perfect = dci_score(xtr, ytr, xte, yte)
    assert perfect["score"] > 0.99 and perfect["completeness"] > 0.99
    assert perfect["informativeness_test"] == 1.0 == perfect["informativeness_train"]
    noise = lambda f, s: np.random.default_rng(s).normal(size=(len(f), 5)).astype(np.float32)  # noqa: E731
    xtr, ytr, xte, yte = train_test(codes_of=noise)
    chance = dci_score(xtr, ytr, xte, yte)
    assert chance["score"] < 0.2 and chance["completeness"] < 0.2
    # test accuracy near chance (1 / number of values, 1/2..1/4; the majority class of 200 draws)
    assert chance["informativeness_test"] < np.mean([1 / s for s in SIZES]) + 0.12


def test_dci_hist_backend_agrees_on_who_explains_what():
    xtr, ytr, xte, yte = train_test()
    default = dci_score(xtr, ytr, xte, yte)
    hist = dci_score(xtr, ytr, xte, yte, backend="hist")
    assert hist["backend"] == "hist" and np.allclose(np.sum(hist["importance"], axis=0), 1.0)
    assert np.array_equal(np.argmax(hist["importance"], axis=0), np.argmax(default["importance"], axis=0))
    assert abs(hist["score"] - default["score"]) < 0.15


def test_dci_results_do_not_depend_on_the_thread_count():
    arrays = train_test(n_train=200, n_test=100)
    one, two = dci_score(*arrays, n_jobs=1), dci_score(*arrays, n_jobs=2)
    np.testing.assert_array_equal(one["importance"], two["importance"])


# -- SAP -------------------------------------------------------------------------

@pytest.mark.parametrize("continuous", [False, True])
def test_sap_equals_its_literal_form(continuous):
    xtr, ytr, xte, yte = train_test()
    result = sap_score(xtr, ytr, xte, yte, continuous_factors=continuous, seed=5)
    matrix = literal_sap_matrix(xtr, ytr, xte, yte, continuous, seed=5)
    np.testing.assert_allclose(result["score_matrix"], matrix, rtol=0, atol=1e-12)
    ordered = np.sort(matrix, axis=0)
    assert result["per_factor"] == pytest.approx(ordered[-1] - ordered[-2], abs=1e-12)
    assert result["score"] == pytest.approx(np.mean(ordered[-1] - ordered[-2]), abs=1e-12)


def test_sap_of_the_factors_themselves_and_of_noise():
    identity = lambda f, s: np.concatenate([f, np.zeros((len(f), 1))], axis=1).astype(np.float32)  # noqa: E731
    arrays = train_test(codes_of=identity)
    assert sap_score(*arrays, continuous_factors=True)["score"] > 0.97  # R² 1 against ~0
    # a binary factor is perfectly predicted by its own latent, at chance by the others
    binary = draws(600, sizes=(2, 2)), draws(300, sizes=(2, 2), seed=1)
    result = sap_score(binary[0].astype(np.float32), binary[0], binary[1].astype(np.float32), binary[1])
    assert np.diag(result["score_matrix"]).tolist() == [1.0, 1.0] and result["score"] > 0.4
    noise = lambda f, s: np.random.default_rng(s).normal(size=(len(f), 4)).astype(np.float32)  # noqa: E731
    assert sap_score(*train_test(codes_of=noise))["score"] < 0.1
    assert sap_score(*train_test(codes_of=noise), continuous_factors=True)["score"] < 0.05


def test_sap_continuous_ignores_constant_latents():
    xtr, ytr, xte, yte = train_test()
    xtr[:, 3] = 1.5
    assert sap_score(xtr, ytr, xte, yte, continuous_factors=True)["score_matrix"][3].tolist() == [0.0, 0.0, 0.0]


# -- modularity and explicitness ---------------------------------------------------

def test_modularity_and_explicitness_equal_their_literal_forms():
    xtr, ytr, xte, yte = train_test()
    result = modularity_explicitness_score(xtr, ytr, xte, yte)
    bins = np.stack([literal_histogram(xtr[:, i]) for i in range(xtr.shape[1])], axis=1)
    mi = np.array([[mutual_info_score(ytr[:, k], bins[:, i]) for k in range(ytr.shape[1])]
                   for i in range(xtr.shape[1])])
    np.testing.assert_allclose(result["mi"], mi, rtol=0, atol=1e-12)
    assert result["score"] == result["modularity"] == pytest.approx(literal_modularity(mi), abs=1e-12)
    train, test, per_factor = literal_explicitness(xtr, ytr, xte, yte)
    assert result["explicitness_train"] == pytest.approx(train, abs=1e-12)
    assert result["explicitness_test"] == pytest.approx(test, abs=1e-12)
    assert result["per_factor"] == pytest.approx(per_factor, abs=1e-12)


def test_modularity_of_the_factors_themselves_is_one_and_explicitness_of_noise_is_a_half():
    arrays = train_test(n_train=2000, codes_of=lambda f, s: f.astype(np.float32))
    perfect = modularity_explicitness_score(*arrays)
    assert perfect["modularity"] > 0.99 and perfect["explicitness_test"] > 0.99
    noise = lambda f, s: np.random.default_rng(s).normal(size=(len(f), 4)).astype(np.float32)  # noqa: E731
    chance = modularity_explicitness_score(*train_test(n_train=2000, n_test=1000, codes_of=noise))
    assert chance["explicitness_test"] == pytest.approx(0.5, abs=0.05)


def test_explicitness_survives_a_constant_latent_and_a_class_missing_from_the_test_set():
    xtr, ytr, xte, yte = train_test()
    xtr[:, 3] = 2.0
    xte[:, 3] = 2.0
    keep = yte[:, 2] != 3
    result = modularity_explicitness_score(xtr, ytr, xte[keep], yte[keep])
    assert np.isfinite(result["explicitness_test"]) and result["modularity_per_code"][3] == 0.0


# -- FactorVAE score ----------------------------------------------------------------

def literal_factor_vae(codes, factors, sizes, seed, batch_size, num_train, num_eval, num_var, threshold=0.05):
    """disentanglement_lib's loop, one vote at a time, on the implementation's draws."""
    lookup = FactorLookup(factors, sizes)
    rng = stream_rng(seed, "factorvae_score")
    variances = np.var(codes[lookup.indices(lookup.sample_factors((num_var,), rng), rng)].astype(np.float64),
                       axis=0, ddof=1)
    active = np.sqrt(variances) >= threshold

    def votes(num):
        k, batches = lookup.fixed_factor_batches(num, batch_size, rng)
        out = np.zeros((factors.shape[1], codes.shape[1]), dtype=np.int64)
        for label, batch in zip(k, batches):
            local = np.var(codes[batch].astype(np.float64), axis=0, ddof=1)
            out[label, np.argmin(local[active] / variances[active])] += 1  # columns: active positions
        return out

    train = votes(num_train)
    classifier = np.argmax(train, axis=0)
    columns = np.arange(train.shape[1])
    evaluation = votes(num_eval)
    return (np.sum(train[classifier, columns]) / np.sum(train), np.sum(evaluation[classifier, columns]) /
            np.sum(evaluation), int(active.sum()))


def test_factor_vae_score_equals_its_literal_form():
    factors = grid()
    codes = entangled_codes(factors)
    codes[:, 3] *= 0.01  # an inactive latent (std < 0.05)
    result = factor_vae_score(codes, factors, SIZES, num_train=300, num_eval=200, num_variance_estimate=100, seed=2)
    train, evaluation, active = literal_factor_vae(codes, factors, SIZES, 2, 64, 300, 200, 100)
    assert (result["train_accuracy"], result["eval_accuracy"]) == (pytest.approx(train, abs=1e-12),
                                                                   pytest.approx(evaluation, abs=1e-12))
    assert result["num_active_dims"] == active == 3 and result["active"] == [True, True, True, False]
    assert result["score"] == result["eval_accuracy"]
    assert np.asarray(result["votes_train"]).sum() == 300 and np.asarray(result["votes_eval"]).sum() == 200
    assert np.asarray(result["votes_train"])[:, 3].sum() == 0  # no vote for the inactive latent


def test_factor_vae_score_of_the_factors_is_one_and_of_noise_near_chance():
    factors = grid((3, 4, 5))
    assert factor_vae_score(factors.astype(np.float32), factors, num_train=200, num_eval=100)["score"] == 1.0
    many = grid((10, 10, 10))  # a fixed factor leaves 100 images: noise codes cannot single a subset out
    noise = np.random.default_rng(0).normal(size=(len(many), 3)).astype(np.float32)
    assert factor_vae_score(noise, many, num_train=1500, num_eval=1500)["score"] < 1 / 3 + 0.08
    collapsed = np.zeros((len(factors), 3), dtype=np.float32)
    nothing = factor_vae_score(collapsed, factors, num_train=10, num_eval=10)
    assert nothing["score"] == 0.0 and nothing["num_active_dims"] == 0


def test_fixed_factor_batches_share_exactly_the_chosen_factor():
    lookup = FactorLookup(grid(), SIZES)
    rng = np.random.default_rng(0)
    k, batches = lookup.fixed_factor_batches(500, 16, rng)
    drawn = grid()[batches]  # (500, 16, 3): grid index arithmetic gives back the factors
    assert np.all(drawn[np.arange(500), :, k] == drawn[np.arange(500), :1, k])
    other = (k + 1) % 3
    assert np.mean([len(np.unique(drawn[i, :, other[i]])) > 1 for i in range(500)]) > 0.95
    assert set(np.unique(k)) == {0, 1, 2}
    k, pairs = lookup.fixed_factor_batches(300, 8, rng, pairs=True)
    first, second = grid()[pairs[:, 0]], grid()[pairs[:, 1]]
    assert np.all(first[np.arange(300), :, k] == second[np.arange(300), :, k])


def test_lookup_draws_among_the_images_of_a_combination():
    factors = np.repeat(grid(), 3, axis=0)[::-1].copy()  # each combination 3 times, not in grid order
    lookup = FactorLookup(factors, SIZES)
    assert not lookup.is_grid
    wanted = np.repeat(np.array([[1, 2, 3]]), 300, axis=0)
    indices = lookup.indices(wanted, np.random.default_rng(0))
    assert np.all(factors[indices] == wanted) and len(np.unique(indices)) == 3
    with pytest.raises(DisbenchError, match=re.escape("no image has the factors [1, 2, 3]")):
        FactorLookup(factors[np.any(factors != [1, 2, 3], axis=1)], SIZES).indices(wanted, np.random.default_rng(0))


# -- BetaVAE score ------------------------------------------------------------------

def test_beta_vae_score_equals_its_literal_form():
    factors = grid()
    codes = entangled_codes(factors)
    result = beta_vae_score(codes, factors, SIZES, num_train=300, num_eval=200, seed=4)
    lookup = FactorLookup(factors, SIZES)
    rng = stream_rng(4, "betavae_score")

    def points(num):
        labels, pairs = lookup.fixed_factor_batches(num, 64, rng, pairs=True)
        features = np.array([np.mean(np.abs(codes[a].astype(np.float64) - codes[b].astype(np.float64)), axis=0)
                             for a, b in pairs])
        return features, labels

    train_x, train_y = points(300)
    eval_x, eval_y = points(200)
    model = linear_model.LogisticRegression(random_state=4).fit(train_x, train_y)
    assert result["train_accuracy"] == pytest.approx(np.mean(model.predict(train_x) == train_y), abs=1e-12)
    assert result["score"] == result["eval_accuracy"] == pytest.approx(model.score(eval_x, eval_y), abs=1e-12)


def test_beta_vae_score_of_the_factors_is_one_and_of_noise_near_chance():
    factors = grid((3, 4, 5))
    assert beta_vae_score(factors.astype(np.float32), factors, num_train=300, num_eval=200)["score"] == 1.0
    many = grid((10, 10, 10))
    noise = np.random.default_rng(0).normal(size=(len(many), 3)).astype(np.float32)
    assert beta_vae_score(noise, many, num_train=600, num_eval=600)["score"] < 1 / 3 + 0.08


# -- unsupervised -------------------------------------------------------------------

def test_unsupervised_scores_equal_their_literal_forms():
    codes = entangled_codes(draws(3000))
    codes[:, 3] += np.random.default_rng(9).normal(size=3000)  # no constant latent here
    result = unsupervised_scores(codes)
    cov = np.cov(codes.T)
    tc = 0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1])
    wasserstein = 2 * np.trace(cov) - 2 * np.trace(scipy.linalg.sqrtm(cov * np.expand_dims(np.diag(cov), axis=1)))
    assert result["score"] == result["gaussian_total_correlation"] == pytest.approx(tc, abs=1e-10)
    assert result["gaussian_wasserstein_correlation"] == pytest.approx(np.real(wasserstein), abs=1e-8)
    assert result["gaussian_wasserstein_correlation_norm"] == pytest.approx(np.real(wasserstein) / np.trace(cov))
    bins = [literal_histogram(codes[:, i]) for i in range(4)]
    mi = np.array([[mutual_info_score(bins[i], bins[j]) for j in range(4)] for i in range(4)])
    np.fill_diagonal(mi, 0)
    assert result["mutual_info_score"] == pytest.approx(mi.sum() / 12, abs=1e-12)


def test_gaussian_total_correlation_is_the_analytic_one():
    rng = np.random.default_rng(0)
    rho = 0.8
    codes = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=200_000)
    assert unsupervised_scores(codes)["score"] == pytest.approx(-0.5 * np.log(1 - rho ** 2), rel=0.02)
    independent = unsupervised_scores(rng.normal(size=(20_000, 4)))
    assert independent["score"] < 1e-3 and independent["gaussian_wasserstein_correlation_norm"] < 1e-3
    with_constant = np.concatenate([codes[:1000], np.ones((1000, 1))], axis=1)
    result = unsupervised_scores(with_constant)
    assert result["constant_latents"] == [2]
    assert result["score"] == pytest.approx(unsupervised_scores(codes[:1000])["score"], abs=1e-12)


# -- errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda a: dci_score(*a, backend="xgb"), "dci backend must be one of 'gbt', 'hist', got 'xgb'"),
    (lambda a: dci_score(a[0], a[1][:, :2], a[2], a[3]), "factors_train has 2 factors but factors_test 3"),
    (lambda a: dci_score(a[0][:5], a[1], a[2], a[3]), "factors_train have 400 rows, but the codes have 5"),
    (lambda a: sap_score(a[0], np.zeros_like(a[1]), a[2], a[3]),
     "factor column 0 takes a single value in the training sample"),
    (lambda a: sap_score(np.where(a[0] > 0, np.nan, a[0]), a[1], a[2], a[3]), "codes_train holds NaN or Inf"),
    (lambda a: modularity_explicitness_score(*a, num_bins=1), "num_bins must be an integer >= 2, got 1"),
    (lambda a: factor_vae_score(a[0], a[1], batch_size=1), "batch_size must be at least 2"),
    (lambda a: beta_vae_score(a[0], a[1][:, :1]), "it needs at least 2 factors"),
    (lambda a: unsupervised_scores(a[0][:, :1]), "need at least 2 codes of at least 2 latents"),
    (lambda a: dci_score(a[0], a[1].astype(float), a[2], a[3]), "factors_train must be integer factor indices"),
])
def test_bad_input_is_a_one_line_error(call, message):
    with pytest.raises(DisbenchError, match=re.escape(message)):
        call(train_test())


def test_missing_scikit_learn_is_one_line_naming_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(DisbenchError, match=re.escape('need scikit-learn: pip install -e ".[metrics]"')):
        dci_score(*train_test(n_train=20, n_test=10))
