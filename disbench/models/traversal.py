"""Latent traversals of a model: for one input image, every latent in turn set to
each value of a grid over [−3, 3] while the others stay at the encoder mean, each
code decoded to sigmoid(logits); and the mosaic that lays such tiles out.

What ``disbench report`` draws (:mod:`disbench.figures.traversal`), a run's
loggers receive (:mod:`disbench.loggers.images`) and ``LoadedRun.traverse`` returns.
"""

from __future__ import annotations

import numpy as np
import torch

TRAVERSAL_VALUES = tuple(np.linspace(-3.0, 3.0, 10).tolist())
GAP = 2  # pixels between tiles


def default_image_index(num_images: int) -> int:
    """The fixed input image: a seeded draw, the same for every run of a dataset."""
    return int(np.random.default_rng(0).integers(num_images))


def latent_order(kl_per_dim) -> list[int]:
    """Latent indices by KL, largest first (ties keep index order)."""
    kl = list(kl_per_dim)
    return sorted(range(len(kl)), key=lambda j: -kl[j])


@torch.no_grad()
def traverse(model, image: torch.Tensor, order: list[int], values=TRAVERSAL_VALUES) -> np.ndarray:
    """Decoded images, shape (len(order), len(values), C, H, W), in [0, 1].

    ``image`` is one image (C, H, W): uint8 as the datasets hold them, or
    float in [0, 1].
    """
    device = next(model.parameters()).device
    x = image.float().div(255) if image.dtype == torch.uint8 else image.float()
    mu, _ = model.encode(x.unsqueeze(0).to(device))
    values = torch.as_tensor(values, dtype=mu.dtype, device=device)
    z = mu.repeat(len(order) * len(values), 1)
    for row, j in enumerate(order):
        z[row * len(values):(row + 1) * len(values), j] = values
    decoded = torch.sigmoid(model.decode(z)).cpu().numpy()
    return decoded.reshape(len(order), len(values), *decoded.shape[1:])


def mosaic(tiles: np.ndarray, first: np.ndarray | None = None, fill: float = 0.5) -> np.ndarray:
    """Tiles (R, V, C, H, W) -> one (H', W', C) image; ``first`` (C, H, W) goes left of row 0."""
    rows, cols, channels, h, w = tiles.shape
    extra = 0 if first is None else w + 3 * GAP
    out = np.full((rows * (h + GAP) - GAP, extra + cols * (w + GAP) - GAP, channels), fill, dtype=np.float32)
    if first is not None:
        out[:h, :w] = first.transpose(1, 2, 0)
    for r in range(rows):
        for c in range(cols):
            y, x = r * (h + GAP), extra + c * (w + GAP)
            out[y:y + h, x:x + w] = tiles[r, c].transpose(1, 2, 0)
    return out
