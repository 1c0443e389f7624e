"""A third-party disbench plugin: watch runs in MLflow (``--logger mlflow``).

    pip install -e examples/mlflow_logger       # installs mlflow too
    disbench compare --models dynamicvae,vae --seeds 1-3 --protocol quick --out cmp --logger mlflow \
        --gin_param "MLflowLogger.experiment = 'quick'"

Each run (each member of a fused group) is one MLflow run in the experiment
(default ``disbench``) of the tracking server ``MLflowLogger.tracking_uri``
(default: MLflow's own, ``$MLFLOW_TRACKING_URI`` or ``./mlruns``), named
``MODEL/seedS`` for a comparison's runs. Its metrics keep disbench's names
(``recon``, ``kl``, ``beta``, ``kl_per_dim/z0``, ``metrics/NAME``; characters
MLflow refuses become ``_``), its parameters are the protocol, model and
scheduler settings, ``config.gin`` is an artifact, images are artifacts
``images/NAME/step_N.png``. The MLflow run id is kept in
``RUN_DIR/mlflow-run-id``, so a resumed run continues the same MLflow run.
mlflow is imported only when a run uses this logger.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import gin

from disbench.errors import DisbenchError
from disbench.hookspecs import hookimpl
from disbench.loggers import Logger, metric_tags, scalar_tags

RUN_ID_FILE = "mlflow-run-id"
MISSING = "logger 'mlflow' needs the mlflow package, which is not installed: pip install mlflow"
STATUS = {"complete": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}


def _mlflow():
    try:
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise DisbenchError(MISSING) from None
    return MlflowClient, Metric, Param


def key(name: str) -> str:
    """A metric or parameter name MLflow accepts (letters, digits, _ - . / and space)."""
    return re.sub(r"[^\w\-./ ]", "_", name)


def flatten(settings: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for name, value in settings.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{name}."))
        elif value is not None:
            out[key(prefix + str(name))] = str(value)[:500]
    return out


@gin.configurable(denylist=["run"])
class MLflowLogger(Logger):
    """One disbench run as one MLflow run."""

    @classmethod
    def check(cls) -> None:
        _mlflow()

    def __init__(self, run, tracking_uri: str | None = None, experiment: str = "disbench"):
        super().__init__(run)
        client_class, self.Metric, self.Param = _mlflow()
        self.client = client_class(tracking_uri=tracking_uri)
        id_file = Path(run.run_dir) / RUN_ID_FILE
        if id_file.is_file():
            self.run_id = id_file.read_text().strip()
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found is not None else self.client.create_experiment(experiment)
            tags = {"disbench.model": run.model, "disbench.seed": str(run.seed),
                    "disbench.run_dir": str(run.run_dir), "disbench.protocol_fingerprint": run.fingerprint}
            self.run_id = self.client.create_run(experiment_id, run_name=run.name, tags=tags).info.run_id
            id_file.write_text(self.run_id + "\n")

    def log_config(self, config: dict) -> None:
        if self.run.start_step == 0:  # MLflow parameters cannot be logged twice
            settings = {k: v for k, v in config.items()
                        if k in ("model", "seed", "protocol", "model_config", "scheduler", "dataset")}
            self.client.log_batch(self.run_id, params=[self.Param(k, v) for k, v in flatten(settings).items()])
        self.client.log_text(self.run_id, config.get("config_gin", ""), "config.gin")

    def _metrics(self, step: int, values: dict) -> None:
        now = int(time.time() * 1000)
        metrics = [self.Metric(key(k), v, now, step) for k, v in values.items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def log_scalars(self, step: int, row: dict) -> None:
        self._metrics(step, scalar_tags(row))

    def log_metrics(self, step: int, metrics: dict, *, final: bool) -> None:
        self._metrics(step, metric_tags(metrics))

    def log_images(self, step: int, images: dict) -> None:
        for name, image in images.items():
            self.client.log_image(self.run_id, image, f"images/{name}/step_{step:08d}.png")

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=STATUS.get(status, "FAILED"))


@hookimpl
def register_loggers(registry):
    registry.add("mlflow", MLflowLogger)
