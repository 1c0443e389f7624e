"""Build a run from the parsed gin config: the one path training, evaluation
and the checks before a run starts all take.

:func:`check_run_config` validates everything it can without loading images
(names, settings, the dataset's metadata, the model and its scheduler on the
CPU); :func:`build_configured_run` builds the protocol, dataset and model on
the training device. Training hands its built run to the evaluation that
follows, so neither the dataset nor the model is built twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import gin
import numpy as np
import torch

from .config import Protocol, Run, bindings_of, build_protocol, build_run, config_notes, fingerprint
from .data import DatasetInfo, ImageDataset, dataset_info
from .determinism import configure_determinism
from .errors import DisbenchError
from .metrics import metric_base_name
from .models.architecture import DEFAULT_ARCHITECTURE, IMAGE_SIZE
from .registry import get_registry


@dataclass
class BuiltRun:
    """A configured run, built: what training and evaluation work on."""

    protocol: Protocol
    run: Run
    dataset: ImageDataset
    model: torch.nn.Module
    device: torch.device
    fingerprint: str
    notes: list = field(default_factory=list)  # what the config left out (absent plugins)
    operative_config: str = ""  # the gin bindings the build used


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_configured_run(device, dataset: ImageDataset | None = None) -> BuiltRun:
    """Seed, then build the dataset (unless given: the members of a group share
    one) and the model, in that order — a run's initial weights depend on it."""
    protocol, run = build_protocol(), build_run()
    metric_classes(protocol.metrics)  # unknown names fail before the dataset loads
    configure_determinism(protocol.deterministic)
    seed_everything(run.seed)
    if dataset is None:
        dataset = build_dataset(protocol)
    check_metrics_apply(protocol.metrics, DatasetInfo.of(dataset))
    model = build_model(run, protocol, dataset).to(device)
    return BuiltRun(protocol, run, dataset, model, torch.device(device), run_fingerprint(protocol, len(dataset)),
                    config_notes(), gin.operative_config_str())


def check_run_config() -> tuple[Protocol, Run, DatasetInfo]:
    """Every check of the parsed config that needs no images: settings, the
    model / scheduler / dataset / metric names, whether the metrics apply to
    the dataset, and the model and scheduler settings (built once on the CPU)."""
    protocol, run = build_protocol(), build_run()
    check_compile_mode(protocol)
    get_registry("models").get(run.model)
    get_registry("architectures").get(protocol.architecture)
    if isinstance(run.scheduler, str):
        get_registry("schedulers").get(run.scheduler)
    metric_classes(protocol.metrics)
    info = dataset_info(protocol.dataset, protocol.data_root)
    check_observation_shape(protocol.dataset, info.observation_shape)
    check_metrics_apply(protocol.metrics, info)
    with torch.random.fork_rng(devices=[]):  # building must not move the caller's random streams
        build_model(run, protocol, info)
    return protocol, run, info


def check_compile_mode(protocol: Protocol, device=None) -> None:
    """``Protocol.compile = 'cudagraph'`` needs CUDA: refused on a machine without it
    (or for a run on another ``device``), before anything is made."""
    if protocol.compile != "cudagraph":
        return
    where = None
    if device is not None and torch.device(device).type != "cuda":
        where = f"this run trains on {torch.device(device)}"
    elif not torch.cuda.is_available():
        where = "this machine has no CUDA device"
    if where:
        raise DisbenchError(f"Protocol.compile = 'cudagraph' needs CUDA and {where}: use 'compile' or 'none'")


def metric_classes(names) -> list:
    """The registered class of each metric name (``dci@sampled`` -> dci's)."""
    registry = get_registry("metrics")
    return [registry.get(metric_base_name(name)) for name in names]


def check_metrics_apply(names, info: DatasetInfo) -> None:
    """A metric that needs ground-truth factors is refused for a dataset without them."""
    if info.has_factors:
        return
    needing = [n for n, cls in zip(names, metric_classes(names)) if getattr(cls, "requires_factors", True)]
    if needing:
        raise DisbenchError(
            f"metric(s) {', '.join(map(repr, needing))} need ground-truth factors, and dataset {info.name!r} "
            "has none: set Protocol.metrics to metrics without that need (or to [])"
        )


def run_fingerprint(protocol: Protocol, num_images: int) -> str:
    """The protocol fingerprint, including the dataset's and the metrics' gin bindings."""
    factory = get_registry("datasets").get(protocol.dataset)
    return fingerprint(protocol, {"dataset": bindings_of([factory]),
                                  "metrics": bindings_of(metric_classes(protocol.metrics)),
                                  "num_images": int(num_images)})


def check_observation_shape(name: str, shape) -> None:
    if shape is None:
        return
    channels, height, width = shape
    if (height, width) != (IMAGE_SIZE, IMAGE_SIZE) or channels not in (1, 3):
        raise DisbenchError(
            f"dataset {name!r} has images of shape {tuple(shape)}; "
            f"the architectures need (1 or 3, {IMAGE_SIZE}, {IMAGE_SIZE})"
        )


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
    check_observation_shape(protocol.dataset, dataset.observation_shape)
    return dataset


def build_model(run: Run, protocol: Protocol, data: ImageDataset | DatasetInfo) -> torch.nn.Module:
    """The run's model for a dataset (or for its metadata: the same model, from its shape)."""
    cls = get_registry("models").get(run.model)
    info = data if isinstance(data, DatasetInfo) else DatasetInfo.of(data)
    kwargs = dict(
        latent_dim=protocol.latent_dim,
        num_channels=(info.observation_shape or (1,))[0],
        likelihood=likelihood(protocol, info),
        dataset_size=info.num_images,
    )
    if run.scheduler is not None:  # only when asked: an explicit argument would beat gin's bindings
        kwargs["scheduler"] = run.scheduler
    if protocol.architecture != DEFAULT_ARCHITECTURE:  # only when chosen: a model written before it need not know
        kwargs["architecture"] = protocol.architecture
    try:
        return cls(**kwargs)
    except DisbenchError:
        raise
    except (ValueError, TypeError) as exc:
        raise DisbenchError(f"model {run.model!r}: {exc}") from None


def likelihood(protocol: Protocol, info: DatasetInfo) -> str:
    """The reconstruction likelihood: ``Protocol.likelihood``, or with ``'dataset'`` the
    dataset's own (Bernoulli for binary images, Gaussian for grey and colour ones)."""
    if protocol.likelihood != "dataset":
        return protocol.likelihood
    return info.likelihood or "bernoulli"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return canonical_device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DisbenchError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
    try:
        return canonical_device(name)
    except RuntimeError:
        raise DisbenchError(f"--device {name!r}: expected cpu, cuda, cuda:N or auto") from None


def canonical_device(device) -> torch.device:
    """The device as its tensors name it: 'cuda' -> 'cuda:N' (the current one), 'cpu:0' ->
    'cpu'. A compiled step guards on the device; a name that differs from its tensors'
    would recompile it."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    if device.type == "cpu":
        return torch.device("cpu")
    return device
