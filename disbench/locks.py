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
unit is reported as failed to lock (:class:`LockUnsupported`, one line) rather
than trained unprotected. A lock is not a fence: an NFS lease can expire while a
partitioned process still writes.

A compare folder may be shared with other users, so the lock file is opened
as a lock and nothing else: never through a symbolic link (``O_NOFOLLOW``),
only a regular file with one link, and only one that holds a lock's text (or
nothing) is rewritten. Anything else is refused in one line naming the file.
"""

from __future__ import annotations

import datetime
import errno
import os
import re
import socket
import stat
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from .errors import DisbenchError

try:
    import fcntl
except ImportError:  # not POSIX: no locks (one driver per folder is then the user's job)
    fcntl = None


# Open a lock without following a link, and without leaking it into child processes.
OPEN_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
HOLDER_TEXT = re.compile(r"\S+ pid \d+ since \S+\n?")  # what a lock file holds: 'host pid N since TIME'


class UnsafeLockFile(DisbenchError):
    """A run's lock path is not a lock file (a link, a folder, another file)."""


class LockUnsupported(DisbenchError):
    """The file system refuses locks."""


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
    """Who last took the run's lock: 'host pid N since TIME' (empty if never, or not a lock)."""
    try:
        fd = os.open(lock_path(run_dir), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return ""
    try:
        return _holder_text(fd)
    finally:
        os.close(fd)


def _holder_text(fd: int) -> str:
    text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
    return text.strip() if HOLDER_TEXT.fullmatch(text) else ""


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock, or raise :class:`RunLocked` at once (never waits)."""
    if fcntl is None:
        yield
        return
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = open_lock_file(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(run_dir, _holder_text(fd)) from None
        except OSError as exc:  # ENOLCK, ENOSYS, EOPNOTSUPP: no locks on this file system
            raise LockUnsupported(
                f"cannot lock {path}: the file system does not support file locks ({exc.strerror or exc}); "
                "use a folder on a file system that does (a local disk, NFSv4, Lustre, GPFS), or run one "
                "driver per folder") from None
        since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        check_lock_text(fd, path)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{socket.gethostname()} pid {os.getpid()} since {since}\n".encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def open_lock_file(path: Path) -> int:
    """The lock file's descriptor: created if absent, never through a link, only a
    regular file with one link (see the module docstring)."""
    try:
        fd = os.open(path, OPEN_FLAGS, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeLockFile(f"{path} is a symbolic link, not a run lock: refusing to open it "
                                 "(remove it if nobody planted it on purpose)") from None
        raise UnsafeLockFile(f"cannot open the run lock {path}: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        what = "a hard link to another file" if stat.S_ISREG(info.st_mode) else "not a regular file"
        raise UnsafeLockFile(f"{path} is {what}, not a run lock: refusing to write to it")
    return fd


def check_lock_text(fd: int, path: Path) -> None:
    """Refuse to rewrite a file that holds something else than a lock's text."""
    text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
    if text and not HOLDER_TEXT.fullmatch(text):
        raise UnsafeLockFile(f"{path} holds something other than a run lock ({len(text)} bytes): refusing to "
                             "overwrite it")


@contextmanager
def run_locks(run_dirs: list[Path]) -> Iterator[None]:
    """Hold the locks of all ``run_dirs`` (a fused group), or none of them."""
    with ExitStack() as stack:
        for run_dir in run_dirs:
            stack.enter_context(run_lock(run_dir))
        yield


def wait_for_locks(run_dirs: list[Path], on_wait=print, poll_seconds: float = 2.0,
                   report_seconds: float = 60.0) -> None:
    """Return once no other process holds any of ``run_dirs``' locks (taken and
    released in turn); every ``report_seconds``, ``on_wait`` a line naming the holders."""
    waiting, started, reported = list(run_dirs), time.monotonic(), time.monotonic()
    while waiting:
        still = []
        for run_dir in waiting:
            try:
                with run_lock(run_dir):
                    pass
            except RunLocked:
                still.append(run_dir)
        waiting = still
        if waiting and time.monotonic() - reported >= report_seconds:
            reported = time.monotonic()
            held = "; ".join(f"{d} ({holder_of(d) or 'holder unknown'})" for d in waiting[:3])
            on_wait(f"  still waiting after {reported - started:.0f} s for {len(waiting)} run(s) that other "
                    f"processes train: {held}")
        if waiting:
            time.sleep(poll_seconds)
