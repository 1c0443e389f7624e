"""A test-only disbench plugin: a tiny ground-truth dataset, a toy metric and
models that misbehave on purpose. It exercises the harness without dvae_plugin."""

from __future__ import annotations

import gin
import numpy as np
import torch

from disbench.data import DatasetInfo, FactorGridDataset, ImageDataset
from disbench.errors import DisbenchError
from disbench.hookspecs import hookimpl
from disbench.loggers import Logger
from disbench.metrics import require_factors
from disbench.models import VAEModel

TOY_FACTORS = {"pos_x": 6, "pos_y": 6, "size": 2}


def toy_images(sizes=TOY_FACTORS) -> torch.Tensor:
    """White squares on black, one per factor combination, in grid order."""
    nx, ny, ns = sizes["pos_x"], sizes["pos_y"], sizes["size"]
    images = np.zeros((nx, ny, ns, 64, 64), dtype=np.uint8)
    for ix in range(nx):
        for iy in range(ny):
            for s in range(ns):
                half = 6 + 4 * s
                cx, cy = 12 + ix * 8, 12 + iy * 8
                images[ix, iy, s, cy - half:cy + half, cx - half:cx + half] = 255
    return torch.from_numpy(images.reshape(-1, 1, 64, 64))


BUILDS = {"toy_squares": 0}  # how often the images were built (tests count them)


@gin.configurable("toy_squares", denylist=["metadata_only"])
def toy_squares(data_root=None, metadata_only=False):
    if metadata_only:
        return DatasetInfo("toy_squares", int(np.prod(list(TOY_FACTORS.values()))), (1, 64, 64), "bernoulli",
                           tuple(TOY_FACTORS), tuple(TOY_FACTORS.values()))
    BUILDS["toy_squares"] += 1
    return FactorGridDataset(
        name="toy_squares", images=toy_images(), source="generated: tests/toy_plugin.py",
        factor_names=tuple(TOY_FACTORS), factor_sizes=tuple(TOY_FACTORS.values()),
    )


def toy_unlabelled(data_root=None):
    return ImageDataset(name="toy_unlabelled", images=toy_images()[:16], source="generated", likelihood="gaussian")


@gin.configurable
class ToyMetric:
    """Mean absolute correlation between each factor and its best latent mean."""

    def __init__(self, num_samples: int = 50):
        self.num_samples = num_samples

    def __call__(self, representation, dataset, *, seed):
        require_factors(dataset, "toy_metric")
        rng = np.random.default_rng(seed)
        idx = dataset.sample_indices(self.num_samples, rng)
        mu, _ = representation.encode(idx)
        factors = dataset.factors[idx].astype(float)
        per = {}
        for k, name in enumerate(dataset.factor_names):
            corr = [abs(np.corrcoef(mu[:, j], factors[:, k])[0, 1]) for j in range(mu.shape[1])]
            per[name] = float(np.nan_to_num(np.max(corr)))
        return {"score": float(np.mean(list(per.values()))), "per_factor": per, "num_samples": self.num_samples}


class MisbehavingVAE(VAEModel):
    """A VAE that misbehaves from training step ``at`` on (each subclass its own way)."""

    def __init__(self, at: int, scheduler=None, **arch):
        self.at = at
        super().__init__(scheduler=scheduler, **arch)


@gin.configurable
class DivergingVAE(MisbehavingVAE):
    """Its loss turns NaN from step ``at`` on (tests the NaN guard)."""

    def __init__(self, at: int = 5, **kwargs):
        super().__init__(at, **kwargs)

    def loss(self, terms, beta, step):
        loss, extras = super().loss(terms, beta, step)
        if step >= self.at:
            loss = loss * float("nan")
        return loss, extras


class NaNGradient(torch.autograd.Function):
    """Identity forward; a NaN gradient backward (corrupts the weights, not the loss)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return x.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


@gin.configurable
class CorruptingVAE(MisbehavingVAE):
    """Its weights turn NaN in the optimizer step ``at``, while that step's logged
    loss is still finite (tests the parameter check before a checkpoint)."""

    def __init__(self, at: int = 20, **kwargs):
        super().__init__(at, **kwargs)

    def loss(self, terms, beta, step):
        loss, extras = super().loss(terms, beta, step)
        return (NaNGradient.apply(loss) if step == self.at else loss), extras


@gin.configurable
class InterruptedVAE(MisbehavingVAE):
    """Its training is interrupted (as by Ctrl-C) at step ``at``."""

    def __init__(self, at: int = 25, **kwargs):
        super().__init__(at, **kwargs)

    def loss(self, terms, beta, step):
        if step == self.at:
            raise KeyboardInterrupt
        return super().loss(terms, beta, step)


@gin.configurable
class NaNAfter:
    """β = 1, then NaN from step ``at`` on — in the run whose seed is ``seed`` only
    (a per-run scheduler with no group form: tests a member failing alone)."""

    def __init__(self, at: int = 15, seed: int = 2):
        try:
            self.failing = gin.query_parameter("Run.seed") == seed
        except ValueError:  # no seed bound (a configuration check before the runs)
            self.failing = False
        self.at, self.t = at, 0
        self.config = {"name": "toy_nan_after", "at": at, "seed": seed}

    def step(self, kl):
        self.t += 1
        return torch.full_like(kl, float("nan") if self.failing and self.t >= self.at else 1.0)

    def state_dict(self):
        return {"t": self.t}

    def load_state_dict(self, state):
        self.t = state["t"]


# What the test loggers received: (logger name, RunInfo, method, args), in order.
RECORDED: list = []


class RecordingLogger(Logger):
    """Records every call (tests compare what a logger gets with the run's files)."""

    label = "toy_recording"

    def __init__(self, run):
        super().__init__(run)
        self._record("__init__")

    def _record(self, method, *args):
        RECORDED.append((self.label, self.run, method, args))

    def log_config(self, config):
        self._record("log_config", config)

    def log_scalars(self, step, row):
        self._record("log_scalars", step, row)

    def log_metrics(self, step, metrics, *, final):
        self._record("log_metrics", step, metrics, final)

    def log_images(self, step, images):
        self._record("log_images", step, images)

    def close(self, status):
        self._record("close", status)


class FailingLogger(RecordingLogger):
    """Raises in its second ``log_scalars`` (and would in every later one)."""

    label = "toy_failing"

    def log_scalars(self, step, row):
        super().log_scalars(step, row)
        if sum(1 for r in RECORDED if r[0] == self.label and r[1] == self.run and r[2] == "log_scalars") >= 2:
            raise OSError("disk full")


class FailingAtStartLogger(RecordingLogger):
    label = "toy_failing_start"

    def __init__(self, run):
        raise RuntimeError("cannot reach the server")


class UnavailableLogger(Logger):
    @classmethod
    def check(cls):
        raise DisbenchError("logger 'toy_unavailable' needs the toylib package: pip install toylib")


@hookimpl
def register_loggers(registry):
    registry.add("toy_recording", RecordingLogger)
    registry.add("toy_failing", FailingLogger)
    registry.add("toy_failing_start", FailingAtStartLogger)
    registry.add("toy_unavailable", UnavailableLogger)


@hookimpl
def register_schedulers(registry):
    registry.add("toy_nan_after", NaNAfter)


@hookimpl
def register_datasets(registry):
    registry.add("toy_squares", toy_squares)
    registry.add("toy_unlabelled", toy_unlabelled)


@hookimpl
def register_metrics(registry):
    registry.add("toy_metric", ToyMetric)


class TinyEncoder(torch.nn.Module):
    """A third party's architecture: one dense layer each way."""

    def __init__(self, num_channels: int, latent_dim: int):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(num_channels * 64 * 64, 2 * latent_dim))

    def forward(self, x):
        return self.net(x).chunk(2, dim=1)


def tiny_architecture(num_channels: int, latent_dim: int):
    decoder = torch.nn.Sequential(torch.nn.Linear(latent_dim, num_channels * 64 * 64),
                                  torch.nn.Unflatten(1, (num_channels, 64, 64)))
    return TinyEncoder(num_channels, latent_dim), decoder


@hookimpl
def register_architectures(registry):
    registry.add("toy_tiny", tiny_architecture)


@hookimpl
def register_models(registry):
    registry.add("toy_diverging", DivergingVAE)
    registry.add("toy_corrupting", CorruptingVAE)
    registry.add("toy_interrupted", InterruptedVAE)
