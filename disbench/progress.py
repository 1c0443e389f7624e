"""Progress: a bar on a terminal, plain lines in a log, nothing when disabled.

With stderr a terminal, a tqdm bar. Otherwise (a log file, a batch job) a
:class:`LogProgress`, which writes a plain line to stderr when a further 5 % is
done or 30 s have passed since its last line, whichever comes first, but at most
one line per second: the count, the rate, the time left and the postfix (a run's
current recon, KL and β), so a job's log shows it is alive. ``disable=True``, or
``DISBENCH_NO_PROGRESS`` set, prints nothing.
"""

from __future__ import annotations

import os
import sys
import time

from tqdm.auto import tqdm

LINE_EVERY_S = 30.0      # a line at least this often while work goes on
LINE_EVERY_SHARE = 0.05  # and one per 5 % done
MIN_GAP_S = 1.0          # never more than one per second


def progress_bar(iterable=None, *, disable: bool | None = None, **kwargs):
    if os.environ.get("DISBENCH_NO_PROGRESS") or disable:
        return tqdm(iterable, disable=True, **kwargs)
    if disable is None and not sys.stderr.isatty():
        return LogProgress(iterable, **kwargs)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, **kwargs)


class LogProgress:
    """The part of tqdm's interface disbench uses, as plain lines (see the module docstring)."""

    def __init__(self, iterable=None, *, total=None, initial=0, desc="", unit="it", clock=time.monotonic,
                 **_ignored):
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n = self.start_n = initial
        self.desc, self.unit, self.clock = desc, unit, clock
        self.started = self.last_line = clock()
        self.last_share = self._share()
        self.postfix = ""

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)

    def _share(self) -> float:
        return self.n / self.total if self.total else 0.0

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        share = self._share()
        due = now - self.last_line >= LINE_EVERY_S or share - self.last_share >= LINE_EVERY_SHARE
        if due and now - self.last_line >= MIN_GAP_S:
            print(self.line(now), file=sys.stderr, flush=True)
            self.last_line, self.last_share = now, share

    def set_postfix(self, values: dict | None = None, refresh: bool = True, **kwargs) -> None:
        items = {**(values or {}), **kwargs}
        self.postfix = ", ".join(f"{k} {v}" for k, v in items.items())

    def line(self, now: float) -> str:
        done = self.n - self.start_n
        rate = done / (now - self.started) if now > self.started else 0.0
        count = f"{self.n:,}/{self.total:,} {self.unit}s ({self._share():.0%})" if self.total else \
            f"{self.n:,} {self.unit}s"
        left = (f", {duration(max(self.total - self.n, 0) / rate)} left" if self.total and rate > 0 else "")
        return (f"{self.desc}: {count}, {rate:.3g} {self.unit}s/s{left}"
                + (f"; {self.postfix}" if self.postfix else ""))

    @staticmethod
    def write(text: str) -> None:
        """A message beside the progress, where tqdm's ``write`` puts it (stdout)."""
        print(text, flush=True)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
