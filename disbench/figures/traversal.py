"""Latent traversals of a trained run (paper Fig. 3).

For one input image, every latent in turn is set to each value of a grid
over [−3, 3] while the others stay at the encoder mean; each code is decoded
to sigmoid(logits) (:mod:`disbench.models.traversal`). Rows are the latents
sorted by the run's final KL per dimension, largest first, so the informative
latents come on top.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DisbenchError
from ..models.traversal import GAP, TRAVERSAL_VALUES, default_image_index, latent_order, mosaic, traverse
from .style import new_figure, save_figure, styled


@styled
def plot_traversal(trained, stem: Path, *, image_index: int | None = None, values=TRAVERSAL_VALUES,
                   title: str | None = None) -> list[Path]:
    """The traversal grid of a :class:`disbench.trained.TrainedRun`."""
    dataset, results = trained.dataset, trained.results
    index = default_image_index(len(dataset)) if image_index is None else int(image_index)
    if not 0 <= index < len(dataset):
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
                  [f"z{j} ({kl[j]:.2f})" for j in order], fontsize=8)
    ax.grid(False)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel("value of the traversed latent (others at the encoder mean)")
    ax.set_ylabel("latent (final KL, nats), largest KL first")
    ax.set_title(title or f"{results.get('model')} seed {results.get('seed')}: traversal of image #{index}")
    return save_figure(fig, stem)
