"""The metric interface and the encoded view of a dataset that metrics read.

A registered metric is a class (gin-configurable, so sample sizes and seeds
can be bound) whose instances are called as

    metric(representation, dataset, seed=...) -> dict

and return ``{"score": float, "per_factor": {factor_name: float}, ...}`` with
any further JSON-serialisable details. ``representation.encode(indices)``
gives the posterior means and log-variances of the images at ``indices``
(all images when None), computed in batches on the model's device.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .errors import DisbenchError


class Representation:
    """Encodes dataset images on demand and caches the whole-dataset encoding."""

    def __init__(
        self,
        encode_fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        images: torch.Tensor,
        device: torch.device | str = "cpu",
        batch_size: int = 1024,
        progress: bool = False,
    ):
        self.encode_fn = encode_fn
        self.images = images
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.progress = progress
        self._all: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @torch.no_grad()
    def encode(self, indices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(mu, logvar) as float32 arrays of shape (n, latent_dim)."""
        if indices is None:
            if self._all is None:
                self._all = self._encode(torch.arange(len(self)))
            return self._all
        if self._all is not None:
            return self._all[0][indices], self._all[1][indices]
        return self._encode(torch.as_tensor(np.asarray(indices), dtype=torch.long))

    def _encode(self, indices: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        from .progress import progress_bar

        mus, logvars = [], []
        chunks = indices.split(self.batch_size)
        for chunk in progress_bar(chunks, desc="encode", disable=not self.progress, unit="batch"):
            x = self.images.index_select(0, chunk.to(self.images.device)).to(self.device).float().div_(255.0)
            mu, logvar = self.encode_fn(x)
            mus.append(mu.float().cpu())
            logvars.append(logvar.float().cpu())
        return torch.cat(mus).numpy(), torch.cat(logvars).numpy()


def require_factors(dataset, metric_name: str) -> None:
    """Metrics that need ground truth refuse datasets without it, clearly."""
    if not getattr(dataset, "has_factors", False):
        raise DisbenchError(
            f"metric {metric_name!r} needs ground-truth factors, and dataset {dataset.name!r} has none"
        )
