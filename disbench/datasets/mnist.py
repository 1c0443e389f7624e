"""``mnist``: MNIST digits from the IDX files or an ``.npz``.

Sources, looked for in the data root and its ``mnist/`` folder:
``train-images-idx3-ubyte`` + ``train-labels-idx1-ubyte`` (plain or ``.gz``,
from https://yann.lecun.com/exdb/mnist/ or a mirror), else ``mnist.npz`` with
``x_train``/``y_train`` (Keras layout, read with ``allow_pickle=False``).
``split="test"`` reads ``t10k-*`` / ``x_test``/``y_test`` instead.

Placement: each 28×28 digit is **resized** to 64×64 (bilinear, on the grey
values) by default, so the digit fills the frame as dSprites sprites and 3D
chairs do and the 64×64 conv architecture sees strokes several pixels wide;
``placement="pad"`` centres the unchanged 28×28 digit on a blank 64×64 canvas
instead (18 px border), keeping the original pixels exactly.

Binarisation: a pixel is on (255) where its grey value, after resizing, is at
least ``threshold`` = 128 (half intensity) — a fixed threshold, not stochastic
binarisation, so the data are the same in every run. The digit label is the
only factor (``digit``, 10 values): a GroundTruthDataset, not a full grid.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from pathlib import Path

import gin
import numpy as np
import torch

from ..data import DatasetInfo, GroundTruthDataset
from ..errors import DisbenchError

from ._files import GIN_MODULE, describe_file, file_error, find_file, npz_array_header, short_exc

URL = "https://yann.lecun.com/exdb/mnist/"
SIDE = 28
FRAME = 64
_IDX_UBYTE = 0x08
_PREFIX = {"train": "train", "test": "t10k"}
_NPZ_KEYS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}
_CHUNK = 4096  # digits resized at a time (float32 intermediates stay ~70 MB)


@gin.configurable("mnist", module=GIN_MODULE, denylist=["metadata_only"])
def mnist(data_root=None, path=None, labels_path=None, split: str = "train",
          placement: str = "resize", threshold: int = 128,
          metadata_only: bool = False) -> GroundTruthDataset | DatasetInfo:
    """MNIST as binary {0, 255} images (N, 1, 64, 64) with the digit as factor.

    ``path``: an ``.npz`` or the images IDX file (``labels_path`` defaults to the
    labels file beside it, ``...images-idx3...`` → ``...labels-idx1...``).
    ``metadata_only=True`` returns its :class:`DatasetInfo` instead, from the
    images' IDX or ``.npy`` header (the labels are not read).
    """
    if split not in _PREFIX:
        raise DisbenchError(f"mnist: split must be 'train' or 'test', got {split!r}")
    if placement not in ("resize", "pad"):
        raise DisbenchError(f"mnist: placement must be 'resize' or 'pad', got {placement!r}")
    if not 1 <= int(threshold) <= 255:
        raise DisbenchError(f"mnist: threshold must be in 1..255, got {threshold!r}")
    images_name = f"{_PREFIX[split]}-images-idx3-ubyte"
    path = find_file(
        "MNIST", [images_name, images_name + ".gz", "mnist.npz"], data_root, path,
        f"download {images_name}.gz and {_PREFIX[split]}-labels-idx1-ubyte.gz from {URL} into that folder",
        subdirs=["mnist"],
    )
    if metadata_only:
        return info(path, split)
    if path.suffix == ".npz":
        digits, labels = _read_npz(path, *_NPZ_KEYS[split])
        source = describe_file(path)
    else:
        labels_path = Path(labels_path) if labels_path else _labels_beside(path)
        digits = _read_idx(path, ndim=3)
        labels = _read_idx(labels_path, ndim=1)
        source = f"{describe_file(path)} + {describe_file(labels_path)}"
        if digits.shape[1:] != (SIDE, SIDE):
            raise file_error(path, f"images must be {SIDE}x{SIDE}, got {digits.shape[1]}x{digits.shape[2]}")
        if len(labels) != len(digits):
            raise file_error(labels_path, f"{len(labels)} labels for {len(digits)} images in {path}")
        _check_labels(labels, labels_path)
    return GroundTruthDataset(
        name="mnist",
        images=_place(digits, placement, int(threshold)),
        source=source,
        likelihood="bernoulli",
        factor_names=("digit",),
        factor_sizes=(10,),
        factors=labels.astype(np.int64)[:, None],
        info={"placement": placement, "threshold": int(threshold), "split": split},
    )


def info(path: Path, split: str = "train") -> DatasetInfo:
    """The DatasetInfo of the images file ``path`` (IDX, plain or gzip, or npz)
    from its header alone."""
    if path.suffix == ".npz":
        key = _NPZ_KEYS[split][0]
        shape, dtype = npz_array_header(path, key)
        if dtype != np.uint8 or len(shape) != 3 or shape[1:] != (SIDE, SIDE):
            raise file_error(path, f"{key!r} must be (N, {SIDE}, {SIDE}) uint8, got {shape} {dtype}")
    else:
        shape = _idx_dims(path, ndim=3)
        if shape[1:] != (SIDE, SIDE):
            raise file_error(path, f"images must be {SIDE}x{SIDE}, got {shape[1]}x{shape[2]}")
    if shape[0] == 0:
        raise file_error(path, "holds no images")
    return DatasetInfo(name="mnist", num_images=shape[0], observation_shape=(1, FRAME, FRAME), likelihood="bernoulli",
                       factor_names=("digit",), factor_sizes=(10,))


def _labels_beside(images_path: Path) -> Path:
    name = images_path.name.replace("images-idx3", "labels-idx1")
    if name == images_path.name:
        raise file_error(images_path, "cannot tell the labels file from this name; pass labels_path")
    for candidate in (name, name.removesuffix(".gz"), name.removesuffix(".gz") + ".gz"):
        if (images_path.parent / candidate).exists():
            return images_path.parent / candidate
    raise DisbenchError(f"MNIST labels not found: expected {images_path.parent / name} beside {images_path}")


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with ``ndim`` dimensions (magic 0x0000 08 ndim)."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise file_error(path, f"cannot read ({short_exc(exc)}); the file may be truncated or corrupt") from None
    dims = _parse_idx_header(raw, path, ndim)
    header = 4 + 4 * ndim
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "longer than its header says"
        raise file_error(path, f"{state}: {len(raw)} bytes, the header {list(dims)} needs {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _idx_dims(path: Path, ndim: int) -> tuple[int, ...]:
    """The dimensions in an IDX file's header (a ``.gz`` is inflated only that far)."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            head = f.read(4 + 4 * ndim)
    except (OSError, EOFError, zlib.error) as exc:
        raise file_error(path, f"cannot read ({short_exc(exc)}); the file may be truncated or corrupt") from None
    return _parse_idx_header(head, path, ndim)


def _parse_idx_header(raw: bytes, path: Path, ndim: int) -> tuple[int, ...]:
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise file_error(path, f"too short for an IDX header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE or raw[3] != ndim:
        raise file_error(
            path, f"bad IDX magic number 0x{raw[:4].hex()}, expected 0x000008{ndim:02x} (unsigned bytes, {ndim}-d)"
        )
    return tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))


def _read_npz(path: Path, images_key: str, labels_key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in (images_key, labels_key) if k not in archive.files]
            if missing:
                raise file_error(path, f"missing key(s) {missing}; it holds {sorted(archive.files)}")
            digits, labels = archive[images_key], archive[labels_key]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise file_error(path, f"not a readable npz file ({short_exc(exc)})") from None
    if digits.dtype != np.uint8 or digits.ndim != 3 or digits.shape[1:] != (SIDE, SIDE):
        raise file_error(path, f"{images_key!r} must be (N, {SIDE}, {SIDE}) uint8, got {digits.shape} {digits.dtype}")
    if labels.ndim != 1 or len(labels) != len(digits) or not np.issubdtype(labels.dtype, np.integer):
        raise file_error(path, f"{labels_key!r} must be {len(digits)} integer labels, "
                               f"got {labels.shape} {labels.dtype}")
    _check_labels(labels, path)
    return digits, labels


def _check_labels(labels: np.ndarray, path) -> None:
    if len(labels) == 0:
        raise file_error(path, "holds no images")
    if labels.min() < 0 or labels.max() > 9:
        raise file_error(path, f"labels must be digits 0-9, found {int(labels.min())}..{int(labels.max())}")


def _place(digits: np.ndarray, placement: str, threshold: int) -> torch.Tensor:
    n = len(digits)
    out = torch.zeros((n, 1, FRAME, FRAME), dtype=torch.uint8)
    if placement == "pad":
        border = (FRAME - SIDE) // 2
        on = torch.from_numpy(digits >= threshold)
        out[:, 0, border:border + SIDE, border:border + SIDE] = on.to(torch.uint8) * 255
        return out
    for start in range(0, n, _CHUNK):
        grey = torch.from_numpy(digits[start:start + _CHUNK].astype(np.float32)).unsqueeze(1)
        big = torch.nn.functional.interpolate(grey, size=(FRAME, FRAME), mode="bilinear", align_corners=False)
        out[start:start + _CHUNK] = (big >= threshold).to(torch.uint8) * 255
    return out
