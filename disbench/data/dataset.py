"""The dataset interface every adapter implements.

Images are held once, in memory, as a uint8 tensor of shape (N, C, H, W) with
255 = full intensity (binary datasets hold {0, 255}). Models see
``images.float() / 255``. Ground-truth datasets add one integer factor index per
image and factor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..errors import DisbenchError


@dataclass
class ImageDataset:
    """A set of images with no ground-truth factors (e.g. 3D Chairs).

    ``source`` says where the data came from (a file path and its size or
    checksum, or how it was generated); it is written into every result.
    ``likelihood`` names the decoder the images call for: ``"bernoulli"`` for
    binary images, ``"gaussian"`` for grey/RGB ones (docs/objective.md).
    """

    name: str
    images: torch.Tensor
    source: str
    likelihood: str = "bernoulli"
    info: dict = field(default_factory=dict)

    has_factors = False

    def __post_init__(self):
        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8:
            raise DisbenchError(f"dataset {self.name!r}: images must be a uint8 tensor")
        if self.images.ndim != 4:
            raise DisbenchError(
                f"dataset {self.name!r}: images must have shape (N, C, H, W), got {tuple(self.images.shape)}"
            )
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise DisbenchError(f"dataset {self.name!r}: likelihood must be 'bernoulli' or 'gaussian'")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def describe(self) -> dict:
        """What a result records about its data."""
        out = {
            "name": self.name,
            "source": self.source,
            "num_images": len(self),
            "observation_shape": list(self.observation_shape),
            "likelihood": self.likelihood,
        }
        if self.has_factors:
            out["factor_names"] = list(self.factor_names)
            out["factor_sizes"] = list(self.factor_sizes)
            if self.factor_display_order:
                out["factor_display_order"] = list(self.factor_display_order)
        out.update(self.info)
        return out


@dataclass
class GroundTruthDataset(ImageDataset):
    """Images with integer factor indices ``factors`` of shape (N, K).

    Factor ``k`` of image ``n`` is ``factors[n, k]`` in ``range(factor_sizes[k])``.
    The factors need not form a complete grid (MNIST has labels only); see
    :class:`FactorGridDataset` for datasets that hold every combination once.

    ``factor_display_order`` (optional) is the order tables show the factors in,
    a permutation of ``factor_names`` (dSprites: the paper's pos_x, pos_y,
    shape, scale, orientation); results record it under ``dataset``. Empty:
    the order of ``factor_names``.
    """

    factor_names: Sequence[str] = ()
    factor_sizes: Sequence[int] = ()
    factors: np.ndarray | None = None
    factor_display_order: Sequence[str] = ()

    has_factors = True

    def __post_init__(self):
        super().__post_init__()
        self.factor_names = tuple(self.factor_names)
        self.factor_sizes = tuple(int(s) for s in self.factor_sizes)
        if len(self.factor_names) != len(self.factor_sizes) or not self.factor_names:
            raise DisbenchError(f"dataset {self.name!r}: factor names and sizes must match and be non-empty")
        self.factor_display_order = tuple(self.factor_display_order)
        if self.factor_display_order and sorted(self.factor_display_order) != sorted(self.factor_names):
            raise DisbenchError(
                f"dataset {self.name!r}: factor_display_order {list(self.factor_display_order)} must list "
                f"each factor of {list(self.factor_names)} once"
            )
        if self.factors is None:
            self.factors = self._grid_factors()
        self.factors = np.asarray(self.factors)
        if self.factors.shape != (len(self), len(self.factor_sizes)):
            raise DisbenchError(
                f"dataset {self.name!r}: factors must have shape {(len(self), len(self.factor_sizes))}, "
                f"got {self.factors.shape}"
            )
        if not np.issubdtype(self.factors.dtype, np.integer):
            raise DisbenchError(f"dataset {self.name!r}: factors must be integer indices")
        self.factors = self.factors.astype(np.int64, copy=False)

    def _grid_factors(self) -> np.ndarray:
        raise DisbenchError(f"dataset {self.name!r}: factors are required")

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` factor combinations, each factor drawn uniformly from its values."""
        return np.stack([rng.integers(0, s, size=n) for s in self.factor_sizes], axis=1)

    def index_of(self, factors: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """An image index for each row of ``factors``.

        Where several images share a combination, one is drawn with ``rng``
        (the first one when ``rng`` is None). A combination with no image is an error.
        """
        factors = np.asarray(factors, dtype=np.int64)
        keys = _mixed_radix(self.factors, self.factor_sizes)
        wanted = _mixed_radix(factors, self.factor_sizes)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        lo = np.searchsorted(sorted_keys, wanted, side="left")
        hi = np.searchsorted(sorted_keys, wanted, side="right")
        if np.any(hi == lo):
            missing = factors[np.argmax(hi == lo)]
            raise DisbenchError(f"dataset {self.name!r} has no image with factors {missing.tolist()}")
        offset = 0 if rng is None else np.floor(rng.random(len(lo)) * (hi - lo)).astype(np.int64)
        return order[lo + offset]

    def sample_indices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Indices of ``n`` images whose factors are drawn uniformly per factor."""
        return self.index_of(self.sample_factors(n, rng), rng)


@dataclass
class FactorGridDataset(GroundTruthDataset):
    """Every factor combination exactly once, in row-major (C) order of the
    factors: index = sum_k factor_k * stride_k, the last factor fastest
    (the order of the official dSprites and Shapes3D files)."""

    def _grid_factors(self) -> np.ndarray:
        expected = int(np.prod(self.factor_sizes))
        if len(self) != expected:
            raise DisbenchError(
                f"dataset {self.name!r}: {len(self)} images, but factor sizes {list(self.factor_sizes)} "
                f"make a grid of {expected}"
            )
        return self.factors_of(np.arange(len(self)))

    @property
    def strides(self) -> np.ndarray:
        return _strides(self.factor_sizes)

    def factors_of(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        return (index[:, None] // self.strides[None, :]) % np.asarray(self.factor_sizes)[None, :]

    def index_of(self, factors: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        factors = np.asarray(factors, dtype=np.int64)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise DisbenchError(f"dataset {self.name!r}: factors must have shape (n, {self.num_factors})")
        if np.any(factors < 0) or np.any(factors >= np.asarray(self.factor_sizes)):
            raise DisbenchError(f"dataset {self.name!r}: factor index out of range {list(self.factor_sizes)}")
        return factors @ self.strides


def _strides(sizes: Sequence[int]) -> np.ndarray:
    sizes = np.asarray(sizes, dtype=np.int64)
    return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)


def _mixed_radix(factors: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    return np.asarray(factors, dtype=np.int64) @ _strides(sizes)
