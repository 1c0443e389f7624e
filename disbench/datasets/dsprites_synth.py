"""``dsprites_synth``: dSprites generated here, no file needed.

Same factor grid, factor values and index order as the official
``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (docs/datasets.md): shape 3 (square,
ellipse, heart), scale linspace(0.5, 1, 6), orientation linspace(0, 2π, 40),
pos_x and pos_y linspace(0, 1, 32); 737,280 binary 64×64 images,
index = 245760·shape + 40960·scale + 1024·orientation + 32·pos_x + pos_y.

Geometry (chosen here; the official generator is not public):

* A sprite's size unit is ``UNIT`` = 6 px times its scale. The square has
  half-side 1 unit (12 px wide at scale 1); the ellipse semi-axes 1.4 × 0.7
  units, long axis horizontal at orientation 0; the heart is a diamond (a square
  turned 45°) with two discs on its upper edges, point down at orientation 0,
  sized so its farthest point is as far from its centre as the square's corner
  (√2 units). Each shape turns about the centre of its bounding box.
* Orientation turns the sprite counter-clockwise as displayed.
* pos_x moves the centre left → right, pos_y top → bottom: the centre runs over
  [8.75, 55.25] px (1.5 px per step), so a sprite at any scale and orientation
  (at most 8.49 px from its centre) stays inside the frame. Centres are
  quantised to 1/4 px (exact for the full grid).
* Pixels are on where at least half of a 4×4 sub-pixel sampling lies inside
  the shape (area-coverage anti-aliasing, then binarised).

How it differs from the official renders: the outlines (heart construction,
ellipse aspect ratio, sizes in pixels, position range) and the edge pixels are
not the official ones, so images are not byte-identical and a model trained on
one is not evaluated on the other. As in the official set, orientations 0 and
2π give the same image and the square/ellipse symmetries repeat images.

The full set takes a few seconds to render (vectorised: one render per
shape × sub-pixel phase, then each image is a window of a padded canvas) and is
cached under ``cache_dir()`` as packed bits (``np.packbits``, ~377 MB,
``.npy`` read without pickle) with a SHA-256 sidecar; a corrupt cache is
rebuilt. Rendering is deterministic: the same bytes on every build.
"""

from __future__ import annotations

import math

import gin
import numpy as np
import torch

from ..data import DatasetInfo, FactorGridDataset
from ..errors import DisbenchError
from ..progress import progress_bar

from ._cache import ArrayCache
from ._files import GIN_MODULE

GENERATOR_VERSION = 1
FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
DISPLAY_ORDER = ("pos_x", "pos_y", "shape", "scale", "orientation")  # the paper's Table 1
FULL_SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")

FRAME = 64
UNIT = 6.0  # px per shape unit at scale 1
MARGIN = 8.75  # px: the sprite centre runs over [MARGIN, FRAME - MARGIN]
CENTRE_QUANTUM = 4  # centres are rounded to 1/4 px
SUPERSAMPLE = 4  # 4x4 samples per pixel
CANVAS = 20  # px: a sprite (radius <= 8.49 px) plus its sub-pixel phase fits
ELLIPSE_AXES = (1.4, 0.7)
# Heart: diamond |x| + |y| <= d with discs of radius d/sqrt(2) on its two upper
# edges; HEART_SHIFT moves the bounding-box centre to the origin, and d is set
# so the farthest point lies sqrt(2) units from it, like the square's corner.
HEART_SHIFT = (math.sqrt(2) - 1) / 4  # (in units of d)
HEART_D = math.sqrt(2) / (math.hypot(0.5, 0.5 - HEART_SHIFT) + 1 / math.sqrt(2))


def factor_values(sizes=FULL_SIZES) -> dict[str, np.ndarray]:
    """The value behind each factor index (shape: the first ``sizes[0]`` shapes)."""
    n_shape, n_scale, n_orient, n_x, n_y = sizes
    return {
        "shape": np.arange(n_shape),
        "scale": np.linspace(0.5, 1.0, n_scale),
        "orientation": np.linspace(0.0, 2 * np.pi, n_orient),
        "pos_x": np.linspace(0.0, 1.0, n_x),
        "pos_y": np.linspace(0.0, 1.0, n_y),
    }


def check_sizes(sizes) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in sizes)
    except (TypeError, ValueError):
        raise DisbenchError(f"dsprites_synth: factor_sizes must be 5 integers, got {sizes!r}") from None
    if len(sizes) != 5 or min(sizes) < 1 or sizes[0] > len(SHAPES):
        raise DisbenchError(
            f"dsprites_synth: factor_sizes must be 5 positive integers (shape <= 3), got {list(sizes)}"
        )
    return sizes


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether the points (u right, v up; in shape units) lie inside the unrotated shape."""
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 1.0
    if shape == "ellipse":
        a, b = ELLIPSE_AXES
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    if shape == "heart":
        d = HEART_D
        v = v + HEART_SHIFT * d  # back to diamond-centred coordinates
        r2 = d * d / 2
        return (
            (np.abs(u) + np.abs(v) <= d)
            | ((u - d / 2) ** 2 + (v - d / 2) ** 2 <= r2)
            | ((u + d / 2) ** 2 + (v - d / 2) ** 2 <= r2)
        )
    raise ValueError(shape)


def render_sprites(shape: str, scales: np.ndarray, angles: np.ndarray, phase_y: float, phase_x: float) -> np.ndarray:
    """Binary sprites (n_scale, n_angle, CANVAS, CANVAS), centred at
    (CANVAS/2 + phase_y, CANVAS/2 + phase_x) px from the canvas' top-left corner."""
    samples = (np.arange(CANVAS * SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    x = samples - (CANVAS / 2 + phase_x)  # right
    y = (CANVAS / 2 + phase_y) - samples  # up
    cos = np.cos(angles)[None, :, None, None]
    sin = np.sin(angles)[None, :, None, None]
    size = UNIT * np.asarray(scales, dtype=np.float64)[:, None, None, None]
    # Turning the shape by +angle = testing the point turned by -angle.
    u = (x[None, None, None, :] * cos + y[None, None, :, None] * sin) / size
    v = (y[None, None, :, None] * cos - x[None, None, None, :] * sin) / size
    hits = _inside(shape, u, v).reshape(len(scales), len(angles), CANVAS, SUPERSAMPLE, CANVAS, SUPERSAMPLE)
    coverage = hits.sum(axis=(3, 5))
    return (2 * coverage >= SUPERSAMPLE * SUPERSAMPLE).astype(np.uint8)


def _centres(n: int) -> np.ndarray:
    """Sprite centres in px (continuous, pixel i spans [i, i+1)), quantised to 1/4 px."""
    centre = MARGIN + np.linspace(0.0, 1.0, n) * (FRAME - 2 * MARGIN)
    return np.round(centre * CENTRE_QUANTUM) / CENTRE_QUANTUM


class _Placement:
    """For one axis: each position's canvas offset (as a window start into a
    padded strip) and its sub-pixel phase."""

    def __init__(self, n: int):
        centre = _centres(n)
        whole = np.floor(centre)
        self.phase = centre - whole
        top = whole.astype(np.int64) - CANVAS // 2  # canvas top-left, image px
        self.canvas_at = max(int(top.max()), 0)  # where the canvas sits in the strip
        self.window = self.canvas_at - top  # window start that shows it at `top`
        self.length = max(int(self.window.max()) + FRAME, self.canvas_at + CANVAS)
        self.phases = np.unique(self.phase)


def render_into(images: np.ndarray, sizes=FULL_SIZES, progress: bool | None = None) -> None:
    """Render the grid ``sizes`` into ``images`` (N, 64, 64) uint8 as {0, 1},
    in the official index order."""
    sizes = check_sizes(sizes)
    if images.shape != (int(np.prod(sizes)), FRAME, FRAME) or not images.flags.c_contiguous:
        raise ValueError("render_into needs a C-contiguous (N, 64, 64) array matching the grid")
    n_shape, n_scale, n_orient, n_x, n_y = sizes
    values = factor_values(sizes)
    px, py = _Placement(n_x), _Placement(n_y)
    blocks = images.reshape(n_shape, n_scale, n_orient, n_x, n_y, FRAME, FRAME)
    bar = progress_bar(total=images.shape[0], desc="dsprites_synth", unit="img",
                       disable=None if progress is None else not progress)
    with bar:
        for s in range(n_shape):
            for fy in py.phases:
                ys = np.flatnonzero(py.phase == fy)
                for fx in px.phases:
                    xs = np.flatnonzero(px.phase == fx)
                    sprites = render_sprites(SHAPES[s], values["scale"], values["orientation"], fy, fx)
                    _place(blocks[s], sprites, px, py, xs, ys)
                    bar.update(n_scale * n_orient * len(xs) * len(ys))


def _place(blocks: np.ndarray, sprites: np.ndarray, px: _Placement, py: _Placement, xs, ys) -> None:
    """Copy each sprite to positions (xs, ys): the image at (x, y) is a 64×64
    window of a strip holding the sprite once, so one gather places them all."""
    strip = np.zeros((py.length, px.length), dtype=np.uint8)
    windows = np.lib.stride_tricks.sliding_window_view(strip, (FRAME, FRAME))
    rows, cols = py.window[ys], px.window[xs]
    for scale in range(sprites.shape[0]):
        for orient in range(sprites.shape[1]):
            strip[py.canvas_at:py.canvas_at + CANVAS, px.canvas_at:px.canvas_at + CANVAS] = sprites[scale, orient]
            # windows[row, col] -> (len(ys), len(xs), 64, 64); the grid is [x, y].
            blocks[scale, orient][np.ix_(xs, ys)] = windows[np.ix_(rows, cols)].transpose(1, 0, 2, 3)


def render(sizes=FULL_SIZES, progress: bool | None = False) -> np.ndarray:
    """The grid ``sizes`` as a new (N, 64, 64) uint8 array of {0, 1}."""
    sizes = check_sizes(sizes)
    images = np.zeros((int(np.prod(sizes)), FRAME, FRAME), dtype=np.uint8)
    render_into(images, sizes, progress)
    return images


# --- the cached dataset ---------------------------------------------------

_PACKED_ROW = FRAME * FRAME // 8
_CHUNK = 16384  # images per packing/unpacking step (~64 MB of pixels)
# byte -> its 8 pixels as {0, 255}: unpacking writes display values directly.
_UNPACK_255 = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1) * np.uint8(255)


def build(sizes=FULL_SIZES, cache: bool = True, progress: bool | None = None) -> tuple[np.ndarray, str | None]:
    """The images (N, 64, 64) uint8 in {0, 255} and the cache path (None when
    not cached): read from a valid cache, else rendered (and cached)."""
    sizes = check_sizes(sizes)
    n = int(np.prod(sizes))
    if not cache:
        images = render(sizes, progress)
        np.multiply(images, 255, out=images)
        return images, None
    store = ArrayCache(
        f"dsprites_synth_v{GENERATOR_VERSION}_{'x'.join(map(str, sizes))}",
        {"generator": "dsprites_synth", "version": GENERATOR_VERSION, "factor_sizes": list(sizes)},
    )
    packed = store.load()
    if packed is None or packed.shape != (n, _PACKED_ROW):
        images = render(sizes, progress)
        packed = store.save((n, _PACKED_ROW), lambda out: _pack_into(out, images))
        np.multiply(images, 255, out=images)  # in place: no second full copy
        return images, str(store.path)
    images = np.empty((n, FRAME, FRAME), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        np.take(_UNPACK_255, packed[start:stop], axis=0, mode="clip",
                out=images[start:stop].reshape(stop - start, _PACKED_ROW, 8))
    return images, str(store.path)


def _pack_into(out: np.ndarray, images: np.ndarray) -> None:
    for start in range(0, len(images), _CHUNK):
        stop = min(start + _CHUNK, len(images))
        out[start:stop] = np.packbits(images[start:stop].reshape(stop - start, -1), axis=1)


@gin.configurable("dsprites_synth", module=GIN_MODULE, denylist=["metadata_only"])
def dsprites_synth(data_root=None, factor_sizes=FULL_SIZES, cache: bool = True,
                   progress: bool | None = None, metadata_only: bool = False) -> FactorGridDataset | DatasetInfo:
    """Generated dSprites (see the module docstring).

    ``factor_sizes`` (shape, scale, orientation, pos_x, pos_y) renders a smaller
    grid through the same code (values are linspace over the same ranges, the
    first ``shape`` shapes); ``cache=False`` renders in memory without touching
    the cache. ``data_root`` is accepted for a uniform factory signature and unused.
    ``metadata_only=True`` returns the grid's :class:`DatasetInfo`, rendering nothing.
    """
    sizes = check_sizes(factor_sizes)
    if metadata_only:
        return grid_info("dsprites_synth", sizes)
    images, cache_path = build(sizes, cache=cache, progress=progress)
    where = f"cache {cache_path}" if cache_path else "not cached"
    return FactorGridDataset(
        name="dsprites_synth",
        images=torch.from_numpy(images).unsqueeze(1),
        source=f"generated: dsprites_synth v{GENERATOR_VERSION} ({where})",
        likelihood="bernoulli",
        factor_names=FACTOR_NAMES,
        factor_sizes=sizes,
        factor_display_order=DISPLAY_ORDER,
        info={"cache": cache_path} if cache_path else {},
    )


def grid_info(name: str, sizes) -> DatasetInfo:
    """The info of a dSprites grid of factor ``sizes`` (binary 64×64 images)."""
    return DatasetInfo(name=name, num_images=int(np.prod(sizes, dtype=np.int64)), observation_shape=(1, FRAME, FRAME),
                       likelihood="bernoulli", factor_names=FACTOR_NAMES, factor_sizes=sizes,
                       factor_display_order=DISPLAY_ORDER)
