"""``mpi3d``: MPI3D (Gondal et al. 2019), ``mpi3d_toy``, ``mpi3d_realistic`` or ``mpi3d_real``.

From https://github.com/rr-learning/disentanglement_dataset: one ``.npz`` per
variant, ``mpi3d_{variant}.npz``, with the key ``images`` (N, 64, 64, 3)
uint8, looked for in the data root, ``mpi3d_{variant}/`` (disentanglement_lib's
folder) and ``mpi3d/``, or at ``path``. Read with ``allow_pickle=False``
semantics: the ``.npy`` header is parsed and the pixels are read in blocks
straight into one preallocated (N, 3, 64, 64) tensor (no second full copy:
the toy set is 12.7 GB), stored or deflated alike; an object array is refused.

Seven factors, a complete grid in row-major order (vertical_axis fastest), as
disentanglement_lib reads it (``data/ground_truth/mpi3d.py``): object_color,
object_shape, object_size 2, camera_height 3, background_color 3,
horizontal_axis 40, vertical_axis 40. The released files (all three variants)
hold 1,036,800 images: 6 colours × 6 shapes. disentanglement_lib's code gives
``toy`` and ``realistic`` 4 colours × 4 shapes (460,800 images, the first
release used in its studies); a file of that size is read with that grid.
``factor_sizes`` reads a file of any other grid (miniature test files).
RGB, Gaussian decoder.
"""

from __future__ import annotations

import zipfile
import zlib

import gin
import numpy as np
import torch

from ..data import DatasetInfo, FactorGridDataset
from ..errors import DisbenchError
from ..progress import progress_bar

from ._files import GIN_MODULE, describe_file, file_error, find_file, npz_array_header, short_exc

URL = "https://github.com/rr-learning/disentanglement_dataset"
VARIANTS = ("toy", "realistic", "real")
FACTOR_NAMES = ("object_color", "object_shape", "object_size", "camera_height", "background_color",
                "horizontal_axis", "vertical_axis")
RELEASED = (6, 6, 2, 3, 3, 40, 40)  # every variant as released: 1,036,800 images
FIRST_RELEASE = (4, 4, 2, 3, 3, 40, 40)  # toy and realistic in disentanglement_lib's code: 460,800 images
GRIDS = {"toy": (RELEASED, FIRST_RELEASE), "realistic": (RELEASED, FIRST_RELEASE), "real": (RELEASED,)}
SIDE = 64
_BLOCK = 8192  # images read at a time (96 MB)


def _check_sizes(sizes) -> tuple[int, ...] | None:
    if sizes is None:
        return None
    try:
        sizes = tuple(int(s) for s in sizes)
    except (TypeError, ValueError):
        raise DisbenchError(f"mpi3d: factor_sizes must be 7 integers, got {sizes!r}") from None
    if len(sizes) != len(FACTOR_NAMES) or min(sizes) < 1:
        raise DisbenchError(f"mpi3d: factor_sizes must be 7 positive integers ({', '.join(FACTOR_NAMES)}), "
                            f"got {list(sizes)}")
    return sizes


def _header(path) -> tuple[int, ...]:
    shape, dtype = npz_array_header(path, "images")
    if dtype != np.uint8 or len(shape) != 4 or shape[1:] != (SIDE, SIDE, 3):
        raise file_error(path, f"'images' must be (N, 64, 64, 3) uint8, got {shape} {dtype}")
    return shape


def _grid(path, count: int, sizes, variant: str) -> tuple[int, ...]:
    """The given factor sizes, or the official grid of ``variant`` with ``count`` images."""
    candidates = (sizes,) if sizes is not None else GRIDS[variant]
    for grid in candidates:
        if count == int(np.prod(grid, dtype=np.int64)):
            return grid
    expected = " or ".join(f"{dict(zip(FACTOR_NAMES, g))} ({int(np.prod(g, dtype=np.int64))})" for g in candidates)
    hint = "" if sizes is not None else " (mpi3d.factor_sizes reads a file of another grid)"
    raise file_error(path, f"'images' holds {count} images, but the factor grid {expected} has another count{hint}")


def _read_images(path, count: int, progress: bool | None) -> torch.Tensor:
    """The ``images`` member's pixels as (N, 3, 64, 64), read block by block from the zip stream."""
    out = torch.empty((count, 3, SIDE, SIDE), dtype=torch.uint8)
    row = SIDE * SIDE * 3
    try:
        with zipfile.ZipFile(path) as archive, archive.open("images.npy") as member:
            version = np.lib.format.read_magic(member)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise file_error(path, f"'images' has .npy format version {version}, expected 1.0 or 2.0")
            _, fortran_order, _ = read_header(member)
            if fortran_order:
                raise file_error(path, "'images' is stored in Fortran order; expected C order")
            bar = progress_bar(range(0, count, _BLOCK), desc="mpi3d", unit="block",
                               disable=None if progress is None else not progress)
            for start in bar:
                rows = min(_BLOCK, count - start)
                data = member.read(rows * row)
                if len(data) != rows * row:
                    raise file_error(path, f"'images' is truncated at image {start + len(data) // row}")
                block = torch.from_numpy(np.frombuffer(data, dtype=np.uint8).reshape(rows, SIDE, SIDE, 3).copy())
                out[start:start + rows] = block.permute(0, 3, 1, 2)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise file_error(path, f"cannot read 'images' ({short_exc(exc)}); the file may be truncated or corrupt") \
            from None
    return out


@gin.configurable("mpi3d", module=GIN_MODULE, denylist=["metadata_only"])
def mpi3d(data_root=None, path=None, variant: str = "toy", factor_sizes=None, progress: bool | None = None,
          metadata_only: bool = False) -> FactorGridDataset | DatasetInfo:
    """MPI3D ``variant`` as a FactorGridDataset of RGB images (N, 3, 64, 64).

    ``metadata_only=True`` returns its :class:`DatasetInfo` from the ``.npy``
    header of ``images`` (no pixel is read).
    """
    if variant not in VARIANTS:
        raise DisbenchError(f"mpi3d: variant must be one of {', '.join(map(repr, VARIANTS))}, got {variant!r}")
    sizes = _check_sizes(factor_sizes)
    name = f"mpi3d_{variant}.npz"
    path = find_file(f"MPI3D ({variant})", [name], data_root, path,
                     f"download {name} from {URL} into that folder", subdirs=[f"mpi3d_{variant}", "mpi3d"])
    shape = _header(path)
    sizes = _grid(path, shape[0], sizes, variant)
    if metadata_only:
        return _info(sizes)
    return FactorGridDataset(
        name="mpi3d",
        images=_read_images(path, shape[0], progress),
        source=describe_file(path),
        likelihood="gaussian",
        factor_names=FACTOR_NAMES,
        factor_sizes=sizes,
        info={"variant": variant},
    )


def _info(sizes) -> DatasetInfo:
    return DatasetInfo(name="mpi3d", num_images=int(np.prod(sizes, dtype=np.int64)), observation_shape=(3, SIDE, SIDE),
                       likelihood="gaussian", factor_names=FACTOR_NAMES, factor_sizes=sizes)
