import numpy as np
import pytest
import torch

from disbench.data import FactorGridDataset, GroundTruthDataset, ImageDataset
from disbench.errors import DisbenchError


def grid(sizes=(2, 3, 4)):
    n = int(np.prod(sizes))
    return FactorGridDataset(name="g", images=torch.zeros(n, 1, 64, 64, dtype=torch.uint8), source="test",
                             factor_names=tuple("abcdef"[:len(sizes)]), factor_sizes=sizes)


def test_grid_index_round_trip_is_row_major():
    ds = grid()
    assert ds.strides.tolist() == [12, 4, 1]
    idx = np.arange(len(ds))
    assert np.array_equal(ds.index_of(ds.factors_of(idx)), idx)
    assert ds.factors[13].tolist() == [1, 0, 1]
    with pytest.raises(DisbenchError, match="out of range"):
        ds.index_of(np.array([[2, 0, 0]]))


def test_sample_factors_is_uniform_per_factor_and_seeded():
    ds = grid((3, 5))
    a = ds.sample_factors(30_000, np.random.default_rng(1))
    assert np.array_equal(a, ds.sample_factors(30_000, np.random.default_rng(1)))
    assert np.allclose(np.bincount(a[:, 1], minlength=5) / 30_000, 0.2, atol=0.01)


def test_index_of_for_non_grid_factors_finds_matching_images():
    labels = np.array([[0], [1], [1], [2], [0]])
    ds = GroundTruthDataset(name="labels", images=torch.zeros(5, 1, 64, 64, dtype=torch.uint8), source="t",
                            factor_names=("digit",), factor_sizes=(3,), factors=labels)
    idx = ds.sample_indices(200, np.random.default_rng(0))
    assert idx.shape == (200,) and set(np.unique(ds.factors[idx, 0])) == {0, 1, 2}
    chosen = ds.index_of(np.array([[1]] * 200), np.random.default_rng(0))
    assert set(chosen.tolist()) == {1, 2}
    with pytest.raises(DisbenchError, match="no image with factors"):
        GroundTruthDataset(name="l", images=torch.zeros(2, 1, 64, 64, dtype=torch.uint8), source="t",
                           factor_names=("d",), factor_sizes=(3,), factors=np.array([[0], [0]])).index_of([[2]])


def test_dataset_validation_errors():
    with pytest.raises(DisbenchError, match="uint8"):
        ImageDataset(name="x", images=torch.zeros(2, 1, 64, 64), source="t")
    with pytest.raises(DisbenchError, match="grid of 24"):
        FactorGridDataset(name="x", images=torch.zeros(5, 1, 64, 64, dtype=torch.uint8), source="t",
                          factor_names=("a", "b", "c"), factor_sizes=(2, 3, 4))


