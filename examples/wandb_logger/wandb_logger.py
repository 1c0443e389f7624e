"""A third-party disbench plugin: watch runs in Weights & Biases (``--logger wandb``).

    pip install -e examples/wandb_logger        # installs wandb too
    disbench train --model dynamicvae --protocol smoke --logger wandb \
        --gin_param "WandbLogger.project = 'my-project'" --gin_param "Protocol.image_every = 500"

Each run (each member of a fused group) is one W&B run, named ``MODEL/seedS``
for a comparison's runs and grouped by model; its scalars keep disbench's
names (``recon``, ``kl``, ``beta``, ``kl_per_dim/z0``, ...), metrics are
``metrics/NAME`` (and go to the run's summary at the end), images are
``images/reconstructions`` and ``images/traversal``. The W&B run id is kept in
``RUN_DIR/wandb-run-id``, so a resumed run (and a later ``disbench evaluate``)
continues the same W&B run.

Steps. W&B drops a row logged with ``step=`` at or below the largest step the
run already has, and a resumed disbench run logs again from its checkpoint
step (and ``evaluate`` logs at the run's last step). So the training step is
logged as a metric, ``step``, and every other metric is plotted against it
(``define_metric("*", step_metric="step")``), as W&B advises for steps that
may repeat; W&B's own step then just counts log calls and never goes back.
Rows, images and metrics of steps the W&B run already holds (its summary's
``step``, which W&B restores on resume) are not sent again, so a resumed run
shows each step once; final metrics always are (``evaluate`` may add new ones).
``WandbLogger.mode = 'offline'`` (or ``WANDB_MODE=offline``) logs without a
network; ``wandb sync`` uploads later. wandb is imported only when a run uses
this logger.
"""

from __future__ import annotations

from pathlib import Path

import gin

from disbench.errors import DisbenchError
from disbench.hookspecs import hookimpl
from disbench.loggers import Logger, metric_tags, scalar_tags

RUN_ID_FILE = "wandb-run-id"
STEP = "step"  # the training step, logged as a metric: the x-axis of every other one
MISSING = "logger 'wandb' needs the wandb package, which is not installed: pip install wandb"


def _wandb():
    try:
        import wandb
    except ImportError:
        raise DisbenchError(MISSING) from None
    return wandb


@gin.configurable(denylist=["run"])
class WandbLogger(Logger):
    """One disbench run as one W&B run."""

    @classmethod
    def check(cls) -> None:
        _wandb()

    def __init__(self, run, project: str = "disbench", entity: str | None = None, mode: str | None = None,
                 tags: tuple = ()):
        super().__init__(run)
        self.wandb = _wandb()
        id_file = Path(run.run_dir) / RUN_ID_FILE
        run_id = id_file.read_text().strip() if id_file.is_file() else None
        self.wb = self.wandb.init(
            project=project, entity=entity, mode=mode, tags=list(tags), name=run.name, group=run.model,
            dir=str(run.run_dir), id=run_id, resume="allow" if run_id else None,
            reinit="create_new",  # the members of a fused group are runs side by side in one process
        )
        if run_id is None:
            id_file.write_text(self.wb.id + "\n")
        self.wb.define_metric(STEP)
        self.wb.define_metric("*", step_metric=STEP)
        # The last training step an earlier process logged to this W&B run (W&B
        # restores the summary on resume); None for a new run. Fixed here: this
        # process's own steps only grow (rows, metrics and images share a step).
        self.held = self.wb.summary.get(STEP) if run_id else None

    def _log(self, step: int, values: dict, *, always: bool = False) -> None:
        """Log ``values`` at training step ``step``, unless an earlier process
        logged that step already (a resumed run logs again from its checkpoint)."""
        if always or self.held is None or step > self.held:
            self.wb.log({STEP: step, **values})

    def log_config(self, config: dict) -> None:
        settings = {k: v for k, v in config.items() if k != "config_gin"}
        self.wb.config.update(settings, allow_val_change=True)
        self.wb.summary["config_gin"] = config.get("config_gin", "")

    def log_scalars(self, step: int, row: dict) -> None:
        self._log(step, scalar_tags(row))

    def log_metrics(self, step: int, metrics: dict, *, final: bool) -> None:
        values = metric_tags(metrics)
        self._log(step, values, always=final)
        if final:
            for key, value in values.items():
                self.wb.summary[key] = value

    def log_images(self, step: int, images: dict) -> None:
        self._log(step, {f"images/{name}": self.wandb.Image(image[..., 0] if image.shape[-1] == 1 else image,
                                                            caption=f"{name}, step {step}")
                         for name, image in images.items()})

    def close(self, status: str) -> None:
        self.wb.summary["status"] = status
        self.wb.finish(exit_code=0 if status == "complete" else 1)


@hookimpl
def register_loggers(registry):
    registry.add("wandb", WandbLogger)
