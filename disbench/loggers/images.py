"""The images a run's loggers receive every ``Protocol.image_every`` steps:
reconstructions of fixed dataset images and a latent traversal, drawn the
way ``disbench report`` draws them (:mod:`disbench.models.traversal`)."""

from __future__ import annotations

import numpy as np
import torch

from ..models.traversal import default_image_index, latent_order, mosaic, traverse

RECONSTRUCTIONS = 8  # images shown with their reconstructions


def reconstruction_indices(num_images: int, count: int = RECONSTRUCTIONS) -> np.ndarray:
    """Fixed images: a seeded draw, the same for every run of a dataset."""
    rng = np.random.default_rng(0)
    return np.sort(rng.choice(num_images, size=min(count, num_images), replace=False))


def cuda_indices(device) -> list[int]:
    device = torch.device(device)
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


@torch.no_grad()
def logged_images(model, images: torch.Tensor, kl_per_dim=None) -> dict[str, np.ndarray]:
    """``{"reconstructions", "traversal"}`` of a model, each (H, W, C) float32 in [0, 1].

    ``images`` are the dataset's uint8 images; the reconstructions are of the
    encoder mean; the traversal is of the image ``disbench report`` traverses,
    latents ordered by ``kl_per_dim`` (largest first). Nothing random is drawn
    and the model's training flag is restored.
    """
    training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        chosen = torch.as_tensor(reconstruction_indices(len(images)), device=images.device)
        x = images.index_select(0, chosen).to(device).float().div(255)
        mu, _ = model.encode(x)
        recon = torch.sigmoid(model.decode(mu)).float()
        grid = mosaic(torch.stack([x, recon]).cpu().numpy())
        index = default_image_index(len(images))
        order = latent_order(kl_per_dim) if kl_per_dim else list(range(model.latent_dim))
        tiles = traverse(model, images[index], order)
        traversal = mosaic(tiles, first=images[index].float().div(255).cpu().numpy())
    finally:
        model.train(training)
    return {"reconstructions": grid, "traversal": traversal}
