"""``color_dsprites``, ``noisy_dsprites``, ``scream_dsprites``: disentanglement_lib's dSprites variants.

Each is dSprites (the official file, ``base="dsprites"``, or the generated one,
``base="dsprites_synth"``; that factory's own options and gin bindings apply)
with the same factors, made RGB as disentanglement_lib's
``data/ground_truth/dsprites.py`` does (values in [0, 1] below, stored ×255
rounded, as uint8):

* ``color_dsprites``: the sprite in a random colour c ~ U(0.5, 1)³, on black;
* ``noisy_dsprites``: a white sprite on uniform noise, each pixel and channel
  of the background an independent uniform byte (U(0, 1) quantised to 8 bits);
* ``scream_dsprites``: a random 64×64 patch of Munch's *The Scream*, made
  (patch + t) / 2 with a random tint t ~ U(0, 1)³, with the sprite's pixels
  inverted (1 − value). The picture is a file the user supplies:
  ``scream.jpg`` in the data root or its ``scream/`` folder (as in
  disentanglement_lib), or ``scream_path``; it is shrunk with Pillow's
  ``thumbnail`` to fit 350 × 274 px, as there, and patches start anywhere it
  leaves 64 px.

One difference: disentanglement_lib draws the colour, noise or patch anew
each time an image is sampled; here images are held once in memory (on the
training device), so each image gets one draw, made with
``variation_seed`` (default 0) when the dataset is built — the nuisance is
still independent of the factors, but a model sees each sprite with one
colouring. The variation is the same on every build. Memory: 9.1 GB for the
737,280 RGB images of the full grid.
"""

from __future__ import annotations

from pathlib import Path

import gin
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..data import DatasetInfo, FactorGridDataset
from ..errors import DisbenchError

from ._files import GIN_MODULE, describe_file, file_error, find_file, short_exc
from .dsprites import dsprites
from .dsprites_synth import dsprites_synth

BASES = ("dsprites", "dsprites_synth")
SIDE = 64
SCREAM_BOX = (350, 274)  # disentanglement_lib's thumbnail box (width, height)
SCREAM_URL = "https://en.wikipedia.org/wiki/File:Edvard_Munch,_1893,_The_Scream,_oil,_tempera_and_pastel_on_cardboard,_91_x_73_cm,_National_Gallery_of_Norway.jpg"
_CHUNK = 4096  # images made at a time; each chunk has its own random stream, so results do not depend on memory
_STREAMS = {"color_dsprites": 1, "noisy_dsprites": 2, "scream_dsprites": 3}


def _base_factory(base: str):
    if base not in BASES:
        raise DisbenchError(f"dSprites variants: base must be one of {', '.join(map(repr, BASES))}, got {base!r}")
    return {"dsprites": dsprites, "dsprites_synth": dsprites_synth}[base]


def _base(base: str, data_root, metadata_only: bool):
    factory = _base_factory(base)
    options = {"data_root": data_root} if data_root is not None else {}
    return factory(**options, metadata_only=metadata_only)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DisbenchError(f"dSprites variants: variation_seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def _info(name: str, base: DatasetInfo) -> DatasetInfo:
    return DatasetInfo(name=name, num_images=base.num_images, observation_shape=(3, SIDE, SIDE),
                       likelihood="gaussian", factor_names=base.factor_names, factor_sizes=base.factor_sizes,
                       factor_display_order=base.factor_display_order)


def _chunk_rng(name: str, seed: int, start: int) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAMS[name], start // _CHUNK])


def _to_bytes(values: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def colour(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 64, 64) bool sprite masks -> (n, 3, 64, 64) uint8: the sprite in c ~ U(0.5, 1)³."""
    colours = _to_bytes(rng.uniform(0.5, 1.0, size=(len(mask), 3)))
    return mask[:, None] * colours[:, :, None, None]


def noise(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White sprite on a background of independent uniform bytes."""
    background = rng.integers(0, 256, size=(len(mask), 3, SIDE, SIDE), dtype=np.uint8)
    return np.where(mask[:, None], np.uint8(255), background)


def scream(mask: np.ndarray, rng: np.random.Generator, picture: np.ndarray) -> np.ndarray:
    """(patch + tint) / 2 of ``picture`` (H, W, 3) in [0, 1], inverted under the sprite."""
    n = len(mask)
    top = rng.integers(0, picture.shape[0] - SIDE, size=n)
    left = rng.integers(0, picture.shape[1] - SIDE, size=n)
    tint = rng.uniform(0.0, 1.0, size=(n, 3))
    offsets = np.arange(SIDE)
    patch = picture[(top[:, None] + offsets)[:, :, None], (left[:, None] + offsets)[:, None, :]]  # (n, 64, 64, 3)
    background = (patch + tint[:, None, None, :]) / 2.0
    values = np.where(mask[..., None], 1.0 - background, background)
    return _to_bytes(values).transpose(0, 3, 1, 2)


def load_scream(path: Path) -> np.ndarray:
    """The picture as float (H, W, 3) in [0, 1], shrunk to fit 350 × 274 px."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail(SCREAM_BOX)
            picture = np.asarray(image, dtype=np.float64) / 255.0
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise file_error(path, f"not a readable image ({short_exc(exc)})") from None
    if picture.shape[0] <= SIDE or picture.shape[1] <= SIDE:
        raise file_error(path, f"is {picture.shape[1]} x {picture.shape[0]} px after fitting it to "
                               f"{SCREAM_BOX[0]} x {SCREAM_BOX[1]}; patches need more than {SIDE} px each way")
    return picture


def _build(name: str, base_dataset: FactorGridDataset, seed: int, make, source: str) -> FactorGridDataset:
    masks = base_dataset.images[:, 0].numpy()
    images = np.empty((len(masks), 3, SIDE, SIDE), dtype=np.uint8)
    for start in range(0, len(masks), _CHUNK):
        chunk = masks[start:start + _CHUNK] > 0
        images[start:start + len(chunk)] = make(chunk, _chunk_rng(name, seed, start))
    del masks
    return FactorGridDataset(
        name=name,
        images=torch.from_numpy(images),
        source=f"{source}; from {base_dataset.name}: {base_dataset.source}",
        likelihood="gaussian",
        factor_names=base_dataset.factor_names,
        factor_sizes=base_dataset.factor_sizes,
        factor_display_order=base_dataset.factor_display_order,
        info={"base": base_dataset.name, "variation_seed": seed},
    )


@gin.configurable("color_dsprites", module=GIN_MODULE, denylist=["metadata_only"])
def color_dsprites(data_root=None, base: str = "dsprites", variation_seed: int = 0,
                   metadata_only: bool = False) -> FactorGridDataset | DatasetInfo:
    """dSprites with each sprite in a random colour (see the module docstring)."""
    seed = _check_seed(variation_seed)
    if metadata_only:
        return _info("color_dsprites", _base(base, data_root, True))
    return _build("color_dsprites", _base(base, data_root, False), seed, colour,
                  f"colour U(0.5, 1)^3 per image, variation seed {seed}")


@gin.configurable("noisy_dsprites", module=GIN_MODULE, denylist=["metadata_only"])
def noisy_dsprites(data_root=None, base: str = "dsprites", variation_seed: int = 0,
                   metadata_only: bool = False) -> FactorGridDataset | DatasetInfo:
    """dSprites, white sprites on uniform noise (see the module docstring)."""
    seed = _check_seed(variation_seed)
    if metadata_only:
        return _info("noisy_dsprites", _base(base, data_root, True))
    return _build("noisy_dsprites", _base(base, data_root, False), seed, noise,
                  f"uniform noise background per image, variation seed {seed}")


@gin.configurable("scream_dsprites", module=GIN_MODULE, denylist=["metadata_only"])
def scream_dsprites(data_root=None, base: str = "dsprites", scream_path=None, variation_seed: int = 0,
                    metadata_only: bool = False) -> FactorGridDataset | DatasetInfo:
    """dSprites inverted on patches of The Scream (see the module docstring)."""
    seed = _check_seed(variation_seed)
    path = find_file("The Scream picture (scream_dsprites)", ["scream.jpg"], data_root, scream_path,
                     f"save the picture from {SCREAM_URL} as scream.jpg there", subdirs=["scream"])
    if metadata_only:
        load_scream(path)  # a picture too small is refused before any run
        return _info("scream_dsprites", _base(base, data_root, True))
    picture = load_scream(path)
    return _build("scream_dsprites", _base(base, data_root, False), seed,
                  lambda mask, rng: scream(mask, rng, picture),
                  f"patches of {describe_file(path)}, variation seed {seed}")
