"""The shared conv64 encoder and decoder of docs/objective.md (paper Table 3/4)."""

from __future__ import annotations

import torch
from torch import nn

IMAGE_SIZE = 64


class Encoder(nn.Module):
    """nc x 64 x 64 -> (mu, logvar), each (batch, latent_dim)."""

    def __init__(self, num_channels: int, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            nn.Conv2d(num_channels, 32, 4, 2, 1), nn.ReLU(True),
            nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(True),
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(True),
            nn.Conv2d(64, 64, 4, 2, 1), nn.ReLU(True),
            nn.Conv2d(64, 256, 4, 1, 0), nn.ReLU(True),
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
            nn.Linear(latent_dim, 256), nn.ReLU(True),
            nn.Unflatten(1, (256, 1, 1)),
            nn.ConvTranspose2d(256, 64, 4, 1, 0), nn.ReLU(True),
            nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(True),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(True),
            nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(True),
            nn.ConvTranspose2d(32, num_channels, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def kaiming_init(module: nn.Module) -> None:
    """Kaiming-normal weights and zero biases for every conv and linear layer."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
