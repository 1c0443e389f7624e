"""A validated on-disk cache for one generated/decoded uint8 array.

The array is a plain ``.npy`` (read with ``allow_pickle=False``) beside a JSON
sidecar holding what produced it (``meta``: generator name, version, options)
and the SHA-256 of the array bytes. Both are written atomically, the sidecar
last, so a reader sees either no entry or a complete one; a truncated,
corrupt or stale entry fails validation and is rebuilt by the caller.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np

from ..io import atomic_path, atomic_write_json
from ..paths import cache_dir

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
_HASH_ROWS_BYTES = 2**24  # hash in ~16 MB slices: no second full copy in memory


class ArrayCache:
    def __init__(self, stem: str, meta: dict, folder: Path | None = None):
        folder = Path(folder) if folder is not None else cache_dir()
        self.path = folder / f"{stem}.npy"
        self.sidecar = folder / f"{stem}.json"
        self.meta = json.loads(json.dumps(meta))  # as it reads back from JSON

    def load(self) -> np.ndarray | None:
        """The cached array as a read-only memory map, or None if absent or invalid."""
        if not self.path.exists() and not self.sidecar.exists():
            return None
        problem, array = self._validate()
        if problem:
            log.warning("cache %s is invalid (%s); rebuilding it", self.path, problem)
            return None
        return array

    def _validate(self) -> tuple[str | None, np.ndarray | None]:
        try:
            side = json.loads(self.sidecar.read_text())
        except (OSError, ValueError) as exc:
            return f"sidecar {self.sidecar} unreadable: {type(exc).__name__}", None
        if side.get("format") != CACHE_FORMAT or side.get("meta") != self.meta:
            return "made by another generator version or options", None
        try:
            array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            return f"unreadable: {type(exc).__name__}: {exc}", None
        if list(array.shape) != side.get("shape") or array.dtype != np.uint8:
            return f"shape {array.shape} / dtype {array.dtype} differ from the sidecar", None
        if array_sha256(array) != side.get("sha256"):
            return "checksum mismatch", None
        return None, array

    def save(self, shape: tuple[int, ...], fill: Callable[[np.ndarray], None]) -> np.ndarray:
        """Create the array (``fill`` writes into a memory map of ``shape``),
        record its checksum and return it as a read-only memory map."""
        with atomic_path(self.path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=tuple(shape))
            fill(out)
            out.flush()
            digest = array_sha256(out)
            del out
        atomic_write_json(
            self.sidecar,
            {"format": CACHE_FORMAT, "meta": self.meta, "shape": list(shape), "sha256": digest},
        )
        return np.load(self.path, mmap_mode="r", allow_pickle=False)


def array_sha256(array: np.ndarray) -> str:
    """SHA-256 of a C-contiguous array's bytes, read in slices (memory maps stay on disk)."""
    digest = hashlib.sha256()
    flat = array.reshape(-1)
    for start in range(0, flat.size, _HASH_ROWS_BYTES):
        digest.update(memoryview(np.ascontiguousarray(flat[start:start + _HASH_ROWS_BYTES])))
    return digest.hexdigest()
