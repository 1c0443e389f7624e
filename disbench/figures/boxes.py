"""A study's box plots: one figure per metric, the score of every model configuration
(a table row) over its seeds, as disentanglement_lib's study shows its results.

Boxes span the quartiles with the median marked; whiskers reach the furthest score
within 1.5 x the box's height (matplotlib's default, Tukey's); scores beyond them are
drawn as points. A row with no complete seed has no box.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from .style import new_figure, save_figure, styled

ROW_HEIGHT, WIDTH = 0.28, 6.0


def box_figure_stem(metric: str) -> str:
    return "box_" + re.sub(r"[^\w.+\-]", "_", metric)


@styled
def plot_boxes(metric_title: str, rows: dict[str, list[float]], stem: Path) -> list[Path]:
    """One horizontal box per row (``{label: scores}``), top to bottom in the rows' order;
    [] when no row has a score."""
    rows = {label: scores for label, scores in rows.items() if scores}
    if not rows:
        return []
    fig = new_figure(WIDTH, max(2.0, 1.0 + ROW_HEIGHT * len(rows)))
    ax = fig.subplots()
    labels = list(rows)[::-1]  # boxplot draws bottom up
    # 'orientation' since matplotlib 3.10, where 'vert' is deprecated
    horizontal = ({"orientation": "horizontal"} if "orientation" in inspect.signature(ax.boxplot).parameters
                  else {"vert": False})
    ax.boxplot([rows[label] for label in labels], widths=0.6, **horizontal)
    ax.set_yticks(range(1, len(labels) + 1), labels)
    ax.set_xlabel(metric_title)
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, stem)
