"""The harness's built-in baselines (docs/baselines.md), registered as an ordinary plugin."""

from ..hookspecs import hookimpl
from ..models.architecture import ARCHITECTURES
from ..schedulers import ConstantBeta
from .betatcvae import BetaTCVAE
from .betavae_b import BetaVAEB
from .dipvae import DIPVAEI, DIPVAEII
from .factorvae import FactorVAE
from .vae import VAE, BetaVAEH

MODELS = {
    "vae": VAE,
    "betavae_h": BetaVAEH,
    "betavae_b": BetaVAEB,
    "factorvae": FactorVAE,
    "betatcvae": BetaTCVAE,
    "dipvae_i": DIPVAEI,
    "dipvae_ii": DIPVAEII,
}


@hookimpl
def register_models(registry):
    registry.add_all(MODELS)


@hookimpl
def register_architectures(registry):
    registry.add_all(ARCHITECTURES)


@hookimpl
def register_schedulers(registry):
    registry.add("constant", ConstantBeta)
