"""``smallnorb``: the NYU small NORB dataset in its official binary-matrix files.

From https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/ (LeCun, Huang and Bottou
2004): for each of the two halves, ``training`` and ``testing``, three files

    smallnorb-5x46789x9x18x6x2x96x96-training-{dat,cat,info}.mat
    smallnorb-5x01235x9x18x6x2x96x96-testing-{dat,cat,info}.mat

(plain, or ``.gz`` as downloaded), looked for in the data root, ``smallnorb/``
and ``small_norb/`` (disentanglement_lib's folder), or in the folder ``path``.

The files are NYU "binary matrices" (:func:`read_binary_matrix`, written
here from the format's description: little-endian int32 magic number giving
the element type, int32 number of dimensions, then max(3, ndim) int32
dimensions, then the elements, last index fastest). ``dat``: (N, 2, 96, 96)
bytes, the stereo pair; ``cat``: (N,) int32 category 0-4; ``info``: (N, 4)
int32 instance 0-9, elevation 0-8, azimuth 0, 2, …, 34, lighting 0-5.

As disentanglement_lib reads it (``data/ground_truth/norb.py``): both halves
(48,600 images), the first camera of each pair, resized to 64×64 with Pillow's
Lanczos filter (the old ``ANTIALIAS``); factors category 5, elevation 9,
azimuth 18 (the file's value / 2), lighting 6. The instance (10 per category)
is not a factor: a factor combination has 10 images and the metrics draw one
of them at random, as disentanglement_lib does. Grey images, Gaussian decoder.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import gin
import numpy as np
import torch
from PIL import Image

from ..data import DatasetInfo, GroundTruthDataset
from ..errors import DisbenchError

from ._files import GIN_MODULE, describe_file, file_error, find_file, short_exc

URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
HALVES = {"training": "smallnorb-5x46789x9x18x6x2x96x96-training",
          "testing": "smallnorb-5x01235x9x18x6x2x96x96-testing"}
SPLITS = {"all": ("training", "testing"), "train": ("training",), "test": ("testing",)}
FACTOR_NAMES = ("category", "elevation", "azimuth", "lighting")
FULL_SIZES = (5, 9, 18, 6)
NUM_INSTANCES = 10
SIZE = 64
MAGIC = {0x1E3D4C51: np.dtype("<f4"), 0x1E3D4C53: np.dtype("<f8"), 0x1E3D4C54: np.dtype("<i4"),
         0x1E3D4C55: np.dtype("u1"), 0x1E3D4C56: np.dtype("<i2")}
_CHUNK_BYTES = 64 * 2**20


# -- the NYU binary matrix format ----------------------------------------------

def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_exact(f, n: int, path: Path, what: str) -> bytes:
    try:
        data = f.read(n)
    except (OSError, EOFError, zlib.error) as exc:
        raise file_error(path, f"cannot read ({short_exc(exc)}); the file may be truncated or corrupt") from None
    if len(data) != n:
        raise file_error(path, f"truncated: {what} needs {n} bytes, the file has {len(data)} left")
    return data


def _header(f, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    magic, ndim = (int(v) for v in np.frombuffer(_read_exact(f, 8, path, "the header"), "<i4"))
    if magic not in MAGIC:
        known = ", ".join(f"0x{m:08X}" for m in MAGIC)
        raise file_error(path, f"not an NYU binary matrix: magic number 0x{magic & 0xFFFFFFFF:08X} "
                               f"(expected one of {known})")
    if not 1 <= ndim <= 16:
        raise file_error(path, f"binary matrix header gives {ndim} dimensions")
    dims = np.frombuffer(_read_exact(f, 4 * max(3, ndim), path, "the header"), "<i4")[:ndim]
    if np.any(dims < 0):
        raise file_error(path, f"binary matrix header gives negative dimensions {dims.tolist()}")
    return MAGIC[magic], tuple(int(d) for d in dims)


def binary_matrix_header(path: str | Path) -> tuple[np.dtype, tuple[int, ...]]:
    """(element dtype, shape) from the header alone (a ``.gz`` is inflated only that far)."""
    path = Path(path)
    try:
        with _open(path) as f:
            return _header(f, path)
    except OSError as exc:
        raise file_error(path, f"cannot read ({short_exc(exc)})") from None


def read_binary_matrix(path: str | Path, first_of_axis1: bool = False) -> np.ndarray:
    """The matrix in ``path`` (plain or ``.gz``); with ``first_of_axis1`` only
    index 0 of its second axis (the first camera of smallNORB's pairs), read
    row block by row block so the full file is never held."""
    path = Path(path)
    try:
        with _open(path) as f:
            dtype, shape = _header(f, path)
            row_shape = shape[1:]
            row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
            if first_of_axis1 and len(shape) < 2:
                raise file_error(path, f"expected at least 2 dimensions, the header gives {list(shape)}")
            kept_shape = row_shape[1:] if first_of_axis1 else row_shape
            out = np.empty((shape[0], *kept_shape), dtype=dtype.newbyteorder("="))
            rows_per_block = max(1, _CHUNK_BYTES // max(row_bytes, 1))
            for start in range(0, shape[0], rows_per_block):
                rows = min(rows_per_block, shape[0] - start)
                block = np.frombuffer(_read_exact(f, rows * row_bytes, path, f"rows {start}-{start + rows - 1}"),
                                      dtype=dtype).reshape(rows, *row_shape)
                out[start:start + rows] = block[:, 0] if first_of_axis1 else block
            if f.read(1):
                raise file_error(path, f"longer than its header {list(shape)} says")
    except OSError as exc:
        raise file_error(path, f"cannot read ({short_exc(exc)})") from None
    return out


def write_binary_matrix(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` in the NYU format (tests write miniature files with it)."""
    array = np.asarray(array)
    magic = {np.dtype(v).newbyteorder("="): k for k, v in MAGIC.items()}[array.dtype.newbyteorder("=")]
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)
    header = np.array([magic, array.ndim, *dims], dtype="<i4").tobytes()
    data = header + array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


# -- the dataset ---------------------------------------------------------------

def _find(folder: Path, stem: str, kind: str) -> Path:
    for name in (f"{stem}-{kind}.mat", f"{stem}-{kind}.mat.gz"):
        if (folder / name).is_file():
            return folder / name
    raise DisbenchError(f"smallNORB file not found: expected {folder / f'{stem}-{kind}.mat'} (or .gz) beside the "
                        f"others (download it from {URL})")


def _files(data_root, path, split: str) -> list[dict[str, Path]]:
    if split not in SPLITS:
        raise DisbenchError(f"smallnorb: split must be 'all', 'train' or 'test', got {split!r}")
    halves = SPLITS[split]
    if path:
        folder = find_file("smallNORB", [], data_root, path, "", folder=True)
    else:
        first = HALVES[halves[0]]
        found = find_file("smallNORB", [f"{first}-dat.mat", f"{first}-dat.mat.gz"], data_root, None,
                          f"download the {'six' if len(halves) == 2 else 'three'} smallnorb-*.mat.gz files from "
                          f"{URL} into that folder", subdirs=["smallnorb", "small_norb"])
        folder = found.parent
    return [{kind: _find(folder, HALVES[h], kind) for kind in ("dat", "cat", "info")} for h in halves]


def _features(files: dict[str, Path], count: int) -> np.ndarray:
    """(count, 5) int64: category, instance, elevation, azimuth / 2, lighting — checked."""
    category = read_binary_matrix(files["cat"])
    info = read_binary_matrix(files["info"])
    if category.shape != (count,) or not np.issubdtype(category.dtype, np.integer):
        raise file_error(files["cat"], f"expected {count} integer categories (the dat file's count), "
                                       f"got shape {category.shape} {category.dtype}")
    if info.shape != (count, 4) or not np.issubdtype(info.dtype, np.integer):
        raise file_error(files["info"], f"expected ({count}, 4) integers (instance, elevation, azimuth, lighting), "
                                        f"got shape {info.shape} {info.dtype}")
    features = np.column_stack([category, info]).astype(np.int64)
    limits = {"category": (features[:, 0], 5, files["cat"]), "instance": (features[:, 1], NUM_INSTANCES, files["info"]),
              "elevation": (features[:, 2], 9, files["info"]), "azimuth": (features[:, 3], 36, files["info"]),
              "lighting": (features[:, 4], 6, files["info"])}
    for name, (values, top, where) in limits.items():
        if values.size and (values.min() < 0 or values.max() >= top):
            raise file_error(where, f"{name} values must lie in 0..{top - 1}, found {values.min()}..{values.max()}")
    if np.any(features[:, 3] % 2):
        raise file_error(files["info"], "azimuth values must be even (0, 2, ..., 34)")
    features[:, 3] //= 2
    return features


def _factor_sizes(factors: np.ndarray, where, allow_subgrid: bool) -> tuple[int, ...]:
    if len(factors) == 0:
        raise file_error(where, "holds no images")
    sizes = tuple(int(s) for s in factors.max(axis=0) + 1)
    if sizes != FULL_SIZES and not allow_subgrid:
        raise file_error(where, f"factor sizes {dict(zip(FACTOR_NAMES, sizes))}, expected the official "
                                f"{dict(zip(FACTOR_NAMES, FULL_SIZES))} (allow_subgrid=True accepts a smaller set)")
    keys = np.unique(factors @ np.array([sizes[1] * sizes[2] * sizes[3], sizes[2] * sizes[3], sizes[3], 1]))
    if len(keys) != int(np.prod(sizes)):
        raise file_error(where, f"only {len(keys)} of the {int(np.prod(sizes))} combinations of "
                                f"{', '.join(FACTOR_NAMES)} have an image; every combination must")
    return sizes


def _resize(images: np.ndarray) -> torch.Tensor:
    out = torch.empty((len(images), 1, SIZE, SIZE), dtype=torch.uint8)
    target = out.numpy()
    for i, image in enumerate(images):  # Pillow resizes one image at a time (~50 µs each)
        target[i, 0] = np.asarray(Image.fromarray(image).resize((SIZE, SIZE), Image.Resampling.LANCZOS))
    return out


@gin.configurable("smallnorb", module=GIN_MODULE, denylist=["metadata_only"])
def smallnorb(data_root=None, path=None, split: str = "all", allow_subgrid: bool = False,
              metadata_only: bool = False) -> GroundTruthDataset | DatasetInfo:
    """small NORB as a GroundTruthDataset of grey images (N, 1, 64, 64).

    ``path``: the folder holding the ``.mat`` files. ``split``: ``"all"``
    (both halves, as disentanglement_lib), ``"train"`` or ``"test"``.
    ``metadata_only=True`` returns its :class:`DatasetInfo` from the ``dat``
    headers (with ``allow_subgrid``, the sizes from the ``cat``/``info`` files).
    """
    halves = _files(data_root, path, split)
    headers = []
    for files in halves:
        dtype, shape = binary_matrix_header(files["dat"])
        if dtype != np.uint8 or len(shape) != 4 or shape[1] < 1:
            raise file_error(files["dat"], f"expected (N, cameras, H, W) bytes, got {list(shape)} {dtype}")
        headers.append(shape)
    count = sum(shape[0] for shape in headers)
    if metadata_only and not allow_subgrid:
        if count != int(np.prod(FULL_SIZES)) * NUM_INSTANCES // (2 if split != "all" else 1):
            raise file_error(halves[0]["dat"], f"{count} images, the official set has "
                                               f"{int(np.prod(FULL_SIZES)) * NUM_INSTANCES // (2 if split != 'all' else 1)} "
                                               "(allow_subgrid=True accepts a smaller set)")
        return _info(FULL_SIZES, count)
    features = np.concatenate([_features(files, shape[0]) for files, shape in zip(halves, headers)])
    factors = features[:, [0, 2, 3, 4]]
    sizes = _factor_sizes(factors, halves[0]["info"], allow_subgrid)
    if metadata_only:
        return _info(sizes, count)
    images = np.concatenate([read_binary_matrix(files["dat"], first_of_axis1=True) for files in halves])
    return GroundTruthDataset(
        name="smallnorb",
        images=_resize(images),
        source=" + ".join(describe_file(files["dat"]) for files in halves),
        likelihood="gaussian",
        factor_names=FACTOR_NAMES,
        factor_sizes=sizes,
        factors=factors,
        info={"split": split, "instances": int(features[:, 1].max()) + 1, "camera": 0},
    )


def _info(sizes, count: int) -> DatasetInfo:
    return DatasetInfo(name="smallnorb", num_images=count, observation_shape=(1, SIZE, SIZE), likelihood="gaussian",
                       factor_names=FACTOR_NAMES, factor_sizes=sizes)
