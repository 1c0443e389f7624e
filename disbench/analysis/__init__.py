"""What a run's log says about it beyond its metrics: how its β controller
tracked the set point, and when its latents emerged."""

from pathlib import Path

from ..runs import METRICS_LOG_NAME
from ..training.scalars import SCALARS_NAME, read_scalars
from .controller import controller_quality
from .emergence import Emergence

__all__ = ["analyse_run", "controller_quality", "Emergence"]


def analyse_run(run_dir: Path, scheduler_config: dict | None = None) -> dict:
    """``{"controller": ..., "emergence": ...}`` from a run folder's logs (each None
    when its log has nothing to say: an open-loop β, no per-latent KL)."""
    rows = read_scalars(Path(run_dir) / SCALARS_NAME)
    metric_rows = read_scalars(Path(run_dir) / METRICS_LOG_NAME)
    beta_min = (scheduler_config or {}).get("beta_min")
    return {"controller": controller_quality(rows, beta_min), "emergence": Emergence()(rows, metric_rows)}
