"""The comparison grid: which (model, seed) runs exist, and what each still needs.

Every check that can fail on user input (seeds, model names, protocol, metric
names, a run directory trained under another protocol) runs here, before any
training starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..builders import build_model, check_metrics_apply, check_run_config, metric_classes, run_fingerprint
from ..config import MAX_SEED, ConfigSources, bindings_of, build_protocol, parse_sources
from ..data import dataset_info
from ..errors import DisbenchError
from ..metrics import resolve_metrics, with_representations
from ..registry import get_registry
from ..runner import check_same_config
from ..runs import CONFIG_NAME, RESULTS_NAME, read_results
from ..training.parts import forward_key

RUNS_FOLDER = "runs"

# What a run needs, by its status on disk.
TRAIN, RESUME, RETRY, EVALUATE, DONE, SKIP_FAILED = "train", "resume", "retry", "evaluate", "done", "failed"
TODO_ACTIONS = (TRAIN, RESUME, RETRY, EVALUATE)


def run_dir_for(compare_dir: Path, model: str, seed: int, point: str = "") -> Path:
    """DIR/runs/MODEL/seedS, or DIR/runs/MODEL/POINT/seedS for a sweep's grid point."""
    base = Path(compare_dir) / RUNS_FOLDER / model
    return (base / point if point else base) / f"seed{seed}"


MAX_FOLDER_BYTES = 255  # a folder name's limit on common file systems


def check_folder_name(name, what: str) -> str:
    """``name`` as one folder name (no separator, not '.' or '..', at most 255 bytes), else DisbenchError."""
    if (not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in "/\\\0")
            or len(name.encode("utf-8", "surrogatepass")) > MAX_FOLDER_BYTES):
        raise DisbenchError(f"{what} {name!r} cannot be a folder name (one path component of at most "
                            f"{MAX_FOLDER_BYTES} bytes, no '/')")
    return name


@dataclass(frozen=True)
class GridPoint:
    """One point of a sweep's grid: its folder name (``ki=0.005,stop=14``), its gin
    bindings (``{'PIBetaScheduler.ki': 0.005, ...}``) and its label in the tables
    (the full values, where the folder name shortens long ones). A compare has one
    point, ``NO_POINT``."""

    name: str = ""
    bindings: tuple = ()  # ((binding, value), ...) in the order of the --grid options
    text: str = ""        # the label, when it is not the folder name's

    @property
    def label(self) -> str:
        return self.text or self.name.replace(",", ", ")


NO_POINT = GridPoint()


def parse_seeds(text: str) -> list[int]:
    """``"1-5"``, ``"1,3,7"``, ``"2"`` or a mix (``"1-3,7"``) -> seeds in the order given."""
    seeds: list[int] = []
    items = (text or "").split(",")
    for item in items:
        item = item.strip()
        single, span = re.fullmatch(r"\d+", item), re.fullmatch(r"(\d+)\s*-\s*(\d+)", item)
        if any(int(n) > MAX_SEED for n in re.findall(r"\d+", item)):
            raise DisbenchError(f"--seeds {text!r}: seeds go from 0 to {MAX_SEED:,} (2^32 - 1)")
        if single:
            new = [int(item)]
        elif span and int(span[1]) <= int(span[2]):
            new = list(range(int(span[1]), int(span[2]) + 1))
        else:
            raise DisbenchError(
                f"--seeds {text!r}: {item!r} is not a seed; expected non-negative integers and "
                "ranges such as '1-5', '1,3,7' or '2'"
            )
        for seed in new:
            if seed in seeds:
                raise DisbenchError(f"--seeds {text!r}: seed {seed} is listed twice")
            seeds.append(seed)
    return seeds


def parse_models(text: str | None) -> list[str]:
    """Comma-separated registered model names; unknown ones fail with the closest match."""
    models = [m.strip() for m in (text or "").split(",") if m.strip()]
    if not models:
        raise DisbenchError("--models is empty: give comma-separated model names (see `disbench plugins`)")
    if len(models) != len((text or "").split(",")):
        raise DisbenchError(f"--models {text!r}: an empty name between commas")
    duplicates = sorted({m for m in models if models.count(m) > 1})
    if duplicates:
        raise DisbenchError(f"--models lists {', '.join(duplicates)} more than once")
    registry = get_registry("models")
    for name in models:
        registry.get(name)
    return models


@dataclass(frozen=True)
class RunJob:
    """One (model, seed) of the grid and what it needs; picklable for worker processes."""

    model: str
    seed: int
    run_dir: str
    action: str
    sources: ConfigSources
    metrics: tuple | None = None  # metrics to evaluate (None: the protocol's)
    point: GridPoint = NO_POINT   # a sweep's grid point (its bindings are in ``sources``)
    fuse_key: str = ""            # runs may share a fused group only with equal keys (their forward pass)

    @property
    def todo(self) -> bool:
        return self.action in TODO_ACTIONS

    @property
    def key(self) -> tuple:
        return self.model, self.point.name, self.seed

    @property
    def label(self) -> str:
        """The row this run is averaged into: the model, and its grid point in a sweep."""
        return row_label(self.model, self.point)


def row_label(model: str, point: GridPoint) -> str:
    return f"{model} [{point.label}]" if point.name else model


def read_status(run_dir: Path) -> dict | None:
    """A run's results.json, or None when the run has not started."""
    return read_results(run_dir)


@dataclass
class Plan:
    jobs: list[RunJob]
    metrics: tuple  # the metrics every complete run must have (--metrics, else the protocol's)

    @property
    def todo(self) -> list[RunJob]:
        return [j for j in self.jobs if j.todo]

    def count(self, action: str) -> int:
        return sum(j.action == action for j in self.jobs)


def plan_runs(compare_dir: Path, models: list[str], seeds: list[int], sources: ConfigSources,
              metrics: list[str] | None = None, retry_failed: bool = False,
              representations: tuple[str, ...] | None = None, points: list[GridPoint] | None = None) -> Plan:
    """The job for every (model, grid point, seed), after checking the configuration of
    each model. ``representations`` asks for each metric on each of them (``dci``,
    ``dci@sampled``); ``points`` are a sweep's grid points (a compare has none)."""
    jobs, first_requested = [], None
    fingerprints = _FingerprintCache()
    for model, point in ((m, p) for m in models for p in (points or [NO_POINT])):
        point_sources = _with_bindings(sources, dict(point.bindings))
        requested, checked = _check_configuration(point_sources, model, metrics, representations)
        fuse_key = _forward_key(*checked)
        first_requested = requested if first_requested is None else first_requested
        for seed in seeds:
            run_dir = run_dir_for(compare_dir, model, seed, point.name)
            results = read_status(run_dir)
            asked = tuple(requested) if (metrics or representations) else None  # None: the protocol's
            job = RunJob(model, seed, str(run_dir), TRAIN, _with_bindings(point_sources, {"Run.seed": seed}),
                         asked, point, fuse_key)
            if results is None:
                jobs.append(job)
                continue
            expected = fingerprints.get(job.sources, model)
            if results.get("protocol_fingerprint") not in (None, expected):
                raise DisbenchError(
                    f"{run_dir} was trained under protocol fingerprint {results['protocol_fingerprint']}, "
                    f"but this command configures {expected} (other --protocol, --steps, --dataset or gin "
                    "bindings?): use another --out, or the options the runs were made with"
                )
            if (run_dir / CONFIG_NAME).is_file():
                check_same_config(run_dir, job.sources, model)  # a changed scheduler binding, say
            jobs.append(_next_step(job, results, requested, retry_failed))
    return Plan(jobs, tuple(first_requested or ()))


def _next_step(job: RunJob, results: dict, requested: tuple, retry_failed: bool) -> RunJob:
    status = results.get("status")
    if status == "complete":
        missing = tuple(m for m in requested if m not in (results.get("metrics") or {}))
        return replace(job, action=EVALUATE if missing else DONE, metrics=missing or None)
    if status in ("created", "interrupted", "running"):
        return replace(job, action=RESUME)
    if status == "failed":
        return replace(job, action=RETRY if retry_failed else SKIP_FAILED)
    raise DisbenchError(f"{job.run_dir}: unknown run status {status!r} in {RESULTS_NAME}")


def refresh_job(job: RunJob) -> RunJob:
    """``job`` with its action re-read from disk, just before it runs: another process
    (a second driver, an earlier attempt of a retried Ray task) may have started,
    finished or failed the run since it was planned."""
    if job.action == EVALUATE:
        return job
    results = read_status(job.run_dir)
    if results is None:
        return replace(job, action=TRAIN)
    status = results.get("status")
    if status == "complete":
        return replace(job, action=DONE)  # trained and evaluated by whoever finished it
    if status == "failed" and job.action != RETRY:
        return replace(job, action=SKIP_FAILED)
    return replace(job, action=RESUME if status != "failed" else RETRY)


def _with_bindings(sources: ConfigSources, bindings: dict) -> ConfigSources:
    return replace(sources, overrides={**sources.overrides, **bindings}) if bindings else sources


def _check_configuration(sources: ConfigSources, model: str, metrics: list[str] | None,
                         representations: tuple[str, ...] | None = None) -> tuple[tuple, tuple]:
    """Parse and check the model's configuration once (everything but the images:
    see :func:`disbench.builders.check_run_config`); return the metrics a complete
    run must have, and the checked (protocol, run, dataset info)."""
    parse_sources(sources, model=model)
    protocol, run, info = check_run_config()
    requested = tuple(with_representations(metrics or protocol.metrics, representations))
    resolve_metrics(requested)  # unknown names, or a representation a metric does not offer
    metric_classes(requested)
    check_metrics_apply(requested, info)
    return requested, (protocol, run, info)


def _forward_key(protocol, run, info) -> str:
    """The parsed configuration's forward pass (:func:`disbench.training.parts.forward_key`):
    runs of any models and settings whose keys are equal may share a fused group."""
    with torch.random.fork_rng(devices=[]):
        return forward_key(build_model(run, protocol, info))


class _FingerprintCache:
    """The protocol fingerprint a configuration gives, computed only when an existing
    run must be checked against it (from the dataset's metadata: no images are loaded)."""

    def __init__(self):
        self._sizes: dict[str, int] = {}

    def get(self, sources: ConfigSources, model: str) -> str:
        parse_sources(sources, model=model)
        protocol = build_protocol()
        factory = get_registry("datasets").get(protocol.dataset)
        key = repr((protocol.dataset, protocol.data_root, bindings_of([factory])))
        if key not in self._sizes:
            self._sizes[key] = dataset_info(protocol.dataset, protocol.data_root).num_images
        return run_fingerprint(protocol, self._sizes[key])
