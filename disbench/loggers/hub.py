"""Delivering a run's rows, metrics and images to its loggers without ever
holding up training.

The training loop hands each member's rows (at log steps), metrics and images
(at image steps) to a :class:`LoggerHub`, which queues them; one background
thread calls the loggers in order. Nothing the step does waits for a logger:
the queue is bounded (:mod:`.backlog`: a logger that falls behind loses the
oldest queued rows and images, counted under ``logger_dropped`` in its run's
``results.json`` and reported once on stderr). A logger that raises is
reported once — one line on stderr and a line in its run's ``results.json``
under ``logger_errors`` — and dropped; the run and its other loggers go on.
At the end the hub waits for the loggers at most ``CLOSE_TIMEOUT_SECONDS``;
a logger that has not finished by then is reported and recorded the same way.
"""

from __future__ import annotations

import copy
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

from ..errors import DisbenchError
from ..registry import get_registry
from ..runs import read_results, update_results
from .backlog import IMAGES, MAX_QUEUED_IMAGES, MAX_QUEUED_ROWS, OTHER, ROWS, Backlog
from .base import Logger, RunInfo

# How long the end of a run waits for its loggers to finish their queue.
CLOSE_TIMEOUT_SECONDS = 60.0
# How often, at most, growing drop counts are written to results.json (each write is
# fsynced; the counts are written at the end in any case).
DROPS_RECORD_SECONDS = 30.0

KINDS = {"log_scalars": ROWS, "log_images": IMAGES}  # what may be dropped; the rest never is


def check_loggers(names: Sequence[str], registry=None) -> None:
    """Refuse unknown logger names (with the known ones) and loggers that cannot
    work here (their ``check()``: a library not installed), in one line each."""
    if registry is None:
        registry = get_registry("loggers")
    for name in names:
        factory = registry.get(name)
        check = getattr(factory, "check", None)
        if callable(check):
            try:
                check()
            except DisbenchError:
                raise
            except Exception as exc:
                raise DisbenchError(f"logger {name!r} cannot be used: {type(exc).__name__}: {exc}") from None


class LoggerHub:
    """The loggers of the K members of a group (K = 1: one run); ``names[k]`` are
    member k's logger names. Call :meth:`start` for each member, then
    :meth:`scalars`, :meth:`metrics`, :meth:`images`, and :meth:`finish` at the
    end; :meth:`record_failures` (from the thread that writes results.json)
    writes what went wrong. ``task`` names what goes on when a logger fails
    (``"run"``, ``"evaluation"``)."""

    def __init__(self, names: Sequence[Sequence[str]], registry=None, stream=None, *,
                 max_rows: int | None = None, max_images: int | None = None, task: str = "run"):
        if registry is None:
            registry = get_registry("loggers")
        self.registry = registry
        self.names = [tuple(n) for n in names]
        self.stream = stream  # where failures are reported (default: sys.stderr at the time)
        self.task = task
        members = len(self.names)
        self._instances: list[dict] = [{} for _ in self.names]
        self._open: list[set] = [set() for _ in self.names]  # started, not yet closed or failed
        self._run_dirs: list[Path | None] = [None] * members
        self._closed = [False] * members
        self._failures: list[tuple[int, str]] = []
        self._recorded = 0
        self._busy: tuple | None = None  # (k, name, what) the thread is calling now
        self._lock = threading.Lock()
        # The module's bounds are read here, not at import, so that tests can lower them.
        self._backlog = Backlog(members, MAX_QUEUED_ROWS if max_rows is None else max_rows,
                                MAX_QUEUED_IMAGES if max_images is None else max_images)
        self._drops_reported = [False] * members
        self._drops_written: list[dict | None] = [None] * members   # counts last written (this process)
        self._drops_before: list[dict] = [{} for _ in self.names]  # counts of earlier processes
        self._drops_written_at = float("-inf")
        self._finished = False
        self._thread: threading.Thread | None = None

    @classmethod
    def for_runs(cls, names: Sequence[Sequence[str]], **options) -> "LoggerHub | None":
        """A hub for these members' loggers, or None when no member has one."""
        return cls(names, **options) if any(names) else None

    # -- from the training loop (main thread) ----------------------------------
    def start(self, k: int, info: RunInfo, config: dict | None) -> None:
        """Create member ``k``'s loggers (here, before training) and queue its
        config (none for a later evaluation: ``config=None``)."""
        self._run_dirs[k] = Path(info.run_dir)
        for name in self.names[k]:
            try:
                logger = self.registry.get(name)(info)
            except Exception as exc:
                self._fail(k, name, "starting", exc)
                continue
            with self._lock:
                self._instances[k][name] = logger
                self._open[k].add(name)
        if self._instances[k] and config is not None:
            self._put(k, "log_config", "", (copy.deepcopy(config),), {})

    def scalars(self, k: int, step: int, row: dict) -> None:
        self._put(k, "log_scalars", f" at step {step}", (step, copy.deepcopy(row)), {})

    def metrics(self, k: int, step: int, metrics: dict, *, final: bool) -> None:
        self._put(k, "log_metrics", f" at step {step}", (step, copy.deepcopy(metrics)), {"final": final})

    def wants_images(self, k: int) -> bool:
        """Whether one of member ``k``'s live loggers takes images (overrides ``log_images``)."""
        with self._lock:
            loggers = list(self._instances[k].values())
        return any(_takes_images(logger) for logger in loggers)

    def images(self, k: int, step: int, images: dict) -> None:
        self._put(k, "log_images", f" at step {step}", (step, images), {})

    def close(self, k: int, status: str) -> None:
        """Close member ``k``'s loggers (once; later calls for it are ignored)."""
        if self._closed[k]:
            return
        self._closed[k] = True
        self._put(k, "close", "", (status,), {})

    def finish(self, statuses: Sequence[str], timeout: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Close every member not yet closed with its status, and wait (at most
        ``timeout`` seconds) for the loggers to work through their queue; a logger
        not finished by then is reported and recorded as a failure, and not waited for."""
        for k, status in enumerate(statuses):
            self.close(k, status)
        self._finished = True
        if self._thread is None:
            return
        self._backlog.end()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._give_up(timeout)

    def new_failures(self) -> dict[int, list[str]]:
        """Failures since the last call, by member (for results.json)."""
        with self._lock:
            fresh, self._recorded = self._failures[self._recorded:], len(self._failures)
        out: dict[int, list[str]] = {}
        for k, message in fresh:
            out.setdefault(k, []).append(message)
        return out

    def dropped(self) -> list[dict[str, int]]:
        """Rows and image sets dropped so far (in this process), by member."""
        return self._backlog.dropped()

    def record_failures(self) -> dict[int, dict]:
        """Write to each member's ``results.json`` what went wrong since the last
        call: new failures (appended to ``logger_errors``; loggers not finished
        at the end included) and what the queue dropped (``logger_dropped``,
        ``{"rows": n, "images": m}``, totals over the run's processes; written at
        most every ``DROPS_RECORD_SECONDS`` until :meth:`finish`). Return the
        updated results by member. Call from the thread that writes results.json
        (the training loop's)."""
        failures, drops = self.new_failures(), self._drops_to_write()
        updated = {}
        for k in sorted(set(failures) | set(drops)):
            run_dir = self._run_dirs[k]
            if run_dir is None:
                continue
            earlier = read_results(run_dir) or {}
            fields = {}
            if k in failures:
                fields["logger_errors"] = (earlier.get("logger_errors") or []) + failures[k]
            if k in drops:
                if self._drops_written[k] is None:  # first write here: add to a resumed run's counts
                    self._drops_before[k] = earlier.get("logger_dropped") or {}
                before = self._drops_before[k]
                fields["logger_dropped"] = {kind: before.get(kind, 0) + n for kind, n in drops[k].items()}
                self._drops_written[k] = drops[k]
            updated[k] = update_results(run_dir, **fields)
        return updated

    def _drops_to_write(self) -> dict[int, dict]:
        """Members whose drop counts changed since they were last written, when it is
        time to write them (the first drops at once; later ones at most every
        ``DROPS_RECORD_SECONDS``, and at the end)."""
        now = time.monotonic()
        due = self._finished or now - self._drops_written_at >= DROPS_RECORD_SECONDS
        out = {}
        for k, counts in enumerate(self.dropped()):
            if any(counts.values()) and counts != self._drops_written[k] \
                    and (due or self._drops_written[k] is None):
                out[k] = counts
        if out:
            self._drops_written_at = now
        return out

    # -- the background thread ---------------------------------------------------
    def _put(self, k: int, method: str, where: str, args: tuple, kwargs: dict) -> None:
        with self._lock:
            if not self._instances[k]:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="disbench-loggers", daemon=True)
                self._thread.start()
        kind = KINDS.get(method, OTHER)
        if self._backlog.put(k, kind, (method, where, args, kwargs)) and not self._drops_reported[k]:
            self._drops_reported[k] = True
            self._say(k, "its loggers are falling behind: the oldest queued rows and images are dropped to keep "
                         f"the queue bounded (counted under logger_dropped in results.json); the {self.task} goes on")

    def _work(self) -> None:
        while True:
            got = self._backlog.get()
            if got is None:
                return
            k, (method, where, args, kwargs) = got
            with self._lock:
                loggers = list(self._instances[k].items())
                if method == "close":
                    self._instances[k] = {}
            for name, logger in loggers:
                function = getattr(logger, method, None)
                if function is not None:
                    with self._lock:
                        self._busy = (k, name, f"{method}{where}")
                    try:
                        function(*args, **kwargs)
                    except Exception as exc:
                        self._fail(k, name, f"{method}{where}", exc)
                    with self._lock:
                        self._busy = None
                if method == "close":
                    with self._lock:
                        self._open[k].discard(name)

    def _give_up(self, timeout: float) -> None:
        """The end's wait ran out: each logger not yet closed is a failure."""
        with self._lock:
            busy = self._busy
            unfinished = [(k, name) for k, names in enumerate(self._open) for name in sorted(names)]
        for k, name in unfinished:
            doing = f"busy in {busy[2]}" if busy and busy[:2] == (k, name) else "waiting behind a busy logger"
            message = (f"logger {name!r} did not finish within {timeout:g} s of the end ({doing}, "
                       f"{self._backlog.pending(k)} calls still queued) and was not waited for; "
                       f"what it had not sent is lost")
            with self._lock:
                self._failures.append((k, message))
            self._say(k, message)

    def _fail(self, k: int, name: str, where: str, exc: BaseException) -> None:
        text = " ".join(str(exc).split())
        text = text if len(text) <= 200 else text[:199] + "…"
        message = (f"logger {name!r} failed in {where} and was dropped "
                   f"({type(exc).__name__}{': ' + text if text else ''}); the {self.task} goes on")
        with self._lock:
            self._instances[k].pop(name, None)
            self._open[k].discard(name)
            self._failures.append((k, message))
        self._say(k, message)

    def _say(self, k: int, message: str) -> None:
        run_dir = self._run_dirs[k]
        print(f"disbench: {run_dir}: {message}" if run_dir else f"disbench: {message}",
              file=self.stream or sys.stderr, flush=True)


def _takes_images(logger) -> bool:
    method = getattr(type(logger), "log_images", None)
    if method is None:
        return callable(getattr(logger, "log_images", None))
    return method is not Logger.log_images
