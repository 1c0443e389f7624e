"""A later ``disbench evaluate``: its metrics go to the run's loggers too.

The run's loggers (``Run.loggers`` in its ``config.gin``) are created again,
for the finished run (``RunInfo.evaluation``, ``start_step`` its last step),
and receive the evaluated metrics as final metrics at the run's last step,
then ``close("complete")``. Failures are handled as in training: a logger that
cannot start or raises is reported once on stderr and recorded under
``logger_errors`` in ``results.json``; the evaluation, already written, stands.
"""

from __future__ import annotations

from pathlib import Path

from .base import RunInfo
from .hub import LoggerHub


def send_evaluated(run_dir: Path, built, results: dict, metrics: dict, *, stream=None) -> dict:
    """Send ``metrics`` (evaluated results by name) of the run ``built`` from
    ``run_dir`` to its loggers; return ``results`` (the run's results.json after
    the evaluation) with any logger failures recorded."""
    hub = LoggerHub.for_runs([built.run.loggers], stream=stream, task="evaluation")
    if hub is None or not metrics:
        return results
    step = int(results.get("steps") or built.protocol.steps)
    info = RunInfo(run_dir=Path(run_dir), model=built.run.model, seed=built.run.seed, fingerprint=built.fingerprint,
                   steps=built.protocol.steps, start_step=step, evaluation=True)
    hub.start(0, info, None)  # no config: the loggers had it when the run trained
    hub.metrics(0, step, metrics, final=True)
    hub.finish(["complete"])
    return hub.record_failures().get(0, results)
