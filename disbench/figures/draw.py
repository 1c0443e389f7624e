"""Every figure that applies to a set of runs, grouped by model.

Figure files (each as .png and .pdf) in the figures folder:

    recon_vs_steps      reconstruction loss, mean ± std over seeds       (paper Fig. 2a)
    beta_vs_steps       β(t), log scale, mean ± std over seeds           (Fig. 2b)
    kl_per_latent       per-latent KL (+ set point) of each model's first run (Fig. 2c, 7 top)
    metrics_vs_steps    metric scores and recon during training, when metrics.jsonl exists (Fig. 6)
    traversal_MODEL     latent traversals of each model's first complete run (Fig. 3)

Curves average a model's complete runs; a model with none is drawn from its
unfinished/failed runs' logs and marked "(not complete)".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DisbenchError
from ..progress import progress_bar
from ..runs import METRICS_LOG_NAME, read_results
from ..trained import load_trained
from ..training.scalars import SCALARS_NAME, read_scalars
from .curves import plot_kl_per_latent, plot_metric_curves, plot_seed_curves
from .style import model_colors
from .traversal import plot_traversal


@dataclass
class FigureReport:
    written: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # figures that could not be drawn, and why


def _results(run_dir: Path) -> dict:
    try:
        return read_results(run_dir) or {}
    except DisbenchError:  # an unreadable run is left out of the figures, not fatal
        return {}


def draw_figures(groups: dict[str, list[Path]], figures_dir: Path, *, device="cpu",
                 image_index: int | None = None, progress: bool | None = None) -> FigureReport:
    """Draw all figures for ``groups`` (model -> its run directories, first seed first)."""
    figures_dir = Path(figures_dir)
    groups = {m: [Path(d) for d in dirs] for m, dirs in groups.items()}
    logs = {d: read_scalars(d / SCALARS_NAME) for dirs in groups.values() for d in dirs}
    results = {d: _results(d) for dirs in groups.values() for d in dirs}
    complete = {m: [d for d in dirs if results[d].get("status") == "complete"] for m, dirs in groups.items()}
    averaged, labels = {}, {}
    for model, dirs in groups.items():
        chosen = complete[model] or [d for d in dirs if logs[d]]
        if chosen:
            averaged[model] = chosen
            labels[model] = model if complete[model] else f"{model} (not complete)"
    colors = model_colors(labels.values())
    series = {labels[m]: [logs[d] for d in dirs] for m, dirs in averaged.items()}
    first = {f"{labels[m]}, seed {results[dirs[0]].get('seed')}": logs[dirs[0]] for m, dirs in averaged.items()}
    emergence = {f"{labels[m]}, seed {results[dirs[0]].get('seed')}": results[dirs[0]].get("emergence")
                 for m, dirs in averaged.items()}
    metric_logs = {labels[m]: [rows for d in dirs if (rows := read_scalars(d / METRICS_LOG_NAME))]
                   for m, dirs in averaged.items()}
    metric_logs = {k: v for k, v in metric_logs.items() if v}

    tasks = [
        ("recon_vs_steps", lambda stem: plot_seed_curves(
            series, "recon", stem, ylabel="reconstruction loss (nats)", title="Reconstruction loss", colors=colors)),
        ("beta_vs_steps", lambda stem: plot_seed_curves(
            series, "beta", stem, ylabel="β(t)", title="KL weight β(t)", colors=colors, log_y=True)),
        ("kl_per_latent", lambda stem: plot_kl_per_latent(first, stem, emergence)),
    ]
    if metric_logs:
        tasks.append(("metrics_vs_steps", lambda stem: plot_metric_curves(
            metric_logs, {k: v for k, v in series.items() if k in metric_logs}, stem, colors=colors)))
    for model, dirs in complete.items():
        if dirs:
            name = "traversal_" + re.sub(r"[^\w.+\-=,]+", "_", model).strip("_")  # a sweep's "model [ki=0.01]"
            tasks.append((name, lambda stem, d=dirs[0]: _traversal(d, stem, device, image_index)))

    report = FigureReport()
    for name, draw in progress_bar(tasks, desc="figures", unit="figure",
                                   disable=None if progress is None else not progress):
        try:
            report.written += draw(figures_dir / name)
        except (DisbenchError, OSError) as exc:  # e.g. the dataset is not on this machine
            report.notes.append(f"{name}: {exc}")
    return report


def _traversal(run_dir: Path, stem: Path, device, image_index) -> list[Path]:
    return plot_traversal(load_trained(run_dir, device=device), stem, image_index=image_index)
