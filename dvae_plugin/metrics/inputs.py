"""Input checks shared by the MIG-family metrics (docs/metrics.md).

Every check raises :class:`disbench.errors.DisbenchError` with a message that
says what was wrong, so the CLI can print it as one line.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from disbench.errors import DisbenchError


def factor_label(k: int, factor_names: Sequence[str] | None) -> str:
    """How an error message names factor column ``k``."""
    if factor_names is not None and k < len(factor_names):
        return f"factor {factor_names[k]!r} (column {k})"
    return f"factor column {k}"


def check_codes(values, name: str, *, num_samples: int | None = None) -> np.ndarray:
    """A finite, real (N, L) array with N >= 1 and L >= 2, dtype kept.

    The dtype is kept on purpose: MIG bins float32 codes on float32 edges, as
    disentanglement_lib does, so converting here would move bin boundaries.
    """
    array = np.asarray(values)
    if array.ndim != 2:
        raise DisbenchError(f"{name} must be a 2-D array (samples, latents), got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DisbenchError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.shape[0] == 0:
        raise DisbenchError(f"{name} is empty: no samples to score")
    if num_samples is not None and array.shape[0] != num_samples:
        raise DisbenchError(f"{name} has {array.shape[0]} rows, but the factors have {num_samples}")
    if array.shape[1] < 2:
        # The gap compares the two most informative latents.
        raise DisbenchError(f"{name} has {array.shape[1]} latent dimension(s); the MI gap needs at least 2")
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise DisbenchError(
            f"{name} holds NaN or Inf (first at sample {bad[0]}, latent {bad[1]}); "
            f"the encoder output is not usable"
        )
    return array


def check_same_shape(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise DisbenchError(f"{names[0]} and {names[1]} must have the same shape, got {a.shape} and {b.shape}")


def check_factors(values, *, num_samples: int | None = None,
                  factor_names: Sequence[str] | None = None) -> np.ndarray:
    """A non-negative integer (N, K) array of factor indices, as int64."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise DisbenchError(f"factors must be a 2-D array (samples, factors), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise DisbenchError(f"factors must be integer factor indices, got dtype {array.dtype}")
    if array.shape[1] == 0:
        raise DisbenchError("factors has no columns: there is nothing to score against")
    if num_samples is not None and array.shape[0] != num_samples:
        raise DisbenchError(f"factors have {array.shape[0]} rows, but the codes have {num_samples}")
    if array.size and array.min() < 0:
        k = int(np.argwhere(array < 0)[0, 1])
        raise DisbenchError(f"{factor_label(k, factor_names)} holds negative values; factors must be indices >= 0")
    if factor_names is not None and len(factor_names) != array.shape[1]:
        raise DisbenchError(f"{len(factor_names)} factor names for {array.shape[1]} factor columns")
    return array.astype(np.int64, copy=False)


def check_num_bins(num_bins) -> int:
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 2:
        raise DisbenchError(f"num_bins must be an integer >= 2, got {num_bins!r}")
    return int(num_bins)


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DisbenchError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# |log σ²| beyond this would over- or underflow σ = exp(logvar / 2) in float64
# (e^±700 ~ 1e±304); posteriors that extreme are clamped, which leaves every
# metric unchanged (such a posterior is a point mass or flat at any scale here).
LOGVAR_LIMIT = 1400.0
