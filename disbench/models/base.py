"""The model interface every model implements, and the β-VAE objective.

The loop trains a *group* of K runs (K = 1: one run; several models may share
one) as one computation (:mod:`disbench.training.group`): the members' parameters are
stacked and each method below runs once per member under ``torch.func.vmap``.
One training step, as the loop runs it::

    terms = model(x, noise)                         # per member: recon, KL, per-dim KL, ...
    beta = schedulers.step(terms.kl.detach())       # the [K] KLs -> [K] βs
    loss, extras = model.loss(terms, beta, step)    # per member; default recon + β·KL
    sum of the members' losses .backward(); one Adam step (element-wise: K Adams)
    loss, extras = model.auxiliary_loss(terms, other, step)  # optional, e.g. FactorVAE's D,
    .backward(); its own Adam step                           # over auxiliary_parameters()

So a model is a pure function of its parameters and inputs: no randomness of
its own (the group draws each member's noise from that member's generator and
passes it in), no in-place change of parameters, no host reads. ``loss`` sees
the auxiliary parameters (e.g. the discriminator) as constants, and
``auxiliary_loss`` the main ones.

A model is built with the protocol's architecture (``Protocol.architecture``:
a registered encoder/decoder, :mod:`.architecture`; latent size, channels,
likelihood) and the dataset size; everything else is the model's own, set
with gin. Members of one group may differ in their scheduler's configuration,
and in their model and its configuration (``config()``) too when their forward
pass is the same computation (:mod:`disbench.training.parts`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, Callable

import torch
from torch import nn
from torch.func import functional_call
from torch.utils._pytree import tree_map

from ..components import has_method, resolve_component
from ..schedulers import ConstantBeta
from ..registry import get_registry
from .architecture import DEFAULT_ARCHITECTURE
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

    @cached_property
    def kl(self) -> torch.Tensor:  # summed once per step, however often it is read
        return self.kl_per_dim.sum(-1)

    def as_dict(self) -> dict:
        """The fields as a plain dict (what vmap can return)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


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
        architecture: str = DEFAULT_ARCHITECTURE,
    ):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.num_channels = int(num_channels)
        self.likelihood = likelihood
        self.dataset_size = dataset_size
        self.architecture = architecture
        build = get_registry("architectures").get(architecture)
        self.encoder, self.decoder = build(self.num_channels, self.latent_dim)
        self.scheduler = resolve_scheduler(scheduler, self.default_scheduler, f"{type(self).__name__}.scheduler")

    def default_scheduler(self):
        return ConstantBeta(1.0)

    # The encoder's and decoder's arithmetic (Protocol.precision 'bf16': torch.bfloat16);
    # None: their parameters' (float32). Set on the model a group trains; the losses,
    # the KL and everything after the decoder stay in float32 whatever it is.
    compute_dtype: torch.dtype | None = None

    # -- forward ---------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return in_dtype(self.encoder, self.compute_dtype, x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return in_dtype(self.decoder, self.compute_dtype, z)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> Terms:
        """``noise``: the standard normal draw of the reparameterisation, shape (batch,
        latent_dim); drawn here (global RNG) when not given."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, noise)
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

    def auxiliary_loss(self, terms: Terms, other: dict, step: int):
        """A second objective with its own optimizer, minimised after the main step
        (FactorVAE's discriminator), or None. ``other`` holds a second batch ``x``
        with its ``noise`` and a ``uniform`` draw of shape (batch, latent_dim), from
        the member's own generators."""
        return None

    # -- what the loop optimises and checkpoints -----------------------------
    def auxiliary_parameters(self) -> dict[str, dict]:
        """The model's own optimizers: ``{name: {"prefix": "discriminator.", "lr": ..., "betas": ...}}``
        — an Adam over the parameters whose names start with ``prefix``. All
        other parameters are the main Adam's."""
        return {}

    def config(self) -> dict:
        config = {"class": type(self).__name__, "latent_dim": self.latent_dim,
                  "num_channels": self.num_channels, "likelihood": self.likelihood}
        if self.architecture != DEFAULT_ARCHITECTURE:  # added later: earlier runs' configs stay as they were
            config["architecture"] = self.architecture
        return config


def in_dtype(module: nn.Module, dtype: torch.dtype | None, *inputs: torch.Tensor):
    """``module(*inputs)`` computed in ``dtype`` (its parameters and inputs cast, the
    casts differentiable), its outputs back in float32; ``dtype`` None: as it is.
    Explicit casts rather than autocast, which does not reach convolutions under vmap
    on the CPU."""
    if dtype is None:
        return module(*inputs)
    params = {name: p.to(dtype) for name, p in module.named_parameters()}
    out = functional_call(module, params, tuple(t.to(dtype) for t in inputs))
    return tree_map(lambda t: t.float(), out)


def resolve_scheduler(scheduler: Any, default: Callable[[], Any], owner: str = "scheduler"):
    """Turn a scheduler argument (None, name, class, instance, factory) into a scheduler."""
    return resolve_component(scheduler, kind="schedulers", default=default, is_instance=has_method("step"),
                             owner=owner)
