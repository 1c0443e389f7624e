"""What a dataset is, without its pixels: ``dataset_info(name, data_root)``.

Planning a comparison needs each dataset's size (the protocol fingerprint
covers it) but not its images, which for dSprites are 3 GB. A dataset factory
that can answer cheaply accepts the keyword ``metadata_only`` and, when it is
true, returns a :class:`DatasetInfo` read from the files' headers (or, for a
generated dataset, from its options) instead of the dataset. It is called
through gin exactly as when building, so the factory's gin bindings (e.g.
``dsprites_synth.factor_sizes``, ``dsprites.path``) apply to both.
``metadata_only`` is not a dataset option: the shipped factories keep it out
of gin (``denylist``), and it is not part of a protocol's fingerprint.

A factory without ``metadata_only`` (a third-party plugin's, say) still works:
:func:`dataset_info` builds the dataset and describes it.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Callable

from ..errors import DisbenchError
from ..registry import get_registry
from .dataset import ImageDataset

METADATA_ONLY = "metadata_only"


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's size and shape, and its factors when it has them.

    ``num_images`` is ``len()`` of the dataset the same factory call would
    build. ``factor_names``/``factor_sizes`` are empty for a dataset without
    ground-truth factors; ``factor_display_order`` is the order tables show the
    factors in when the dataset declares one (empty: as ``factor_names``).
    """

    name: str
    num_images: int
    observation_shape: tuple[int, ...] | None = None
    likelihood: str | None = None
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    factor_display_order: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "num_images", int(self.num_images))
        if self.observation_shape is not None:
            object.__setattr__(self, "observation_shape", tuple(int(s) for s in self.observation_shape))
        object.__setattr__(self, "factor_names", tuple(self.factor_names))
        object.__setattr__(self, "factor_sizes", tuple(int(s) for s in self.factor_sizes))
        object.__setattr__(self, "factor_display_order", tuple(self.factor_display_order))
        if self.num_images < 0:
            raise DisbenchError(f"dataset {self.name!r}: num_images must be >= 0, got {self.num_images}")
        if len(self.factor_names) != len(self.factor_sizes):
            raise DisbenchError(f"dataset {self.name!r}: factor names and sizes must match")

    @property
    def has_factors(self) -> bool:
        return bool(self.factor_names)

    @classmethod
    def of(cls, dataset: ImageDataset) -> "DatasetInfo":
        """The info of a built dataset."""
        return cls(
            name=dataset.name,
            num_images=len(dataset),
            observation_shape=dataset.observation_shape,
            likelihood=dataset.likelihood,
            factor_names=getattr(dataset, "factor_names", ()) if dataset.has_factors else (),
            factor_sizes=getattr(dataset, "factor_sizes", ()) if dataset.has_factors else (),
            factor_display_order=getattr(dataset, "factor_display_order", ()) if dataset.has_factors else (),
        )


def supports_metadata(factory: Callable) -> bool:
    """Whether ``factory`` takes ``metadata_only`` (gin's wrapper keeps the signature)."""
    try:
        return METADATA_ONLY in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin, say)
        return False


def factory_info(factory: Callable, data_root: str | os.PathLike | None = None,
                 name: str | None = None) -> DatasetInfo:
    """The info of the dataset ``factory(data_root=...)`` builds, from its
    metadata when the factory offers it, else by building the dataset."""
    label = name or getattr(factory, "__name__", repr(factory))
    # data_root only when set: an explicit None would beat a gin binding of the factory's data_root
    options = {"data_root": data_root} if data_root is not None else {}
    try:
        if supports_metadata(factory):
            info = factory(**options, **{METADATA_ONLY: True})
            if not isinstance(info, DatasetInfo):
                raise DisbenchError(f"dataset {label!r}: its factory returned {type(info).__name__} "
                                    f"for {METADATA_ONLY}=True, expected a DatasetInfo")
            return info
        return DatasetInfo.of(factory(**options))
    except DisbenchError:
        raise
    except (ValueError, TypeError) as exc:
        raise DisbenchError(f"dataset {label!r}: {exc}") from None


def dataset_info(name: str, data_root: str | os.PathLike | None = None) -> DatasetInfo:
    """The info of the registered dataset ``name`` as its gin bindings configure
    it (``data_root`` overrides a binding when given), without loading its
    images where its factory supports ``metadata_only``."""
    return factory_info(get_registry("datasets").get(name), data_root, name=name)


__all__ = ["DatasetInfo", "METADATA_ONLY", "dataset_info", "factory_info", "supports_metadata"]
