"""dvae_plugin: DynamicVAE (incremental non-linear PI control of β) for disbench.

The public API; the harness finds the plugin itself through the ``disbench``
entry point (:mod:`dvae_plugin.plugin`).
"""

from .models import ControlVAE, DynamicVAE, DynamicVAEPositional, DynamicVAEStep, DynamicVAEWindow1
from .pi_scheduler import PIBetaScheduler
from .positional_pi import PositionalPIBetaScheduler
from .setpoints import ConstantSetpoint, HybridAnnealing, StepAnnealing

__version__ = "0.1.0"

__all__ = [
    "DynamicVAE", "ControlVAE", "DynamicVAEPositional", "DynamicVAEStep", "DynamicVAEWindow1",
    "PIBetaScheduler", "PositionalPIBetaScheduler",
    "HybridAnnealing", "StepAnnealing", "ConstantSetpoint",
]
