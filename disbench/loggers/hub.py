"""Delivering a run's rows, metrics and images to its loggers without ever
holding up training.

The training loop hands each member's rows (at log steps), metrics and images
(at image steps) to a :class:`LoggerHub`, which queues them; one background
thread calls the loggers in order. Nothing the step does waits for a logger.
A logger that raises is reported once — one line on stderr and a line in its
run's ``results.json`` under ``logger_errors`` — and dropped; the run and its
other loggers go on.
"""

from __future__ import annotations

import copy
import queue
import sys
import threading
from pathlib import Path
from typing import Sequence

from ..errors import DisbenchError
from .base import Logger, RunInfo

# How long the end of a run waits for its loggers to finish their queue.
CLOSE_TIMEOUT_SECONDS = 60.0


def check_loggers(names: Sequence[str], registry=None) -> None:
    """Refuse unknown logger names (with the known ones) and loggers that cannot
    work here (their ``check()``: a library not installed), in one line each."""
    if registry is None:
        from ..plugins import get_registry

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
    :meth:`scalars`, :meth:`metrics`, :meth:`images`, and :meth:`finish` at the end."""

    def __init__(self, names: Sequence[Sequence[str]], registry=None, stream=None):
        if registry is None:
            from ..plugins import get_registry

            registry = get_registry("loggers")
        self.registry = registry
        self.names = [tuple(n) for n in names]
        self.stream = stream  # where failures are reported (default: sys.stderr at the time)
        self._instances: list[dict] = [{} for _ in self.names]
        self._run_dirs: list[Path | None] = [None] * len(self.names)
        self._closed = [False] * len(self.names)
        self._failures: list[tuple[int, str]] = []
        self._recorded = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_runs(cls, names: Sequence[Sequence[str]]) -> "LoggerHub | None":
        """A hub for these members' loggers, or None when no member has one."""
        return cls(names) if any(names) else None

    # -- from the training loop (main thread) ----------------------------------
    def start(self, k: int, info: RunInfo, config: dict) -> None:
        """Create member ``k``'s loggers (here, before training) and queue its config."""
        self._run_dirs[k] = Path(info.run_dir)
        for name in self.names[k]:
            try:
                logger = self.registry.get(name)(info)
            except Exception as exc:
                self._fail(k, name, "starting", exc)
                continue
            with self._lock:
                self._instances[k][name] = logger
        if self._instances[k]:
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
        ``timeout`` seconds) for the loggers to work through their queue."""
        for k, status in enumerate(statuses):
            self.close(k, status)
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            print(f"disbench: loggers still busy after {timeout:.0f} s; not waiting for them",
                  file=self.stream or sys.stderr, flush=True)

    def new_failures(self) -> dict[int, list[str]]:
        """Failures since the last call, by member (for results.json)."""
        with self._lock:
            fresh, self._recorded = self._failures[self._recorded:], len(self._failures)
        out: dict[int, list[str]] = {}
        for k, message in fresh:
            out.setdefault(k, []).append(message)
        return out

    def record_failures(self) -> dict[int, dict]:
        """Append new failures to each member's ``results.json`` (``logger_errors``);
        return the updated results by member. Call from the thread that writes
        results.json (the training loop's)."""
        from ..runs import read_results, update_results

        updated = {}
        for k, messages in self.new_failures().items():
            run_dir = self._run_dirs[k]
            if run_dir is None:
                continue
            earlier = (read_results(run_dir) or {}).get("logger_errors") or []
            updated[k] = update_results(run_dir, logger_errors=earlier + messages)
        return updated

    # -- the background thread ---------------------------------------------------
    def _put(self, k: int, method: str, where: str, args: tuple, kwargs: dict) -> None:
        with self._lock:
            if not self._instances[k]:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="disbench-loggers", daemon=True)
                self._thread.start()
        self._queue.put((k, method, where, args, kwargs))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            k, method, where, args, kwargs = item
            with self._lock:
                loggers = list(self._instances[k].items())
                if method == "close":
                    self._instances[k] = {}
            for name, logger in loggers:
                function = getattr(logger, method, None)
                if function is None:
                    continue
                try:
                    function(*args, **kwargs)
                except Exception as exc:
                    self._fail(k, name, f"{method}{where}", exc)

    def _fail(self, k: int, name: str, where: str, exc: BaseException) -> None:
        text = " ".join(str(exc).split())
        text = text if len(text) <= 200 else text[:199] + "…"
        message = (f"logger {name!r} failed in {where} and was dropped "
                   f"({type(exc).__name__}{': ' + text if text else ''}); the run goes on")
        with self._lock:
            self._instances[k].pop(name, None)
            self._failures.append((k, message))
        run_dir = self._run_dirs[k]
        print(f"disbench: {run_dir}: {message}" if run_dir else f"disbench: {message}",
              file=self.stream or sys.stderr, flush=True)


def _takes_images(logger) -> bool:
    method = getattr(type(logger), "log_images", None)
    if method is None:
        return callable(getattr(logger, "log_images", None))
    return method is not Logger.log_images
