"""Where data files and caches live."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "DISBENCH_DATA"
CACHE_ENV = "DISBENCH_CACHE"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The folder user-supplied dataset files are looked for in.

    Order: an explicit path (``--data-root`` or a gin binding), then
    ``$DISBENCH_DATA``, then ``~/disbench_data``.
    """
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path.home() / "disbench_data"


def cache_dir() -> Path:
    """The folder for generated data (``$DISBENCH_CACHE`` or ``~/.cache/disbench``)."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "disbench"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
