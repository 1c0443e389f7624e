"""The shipped datasets as disbench dataset factories.

``DATASETS`` maps a dataset name to ``factory(data_root=None, **options) ->
ImageDataset``; the built-in plugin :mod:`disbench.datasets.plugin` registers
it through ``register_datasets``, so the harness needs no other plugin to run
its protocols.

Gin: each factory is configurable under its dataset name, in the module
``disbench.datasets``, so options bind as ``dsprites_synth.factor_sizes =
(3, 6, 40, 8, 8)`` or ``dsprites.path = '/data/dsprites.npz'`` (the full
``disbench.datasets.dsprites`` form disambiguates if another configurable
shares the name). An argument passed explicitly wins over a binding, so
callers pass ``data_root`` only when the user gave one.

Options (besides ``data_root``):

* ``dsprites``: ``path``, ``allow_subgrid``
* ``dsprites_synth``: ``factor_sizes``, ``cache``, ``progress``
* ``mnist``: ``path``, ``labels_path``, ``split``, ``placement``, ``threshold``
* ``chairs3d``: ``path``, ``cache``, ``progress``
* ``shapes3d``: ``path``, ``allow_subgrid``, ``progress``
* ``smallnorb``: ``path`` (a folder), ``split``, ``allow_subgrid``
* ``cars3d``: ``path`` (a folder), ``allow_subgrid``, ``progress``
* ``mpi3d``: ``path``, ``variant`` (``toy``, ``realistic``, ``real``), ``factor_sizes``, ``progress``
* ``color_dsprites``, ``noisy_dsprites``: ``base`` (``dsprites`` or ``dsprites_synth``), ``variation_seed``
* ``scream_dsprites``: ``base``, ``scream_path``, ``variation_seed``

Each factory also takes ``metadata_only=True`` (kept out of gin) and then
returns a :class:`disbench.data.DatasetInfo` (size, image shape, factors)
from the files' headers, without reading any image: see
:func:`disbench.data.dataset_info`. dSprites and dsprites_synth declare the
paper's factor display order (pos_x, pos_y, shape, scale, orientation).
"""

from . import cars3d, chairs3d, dsprites, dsprites_synth, dsprites_variants, mnist, mpi3d, shapes3d, smallnorb
from ._files import GIN_MODULE

DATASETS = {
    "dsprites": dsprites.dsprites,
    "dsprites_synth": dsprites_synth.dsprites_synth,
    "mnist": mnist.mnist,
    "chairs3d": chairs3d.chairs3d,
    "shapes3d": shapes3d.shapes3d,
    "smallnorb": smallnorb.smallnorb,
    "cars3d": cars3d.cars3d,
    "mpi3d": mpi3d.mpi3d,
    "color_dsprites": dsprites_variants.color_dsprites,
    "noisy_dsprites": dsprites_variants.noisy_dsprites,
    "scream_dsprites": dsprites_variants.scream_dsprites,
}

__all__ = ["DATASETS", "GIN_MODULE"]
