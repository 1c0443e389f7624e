"""What the disentanglement_lib metrics share: input checks, scikit-learn, threads, seeds.

Every check raises :class:`disbench.errors.DisbenchError` with one line that
says what was wrong. scikit-learn is imported only when a metric that needs
it runs (``pip install -e ".[metrics]"``).
"""

from __future__ import annotations

import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterable, Sequence, TypeVar

import numpy as np

from ..errors import DisbenchError
from ..execution import cpu_count

T = TypeVar("T")
R = TypeVar("R")

INSTALL_HINT = 'pip install -e ".[metrics]"'


def sklearn_modules():
    """(ensemble, linear_model, svm, metrics, preprocessing) of scikit-learn, or a one-line error."""
    try:
        from sklearn import ensemble, linear_model, metrics, preprocessing, svm
    except ImportError:
        raise DisbenchError(f"the disentanglement_lib metrics need scikit-learn: {INSTALL_HINT}") from None
    return ensemble, linear_model, svm, metrics, preprocessing


@contextmanager
def single_threaded_libraries():
    """BLAS and OpenMP at one thread each inside the block (threadpoolctl, a
    scikit-learn dependency): classifiers for different factors then run side by
    side in threads without oversubscribing the cores, and every result is the
    same whatever the number of threads."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without scikit-learn there is nothing to limit
        yield
        return
    with threadpool_limits(limits=1):
        yield


def check_n_jobs(n_jobs, owner: str = "n_jobs") -> int | None:
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise DisbenchError(f"{owner} must be a positive integer or None (every core), got {n_jobs!r}")
    return int(n_jobs)


@contextmanager
def quiet_convergence():
    """scikit-learn's ConvergenceWarning silenced (the metrics count the fits that
    stopped at their iteration limit instead). Set in the calling thread around
    the worker threads: ``warnings.catch_warnings`` is not thread-safe."""
    with warnings.catch_warnings():
        try:
            from sklearn.exceptions import ConvergenceWarning
        except ImportError:
            yield
            return
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        yield


def map_threads(fn: Callable[[T], R], items: Sequence[T], n_jobs: int | None = None) -> list[R]:
    """``[fn(item) for item in items]``, run in up to ``n_jobs`` threads (default:
    the usable cores), results in the order of ``items``. The fits release the
    GIL (liblinear, the tree builders), so threads use several cores."""
    items = list(items)
    workers = max(1, min(len(items), n_jobs or cpu_count()))
    with single_threaded_libraries(), quiet_convergence():
        if workers == 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(fn, items))


def longest_first(costs: Sequence[float]) -> list[int]:
    """Indices ordered by decreasing cost: the threads start with the slowest fits."""
    return sorted(range(len(costs)), key=lambda i: -costs[i])


# -- seeds -------------------------------------------------------------------

# Streams of numpy.random.default_rng([seed, stream]) shared by the metrics, so
# that (as in disentanglement_lib, where every metric starts from one seed) DCI,
# SAP, modularity and the unsupervised scores read the same training points.
TRAIN_STREAM, TEST_STREAM = 1, 2


def stream_rng(seed: int, stream: int | str) -> np.random.Generator:
    """The numpy generator of one named use of the run's seed: ``default_rng([seed, stream])``
    with a string stream turned into its CRC-32."""
    tag = zlib.crc32(stream.encode()) if isinstance(stream, str) else int(stream)
    return np.random.default_rng([int(seed), tag])


# -- input checks ------------------------------------------------------------

def check_codes(values, name: str = "codes", *, num_samples: int | None = None) -> np.ndarray:
    """A finite real (N, L) array with N >= 1, L >= 1 (dtype kept: the histogram
    bins of float32 codes are float32 edges, as in disentanglement_lib)."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise DisbenchError(f"{name} must be a 2-D array (samples, latents), got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)) \
            or array.dtype == np.bool_:
        raise DisbenchError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DisbenchError(f"{name} is empty (shape {array.shape}): nothing to score")
    if num_samples is not None and array.shape[0] != num_samples:
        raise DisbenchError(f"{name} has {array.shape[0]} rows, but its factors have {num_samples}")
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise DisbenchError(f"{name} holds NaN or Inf (first at sample {bad[0]}, latent {bad[1]}); "
                            "the encoder output is not usable")
    return array


def check_factors(values, name: str = "factors", *, num_samples: int | None = None) -> np.ndarray:
    """A non-negative integer (N, K) array of factor indices, as int64."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise DisbenchError(f"{name} must be a 2-D array (samples, factors), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        raise DisbenchError(f"{name} must be integer factor indices, got dtype {array.dtype}")
    if array.shape[1] == 0:
        raise DisbenchError(f"{name} has no columns: there is nothing to score against")
    if num_samples is not None and array.shape[0] != num_samples:
        raise DisbenchError(f"{name} have {array.shape[0]} rows, but the codes have {num_samples}")
    if array.size and array.min() < 0:
        k = int(np.argwhere(array < 0)[0, 1])
        raise DisbenchError(f"{name}: factor column {k} holds negative values; factors must be indices >= 0")
    return array.astype(np.int64, copy=False)


def check_train_test(codes_train, factors_train, codes_test, factors_test):
    """The four arrays of a train/test metric, checked against each other."""
    codes_train = check_codes(codes_train, "codes_train")
    factors_train = check_factors(factors_train, "factors_train", num_samples=codes_train.shape[0])
    codes_test = check_codes(codes_test, "codes_test")
    factors_test = check_factors(factors_test, "factors_test", num_samples=codes_test.shape[0])
    if codes_test.shape[1] != codes_train.shape[1]:
        raise DisbenchError(f"codes_train has {codes_train.shape[1]} latents but codes_test {codes_test.shape[1]}")
    if factors_test.shape[1] != factors_train.shape[1]:
        raise DisbenchError(f"factors_train has {factors_train.shape[1]} factors but factors_test "
                            f"{factors_test.shape[1]}")
    return codes_train, factors_train, codes_test, factors_test


def factor_label(k: int, factor_names: Sequence[str] | None) -> str:
    if factor_names is not None and k < len(factor_names):
        return f"factor {factor_names[k]!r} (column {k})"
    return f"factor column {k}"


def check_varied(factors: np.ndarray, what: str, factor_names: Sequence[str] | None = None) -> None:
    """Every factor takes at least two values in ``factors`` (a classifier needs two classes)."""
    for k in range(factors.shape[1]):
        if factors.shape[0] == 0 or np.all(factors[:, k] == factors[0, k]):
            raise DisbenchError(f"{factor_label(k, factor_names)} takes a single value in the {what}: "
                                "no classifier can be fit to it; leave it out or sample more widely")


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DisbenchError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_num_bins(value, name: str = "num_bins") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
        raise DisbenchError(f"{name} must be an integer >= 2, got {value!r}")
    return int(value)


def floats(values: Iterable) -> list[float]:
    return [float(v) for v in values]
