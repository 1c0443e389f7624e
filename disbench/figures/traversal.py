"""Latent traversals of a trained run (paper Fig. 3).

For one input image, every latent in turn is set to each value of a grid
over [−3, 3] while the others stay at the encoder mean; each code is decoded
to sigmoid(logits). Rows are the latents sorted by the run's final KL per
dimension, largest first, so the informative latents come on top.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .style import new_figure, save_figure, styled

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


@styled
def plot_traversal(trained, stem: Path, *, image_index: int | None = None, values=TRAVERSAL_VALUES,
                   title: str | None = None) -> list[Path]:
    """The traversal grid of a :class:`disbench.evaluation.TrainedRun`."""
    dataset, results = trained.dataset, trained.results
    index = default_image_index(len(dataset)) if image_index is None else int(image_index)
    if not 0 <= index < len(dataset):
        from ..errors import DisbenchError

        raise DisbenchError(f"image index {index} is outside the dataset (0 … {len(dataset) - 1})")
    kl = (results.get("final") or {}).get("kl_per_dim") or [0.0] * trained.model.latent_dim
    order = latent_order(kl)
    tiles = traverse(trained.model, dataset.images[index], order, values)
    image = mosaic(tiles, first=dataset.images[index].float().div(255).numpy())
    h, w = tiles.shape[-2:]
    rows, cols = tiles.shape[:2]

    fig = new_figure(1.2 + 0.62 * (cols + 1.2), 1.0 + 0.62 * rows)
    ax = fig.add_subplot()
    ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    extra = w + 3 * GAP
    ax.set_xticks([w / 2 - 0.5] + [extra + c * (w + GAP) + w / 2 - 0.5 for c in range(cols)],
                  ["input"] + [f"{v:+.1f}" for v in values], fontsize=8)
    ax.set_yticks([r * (h + GAP) + h / 2 - 0.5 for r in range(rows)],
                  [f"z{j + 1} ({kl[j]:.2f})" for j in order], fontsize=8)
    ax.grid(False)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel("value of the traversed latent (others at the encoder mean)")
    ax.set_ylabel("latent (final KL, nats), largest KL first")
    ax.set_title(title or f"{results.get('model')} seed {results.get('seed')}: traversal of image #{index}")
    return save_figure(fig, stem)
