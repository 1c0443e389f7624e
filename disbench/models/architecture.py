"""The encoder/decoder architectures a protocol chooses (``Protocol.architecture``).

An architecture is registered by name (``register_architectures``; these two by
the built-in plugin) as a callable ``build(num_channels, latent_dim) ->
(encoder, decoder)`` returning initialised modules: the encoder maps images of
shape (batch, num_channels, 64, 64) to ``(mu, logvar)``, each (batch,
latent_dim), and the decoder latents to logits of the images' shape.

* ``conv64``: the DynamicVAE paper's network (its Tables 3 and 4), Kaiming-normal
  weights and zero biases.
* ``dlib_conv``: disentanglement_lib's ``conv_encoder``/``deconv_decoder``, the
  networks of its unsupervised study (Locatello et al., ICML 2019), with its
  initialisation (see :func:`dlib_conv`).
"""

from __future__ import annotations

import torch
from torch import nn

IMAGE_SIZE = 64


def relu_after(*layers: nn.Module) -> list[nn.Module]:
    """Each layer followed by a ReLU."""
    return [m for layer in layers for m in (layer, nn.ReLU(True))]


def relu_stack(layer: type, specs: list[tuple]) -> list[nn.Module]:
    """``layer(*spec)`` for each ``(in, out, kernel, stride, padding)``, each followed by a ReLU."""
    return relu_after(*(layer(*spec) for spec in specs))


class Encoder(nn.Module):
    """nc x 64 x 64 -> (mu, logvar), each (batch, latent_dim)."""

    def __init__(self, num_channels: int, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            *relu_stack(nn.Conv2d, [(num_channels, 32, 4, 2, 1), (32, 32, 4, 2, 1), (32, 64, 4, 2, 1),
                                    (64, 64, 4, 2, 1), (64, 256, 4, 1, 0)]),
            nn.Flatten(),
            nn.Linear(256, 2 * latent_dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net(x).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    """(batch, latent_dim) -> logits of shape (batch, nc, 64, 64)."""

    def __init__(self, num_channels: int, latent_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            *relu_after(nn.Linear(latent_dim, 256)),
            nn.Unflatten(1, (256, 1, 1)),
            *relu_stack(nn.ConvTranspose2d, [(256, 64, 4, 1, 0), (64, 64, 4, 2, 1), (64, 32, 4, 2, 1),
                                             (32, 32, 4, 2, 1)]),
            nn.ConvTranspose2d(32, num_channels, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class DlibEncoder(nn.Module):
    """disentanglement_lib's ``conv_encoder``: conv 32-4x4-s2, 32-4x4-s2, 64-2x2-s2,
    64-2x2-s2 (ReLU, TensorFlow's 'same' padding: 1, 1, 0, 0 here), dense 256 (ReLU), and
    two dense heads for the means and the log variances."""

    def __init__(self, num_channels: int, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            *relu_stack(nn.Conv2d, [(num_channels, 32, 4, 2, 1), (32, 32, 4, 2, 1), (32, 64, 2, 2, 0),
                                    (64, 64, 2, 2, 0)]),
            nn.Flatten(),
            *relu_after(nn.Linear(64 * 4 * 4, 256)),
        )
        self.means = nn.Linear(256, latent_dim)
        self.log_var = nn.Linear(256, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(x)
        return self.means(h), self.log_var(h)


class DlibDecoder(nn.Module):
    """disentanglement_lib's ``deconv_decoder``: dense 256, dense 1024 (ReLU) reshaped to
    64 x 4 x 4, transposed conv 64, 32, 32 (ReLU) and num_channels, all 4x4-s2 ('same')."""

    def __init__(self, num_channels: int, latent_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            *relu_after(nn.Linear(latent_dim, 256), nn.Linear(256, 1024)),
            nn.Unflatten(1, (64, 4, 4)),
            *relu_stack(nn.ConvTranspose2d, [(64, 64, 4, 2, 1), (64, 32, 4, 2, 1), (32, 32, 4, 2, 1)]),
            nn.ConvTranspose2d(32, num_channels, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def conv64(num_channels: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """The paper's network, Kaiming-normal initialised."""
    encoder, decoder = Encoder(num_channels, latent_dim), Decoder(num_channels, latent_dim)
    kaiming_init(encoder)
    kaiming_init(decoder)
    return encoder, decoder


def dlib_conv(num_channels: int, latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """disentanglement_lib's study network with TensorFlow 1's defaults for ``tf.layers``:
    Glorot-uniform kernels and zero biases. Glorot's bound depends on fan_in + fan_out
    only, which PyTorch and TensorFlow count alike for dense, convolution and transposed
    convolution kernels. Two layouts differ and are equivalent: TensorFlow flattens
    and reshapes NHWC where these modules use NCHW, which permutes the rows of the first
    dense layers' weights, drawn i.i.d."""
    encoder, decoder = DlibEncoder(num_channels, latent_dim), DlibDecoder(num_channels, latent_dim)
    glorot_init(encoder)
    glorot_init(decoder)
    return encoder, decoder


def glorot_init(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for every conv and linear layer."""
    initialise(module, nn.init.xavier_uniform_)


ARCHITECTURES = {"conv64": conv64, "dlib_conv": dlib_conv}
DEFAULT_ARCHITECTURE = "conv64"


def kaiming_init(module: nn.Module) -> None:
    """Kaiming-normal weights and zero biases for every conv and linear layer."""
    initialise(module, nn.init.kaiming_normal_)


def initialise(module: nn.Module, weights) -> None:
    """``weights(w)`` for the weight and zero for the bias of every conv and linear layer, in
    module order (which fixes the random stream each draws from)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            weights(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
