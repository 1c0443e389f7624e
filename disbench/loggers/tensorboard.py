"""The built-in TensorBoard logger (``--logger tensorboard``).

Event files go to ``RUN_DIR/tensorboard/``. Scalars keep the tables' names —
``recon``, ``kl``, ``beta``, ``setpoint``, ``loss``, per-latent KL as one group
``kl_per_dim/z0``, ``kl_per_dim/z1``, ... — and metrics are ``metrics/NAME``
(with ``metrics/NAME/FACTOR``), so the runs of a comparison overlay in one
view: ``tensorboard --logdir OUT/runs``. TensorBoard is optional
(``pip install -e ".[tensorboard]"``) and imported only when the logger is used.
"""

from __future__ import annotations

import json

import numpy as np

from ..errors import DisbenchError
from .base import Logger, RunInfo, metric_tags, scalar_tags

FOLDER = "tensorboard"
MISSING = ("logger 'tensorboard' needs the tensorboard package, which is not installed: "
           "pip install -e \".[tensorboard]\" (or pip install tensorboard)")


class TensorBoardLogger(Logger):
    """Writes a run's scalars, metrics, images and config to ``RUN_DIR/tensorboard/``."""

    @classmethod
    def check(cls) -> None:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise DisbenchError(MISSING) from None

    def __init__(self, run: RunInfo):
        super().__init__(run)
        self.check()
        from torch.utils.tensorboard import SummaryWriter

        # A resumed run drops what an earlier process logged after its checkpoint.
        purge = run.start_step + 1 if run.start_step else None
        self.writer = SummaryWriter(log_dir=str(run.run_dir / FOLDER), purge_step=purge)

    def log_config(self, config: dict) -> None:
        self.writer.add_custom_scalars({"disbench": {
            "KL per latent": ["Multiline", [r"kl_per_dim/z\d+"]],
            "recon, KL": ["Multiline", [r"^recon$", r"^kl$"]],
            "beta": ["Multiline", [r"^beta$"]]}})
        settings = {k: v for k, v in config.items() if k != "config_gin"}
        self.writer.add_text("config/config.gin", _code(config.get("config_gin", "")), self.run.start_step)
        self.writer.add_text("config/run", _code(json.dumps(settings, indent=2, default=str)), self.run.start_step)
        self.writer.flush()

    def log_scalars(self, step: int, row: dict) -> None:
        for tag, value in scalar_tags(row).items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def log_metrics(self, step: int, metrics: dict, *, final: bool) -> None:
        for tag, value in metric_tags(metrics).items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def log_images(self, step: int, images: dict) -> None:
        for name, image in images.items():
            image = np.asarray(image, dtype=np.float32)
            if image.ndim == 3 and image.shape[-1] == 1:
                image = np.repeat(image, 3, axis=-1)
            self.writer.add_image(f"images/{name}", np.clip(image, 0.0, 1.0), step, dataformats="HWC")
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.add_text("status", status)
        self.writer.close()


def _code(text: str) -> str:
    """Text shown verbatim by TensorBoard's markdown: indented four spaces."""
    return "\n".join("    " + line for line in text.splitlines())
