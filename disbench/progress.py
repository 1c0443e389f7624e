"""Progress bars that stay quiet when output is not a terminal or is disabled."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress_bar(iterable=None, *, disable: bool | None = None, **kwargs):
    if disable is None:
        disable = not sys.stderr.isatty()
    if os.environ.get("DISBENCH_NO_PROGRESS"):
        disable = True
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, disable=disable, **kwargs)
