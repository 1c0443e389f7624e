"""One process at a time per run directory.

Two drivers on one compare folder (two shells, a re-run while Ray workers of an
earlier driver still run, a retried task next to a straggler) must never train
the same run twice. Before a unit of work touches a run, its worker takes an
exclusive ``flock`` on ``runs/MODEL/.seedS.lock`` — beside the run directory, so
a run that has not started yet can be locked too. The operating system drops
the lock when the process dies, however it dies (SIGKILL, out of memory, a lost
node on a network file system with lock support), so a crashed run never stays
locked. The file holds who has it (host, pid, since when) for the error
message; it is never deleted, since deleting a lock file races with its next
taker.

Network file systems: NFSv4 and Lustre/GPFS support ``flock`` (NFS emulates it
with POSIX byte-range locks); on one that does not, locking raises and the
unit is reported as failed to lock rather than trained unprotected.
"""

from __future__ import annotations

import datetime
import os
import socket
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # not POSIX: no locks (one driver per folder is then the user's job)
    fcntl = None


class RunLocked(Exception):
    """Another live process holds a run's lock."""

    def __init__(self, run_dir: Path, holder: str):
        self.run_dir, self.holder = Path(run_dir), holder
        super().__init__(f"{run_dir} is being trained by another process ({holder or 'holder unknown'}); "
                         "it is left to that process")


def lock_path(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.lock"


def holder_of(run_dir: Path) -> str:
    """Who last took the run's lock: 'host pid N since TIME' (empty if never)."""
    try:
        return lock_path(run_dir).read_text().strip()
    except OSError:
        return ""


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock, or raise :class:`RunLocked` at once (never waits)."""
    if fcntl is None:
        yield
        return
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(run_dir, holder_of(run_dir)) from None
        since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{socket.gethostname()} pid {os.getpid()} since {since}\n".encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def run_locks(run_dirs: list[Path]) -> Iterator[None]:
    """Hold the locks of all ``run_dirs`` (a fused group), or none of them."""
    with ExitStack() as stack:
        for run_dir in run_dirs:
            stack.enter_context(run_lock(run_dir))
        yield
