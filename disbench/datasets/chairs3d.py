"""``chairs3d``: a folder of 3D chairs renders (Aubry et al. 2014).

Reads every ``.png``/``.jpg``/``.jpeg`` under the folder (nested folders
allowed, e.g. the official ``rendered_chairs/<model>/renders/*.png``), in
sorted order of their paths relative to the folder, with Pillow: converted to
RGB (transparent pixels composited on white, the renders' background) and
resized to 64×64 (Pillow's antialiased bilinear filter). No ground-truth
factors: metrics that need them refuse this dataset.

Decoding the ~86,000 600×600 renders takes minutes, so the decoded array is
cached under ``cache_dir()``, keyed by the list of files with their sizes and
modification times (any change re-reads the folder) and validated by SHA-256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import gin
import numpy as np
import torch
from PIL import Image

from ..data import DatasetInfo, ImageDataset
from ..errors import DisbenchError
from ..progress import progress_bar

from ._cache import ArrayCache
from ._files import GIN_MODULE, find_file

URL = "https://www.di.ens.fr/willow/research/seeing3Dchairs/"
FOLDERS = ("rendered_chairs", "chairs3d")
EXTENSIONS = {".png", ".jpg", ".jpeg"}
SIZE = 64
READER_VERSION = 1


@gin.configurable("chairs3d", module=GIN_MODULE, denylist=["metadata_only"])
def chairs3d(data_root=None, path=None, cache: bool = True, progress: bool | None = None,
             metadata_only: bool = False) -> ImageDataset | DatasetInfo:
    """RGB images (N, 3, 64, 64) uint8 from the folder ``path`` (default:
    ``<data root>/rendered_chairs`` or ``<data root>/chairs3d``).
    ``metadata_only=True`` returns its :class:`DatasetInfo` instead: the image
    files are counted, none is opened."""
    folder = find_file("3D chairs", FOLDERS, data_root, path, folder=True,
                       how_to_get=f"download rendered_chairs.tar from {URL} and extract it there")
    files = image_files(folder)
    if metadata_only:
        return DatasetInfo(name="chairs3d", num_images=len(files), observation_shape=(3, SIZE, SIZE),
                           likelihood="gaussian")
    listing = hashlib.sha256()
    for f in files:
        stat = f.stat()
        listing.update(f"{f.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    key = listing.hexdigest()
    shape = (len(files), 3, SIZE, SIZE)
    cache_path = None
    if cache:
        store = ArrayCache(f"chairs3d_{key[:16]}",
                           {"reader": "chairs3d", "version": READER_VERSION, "folder": str(folder.resolve()),
                            "listing_sha256": key})
        stored = store.load()
        if stored is None or stored.shape != shape:
            stored = store.save(shape, lambda out: _read_all(files, out, progress))
        images = torch.from_numpy(np.array(stored))
        cache_path = str(store.path)
    else:
        array = np.empty(shape, dtype=np.uint8)
        _read_all(files, array, progress)
        images = torch.from_numpy(array)
    return ImageDataset(
        name="chairs3d",
        images=images,
        source=f"{folder} ({len(files)} images, listing sha256 {key[:12]})",
        likelihood="gaussian",
        info={"cache": cache_path} if cache_path else {},
    )


def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder``, sorted by relative path; an error if none."""
    files = sorted((p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        raise DisbenchError(f"{folder}: no .png/.jpg images in this folder or below it")
    return files


def _read_all(files: list[Path], out: np.ndarray, progress: bool | None) -> None:
    bar = progress_bar(files, desc="chairs3d", unit="img", disable=None if progress is None else not progress)
    for i, f in enumerate(bar):
        out[i] = read_image(f).transpose(2, 0, 1)


def read_image(path: Path) -> np.ndarray:
    """One image as (64, 64, 3) uint8 RGB; an unreadable file is an error naming it."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            rgb = im.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DisbenchError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from None
