"""The scalar log: one JSON object per logged step in ``scalars.jsonl``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..io import atomic_write_text

SCALARS_NAME = "scalars.jsonl"


class ScalarLog:
    """Appends rows; on resume, drops rows written after the checkpoint's step
    so the log of a resumed run equals that of an uninterrupted one."""

    def __init__(self, path: Path, keep_up_to_step: int = 0):
        self.path = Path(path)
        rows = [r for r in read_scalars(self.path) if r["step"] <= keep_up_to_step] if keep_up_to_step else []
        # rewritten atomically: a crash here leaves the old log, never a truncated one
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in rows))
        self._file = open(self.path, "a")

    def write(self, row: dict) -> None:
        self._file.write(json.dumps(row, allow_nan=True) + "\n")
        self._file.flush()

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_scalars(path: Path) -> list[dict]:
    """All complete rows of a scalar log (a torn last line is ignored)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


def is_finite_row(row: dict) -> bool:
    return all(math.isfinite(v) for v in row.values() if isinstance(v, float))
