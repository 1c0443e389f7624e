"""Model interface, shared architecture and loss terms."""

from .architecture import Decoder, Encoder, kaiming_init
from .base import Terms, VAEModel, resolve_scheduler
from .losses import kl_per_dimension, reconstruction_loss, reparameterize

__all__ = [
    "Encoder", "Decoder", "kaiming_init", "Terms", "VAEModel", "resolve_scheduler",
    "kl_per_dimension", "reconstruction_loss", "reparameterize",
]
