"""``dsprites``: the official dSprites file.

Reads ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (from
https://github.com/deepmind/dsprites-dataset) with ``allow_pickle=False`` and
touches only the array keys ``imgs`` and ``latents_classes``: the file's
``metadata`` entry is a pickled object array and is never unpickled.

Checks, each failing with a one-line error naming the file: the keys exist;
``latents_classes`` is (N, 6) integer with a constant colour column, and its
other five columns are every (shape, scale, orientation, pos_x, pos_y)
combination once in the official order (index = 245760·shape + 40960·scale +
1024·orientation + 32·pos_x + pos_y); the sizes are the official 3, 6, 40,
32, 32 (``allow_subgrid=True`` accepts a smaller complete grid, for miniature
files in tests); ``imgs`` is (N, 64, 64) uint8 holding only 0 and 1.

Memory: the 737,280 images are 3.0 GB as uint8. numpy decompresses ``imgs``
straight into one array, the 0/1 → 0/255 scaling is in place and the tensor
shares that memory, so the peak is one copy plus ``latents_classes`` (35 MB)
and the grid check (~60 MB).
"""

from __future__ import annotations

import zipfile
import zlib

import gin
import numpy as np
import torch

from ..data import DatasetInfo, FactorGridDataset

from ._files import (GIN_MODULE, check_sizes, describe_file, file_error, find_file, npz_array_header,
                     require_complete_grid, short_exc)
from .dsprites_synth import DISPLAY_ORDER, FACTOR_NAMES, FULL_SIZES, grid_info

FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
URL = f"https://github.com/deepmind/dsprites-dataset/raw/master/{FILENAME}"
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


@gin.configurable("dsprites", module=GIN_MODULE, denylist=["metadata_only"])
def dsprites(data_root=None, path=None, allow_subgrid: bool = False,
             metadata_only: bool = False) -> FactorGridDataset | DatasetInfo:
    """The official dSprites as a FactorGridDataset of {0, 255} images (N, 1, 64, 64).

    ``path`` points at the npz directly; otherwise it is looked for as
    ``<data root>/{FILENAME}`` or ``<data root>/dsprites/{FILENAME}``.
    ``metadata_only=True`` returns its :class:`DatasetInfo` instead, from the
    ``imgs`` header (see :func:`info`).
    """
    path = find_file("dSprites file", [FILENAME], data_root, path,
                     f"download {URL} into that folder", subdirs=["dsprites"])
    if metadata_only:
        return info(path, allow_subgrid)
    try:
        archive = np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise file_error(path, f"not a readable npz file ({short_exc(exc)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise file_error(path, "holds a single array, expected an npz archive with 'imgs' and 'latents_classes'")
    with archive:
        missing = [k for k in ("imgs", "latents_classes") if k not in archive.files]
        if missing:
            raise file_error(path, f"missing key(s) {missing}; it holds {sorted(archive.files)}")
        classes = _read(archive, "latents_classes", path)
        sizes = _check_classes(classes, path)
        check_sizes(path, sizes, FULL_SIZES, FACTOR_NAMES, allow_subgrid)
        del classes
        images = _read(archive, "imgs", path)
    _check_images(images, len_expected=int(np.prod(sizes)), path=path)
    np.multiply(images, 255, out=images)  # 0/1 -> 0/255 in place
    return FactorGridDataset(
        name="dsprites",
        images=torch.from_numpy(images).unsqueeze(1),
        source=describe_file(path),
        likelihood="bernoulli",
        factor_names=FACTOR_NAMES,
        factor_sizes=sizes,
        factor_display_order=DISPLAY_ORDER,
    )


def info(path, allow_subgrid: bool = False) -> DatasetInfo:
    """The file's DatasetInfo without reading ``imgs``: the image count and
    shape come from its ``.npy`` header. The official sizes are taken as given
    (the count must match them); with ``allow_subgrid`` the sizes are read from
    ``latents_classes`` (integers, 35 MB for the full file) and checked."""
    shape, dtype = npz_array_header(path, "imgs")
    if dtype != np.uint8 or len(shape) != 3 or shape[1:] != (64, 64):
        raise file_error(path, f"'imgs' must be (N, 64, 64) uint8, got {shape} {dtype}")
    if allow_subgrid:
        with np.load(path, allow_pickle=False) as archive:
            sizes = _check_classes(_read(archive, "latents_classes", path), path)
    else:
        sizes = FULL_SIZES
    if shape[0] != int(np.prod(sizes)):
        hint = "" if allow_subgrid else " (allow_subgrid=True accepts a smaller grid)"
        raise file_error(path, f"'imgs' holds {shape[0]} images, the factor grid {dict(zip(FACTOR_NAMES, sizes))} "
                               f"{int(np.prod(sizes))}{hint}")
    return grid_info("dsprites", sizes)


def _read(archive, key: str, path) -> np.ndarray:
    try:
        return archive[key]
    except _READ_ERRORS as exc:
        problem = f"cannot read {key!r} ({short_exc(exc)}); the file may be truncated or corrupt"
        raise file_error(path, problem) from None


def _check_classes(classes: np.ndarray, path) -> tuple[int, ...]:
    if classes.ndim != 2 or classes.shape[1] != 6 or not np.issubdtype(classes.dtype, np.integer):
        raise file_error(
            path, f"'latents_classes' must be (N, 6) integers, got {classes.shape} {classes.dtype}"
        )
    if len(classes) and np.any(classes[:, 0] != classes[0, 0]):
        raise file_error(path, "'latents_classes' colour column (0) is not constant")
    return require_complete_grid(path, classes[:, 1:], FACTOR_NAMES)


def _check_images(images: np.ndarray, len_expected: int, path) -> None:
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (64, 64):
        raise file_error(path, f"'imgs' must be (N, 64, 64) uint8, got {images.shape} {images.dtype}")
    if len(images) != len_expected:
        raise file_error(path, f"'imgs' holds {len(images)} images but 'latents_classes' {len_expected}")
    if images.max(initial=0) > 1:
        raise file_error(path, f"'imgs' must be binary (0/1), found the value {int(images.max())}")
