"""Build a run's dataset and model from the registries and the gin config."""

from __future__ import annotations

import torch

from .config import Protocol, Run
from .data import ImageDataset
from .errors import DisbenchError
from .models.architecture import IMAGE_SIZE
from .plugins import get_registry


def build_dataset(protocol: Protocol) -> ImageDataset:
    factory = get_registry("datasets").get(protocol.dataset)
    # data_root only when set: an explicit None would beat a gin binding of the factory's data_root
    options = {"data_root": protocol.data_root} if protocol.data_root is not None else {}
    try:
        dataset = factory(**options)
    except DisbenchError:
        raise
    except (ValueError, TypeError) as exc:
        raise DisbenchError(f"dataset {protocol.dataset!r}: {exc}") from None
    channels, height, width = dataset.observation_shape
    if (height, width) != (IMAGE_SIZE, IMAGE_SIZE) or channels not in (1, 3):
        raise DisbenchError(
            f"dataset {protocol.dataset!r} has images of shape {dataset.observation_shape}; "
            f"the conv64 architecture needs (1 or 3, {IMAGE_SIZE}, {IMAGE_SIZE})"
        )
    return dataset


def build_model(run: Run, protocol: Protocol, dataset: ImageDataset) -> torch.nn.Module:
    cls = get_registry("models").get(run.model)
    kwargs = dict(
        latent_dim=protocol.latent_dim,
        num_channels=dataset.observation_shape[0],
        likelihood=dataset.likelihood,
        dataset_size=len(dataset),
    )
    if run.scheduler is not None:  # only when asked: an explicit argument would beat gin's bindings
        kwargs["scheduler"] = run.scheduler
    try:
        return cls(**kwargs)
    except DisbenchError:
        raise
    except (ValueError, TypeError) as exc:
        raise DisbenchError(f"model {run.model!r}: {exc}") from None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DisbenchError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise DisbenchError(f"--device {name!r}: expected cpu, cuda, cuda:N or auto") from None
