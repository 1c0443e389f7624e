"""Finding user-supplied dataset files and describing them in errors and results."""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import DisbenchError
from ..paths import DATA_ENV, data_root as resolve_data_root

# Factories are gin-configurable under their dataset name in this module.
GIN_MODULE = "disbench.datasets"

# Files up to this size get a short SHA-256 in their ``source`` string; bigger
# ones (3dshapes.h5 is 255 MB) only their size, to keep loading fast.
HASH_LIMIT_BYTES = 64 * 2**20


def find_file(
    what: str,
    names: Sequence[str],
    data_root: str | os.PathLike | None,
    explicit: str | os.PathLike | None,
    how_to_get: str,
    subdirs: Sequence[str] = (),
    folder: bool = False,
) -> Path:
    """The file (or with ``folder=True`` the folder) holding dataset ``what``.

    ``explicit`` (an option such as ``path=``) wins and must exist. Otherwise each
    of ``names`` is looked for in the data root and then in its ``subdirs``; if
    none exists the error names the first expected path and ``how_to_get`` it.
    """
    found = Path.is_dir if folder else Path.exists
    if explicit:
        path = Path(explicit).expanduser()
        if not found(path):
            raise DisbenchError(f"{what}: {path} " + ("is not a folder" if folder else "does not exist"))
        return path
    root = resolve_data_root(data_root)
    for place in [root, *(root / s for s in subdirs)]:
        for name in names:
            if found(place / name):
                return place / name
    raise DisbenchError(
        f"{what} not found: expected {'the folder ' if folder else ''}{root / names[0]} ({how_to_get}; set the data root with "
        f"--data-root or ${DATA_ENV}, now {root})"
    )


def file_error(path: str | os.PathLike, problem: str) -> DisbenchError:
    """A one-line error naming the file and what is wrong with it."""
    return DisbenchError(f"{path}: {problem}")


def short_exc(exc: BaseException) -> str:
    """The first line of an error, in our words where numpy's would advise
    ``allow_pickle=True`` (loading a pickle runs code from the file: never here)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    if "Object arrays cannot be loaded" in text:
        return "it holds an array of Python objects, which is never unpickled"
    if "pickle" in text.lower():
        return "neither an npz archive nor a .npy array (pickled data is never loaded)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def describe_file(path: str | os.PathLike) -> str:
    """``PATH (N bytes, sha256 abcdef012345)``; the hash only for small files."""
    path = Path(path)
    size = path.stat().st_size
    if size > HASH_LIMIT_BYTES:
        return f"{path} ({size} bytes)"
    return f"{path} ({size} bytes, sha256 {sha256_file(path)[:12]})"


def sha256_file(path: str | os.PathLike, chunk: int = 2**22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def require_complete_grid(path, factors: np.ndarray, names: Iterable[str]) -> tuple[int, ...]:
    """Factor sizes of ``factors`` (N, K) if they are every combination once in
    row-major order (the last factor fastest, as the official files); an error otherwise."""
    names = list(names)
    if factors.size == 0:
        raise file_error(path, "holds no images")
    if factors.min() < 0:
        raise file_error(path, "negative factor index")
    sizes = tuple(int(s) for s in factors.max(axis=0) + 1)
    count = int(np.prod(sizes, dtype=np.int64))
    if count != len(factors):
        raise file_error(
            path,
            f"factors {dict(zip(names, sizes))} make a grid of {count} images but the file holds {len(factors)}",
        )
    strides = np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)
    index = factors.astype(np.int64, copy=False) @ strides
    wrong = np.flatnonzero(index != np.arange(len(factors), dtype=np.int64))
    if wrong.size:
        raise file_error(
            path,
            f"factors are not the complete grid in the official order (image {int(wrong[0])} has factors "
            f"{factors[wrong[0]].tolist()})",
        )
    return sizes


def npz_array_header(path: str | os.PathLike, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the array ``key`` of an ``.npz``, from its ``.npy``
    header alone: the array's data is not read (a compressed member is
    inflated only as far as its header) and nothing is unpickled."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if key + ".npy" not in names:
                held = sorted(n.removesuffix(".npy") for n in names)
                raise file_error(path, f"missing key {key!r}; it holds {held}")
            with archive.open(key + ".npy") as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                else:
                    raise file_error(path, f"{key!r} has .npy format version {version}, expected 1.0 or 2.0")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise file_error(path, f"not a readable npz file ({short_exc(exc)})") from None
    return tuple(int(d) for d in shape), dtype


def check_sizes(path, sizes: Sequence[int], expected: Sequence[int], names: Sequence[str], allow_subgrid: bool) -> None:
    """The official factor sizes, or any grid when a miniature file is allowed."""
    if tuple(sizes) == tuple(expected) or allow_subgrid:
        return
    raise file_error(
        path,
        f"factor sizes {dict(zip(names, sizes))}, expected the official {dict(zip(names, expected))} "
        "(allow_subgrid=True accepts a smaller grid)",
    )
