"""``shapes3d``: DeepMind's 3D Shapes, ``3dshapes.h5`` (keys ``images``, ``labels``).

From https://github.com/deepmind/3d-shapes (the file:
https://storage.googleapis.com/3d-shapes/3dshapes.h5), read with h5py.
``images`` is (N, 64, 64, 3) uint8 and becomes (N, 3, 64, 64); ``labels`` is
(N, 6) float factor values. Each column's values are mapped to factor indices
by their sorted unique values; the counts must be the official floor_hue 10,
wall_hue 10, object_hue 10, scale 8, shape 4, orientation 15 (``allow_subgrid``
accepts a smaller complete grid) and the rows every combination once in the
official order (orientation fastest). The 480,000 images (5.9 GB) are read in
slices straight into one preallocated tensor: no second full copy.
"""

from __future__ import annotations

import h5py
import gin
import numpy as np
import torch

from ..data import DatasetInfo, FactorGridDataset
from ..progress import progress_bar

from ._files import (GIN_MODULE, check_sizes, describe_file, file_error, find_file, require_complete_grid,
                     short_exc)

FILENAME = "3dshapes.h5"
URL = "https://storage.googleapis.com/3d-shapes/3dshapes.h5"
FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FULL_SIZES = (10, 10, 10, 8, 4, 15)
_CHUNK = 8192


@gin.configurable("shapes3d", module=GIN_MODULE, denylist=["metadata_only"])
def shapes3d(data_root=None, path=None, allow_subgrid: bool = False,
             progress: bool | None = None, metadata_only: bool = False) -> FactorGridDataset | DatasetInfo:
    """3D Shapes as a FactorGridDataset of RGB images (N, 3, 64, 64).

    ``metadata_only=True`` returns its :class:`DatasetInfo` instead: the image
    count from the ``images`` dataset's shape, the official factor sizes (with
    ``allow_subgrid``, read from ``labels``); no image is read.
    """
    path = find_file("3D Shapes file", [FILENAME], data_root, path,
                     f"download {URL} into that folder", subdirs=["shapes3d"])
    try:
        h5 = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise file_error(path, f"not a readable HDF5 file ({short_exc(exc)})") from None
    with h5:
        images_ds, labels_ds = _datasets(h5, path)
        n = images_ds.shape[0]
        if metadata_only:
            return _info(n, labels_ds, path, allow_subgrid)
        labels = _read(labels_ds, slice(None), path, "labels")
        sizes = _check_labels(labels, path, allow_subgrid)
        images = torch.empty((n, 3, 64, 64), dtype=torch.uint8)
        bar = progress_bar(range(0, n, _CHUNK), desc="shapes3d", unit="chunk",
                           disable=None if progress is None else not progress)
        for start in bar:
            chunk = _read(images_ds, slice(start, start + _CHUNK), path, "images")
            images[start:start + len(chunk)] = torch.from_numpy(chunk).permute(0, 3, 1, 2)
    return FactorGridDataset(
        name="shapes3d",
        images=images,
        source=describe_file(path),
        likelihood="gaussian",
        factor_names=FACTOR_NAMES,
        factor_sizes=sizes,
    )


def _datasets(h5, path):
    """The file's ``images`` and ``labels`` datasets, their shapes and types checked."""
    missing = [k for k in ("images", "labels") if k not in h5]
    if missing:
        raise file_error(path, f"missing key(s) {missing}; it holds {sorted(h5.keys())}")
    images_ds, labels_ds = h5["images"], h5["labels"]
    if not isinstance(images_ds, h5py.Dataset) or not isinstance(labels_ds, h5py.Dataset):
        raise file_error(path, "'images' and 'labels' must be datasets, not groups")
    if images_ds.dtype != np.uint8 or images_ds.ndim != 4 or images_ds.shape[1:] != (64, 64, 3):
        raise file_error(path, f"'images' must be (N, 64, 64, 3) uint8, got {images_ds.shape} {images_ds.dtype}")
    n = images_ds.shape[0]
    if labels_ds.ndim != 2 or labels_ds.shape != (n, 6) or labels_ds.dtype.kind not in "fiu":
        raise file_error(path, f"'labels' must be ({n}, 6) numbers, got {labels_ds.shape} {labels_ds.dtype}")
    return images_ds, labels_ds


def _info(n: int, labels_ds, path, allow_subgrid: bool) -> DatasetInfo:
    if allow_subgrid:
        sizes = _check_labels(_read(labels_ds, slice(None), path, "labels"), path, allow_subgrid)
    else:
        sizes = FULL_SIZES
        if n != int(np.prod(sizes)):
            raise file_error(path, f"'images' holds {n} images, the official grid {dict(zip(FACTOR_NAMES, sizes))} "
                                   f"{int(np.prod(sizes))} (allow_subgrid=True accepts a smaller grid)")
    return DatasetInfo(name="shapes3d", num_images=n, observation_shape=(3, 64, 64), likelihood="gaussian",
                       factor_names=FACTOR_NAMES, factor_sizes=sizes)


def _read(dataset, rows: slice, path, key: str) -> np.ndarray:
    try:
        return dataset[rows]
    except (OSError, ValueError, RuntimeError) as exc:
        problem = f"cannot read {key!r} ({short_exc(exc)}); the file may be truncated or corrupt"
        raise file_error(path, problem) from None


def _check_labels(labels: np.ndarray, path, allow_subgrid: bool) -> tuple[int, ...]:
    if not np.all(np.isfinite(labels)):
        raise file_error(path, "'labels' holds NaN or infinite values")
    factors = np.empty(labels.shape, dtype=np.int64)
    for k in range(labels.shape[1]):
        values = np.unique(labels[:, k])
        factors[:, k] = np.searchsorted(values, labels[:, k])
    sizes = require_complete_grid(path, factors, FACTOR_NAMES)
    check_sizes(path, sizes, FULL_SIZES, FACTOR_NAMES, allow_subgrid)
    return sizes
