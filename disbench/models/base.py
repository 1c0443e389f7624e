"""The model interface every model implements, and the β-VAE objective.

One training step, as the loop runs it::

    terms = model(x)                              # forward: recon, KL, per-dim KL, ...
    beta = model.scheduler.step(terms.kl.detach())
    loss, extras = model.loss(terms, beta, step)  # default: recon + beta * KL
    loss.backward(); optimizer.step()
    model.auxiliary_step(terms, next_batch, step) # e.g. FactorVAE's discriminator

A model is built with the protocol's architecture (latent size, channels,
likelihood) and the dataset size; everything else is the model's own, set
with gin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..components import has_method, resolve_component
from ..schedulers import ConstantBeta
from .architecture import Decoder, Encoder, kaiming_init
from .losses import kl_per_dimension, reconstruction_loss, reparameterize


@dataclass
class Terms:
    """What a forward pass produces; every loss is built from these."""

    x: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    logits: torch.Tensor
    recon: torch.Tensor
    kl_per_dim: torch.Tensor

    @property
    def kl(self) -> torch.Tensor:
        return self.kl_per_dim.sum()


class VAEModel(nn.Module):
    """Conv64 VAE with the objective ``recon + β(t) · KL`` (docs/objective.md).

    ``scheduler`` chooses β(t): None for the model's default
    (:meth:`default_scheduler`), a registered scheduler name, a scheduler
    class (a gin reference such as ``@PIBetaScheduler``), a scheduler object
    (``@PIBetaScheduler()``) or a zero-argument factory.
    """

    def __init__(
        self,
        latent_dim: int = 10,
        num_channels: int = 1,
        likelihood: str = "bernoulli",
        dataset_size: int | None = None,
        scheduler: Any = None,
    ):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.num_channels = int(num_channels)
        self.likelihood = likelihood
        self.dataset_size = dataset_size
        self.encoder = Encoder(self.num_channels, self.latent_dim)
        self.decoder = Decoder(self.num_channels, self.latent_dim)
        kaiming_init(self)
        self.scheduler = resolve_scheduler(scheduler, self.default_scheduler, f"{type(self).__name__}.scheduler")

    def default_scheduler(self):
        return ConstantBeta(1.0)

    # -- forward ---------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> Terms:
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        logits = self.decode(z)
        return Terms(
            x=x, mu=mu, logvar=logvar, z=z, logits=logits,
            recon=reconstruction_loss(logits, x, self.likelihood),
            kl_per_dim=kl_per_dimension(mu, logvar),
        )

    # -- objective ------------------------------------------------------------
    def loss(self, terms: Terms, beta, step: int) -> tuple[torch.Tensor, dict]:
        """The loss to minimise and extra scalars (0-dim tensors) to log."""
        return terms.recon + beta * terms.kl, {}

    def auxiliary_step(self, terms: Terms, next_batch: Callable[[], torch.Tensor], step: int) -> dict:
        """A model's own extra update after the main step (none by default)."""
        return {}

    # -- what the loop optimises and checkpoints -----------------------------
    def main_parameters(self):
        """Parameters of the main Adam optimizer (encoder and decoder)."""
        return list(self.encoder.parameters()) + list(self.decoder.parameters())

    def auxiliary_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimizers the model owns (checkpointed with the run)."""
        return {}

    def config(self) -> dict:
        return {"class": type(self).__name__, "latent_dim": self.latent_dim,
                "num_channels": self.num_channels, "likelihood": self.likelihood}


def resolve_scheduler(scheduler: Any, default: Callable[[], Any], owner: str = "scheduler"):
    """Turn a scheduler argument (None, name, class, instance, factory) into a scheduler."""
    return resolve_component(scheduler, kind="schedulers", default=default, is_instance=has_method("step"),
                             owner=owner)
