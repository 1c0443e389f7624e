"""Atomic, durable file writes: a reader never sees a half-written result or
checkpoint, and a write that returned survives a power cut (the file is
fsynced before the rename, its folder after it)."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    with atomic_paths([path]) as (tmp,):
        yield tmp


@contextmanager
def atomic_paths(paths: list[str | os.PathLike]) -> Iterator[list[Path]]:
    """Yield a temporary path beside each of ``paths``; on success rename them over
    ``paths`` together: every file is written and flushed first, then all are renamed
    in one pass (no I/O in between), so files that belong together (a fused group's
    checkpoints and results) are replaced at one moment, not one by one as each is
    written. On an exception the temporary files are removed and ``paths`` untouched."""
    paths = [Path(p) for p in paths]
    tmps: list[Path] = []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            tmps.append(Path(tmp))
        yield tmps
        for tmp in tmps:
            os.chmod(tmp, 0o666 & ~_umask())
            fsync_path(tmp)
        for tmp, path in zip(tmps, paths):
            os.replace(tmp, path)
        for parent in dict.fromkeys(path.parent for path in paths):
            fsync_path(parent)
    except BaseException:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        raise


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json_text(obj))


def json_text(obj: Any) -> str:
    """How result files hold JSON: indented, keys sorted, numpy/torch values as plain JSON."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def _json_default(obj: Any) -> Any:
    # numpy / torch scalars and arrays end up in results; store them as plain JSON.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)
