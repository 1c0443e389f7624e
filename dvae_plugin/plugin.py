"""The plugin's hook implementations: what dvae_plugin contributes to disbench.

Found by the harness through the ``disbench`` entry point in setup.py, exactly
as a third-party plugin is.
"""

from disbench.hookspecs import hookimpl


@hookimpl
def register_models(registry):
    from .models import MODELS

    registry.add_all(MODELS)


@hookimpl
def register_schedulers(registry):
    from .pi_scheduler import PIBetaScheduler
    from .positional_pi import PositionalPIBetaScheduler

    registry.add("pi", PIBetaScheduler)
    registry.add("positional_pi", PositionalPIBetaScheduler)


@hookimpl
def register_setpoints(registry):
    from .setpoints import ConstantSetpoint, HybridAnnealing, StepAnnealing

    registry.add("hybrid", HybridAnnealing)
    registry.add("step", StepAnnealing)
    registry.add("constant", ConstantSetpoint)


@hookimpl
def register_metrics(registry):
    from .metrics import METRICS

    registry.add_all(METRICS)


@hookimpl
def register_commands(subparsers):
    from .stability.cli import add_parser

    add_parser(subparsers)
