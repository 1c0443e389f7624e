"""Loggers: plugins that watch runs (TensorBoard, W&B, MLflow, ...).

A logger is registered through the ``register_loggers`` hook and chosen per run
with ``--logger NAME`` or ``Run.loggers``. :class:`Logger` states what it
receives; :class:`LoggerHub` (:mod:`.hub`) delivers it from the training loop
in a background thread, through a bounded queue (:mod:`.backlog`), so that a
logger never stops or slows a run. A later ``disbench evaluate`` sends its
metrics to the run's loggers too (:mod:`.evaluated`).
"""

from .base import Logger, RunInfo, metric_tags, scalar_tags

__all__ = ["Logger", "RunInfo", "metric_tags", "scalar_tags"]
