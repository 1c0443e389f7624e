"""``cars3d``: the Cars3D renders of Reed et al. 2015, one ``.mat`` file per car.

From Scott Reed's "Deep Visual Analogy-Making" data (http://www.scottreed.info/,
``nips2015-analogy-data.tar.gz``, folder ``data/cars``): each
``car_NNN_mesh.mat`` holds ``im``, uint8 of shape (128, 128, 3, 24, 4) —
height, width, RGB, 24 azimuths, 4 elevations. Read with
``scipy.io.loadmat(..., variable_names=["im"])`` (MATLAB v5 files; nothing is
unpickled; scipy is the ``datasets`` extra: ``pip install -e ".[datasets]"``),
from the folder ``path``, else ``<data root>/cars`` (disentanglement_lib's
folder) or ``<data root>/cars3d``.

As disentanglement_lib reads it (``data/ground_truth/cars3d.py``): every file
whose name contains ``.mat``, the car index being its position in sorted file
order (disentanglement_lib takes the folder's listing order); each render
resized to 64×64 RGB with Pillow's Lanczos filter (the old ``ANTIALIAS`` of
its ``thumbnail``); factors elevation 4, azimuth 24, object 183 — a complete
grid, held in row-major order (object fastest):
index = 4392·elevation + 183·azimuth + object. RGB, Gaussian decoder.
"""

from __future__ import annotations

from pathlib import Path

import gin
import numpy as np
import torch
from PIL import Image

from ..data import DatasetInfo, FactorGridDataset
from ..errors import DisbenchError
from ..progress import progress_bar

from ._files import GIN_MODULE, file_error, find_file, short_exc

URL = "http://www.scottreed.info/ (nips2015-analogy-data.tar.gz, folder data/cars)"
FOLDERS = ("cars", "cars3d")
FACTOR_NAMES = ("elevation", "azimuth", "object")
FULL_SIZES = (4, 24, 183)
SIZE = 64


def mat_files(folder: Path) -> list[Path]:
    """The car files, sorted by name (disentanglement_lib: any name containing '.mat')."""
    return sorted(p for p in folder.iterdir() if p.is_file() and ".mat" in p.name)


def _loadmat(path: Path) -> np.ndarray:
    try:
        from scipy import io as scipy_io
    except ImportError:
        raise DisbenchError('cars3d reads MATLAB files with scipy: pip install -e ".[datasets]"') from None
    try:
        content = scipy_io.loadmat(path, variable_names=["im"])
    except NotImplementedError:  # MATLAB 7.3 files are HDF5
        raise file_error(path, "is a MATLAB 7.3 (HDF5) file; the Cars3D files are MATLAB 5 files") from None
    except (OSError, ValueError, TypeError, EOFError, KeyError, scipy_io.matlab.MatReadError) as exc:
        raise file_error(path, f"not a readable MATLAB file ({short_exc(exc)})") from None
    if "im" not in content:
        raise file_error(path, "holds no variable 'im'")
    im = content["im"]
    if im.dtype != np.uint8 or im.ndim != 5 or im.shape[2] != 3:
        raise file_error(path, f"'im' must be (H, W, 3, azimuths, elevations) uint8, got {im.shape} {im.dtype}")
    return im


def _resize(views: np.ndarray) -> np.ndarray:
    """(n, H, W, 3) uint8 -> (n, 3, 64, 64) uint8."""
    out = np.empty((len(views), 3, SIZE, SIZE), dtype=np.uint8)
    for i, view in enumerate(views):
        image = Image.fromarray(np.ascontiguousarray(view))
        if image.size != (SIZE, SIZE):
            image = image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
        out[i] = np.asarray(image).transpose(2, 0, 1)
    return out


@gin.configurable("cars3d", module=GIN_MODULE, denylist=["metadata_only"])
def cars3d(data_root=None, path=None, allow_subgrid: bool = False, progress: bool | None = None,
           metadata_only: bool = False) -> FactorGridDataset | DatasetInfo:
    """Cars3D as a FactorGridDataset of RGB images (N, 3, 64, 64).

    ``allow_subgrid=True`` accepts fewer cars and any (azimuths, elevations)
    shared by all files (miniature test files). ``metadata_only=True`` returns
    its :class:`DatasetInfo`: from the file count (with ``allow_subgrid``, the
    grid of the first file's ``im``).
    """
    folder = find_file("Cars3D", FOLDERS, data_root, path, folder=True,
                       how_to_get=f"download {URL} and put the car_*_mesh.mat files in it")
    files = mat_files(folder)
    if not files:
        raise DisbenchError(f"Cars3D: {folder} holds no .mat files (expected car_NNN_mesh.mat, from {URL})")
    if not allow_subgrid and len(files) != FULL_SIZES[2]:
        raise DisbenchError(f"Cars3D: {folder} holds {len(files)} .mat files, the official set has "
                            f"{FULL_SIZES[2]} (allow_subgrid=True accepts fewer)")
    if metadata_only and not allow_subgrid:
        return _info(FULL_SIZES)
    first = _loadmat(files[0])
    azimuths, elevations = first.shape[3], first.shape[4]
    sizes = (elevations, azimuths, len(files))
    if not allow_subgrid and sizes != FULL_SIZES:
        raise file_error(files[0], f"'im' holds {azimuths} azimuths x {elevations} elevations, expected "
                                   f"{FULL_SIZES[1]} x {FULL_SIZES[0]} (allow_subgrid=True accepts others)")
    if metadata_only:
        return _info(sizes)
    images = np.empty((elevations, azimuths, len(files), 3, SIZE, SIZE), dtype=np.uint8)
    bar = progress_bar(files, desc="cars3d", unit="car", disable=None if progress is None else not progress)
    for obj, file in enumerate(bar):
        im = first if obj == 0 else _loadmat(file)
        if im.shape[3:] != (azimuths, elevations):
            raise file_error(file, f"'im' holds {im.shape[3]} azimuths x {im.shape[4]} elevations, but "
                                   f"{files[0].name} {azimuths} x {elevations}")
        views = im.transpose(4, 3, 0, 1, 2).reshape(elevations * azimuths, *im.shape[:3])  # (elev, az) row-major
        images[:, :, obj] = _resize(views).reshape(elevations, azimuths, 3, SIZE, SIZE)
    return FactorGridDataset(
        name="cars3d",
        images=torch.from_numpy(images.reshape(-1, 3, SIZE, SIZE)),
        source=f"{folder} ({len(files)} .mat files)",
        likelihood="gaussian",
        factor_names=FACTOR_NAMES,
        factor_sizes=sizes,
        info={"files": [f.name for f in files[:3]] + (["..."] if len(files) > 3 else [])},
    )


def _info(sizes) -> DatasetInfo:
    return DatasetInfo(name="cars3d", num_images=int(np.prod(sizes)), observation_shape=(3, SIZE, SIZE),
                       likelihood="gaussian", factor_names=FACTOR_NAMES, factor_sizes=sizes)
