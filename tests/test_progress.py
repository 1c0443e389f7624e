"""Progress that reaches a log: with stderr not a terminal, plain lines at a bounded rate."""

import io
import sys

from disbench import progress
from disbench.progress import LogProgress, progress_bar


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_log_gets_a_line_per_5_percent_or_30_seconds_at_most_one_a_second(monkeypatch, capsys):
    clock = Clock()
    bar = LogProgress(total=1000, desc="vae s1", unit="step", clock=clock)
    bar.set_postfix({"β": "1", "KL": "3.2", "recon": "812"})
    for _ in range(100):  # 10 % in 10 s: a line at 5 % and at 10 %
        clock.now += 0.1
        bar.update(1)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["vae s1: 50/1,000 steps (5%), 10 steps/s, 1:35 left; β 1, KL 3.2, recon 812",
                     "vae s1: 100/1,000 steps (10%), 10 steps/s, 1:30 left; β 1, KL 3.2, recon 812"]
    for _ in range(95):  # 9.5 % in 95 s: a line every 30 s
        clock.now += 1.0
        bar.update(1)
    assert len(capsys.readouterr().err.splitlines()) == 3
    for _ in range(400):  # 5 % in 0.4 s: at most one line a second
        clock.now += 0.001
        bar.update(1)
    assert len(capsys.readouterr().err.splitlines()) <= 1
    slow = LogProgress(total=10**6, desc="slow", unit="step", clock=clock, initial=500)
    clock.now += 31  # no 5 % yet, but 30 s: a line
    slow.update(1)
    assert capsys.readouterr().err.startswith("slow: 501/1,000,000 steps (0%), 0.0323 steps/s, ")


def test_progress_bar_is_plain_lines_off_a_terminal_and_silent_when_disabled(monkeypatch):
    monkeypatch.delenv("DISBENCH_NO_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert isinstance(progress_bar(total=3), LogProgress)
    assert not isinstance(progress_bar(total=3, disable=True), LogProgress)
    assert list(progress_bar([1, 2, 3], desc="x")) == [1, 2, 3]
    monkeypatch.setenv("DISBENCH_NO_PROGRESS", "1")
    assert not isinstance(progress_bar(total=3), LogProgress)
    assert progress.duration(3725) == "1:02:05" and progress.duration(65) == "1:05"
