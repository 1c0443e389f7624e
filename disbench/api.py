"""The Python API for trained runs and comparisons (``disbench.load_run``,
``disbench.load_compare``), for notebooks and scripts.

A run folder is data, not code: loading it parses its ``config.gin`` with
gin imports and includes refused, reads its checkpoint with
``weights_only=True`` (nothing is unpickled), and rebuilds the model and
dataset exactly as ``disbench evaluate`` does (:func:`disbench.trained.load_trained`).
Loading re-parses the run's configuration into gin's global configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .builders import resolve_device
from .compare.report import load_comparison
from .compare.tables import table_cells
from .errors import DisbenchError
from .execution import COLUMNS as EXECUTION_COLUMNS
from .models.architecture import IMAGE_SIZE
from .models.traversal import TRAVERSAL_VALUES, traverse
from .runs import CONFIG_NAME, METRICS_LOG_NAME
from .trained import load_dataset_of, load_trained
from .training.scalars import SCALARS_NAME, read_scalars

DEFAULT_BATCH = 1024  # images encoded or decoded at a time (the evaluation's batch)


class LoadedRun:
    """A finished run, rebuilt: its trained model (in eval mode), configuration,
    results and logs, with helpers that encode, decode and traverse."""

    def __init__(self, trained):
        self._trained = trained
        self.run_dir: Path = Path(trained.run_dir)
        self.model: torch.nn.Module = trained.model
        self._dataset = trained.dataset  # None until needed: load_run reads no images
        self.device: torch.device = torch.device(trained.built.device)
        self.protocol = trained.protocol          # disbench.config.Protocol
        self.settings = trained.run               # disbench.config.Run: model, seed, scheduler, loggers
        self.config_text: str = (self.run_dir / CONFIG_NAME).read_text()
        self.results: dict = trained.results
        self.scalars: list[dict] = read_scalars(self.run_dir / SCALARS_NAME)
        self.metrics_log: list[dict] = read_scalars(self.run_dir / METRICS_LOG_NAME)

    @property
    def dataset(self):
        """The run's dataset (an :class:`disbench.data.ImageDataset`), built on first use."""
        if self._dataset is None:
            self._dataset = load_dataset_of(self.run_dir)
        return self._dataset

    # -- what was recorded --------------------------------------------------------
    @property
    def model_name(self) -> str:
        return self.settings.model

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def latent_dim(self) -> int:
        return int(self.model.latent_dim)

    @property
    def execution(self) -> dict:
        """How the run was executed (``results.json["execution"]``: threads, device,
        CPU kernels, fused group, layout, compile mode, versions, command; see
        :mod:`disbench.execution`); empty for a run trained before it was recorded."""
        return dict(self.results.get("execution") or {})

    @property
    def metrics(self) -> dict:
        """The final metrics of ``results.json`` (name -> score, per_factor, ...)."""
        return dict(self.results.get("metrics") or {})

    def __repr__(self) -> str:
        return (f"LoadedRun({str(self.run_dir)!r}: {self.model_name} seed {self.seed}, "
                f"{self.results.get('steps')} steps on {self.protocol.dataset}, device {self.device})")

    # -- using the model -------------------------------------------------------------
    @torch.no_grad()
    def encode(self, images, batch_size: int = DEFAULT_BATCH):
        """The encoder's (μ, log σ²) of ``images``, each of shape (N, latent_dim).

        ``images``: a numpy array or a tensor, uint8 (0–255, as the datasets hold
        them) or float in [0, 1]; shaped (N, C, H, W), (N, H, W, C), (N, H, W)
        for one channel, or one image without N (then the results have no N
        either). Numpy in, float32 numpy arrays out; a tensor in, float32
        tensors on its device out. Encoded in batches of ``batch_size`` on the
        run's device, in eval mode, under no_grad.
        """
        as_numpy, single, x = self._images(images, "encode")
        mus, logvars = [], []
        for chunk in x.split(_batch(batch_size)):
            mu, logvar = self.model.encode(self._to_model(chunk))
            mus.append(mu.float())
            logvars.append(logvar.float())
        mu, logvar = torch.cat(mus), torch.cat(logvars)
        return self._out(mu, as_numpy, single, x.device), self._out(logvar, as_numpy, single, x.device)

    @torch.no_grad()
    def decode(self, z, batch_size: int = DEFAULT_BATCH):
        """Images (N, C, H, W) in [0, 1] decoded from codes ``z`` (N, latent_dim), or
        one image from one code (latent_dim,): the decoder's mean, sigmoid of its
        logits (for both likelihoods). Numpy in, numpy out; a tensor in, a tensor
        on its device out."""
        as_numpy = not isinstance(z, torch.Tensor)
        z_tensor = torch.as_tensor(np.asarray(z) if as_numpy else z)
        single = z_tensor.ndim == 1
        z_tensor = z_tensor.unsqueeze(0) if single else z_tensor
        if z_tensor.ndim != 2 or z_tensor.shape[1] != self.latent_dim:
            raise DisbenchError(f"decode: expected codes of shape (N, {self.latent_dim}) or ({self.latent_dim},), "
                                f"got {tuple(z_tensor.shape)}")
        if not z_tensor.is_floating_point():
            z_tensor = z_tensor.float()
        self._eval()
        out = [torch.sigmoid(self.model.decode(chunk.to(self.device, torch.float32))).float()
               for chunk in z_tensor.split(_batch(batch_size))]
        return self._out(torch.cat(out), as_numpy, single, z_tensor.device)

    @torch.no_grad()
    def traverse(self, image, latent: int | Sequence[int], values=None):
        """Decoded images of ``image`` with latent ``latent`` set to each of
        ``values`` (default: 10 values from −3 to 3, as ``disbench report``
        draws) and the other latents at the encoder mean: shape (len(values),
        C, H, W) in [0, 1]; for a list of latents, (len(latents), len(values),
        C, H, W). ``image``: one image, in any form :meth:`encode` takes."""
        as_numpy, single, x = self._images(image, "traverse")
        if not single and x.shape[0] != 1:
            raise DisbenchError(f"traverse: expected one image, got {x.shape[0]}")
        latents = [latent] if isinstance(latent, (int, np.integer)) else list(latent)
        bad = [j for j in latents if not isinstance(j, (int, np.integer)) or not 0 <= int(j) < self.latent_dim]
        if bad or not latents:
            raise DisbenchError(f"traverse: latent {bad[0] if bad else latent!r} is not one of 0 … "
                                f"{self.latent_dim - 1}")
        values = TRAVERSAL_VALUES if values is None else [float(v) for v in np.asarray(values).reshape(-1)]
        self._eval()
        tiles = torch.from_numpy(traverse(self.model, x[0], [int(j) for j in latents], values))
        tiles = tiles[0] if isinstance(latent, (int, np.integer)) else tiles
        return tiles.numpy() if as_numpy else tiles.to(x.device)

    # -- helpers ---------------------------------------------------------------------
    def _eval(self) -> None:
        self.model.eval()

    def _images(self, images, what: str) -> tuple[bool, bool, torch.Tensor]:
        """(numpy given?, one image given?, the images as (N, C, H, W), dtype kept)."""
        as_numpy = not isinstance(images, torch.Tensor)
        x = torch.from_numpy(np.ascontiguousarray(images)) if as_numpy else images
        c = int(self.model.num_channels)
        single = x.ndim in (2, 3) and not (x.ndim == 3 and c == 1 and x.shape[0] != 1 and x.shape[-1] != 1)
        if x.ndim == 2 and c == 1:       # (H, W)
            x = x[None, None]
        elif x.ndim == 3 and single:     # (C, H, W) or (H, W, C)
            x = x[None] if x.shape[0] == c else x.permute(2, 0, 1)[None] if x.shape[-1] == c else x
        elif x.ndim == 3:                # (N, H, W), one channel
            x = x[:, None]
        if x.ndim == 4 and x.shape[1] != c and x.shape[-1] == c:
            x = x.permute(0, 3, 1, 2)    # (N, H, W, C)
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, IMAGE_SIZE, IMAGE_SIZE):
            raise DisbenchError(
                f"{what}: expected {c}-channel {IMAGE_SIZE}x{IMAGE_SIZE} images shaped (N, C, H, W) or (N, H, W, C)"
                f"{' or (N, H, W)' if c == 1 else ''}, or one such image; got shape {tuple(images.shape)}")
        if x.dtype == torch.bool:
            x = x.to(torch.uint8) * 255
        elif x.dtype != torch.uint8:
            if not x.is_floating_point():
                raise DisbenchError(f"{what}: images must be uint8 (0–255) or float in [0, 1], got {x.dtype}")
            if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
                raise DisbenchError(f"{what}: float images must lie in [0, 1] (got values from {float(x.min()):.3g} "
                                    f"to {float(x.max()):.3g}); pass uint8 for 0–255")
        self._eval()
        return as_numpy, single, x

    def _to_model(self, chunk: torch.Tensor) -> torch.Tensor:
        # the evaluation's own conversion (disbench.metrics.Representation): to the device, float, / 255
        chunk = chunk.to(self.device)
        return chunk.float().div_(255.0) if chunk.dtype == torch.uint8 else chunk.float()

    @staticmethod
    def _out(t: torch.Tensor, as_numpy: bool, single: bool, device):
        t = t[0] if single else t
        return t.cpu().numpy() if as_numpy else t.to(device)


def _batch(batch_size: int) -> int:
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DisbenchError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def load_run(path, device="cpu") -> LoadedRun:
    """A finished run folder, rebuilt on ``device`` ('cpu', 'cuda', 'cuda:N' or 'auto').

    A folder that is not a complete run (no results.json / config.gin /
    checkpoint, or not finished) is refused with a one-line
    :class:`disbench.errors.DisbenchError`; nothing is unpickled and no gin
    ``import`` line is executed.
    """
    chosen = device if isinstance(device, torch.device) else resolve_device(str(device))
    return LoadedRun(load_trained(Path(path), device=chosen, data=False))


# -- comparisons ------------------------------------------------------------------

class CompareRows(list):
    """The rows of a comparison's table (a list of dicts), with :meth:`to_pandas`."""

    def to_pandas(self):
        try:
            import pandas
        except ImportError:
            raise DisbenchError("to_pandas needs pandas, which is not installed: pip install -e \".[pandas]\" "
                                "(or pip install pandas)") from None
        extra = list(dict.fromkeys(k for row in self for k in row if k not in ROW_KEYS))  # a sweep's bindings
        return pandas.DataFrame(list(self), columns=[ROW_KEYS[0], *extra, *ROW_KEYS[1:]])


ROW_KEYS = ("model", "metric", "representation", "column", "mean", "std", "median", "q1", "q3", "n", "failed", "seeds",
            *EXECUTION_COLUMNS)


def load_compare(path, *, as_dataframe: bool = False, same_execution: bool = False):
    """The rows of a comparison's table, as ``table.csv`` holds them (one per
    model × table × column: ``model, metric, representation, column, mean, std,
    median, q1, q3, n, failed, seeds`` (``seeds``: the row's seeds, a list) and the execution columns ``exec_device``, ``exec_cpu``,
    ``exec_threads``, ``exec_group_size``, ``exec_layout``, ``exec_compile``,
    ``exec_deterministic``, ``exec_backend``, ``exec_torch`` (the value among the
    row's averaged runs, or their values joined by ``; ``); ``metric`` is ``final`` for recon / kl / beta and
    ``dynamics`` for the controller and emergence columns, whose ``representation``
    is None; ``mean``/``std`` are None where the table shows
    "—"), computed afresh from the runs' results. ``as_dataframe=True`` (or
    ``.to_pandas()`` on the list) gives a pandas DataFrame. ``same_execution=True``
    refuses a row whose runs were executed differently (as ``--same-execution``).
    """
    compare_dir = Path(path)
    if not compare_dir.is_dir():
        raise DisbenchError(f"{compare_dir} is not a directory")
    comparison, _ = load_comparison(compare_dir, same_execution=same_execution)
    rows = CompareRows({**dict(zip(ROW_KEYS, (model, metric, representation, col, st.mean, st.std, st.median, st.q1,
                                              st.q3, st.n, failed, seeds, *executed.values()))), **bindings}
                       for model, metric, representation, col, st, failed, seeds, bindings, executed
                       in table_cells(comparison))
    return rows.to_pandas() if as_dataframe else rows
