"""Read a comparison's runs back and summarise each model over its seeds.

Only complete runs are averaged; failed and unfinished ones are counted and
listed, never silently dropped. A metric's columns are the factors of its
``per_factor``, then its named ``scores`` in alphabetical order (column
``score:NAME``), then ``score``; metrics are keyed as stored, so ``dci`` (mean representation) and
``dci@sampled`` are two tables. Statistics are the mean and the sample
standard deviation (ddof = 1) over seeds; with one complete seed the std is
None (shown as "—"). Runs trained under different protocol fingerprints are
refused: their numbers are not comparable. Runs of one row executed
differently (:mod:`disbench.execution`: threads, fused group size, layout,
device, ...) are averaged and named under the tables, or refused with
``same_execution``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DisbenchError
from ..execution import SETTING_TEXT, SETTINGS, run_settings
from ..metrics import parse_metric_name
from .plan import NO_POINT, RUNS_FOLDER, GridPoint, read_status, row_label, run_dir_for

FINAL_KEYS = ("recon", "kl", "beta")
# How the controller tracked and when latents emerged (results.json 'controller' and
# 'emergence', disbench.analysis): column -> how to read it from a run's results.
DYNAMICS = {
    "last_phase_error_rms": lambda r: ((r.get("controller") or {}).get("last_phase") or {}).get("error_rms"),
    "fraction_at_beta_min": lambda r: (r.get("controller") or {}).get("fraction_at_beta_min"),
    "beta_crosses_1_at": lambda r: (r.get("controller") or {}).get("beta_crosses_1_at"),
    "overshoot_max": lambda r: (r.get("controller") or {}).get("overshoot_max"),
    "latents_emerged": lambda r: len((r.get("emergence") or {}).get("order") or []) if r.get("emergence") else None,
    "smallest_emergence_gap": lambda r: (r.get("emergence") or {}).get("smallest_gap"),
}
SCORE = "score"
UNRECORDED = "unrecorded"  # a run trained before executions were recorded
NAMED_SCORE = "score:"  # column of a metric's named score: "score:completeness"


def column_value(result: dict, column: str):
    """One table cell's value of one run's metric result (None when absent)."""
    if column == SCORE:
        return result.get(SCORE)
    if column.startswith(NAMED_SCORE):
        return (result.get("scores") or {}).get(column[len(NAMED_SCORE):])
    return (result.get("per_factor") or {}).get(column)


@dataclass(frozen=True)
class MetricLabel:
    """What a metric table shows: the metric, its representation, and what its
    score and factor columns are (from the results, when the metric says)."""

    metric: str
    representation: str
    score_name: str = ""
    per_factor_name: str = ""


@dataclass
class RunRecord:
    model: str
    seed: int
    run_dir: Path
    results: dict | None  # None: never started
    point: GridPoint = NO_POINT

    @property
    def label(self) -> str:
        return row_label(self.model, self.point)

    @property
    def status(self) -> str:
        return (self.results or {}).get("status", "missing")

    @property
    def fingerprint(self) -> str | None:
        return (self.results or {}).get("protocol_fingerprint")


@dataclass
class Stat:
    n: int
    mean: float | None
    std: float | None  # sample std (ddof = 1); None with fewer than two values
    median: float | None = None
    q1: float | None = None  # the quartiles, linear interpolation (numpy's and matplotlib's box plots')
    q3: float | None = None


def stat(values) -> Stat:
    values = [float(v) for v in values if v is not None]
    n = len(values)
    if n == 0:
        return Stat(0, None, None)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    ordered = sorted(values)
    return Stat(n, mean, std, *(percentile(ordered, q) for q in (0.5, 0.25, 0.75)))


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values, linearly interpolated between the two nearest."""
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class ModelSummary:
    """One row of the tables: a model (and, in a sweep, one grid point) over its seeds."""

    model: str
    runs: list[RunRecord]
    metrics: dict[str, dict[str, Stat]] = field(default_factory=dict)  # metric -> column -> stat
    final: dict[str, Stat] = field(default_factory=dict)                # recon / kl / beta -> stat
    dynamics: dict[str, Stat] = field(default_factory=dict)             # DYNAMICS column -> stat
    point: GridPoint = NO_POINT

    @property
    def label(self) -> str:
        return row_label(self.model, self.point)

    @property
    def complete(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status == "complete"]

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status == "failed"]

    @property
    def unfinished(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status not in ("complete", "failed")]

    @property
    def execution(self) -> dict[str, dict[str, list[int]]]:
        """Each execution setting -> its values among the averaged runs -> their seeds."""
        out: dict[str, dict[str, list[int]]] = {name: {} for name in SETTINGS}
        for r in self.complete:
            settings = run_settings(r.results)
            for name in SETTINGS:
                out[name].setdefault(settings.get(name) or UNRECORDED, []).append(r.seed)
        return out

    @property
    def mixed_execution(self) -> dict[str, dict[str, list[int]]]:
        """The settings in which the averaged runs differ."""
        return {name: values for name, values in self.execution.items() if len(values) > 1}


@dataclass
class Comparison:
    compare_dir: Path
    models: list[str]
    seeds: list[int]
    fingerprint: str | None
    metric_names: list[str]
    columns: dict[str, list[str]]  # metric -> factor names in dataset order, named scores, then "score"
    summaries: dict[str, ModelSummary]  # row label (the model; in a sweep "model [point]") -> summary
    protocol: dict | None = None   # the protocol settings of the runs
    dataset: dict | None = None    # what the runs recorded about their data
    labels: dict[str, MetricLabel] = field(default_factory=dict)  # metric -> what its table shows
    grid: dict[str, list] = field(default_factory=dict)  # a sweep's axes: binding -> its values, in order

    @property
    def records(self) -> list[RunRecord]:
        return [r for s in self.summaries.values() for r in s.runs]


def discover(compare_dir: Path) -> tuple[list[str], list[int]]:
    """Models and seeds from DIR/runs/MODEL/seedS (when there is no compare.json)."""
    models, seeds = [], set()
    root = Path(compare_dir) / RUNS_FOLDER
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        found = [int(m[1]) for p in model_dir.iterdir() if (m := re.fullmatch(r"seed(\d+)", p.name))]
        if found:
            models.append(model_dir.name)
            seeds.update(found)
    return models, sorted(seeds)


def collect(compare_dir: Path, models: list[str], seeds: list[int], points=(NO_POINT,)) -> list[RunRecord]:
    """Each (model, point, seed)'s record; ``points``: every model's, or ``{model: its points}``."""
    records = []
    for model in models:
        for point in model_points(points, model):
            for seed in seeds:
                run_dir = run_dir_for(compare_dir, model, seed, point.name)
                records.append(RunRecord(model, seed, run_dir, read_status(run_dir), point))
    return records


def model_points(points, model: str) -> list:
    """A model's grid points: ``points`` itself, or (a study: each model its own grid) ``points[model]``."""
    return list(points.get(model) or [NO_POINT]) if isinstance(points, dict) else list(points)


def check_fingerprints(records: list[RunRecord], compare_dir: Path) -> str | None:
    """The one protocol fingerprint of the runs; DisbenchError naming the runs if several."""
    groups: dict[str, list[str]] = {}
    for r in records:
        if r.fingerprint:
            groups.setdefault(r.fingerprint, []).append(str(r.run_dir.relative_to(compare_dir)))
    if len(groups) > 1:
        ordered = sorted(groups.items(), key=lambda g: -len(g[1]))
        listing = "; ".join(f"{fp}: {', '.join(dirs)}" for fp, dirs in ordered)
        raise DisbenchError("refusing to aggregate runs trained under different protocols "
                            f"(fingerprint: runs) — {listing}")
    return next(iter(groups), None)


def mixed_text(label: str, mixed: dict[str, dict[str, list[int]]]) -> str:
    """``vae: threads 1 (seeds 1, 2), 2 (seed 3)`` — a row's runs that were executed differently."""
    parts = []
    for name, values in mixed.items():
        listed = ", ".join(f"{value} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})"
                           for value, seeds in values.items())
        parts.append(f"{SETTING_TEXT[name]} {listed}")
    return f"{label}: {'; '.join(parts)}"


def check_same_execution(summaries) -> None:
    """``--same-execution``: refuse a row whose averaged runs were executed differently."""
    for summary in summaries:
        if summary.mixed_execution:
            raise DisbenchError(f"--same-execution: the runs of {mixed_text(summary.label, summary.mixed_execution)} "
                                "were executed differently; run them again alike or leave out --same-execution")


def aggregate(compare_dir: Path, models: list[str], seeds: list[int], metric_order=(),
              points: list[GridPoint] | dict | None = None, grid: dict | None = None,
              same_execution: bool = False) -> Comparison:
    """Summaries per model, or per (model, grid point) of a sweep (``points``, ``grid``;
    for a study, each model's own points: ``{model: points}``); with ``same_execution``,
    a row whose runs were executed differently is refused."""
    compare_dir = Path(compare_dir)
    points = points or [NO_POINT]
    records = collect(compare_dir, models, seeds, points)
    fp = check_fingerprints(records, compare_dir)
    complete = [r for r in records if r.status == "complete"]
    described = complete or [r for r in records if r.results]
    first = described[0].results if described else {}

    found = {m for r in complete for m in (r.results.get("metrics") or {})}
    metric_names = _beside_their_mean([m for m in metric_order if m in found] + sorted(found - set(metric_order)))
    factor_order = list((first.get("dataset") or {}).get("factor_names") or [])
    columns, labels = {}, {}
    for metric in metric_names:
        found_results = [res for r in complete if (res := (r.results.get("metrics") or {}).get(metric))]
        factors = {f for res in found_results for f in (res.get("per_factor") or {})}
        ordered = [f for f in factor_order if f in factors] + sorted(factors - set(factor_order))
        named = sorted({n for res in found_results for n in (res.get("scores") or {})})  # results.json sorts keys
        columns[metric] = ordered + [NAMED_SCORE + n for n in named] + [SCORE]
        labels[metric] = _label(metric, found_results)

    summaries = {}
    for model, point in ((m, p) for m in models for p in model_points(points, m)):
        runs = [r for r in records if r.model == model and r.point == point]
        summary = ModelSummary(model, runs, point=point)
        done = summary.complete
        for metric in metric_names:
            results = [(r.results.get("metrics") or {}).get(metric) for r in done]
            results = [res for res in results if res]
            summary.metrics[metric] = {col: stat([column_value(res, col) for res in results])
                                       for col in columns[metric]}
        summary.final = {k: stat([(r.results.get("final") or {}).get(k) for r in done]) for k in FINAL_KEYS}
        summary.dynamics = {k: stat([read(r.results) for r in done]) for k, read in DYNAMICS.items()}
        summaries[summary.label] = summary
    if same_execution:
        check_same_execution(summaries.values())
    return Comparison(compare_dir, list(models), list(seeds), fp, metric_names, columns, summaries,
                      protocol=first.get("protocol"), dataset=first.get("dataset"), labels=labels,
                      grid=dict(grid or {}))


def _base_and_kind(metric: str) -> tuple[str, str]:
    try:
        return parse_metric_name(metric)
    except DisbenchError:  # a key this version cannot parse: show it as it is
        return metric, "mean"


def _beside_their_mean(names: list[str]) -> list[str]:
    """``names`` with each metric's representations together, in the order its
    first one came: [dci, sap, dci@sampled] -> [dci, dci@sampled, sap]."""
    bases = list(dict.fromkeys(_base_and_kind(n)[0] for n in names))
    return sorted(names, key=lambda n: bases.index(_base_and_kind(n)[0]))


def _label(metric: str, results: list[dict]) -> MetricLabel:
    """The metric's name and representation from its key (``dci@sampled``; a
    result saved before representations existed is ``mean``), and the names of
    its score and factor columns from the first result that gives them."""
    base, representation = _base_and_kind(metric)
    score_name = next((res["score_name"] for res in results if res.get("score_name")), "")
    per_factor_name = next((res["per_factor_name"] for res in results if res.get("per_factor_name")), "")
    return MetricLabel(base, representation, score_name, per_factor_name)
