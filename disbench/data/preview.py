"""A preview grid of a dataset: the picture a user looks at to trust it.

Random samples on top, then (for datasets with factors) one row per factor
traversing its values with the other factors held at one random combination.
Generic: it uses only the dataset interface.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..errors import DisbenchError
from ..io import atomic_path
from .dataset import GroundTruthDataset, ImageDataset

LABEL_WIDTH = 120  # px of row labels on the left
GAP = 2  # px between cells
BACKGROUND = (96, 96, 96)
MISSING = (40, 40, 40)  # a cell whose factor combination has no image
TEXT = (255, 255, 255)


def preview_size(dataset: ImageDataset, columns: int = 10, sample_rows: int = 2, scale: int = 2) -> tuple[int, int]:
    """(width, height) in px of the preview :func:`draw_preview` writes."""
    _, h, w = dataset.observation_shape
    rows = sample_rows + (dataset.num_factors if dataset.has_factors else 0)
    return LABEL_WIDTH + GAP + columns * (w * scale + GAP), GAP + rows * (h * scale + GAP)


def draw_preview(dataset: ImageDataset, out_path: str | os.PathLike, rng: np.random.Generator,
                 columns: int = 10, sample_rows: int = 2, scale: int = 2) -> Path:
    """Write the preview PNG to ``out_path`` (atomically) and return its path."""
    if len(dataset) == 0:
        raise DisbenchError(f"dataset {dataset.name!r} holds no images")
    channels, h, w = dataset.observation_shape
    if channels not in (1, 3):
        raise DisbenchError(f"dataset {dataset.name!r}: cannot preview {channels}-channel images")
    rows: list[tuple[str, list[int | None]]] = []
    samples = rng.choice(len(dataset), size=columns * sample_rows, replace=len(dataset) < columns * sample_rows)
    for r in range(sample_rows):
        rows.append(("samples" if r == 0 else "", samples[r * columns:(r + 1) * columns].tolist()))
    if dataset.has_factors:
        rows.extend(_traversals(dataset, rng, columns))

    canvas = Image.new("RGB", preview_size(dataset, columns, sample_rows, scale), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    cell_w, cell_h = w * scale, h * scale
    for r, (label, indices) in enumerate(rows):
        top = GAP + r * (cell_h + GAP)
        draw.text((4, top + cell_h // 2 - 6), label[:19], fill=TEXT)
        for c, index in enumerate(indices):
            left = LABEL_WIDTH + GAP + c * (cell_w + GAP)
            if index is None:
                draw.rectangle([left, top, left + cell_w - 1, top + cell_h - 1], fill=MISSING)
                continue
            canvas.paste(_cell(dataset, index, scale), (left, top))
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        canvas.save(tmp, format="PNG")
    return out_path


def _traversals(dataset: GroundTruthDataset, rng: np.random.Generator, columns: int):
    """(factor name, image indices) per factor: its values (evenly spread over at
    most ``columns``) with the other factors fixed at a random image's."""
    base = dataset.factors[rng.integers(len(dataset))]
    for k, (name, size) in enumerate(zip(dataset.factor_names, dataset.factor_sizes)):
        values = np.unique(np.linspace(0, size - 1, min(size, columns)).round().astype(np.int64))
        combos = np.repeat(base[None, :], len(values), axis=0)
        combos[:, k] = values
        try:
            indices = dataset.index_of(combos, rng).tolist()
        except DisbenchError:  # not every combination exists (e.g. a label-only dataset)
            indices = [_index_or_none(dataset, combo, rng) for combo in combos]
        yield f"{name} ({size})", indices


def _index_or_none(dataset: GroundTruthDataset, combo: np.ndarray, rng) -> int | None:
    try:
        return int(dataset.index_of(combo[None, :], rng)[0])
    except DisbenchError:
        return None


def _cell(dataset: ImageDataset, index: int, scale: int) -> Image.Image:
    pixels = dataset.images[int(index)].numpy().transpose(1, 2, 0)  # (H, W, C)
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    return Image.fromarray(np.ascontiguousarray(pixels))
