"""Training curves from scalars.jsonl / metrics.jsonl rows.

``series`` arguments map a legend label to the logged rows of each of its
runs (seeds); a curve is the mean over those runs at the steps they all
logged, with a ±1 sample-std band when there are two runs or more.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .style import FEW_POINTS, STEP_LABEL, new_figure, save_figure, styled


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def band(runs_rows: list[list[dict]], key: str):
    """(steps, mean, std or None, n runs) of ``key`` over runs, or None without data."""
    per_run = [{r["step"]: float(r[key]) for r in rows if _number(r.get(key))} for rows in runs_rows]
    per_run = [p for p in per_run if p]
    if not per_run:
        return None
    steps = sorted(set.intersection(*(set(p) for p in per_run)))
    if not steps:
        return None
    values = np.array([[p[s] for s in steps] for p in per_run])
    std = values.std(axis=0, ddof=1) if len(per_run) > 1 else None
    return np.array(steps), values.mean(axis=0), std, len(per_run)


def _plot_bands(ax, series: dict, key: str, colors: dict, log_y: bool = False) -> int:
    drawn = 0
    for label, runs_rows in series.items():
        b = band(runs_rows, key)
        if b is None:
            continue
        steps, mean, std, n = b
        color = colors.get(label)
        ax.plot(steps, mean, color=color, label=f"{label} ({n} seed{'s' if n > 1 else ''})",
                marker="o" if len(steps) <= FEW_POINTS else None, ms=3)
        if std is not None:
            low = mean - std
            if log_y:  # a band reaching zero cannot be drawn on a log axis: leave that part out
                low = np.where(low > 0, low, np.nan)
            ax.fill_between(steps, low, mean + std, color=color, alpha=0.2, linewidth=0)
        drawn += 1
    return drawn


@styled
def plot_seed_curves(series: dict, key: str, stem: Path, *, ylabel: str, title: str, colors: dict,
                     log_y: bool = False) -> list[Path]:
    """One line per model (mean over seeds, ±1 std band); paper Fig. 2(a), 2(b)."""
    fig = new_figure(5.5, 3.8)
    ax = fig.add_subplot()
    if not _plot_bands(ax, series, key, colors, log_y):
        return []
    if log_y:
        _plain_log_y(ax)
    ax.set(xlabel=STEP_LABEL, ylabel=ylabel, title=title)
    ax.legend()
    return save_figure(fig, stem)


# Log axes are labelled with plain numbers at the values below within each decade — more
# of them the fewer decades the axis spans, so that roughly 5 to 12 labels show — then at
# each power of ten; a range too narrow to hold two such values gets evenly spaced labels
# instead. Every log axis thus carries values that can be read off (not only 1, 10, 100).
LOG_LABEL_SUBS = (  # (at most this many decades, label at these multiples of each power of 10)
    (1.2, (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)),
    (2.5, (1.0, 2.0, 3.0, 5.0)),
    (4.5, (1.0, 2.0, 5.0)),
    (9.0, (1.0,)),
)


def _log_ticks(vmin: float, vmax: float) -> np.ndarray:
    """Major tick values for a log axis showing [vmin, vmax] (both > 0)."""
    from matplotlib import ticker

    vmin, vmax = sorted((vmin, vmax))
    decades = math.log10(vmax / vmin)
    subs = next((subs for most, subs in LOG_LABEL_SUBS if decades <= most), None)
    if subs is None:  # very many decades: matplotlib's own (strided) powers of ten
        return ticker.LogLocator(base=10).tick_values(vmin, vmax)
    exponents = range(math.floor(math.log10(vmin)), math.ceil(math.log10(vmax)) + 1)
    ticks = np.array([s * 10.0**e for e in exponents for s in subs])
    inside = ticks[(ticks >= vmin * (1 - 1e-9)) & (ticks <= vmax * (1 + 1e-9))]
    if len(inside) >= 2:
        return inside
    return ticker.MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]).tick_values(vmin, vmax)


def _log_tick_locator():
    from matplotlib import ticker

    class PlainLogLocator(ticker.Locator):
        def __call__(self):
            vmin, vmax = self.axis.get_view_interval()
            return self.tick_values(vmin, vmax)

        def tick_values(self, vmin, vmax):
            if not vmin > 0:
                vmin = self.axis.get_minpos() if self.axis is not None else vmax * 1e-3
            return self.raise_if_exceeds(_log_ticks(vmin, vmax))

    return PlainLogLocator()


def _plain_log_y(ax) -> None:
    """Log y axis whose values can be read: e.g. 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100 over
    0.1–150, as plain numbers (not 10^-1); denser over a decade, sparser over many."""
    from matplotlib import ticker

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(_log_tick_locator())
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda x, pos: f"{x:g}"))
    ax.yaxis.set_minor_locator(ticker.LogLocator(base=10, subs="auto"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())


@styled
def plot_kl_per_latent(panels: dict, stem: Path, emergence: dict | None = None) -> list[Path]:
    """Per-latent KL vs steps, one panel per run, with the total KL and the set point
    C(t) when the run logged one; paper Fig. 2(c) and Fig. 7 (top). Latents are
    numbered from 1 (z1 is kl_per_dim[0]). ``emergence`` (panel title -> a run's
    results.json ``emergence``) marks where each latent emerged (▲ on the threshold)."""
    panels = {title: rows for title, rows in panels.items() if any("kl_per_dim" in r for r in rows)}
    if not panels:
        return []
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = new_figure(4.4 * ncols, 3.4 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (title, rows) in zip(axes, panels.items()):
        rows = [r for r in rows if "kl_per_dim" in r]
        steps = np.array([r["step"] for r in rows])
        per_dim = np.array([r["kl_per_dim"] for r in rows], dtype=float)
        cmap = _latent_colormap(per_dim.shape[1])
        for j in range(per_dim.shape[1]):
            ax.plot(steps, per_dim[:, j], color=cmap(j), lw=1.0, label=f"z{j}")  # 0-based, as everywhere
        if all(_number(r.get("kl")) for r in rows):
            ax.plot(steps, [r["kl"] for r in rows], color="0.2", lw=1.2, label="total KL")
        setpoint = [(r["step"], r["setpoint"]) for r in rows if _number(r.get("setpoint"))]
        if setpoint:
            ax.plot(*zip(*setpoint), color="C3", ls="--", lw=1.2, label="set point C(t)")
        marks = (emergence or {}).get(title) or {}
        if marks.get("steps"):
            ax.axhline(marks["threshold"], color="0.6", ls=":", lw=0.8, label="emergence threshold")
            for j, at in enumerate(marks["steps"]):
                if at is not None:
                    ax.plot([at], [marks["threshold"]], marker="^", ms=6, color=cmap(j), ls="none")
            gap = marks.get("smallest_gap")
            title = f"{title}\n{len(marks.get('order') or [])} emerged" + (f", smallest gap {gap:,} steps" if gap else "")
        ax.set(xlabel=STEP_LABEL, ylabel="KL (nats)", title=title)
        ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside: never over a curve
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return save_figure(fig, stem)


def _latent_colormap(n: int):
    from matplotlib import colormaps

    name = "tab10" if n <= 10 else "tab20" if n <= 20 else "viridis"
    cmap = colormaps[name]
    return cmap if name != "viridis" else (lambda j: cmap(j / max(n - 1, 1)))


@styled
def plot_metric_curves(metric_series: dict, recon_series: dict, stem: Path, *, colors: dict) -> list[Path]:
    """Each metric's score and the reconstruction loss vs steps; paper Fig. 6.

    ``metric_series`` maps a label to each run's metrics.jsonl rows
    ``{step, metrics: {name: {score, ...}}}``.
    """
    names = sorted({n for runs in metric_series.values() for rows in runs for r in rows for n in r.get("metrics", {})})
    if not names:
        return []
    flat = {label: [[{"step": r["step"], **{n: (r["metrics"].get(n) or {}).get("score") for n in names}}
                     for r in rows] for rows in runs]
            for label, runs in metric_series.items()}
    fig = new_figure(4.4 * (len(names) + 1), 3.6)
    axes = fig.subplots(1, len(names) + 1, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        _plot_bands(ax, flat, name, colors)
        ax.set(xlabel=STEP_LABEL, ylabel=f"{name.upper()} (score)", title=f"{name.upper()} during training")
        ax.legend()
    _plot_bands(axes[-1], recon_series, "recon", colors)
    axes[-1].set(xlabel=STEP_LABEL, ylabel="reconstruction loss (nats)", title="Reconstruction loss during training")
    axes[-1].legend()
    return save_figure(fig, stem)
