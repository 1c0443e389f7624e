"""Batches with one factor fixed, drawn by index arithmetic on the encoded dataset.

The FactorVAE and BetaVAE scores ask for many small batches of images whose
factor k is shared. disentanglement_lib renders (samples) and encodes each
batch; here the dataset is encoded once and a batch is a set of row indices
into those codes: factor values are drawn uniformly per factor, factor k is
fixed, and each row of factor values is looked up. On a complete grid in
row-major order (dSprites, 3D Shapes, MPI3D, Cars3D: the last factor fastest)
the lookup is ``factors @ strides``; otherwise (several images per
combination, as SmallNORB's instances, or labels only) the rows are found in
the sorted factor keys and one of the images with those factors is drawn at
random, as disentanglement_lib draws the unobserved factors.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import DisbenchError


def strides(sizes: Sequence[int]) -> np.ndarray:
    sizes = np.asarray(sizes, dtype=np.int64)
    return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)


class FactorLookup:
    """Image indices of rows of factor values, for ``factors`` (N, K) of a dataset."""

    def __init__(self, factors: np.ndarray, factor_sizes: Sequence[int] | None = None):
        self.factors = np.asarray(factors, dtype=np.int64)
        observed = tuple(int(s) for s in self.factors.max(axis=0) + 1)
        self.sizes = tuple(int(s) for s in factor_sizes) if factor_sizes is not None else observed
        if len(self.sizes) != self.factors.shape[1] or any(o > s for o, s in zip(observed, self.sizes)):
            raise DisbenchError(f"factor sizes {list(self.sizes)} do not cover the factors' values "
                                f"(largest + 1: {list(observed)})")
        self.strides = strides(self.sizes)
        keys = self.factors @ self.strides
        self.is_grid = len(keys) == int(np.prod(self.sizes, dtype=np.int64)) and bool(
            np.array_equal(keys, np.arange(len(keys), dtype=np.int64)))
        if not self.is_grid:
            self.order = np.argsort(keys, kind="stable")
            self.sorted_keys = keys[self.order]

    def sample_factors(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Factor values of ``shape + (K,)``, each factor uniform over its values."""
        return np.stack([rng.integers(0, s, size=shape) for s in self.sizes], axis=-1)

    def indices(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One image index per row of ``values`` (..., K); a missing combination is an error."""
        flat = values.reshape(-1, values.shape[-1]).astype(np.int64, copy=False)
        keys = flat @ self.strides
        if self.is_grid:
            return keys.reshape(values.shape[:-1])
        lo = np.searchsorted(self.sorted_keys, keys, side="left")
        hi = np.searchsorted(self.sorted_keys, keys, side="right")
        if np.any(hi == lo):
            missing = flat[np.argmax(hi == lo)]
            raise DisbenchError(f"no image has the factors {missing.tolist()}: the sampling-based scores need "
                                "every combination of factor values in the dataset")
        pick = lo + np.floor(rng.random(len(lo)) * (hi - lo)).astype(np.int64)
        return self.order[pick].reshape(values.shape[:-1])

    def fixed_factor_batches(self, num_points: int, batch_size: int, rng: np.random.Generator,
                             pairs: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(k [n], indices): for each point, a factor k drawn uniformly and a batch of
        ``batch_size`` images whose factor k is one shared value (FactorVAE:
        ``indices`` (n, B)); with ``pairs``, two batches (n, 2, B) whose factor k
        agrees pairwise (BetaVAE)."""
        num_factors = len(self.sizes)
        k = rng.integers(0, num_factors, size=num_points)
        rows = np.arange(num_points)
        if pairs:
            values = self.sample_factors((num_points, 2, batch_size), rng)
            values[rows, 1, :, k] = values[rows, 0, :, k]
        else:
            values = self.sample_factors((num_points, batch_size), rng)
            values[rows, :, k] = values[rows, 0, k][:, None]
        return k, self.indices(values, rng)
