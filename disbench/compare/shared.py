"""The output folder every worker must see: a marker the driver writes, each task checks.

On a cluster the compare folder is the shared storage: every task writes its
runs there, the driver reads them back, and the run locks only exclude each
other where every node sees the same files. A node that does not mount the
folder (or mounts another one at that path) would train runs onto its own disk,
unseen by the driver and unlocked against other nodes. So the driver writes
``OUT/.disbench-drivers/TOKEN`` (a random token, one file per driver, removed
when it ends) and every task reads it back before it takes a lock; a task that
cannot is refused in one line naming its node and the path.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from ..errors import DisbenchError

MARKER_FOLDER = ".disbench-drivers"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class SharedFolder:
    """The driver's marker in the output folder: where it is and what it holds."""

    out: str    # the output folder, absolute as the driver sees it
    token: str

    @property
    def marker(self) -> Path:
        return Path(self.out) / MARKER_FOLDER / self.token

    @classmethod
    def create(cls, out: Path) -> "SharedFolder":
        shared = cls(os.path.abspath(out), secrets.token_hex(12))
        shared.marker.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(shared.marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
        try:
            os.write(fd, shared.token.encode())
        finally:
            os.close(fd)
        return shared

    def remove(self) -> None:
        try:
            self.marker.unlink()
        except OSError:
            pass

    def check(self) -> None:
        """In a task: the marker is there with its token, else DisbenchError naming this node."""
        try:
            fd = os.open(self.marker, os.O_RDONLY | _NOFOLLOW)
            try:
                found = os.read(fd, 64).decode("ascii", "replace")
            finally:
                os.close(fd)
        except OSError:
            found = None
        if found != self.token:
            raise DisbenchError(
                f"node {socket.gethostname()}: the output folder {self.out} is not the driver's here (its marker "
                f"{self.marker} is {'missing' if found is None else 'another'}): --out must be on storage every "
                "node mounts at the same path")
