"""DynamicVAE, ControlVAE and the paper's Table 2 ablations (docs/objective.md, §6).

All share the β-VAE objective ``recon + β(t)·KL`` and the conv64
architecture of the harness; they differ only in how β(t) is chosen:

=================  =========================================================
``dynamicvae``     incremental PI (docs/controllers.md), β(0) = 150, hybrid set point
``controlvae``     positional PI (docs/controllers.md), ControlVAE's gains, step set point
``dynamicvae_p``   positional PI with DynamicVAE's gains, window and hybrid
                   set point: no large β(0)
``dynamicvae_step`` incremental PI, step set point (no ramp), period 6,000
``dynamicvae_t``   incremental PI without the moving average (window 1)
=================  =========================================================

Each default below applies only where gin binds nothing else, so
``gin/models/NAME.gin``, a protocol or ``--gin_param`` can change any of them
(e.g. ``PIBetaScheduler.ki = 0.01``), and ``scheduler=`` replaces the whole
controller.
"""

from __future__ import annotations

import inspect

import gin

from disbench.models import VAEModel

from .pi_scheduler import PIBetaScheduler
from .positional_pi import PositionalPIBetaScheduler
from .setpoints import HybridAnnealing, StepAnnealing


def configured(cls, **defaults):
    """``cls(**defaults)``, except that parameters bound in gin keep their binding."""
    bound = gin.get_bindings(cls)
    return cls(**{k: v for k, v in defaults.items() if k not in bound})


def dynamicvae_gains() -> dict:
    """DynamicVAE's gains, window and β_min: PIBetaScheduler's defaults (paper appendix A)."""
    parameters = inspect.signature(PIBetaScheduler.__init__).parameters
    return {name: parameters[name].default for name in ("kp", "ki", "beta_min", "window")}


@gin.configurable
class DynamicVAE(VAEModel):
    """β-VAE whose β(t) follows DynamicVAE's incremental non-linear PI controller."""

    def default_scheduler(self):
        return PIBetaScheduler()


@gin.configurable
class ControlVAE(VAEModel):
    """β-VAE with ControlVAE's positional PI controller (Shao et al. 2020)."""

    def default_scheduler(self):
        return PositionalPIBetaScheduler()


@gin.configurable
class DynamicVAEPositional(VAEModel):
    """Ablation DynamicVAE-P: the positional PI in place of the incremental one."""

    def default_scheduler(self):
        return configured(PositionalPIBetaScheduler, **dynamicvae_gains(), setpoint=HybridAnnealing)


@gin.configurable
class DynamicVAEStep(VAEModel):
    """Ablation DynamicVAE-step: a step set point (0.15 every 6,000 steps) without the ramp."""

    def default_scheduler(self):
        return configured(PIBetaScheduler, setpoint=lambda: configured(StepAnnealing, period=6000))


@gin.configurable
class DynamicVAEWindow1(VAEModel):
    """Ablation DynamicVAE-T: no moving average (the raw batch KL is fed back)."""

    def default_scheduler(self):
        return configured(PIBetaScheduler, window=1)


MODELS = {
    "dynamicvae": DynamicVAE,
    "controlvae": ControlVAE,
    "dynamicvae_p": DynamicVAEPositional,
    "dynamicvae_step": DynamicVAEStep,
    "dynamicvae_t": DynamicVAEWindow1,
}
