"""What a logger is and what it receives."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RunInfo:
    """The run a logger watches (one member of a fused group)."""

    run_dir: Path
    model: str
    seed: int
    fingerprint: str
    steps: int                  # the planned number of training steps
    start_step: int = 0         # 0, or the checkpoint step a resumed run continues from
    group_index: int = 0        # this run's place in its fused group ...
    group_size: int = 1         # ... of this many runs (1: not fused)
    group_members: tuple = field(default=())  # the run folders of the group, in order
    evaluation: bool = False    # True: a later `disbench evaluate` of the finished run (start_step: its last step)

    @property
    def name(self) -> str:
        """A short label: ``MODEL/seedS`` for a compare's runs (``OUT/runs/MODEL/seedS``),
        else the run folder's name."""
        if re.fullmatch(r"seed\d+", self.run_dir.name):
            return f"{self.run_dir.parent.name}/{self.run_dir.name}"
        return self.run_dir.name


class Logger:
    """One run's logger. Subclass it and override what you need (every method
    here does nothing); a registered logger may also be any callable
    ``factory(run_info)`` returning an object with some of these methods.

    The constructor runs in the training process before the first step; the
    other methods run, in order, in a background thread. A method that raises
    is reported once (one line on stderr, ``logger_errors`` in results.json) and
    the logger is dropped; the run goes on. A logger that falls far behind
    loses the oldest queued rows and images (:mod:`disbench.loggers.backlog`).

    A later ``disbench evaluate`` of the finished run creates its loggers again
    (``run.evaluation`` true, ``run.start_step`` the run's last step) and calls
    only ``log_metrics(step, metrics, final=True)`` with the metrics it
    evaluated, then ``close("complete")``.
    """

    def __init__(self, run: RunInfo):
        self.run = run

    @classmethod
    def check(cls) -> None:
        """Raise :class:`disbench.errors.DisbenchError` when this logger cannot work
        here (its library is not installed, say). Runs before a run is created."""

    def log_config(self, config: dict) -> None:
        """Once, before the first row: the run's settings (``protocol``, ``run``,
        ``model_config``, ``scheduler``, ``protocol_fingerprint``, ...) and
        ``config_gin``, the text of its ``config.gin``."""

    def log_scalars(self, step: int, row: dict) -> None:
        """Each row written to ``scalars.jsonl`` (``row["step"] == step``), as written."""

    def log_metrics(self, step: int, metrics: dict, *, final: bool) -> None:
        """Metric results by name (``{"rmig": {"score": ..., "per_factor": {...}}}``):
        during training every ``Protocol.eval_every`` steps, and once at the end
        (``final=True``) with everything the run's ``results.json`` holds; a later
        ``disbench evaluate`` sends what it evaluated (``final=True``, at the run's
        last step: a step the logger may already have)."""

    def log_images(self, step: int, images: dict) -> None:
        """Every ``Protocol.image_every`` steps: ``{"reconstructions": ..., "traversal": ...}``,
        each an (H, W, C) float32 array in [0, 1]: inputs above their
        reconstructions, and one traversal row per latent (largest KL first)."""

    def close(self, status: str) -> None:
        """The run ended: ``complete``, ``failed`` or ``interrupted``."""


def scalar_tags(row: dict) -> dict[str, float]:
    """A scalar row under the names the tables use: ``recon``, ``kl``, ``beta``,
    ``setpoint``, ``loss``, ... and per-latent KL as one group
    ``kl_per_dim/z0``, ``kl_per_dim/z1``, ... (other lists: ``NAME/0``, ...)."""
    out: dict[str, float] = {}
    for key, value in row.items():
        if key == "step":
            continue
        if isinstance(value, (list, tuple)):
            prefix = "z" if key == "kl_per_dim" else ""
            for i, v in enumerate(value):
                if _number(v):
                    out[f"{key}/{prefix}{i}"] = float(v)
        elif _number(value):
            out[key] = float(value)
    return out


def metric_tags(metrics: dict) -> dict[str, float]:
    """Metric results as ``metrics/NAME`` (the score), ``metrics/NAME/FACTOR``
    (its per-factor parts) and ``metrics/NAME/SCORE_NAME`` (its named scores)."""
    out: dict[str, float] = {}
    for name, result in metrics.items():
        if not isinstance(result, dict):
            continue
        if _number(result.get("score")):
            out[f"metrics/{name}"] = float(result["score"])
        for part in ("per_factor", "scores"):
            for key, value in (result.get(part) or {}).items():
                if _number(value):
                    out[f"metrics/{name}/{key}"] = float(value)
    return out


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
