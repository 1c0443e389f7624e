"""The plugin's hook implementations: what dvae_plugin contributes to disbench.

Found by the harness through the ``disbench`` entry point in setup.py, exactly
as a third-party plugin is.
"""

from disbench.hookspecs import hookimpl

from .metrics import METRICS
from .models import MODELS
from .pi_scheduler import PIBetaScheduler
from .positional_pi import PositionalPIBetaScheduler
from .setpoints import ConstantSetpoint, HybridAnnealing, StepAnnealing
from .stability.cli import add_parser


@hookimpl
def register_models(registry):
    registry.add_all(MODELS)


@hookimpl
def register_schedulers(registry):
    registry.add("pi", PIBetaScheduler)
    registry.add("positional_pi", PositionalPIBetaScheduler)


@hookimpl
def register_setpoints(registry):
    registry.add("hybrid", HybridAnnealing)
    registry.add("step", StepAnnealing)
    registry.add("constant", ConstantSetpoint)


@hookimpl
def register_metrics(registry):
    registry.add_all(METRICS)


@hookimpl
def register_commands(subparsers):
    add_parser(subparsers)
