"""Figure creation and saving shared by every figure module.

matplotlib is imported when a figure is drawn, not with this package: the
command line and :mod:`disbench.api`, which import it, start without matplotlib.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ..io import atomic_path

DPI = 200
FORMATS = ("png", "pdf")
PAPER_RC = {
    "font.size": 10, "axes.labelsize": 11, "axes.titlesize": 11, "legend.fontsize": 9,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.grid": True, "grid.alpha": 0.3,
    "lines.linewidth": 1.5, "pdf.fonttype": 42, "ps.fonttype": 42,  # embedded TrueType: editable text in PDF
    "axes.formatter.useoffset": False,  # 1176.6, not "+1.1766e3" above the axis
}
FEW_POINTS = 20  # a line of at most this many points is drawn with markers (a short run's few log rows)
STEP_LABEL = "training step"


def styled(fn):
    """Run a figure function under the paper rc settings (restored afterwards)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(PAPER_RC):
            return fn(*args, **kwargs)
    return wrapper


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, stem: Path) -> list[Path]:
    """Write ``stem``.png and ``stem``.pdf atomically; return their paths."""
    paths = []
    for fmt in FORMATS:
        path = Path(f"{stem}.{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI)
        paths.append(path)
    return paths


def model_colors(models) -> dict[str, str]:
    """One colour per model, the same in every figure of a comparison."""
    return {m: f"C{i % 10}" for i, m in enumerate(models)}
