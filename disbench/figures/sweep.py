"""A sweep's metric-vs-binding figures: one per grid axis.

Each figure has one panel per metric score (the representation in the panel's
title) and one for the final reconstruction loss. The x axis is the axis's
values — numeric values at their values (a log axis when they span a factor
of 10 or more, all positive), others evenly spaced in grid order; one line per
model and combination of the other axes' values; points are the mean over the
complete seeds, error bars ± one sample std (none with one seed). Which lines
and panels a comparison has, :mod:`disbench.compare.report` says; this module
draws them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from .style import new_figure, save_figure, styled

PANEL_WIDTH, HEIGHT = 3.2, 3.0


def sweep_figure_stem(axis: str) -> str:
    return "sweep_" + re.sub(r"[^\w.+\-]", "_", axis)


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


@styled
def plot_sweep_axis(axis: str, values: list, lines: dict, panels: list, stem: Path) -> list[Path]:
    """The figure of one grid axis (see the module docstring) with the axis's ``values``:
    ``lines`` maps each line's label to ``{index of a value: its point}``, ``panels`` is
    a list of ``(title, read)`` where ``read(point)`` is the panel's statistic (``.mean``,
    ``.std``) or None; [] when there is no line."""
    if not lines:
        return []
    numeric = _numeric(values)
    positions = [float(v) for v in values] if numeric else list(range(len(values)))
    log_x = numeric and min(positions) > 0 and max(positions) / min(positions) >= 10

    fig = new_figure(PANEL_WIDTH * len(panels), HEIGHT)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (panel_title, read) in zip(axes, panels):
        for n, (label, by_index) in enumerate(lines.items()):
            xs, ys, errs = [], [], []
            for index in sorted(by_index):
                st = read(by_index[index])
                if st is None or st.mean is None:
                    continue
                xs.append(positions[index])
                ys.append(st.mean)
                errs.append(st.std or 0.0)
            if xs:
                ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=3, color=f"C{n % 10}", label=label)
        if log_x:
            ax.set_xscale("log")
        ax.set_xticks(positions, [value_text(v) for v in values])
        ax.minorticks_off()
        ax.set(xlabel=axis, title=panel_title, ylabel="mean ± 1 std over seeds" if ax is axes[0] else None)
    axes[0].legend(fontsize=8)
    return save_figure(fig, stem)


def value_text(value) -> str:
    """A grid value as ticks and line labels show it."""
    return value if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else repr(value)
