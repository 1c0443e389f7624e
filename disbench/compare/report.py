"""Tables and figures of a compare directory, from its saved runs only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DisbenchError
from ..figures import draw_figures
from ..figures.boxes import box_figure_stem, plot_boxes
from ..figures.sweep import plot_sweep_axis, sweep_figure_stem, value_text
from ..registry import check_name
from .aggregate import SCORE, Comparison, aggregate, discover
from .manifest import COMPARE_NAME, read_manifest
from .plan import GridPoint, check_folder_name
from .tables import label_of, title, write_tables

FIGURES_FOLDER = "figures"


@dataclass
class CompareReport:
    comparison: Comparison
    tables: list[Path]
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_comparison(compare_dir: Path, same_execution: bool = False):
    """The comparison of the runs listed in compare.json (or found under runs/), and the
    manifest; ``same_execution`` refuses a row whose runs were executed differently."""
    compare_dir = Path(compare_dir)
    manifest = read_manifest(compare_dir) or {}
    models, seeds = manifest.get("models"), manifest.get("seeds")
    if not models or not seeds:
        models, seeds = discover(compare_dir)
    if not models:
        raise DisbenchError(f"{compare_dir} is not a compare directory (no compare.json, no runs/MODEL/seedS folders)")
    check_listed(compare_dir, models, seeds)
    where = f"{compare_dir / COMPARE_NAME}: grid point"
    points = [manifest_point(p, where) for p in manifest.get("points") or ()]
    if manifest.get("model_points"):  # a study: each model its own grid
        points = {model: [manifest_point(p, where) for p in listed]
                  for model, listed in manifest["model_points"].items()}
    grid = {name: values for name, values in manifest.get("grid") or ()}
    return aggregate(compare_dir, models, seeds, metric_order=manifest.get("metrics") or (), points=points or None,
                     grid=grid, same_execution=same_execution), manifest


def manifest_point(entry: dict, where: str) -> GridPoint:
    """A grid point as compare.json lists it (its folder name checked: it becomes a path)."""
    name = entry.get("name")
    return GridPoint(check_folder_name(name, where) if name else "",
                     tuple((binding, value) for binding, value in entry["bindings"]), entry.get("label") or "")


def check_listed(compare_dir: Path, models, seeds) -> None:
    """The models and seeds a compare.json lists become paths: each must be a safe name."""
    where = Path(compare_dir) / COMPARE_NAME
    for model in models:
        try:
            check_name("model", model)
        except DisbenchError as exc:
            raise DisbenchError(f"{where}: {exc}") from None
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise DisbenchError(f"{where}: seed {seed!r} is not a non-negative integer")


def write_compare_report(compare_dir: Path, out_dir: Path | None = None, *, figures: bool = True,
                         device="cpu", image_index: int | None = None,
                         progress: bool | None = None, same_execution: bool = False) -> CompareReport:
    """Aggregate the runs listed in compare.json (or found under runs/) into
    OUT/table.md, OUT/table.csv and OUT/figures/ (OUT defaults to the compare dir)."""
    compare_dir = Path(compare_dir)
    out_dir = Path(out_dir) if out_dir is not None else compare_dir
    comparison, manifest = load_comparison(compare_dir, same_execution)
    protocol = manifest.get("protocol")
    report = CompareReport(comparison, write_tables(comparison, out_dir, Path(protocol).stem if protocol else None))
    if figures:
        groups = {m: [r.run_dir for r in s.runs if r.results] for m, s in comparison.summaries.items()}
        drawn = draw_figures(groups, out_dir / FIGURES_FOLDER, device=device, image_index=image_index,
                             progress=progress)
        report.figures, report.notes = drawn.written, drawn.notes
        report.figures += _sweep_figures(comparison, out_dir / FIGURES_FOLDER)
        if manifest.get("kind") == "study":
            report.figures += _box_figures(comparison, out_dir / FIGURES_FOLDER)
    return report


def _box_figures(comparison: Comparison, figures_dir: Path) -> list[Path]:
    """A study's box plot per metric: each row's score over its complete seeds."""
    def scores(summary, metric: str) -> list[float]:
        found = [((r.results.get("metrics") or {}).get(metric) or {}).get("score") for r in summary.complete]
        return [score for score in found if score is not None]

    return [path for metric in comparison.metric_names
            for path in plot_boxes(title(label_of(comparison, metric)),
                                   {label: scores(s, metric) for label, s in comparison.summaries.items()},
                                   figures_dir / box_figure_stem(metric))]


def _sweep_figures(comparison: Comparison, figures_dir: Path) -> list[Path]:
    """A sweep's metric-vs-binding figure per grid axis (nothing for a compare): a panel
    per metric score and one for the final reconstruction loss, a line per model and
    combination of the other axes' values, its points the complete rows."""
    panels = [(title(label_of(comparison, m)), lambda s, m=m: s.metrics.get(m, {}).get(SCORE))
              for m in comparison.metric_names]
    panels.append(("reconstruction loss (nats)", lambda s: s.final.get("recon")))
    return [path for axis, values in comparison.grid.items()
            for path in plot_sweep_axis(axis, list(values), _sweep_lines(comparison, axis, list(values)), panels,
                                        figures_dir / sweep_figure_stem(axis))]


def _sweep_lines(comparison: Comparison, axis: str, values: list) -> dict[str, dict[int, object]]:
    """{line label: {index of the axis value: the complete row at it}}: a line per model
    and combination of the other axes' values."""
    lines: dict[str, dict[int, object]] = {}
    for summary in comparison.summaries.values():
        bindings = dict(summary.point.bindings)
        if axis not in bindings or not summary.complete:
            continue
        others = ", ".join(f"{k.rsplit('.', 1)[1]}={value_text(v)}" for k, v in bindings.items() if k != axis)
        lines.setdefault(summary.model + (f", {others}" if others else ""), {})[values.index(bindings[axis])] = summary
    return lines
