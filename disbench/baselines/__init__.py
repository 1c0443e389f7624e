"""The harness's built-in baselines, registered as an ordinary plugin."""

from ..hookspecs import hookimpl
from ..schedulers import ConstantBeta
from .vae import VAE, BetaVAEH


@hookimpl
def register_models(registry):
    registry.add("vae", VAE)
    registry.add("betavae_h", BetaVAEH)


@hookimpl
def register_schedulers(registry):
    registry.add("constant", ConstantBeta)
