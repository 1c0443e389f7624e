"""PNG figures of the identification fits, written atomically (disbench.io.atomic_path).

Uses matplotlib's object API (``Figure`` + Agg canvas), never pyplot, so it works headless
and leaves the caller's backend alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from disbench.io import atomic_path

from .sysid import RISE_FRACTION


def new_figure(width=6.0, height=4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return path


def plot_rise_fit(run, fit, path) -> Path:
    """Open-loop KL vs step, the least-squares curve and the 63.2 % rise time."""
    fig = new_figure()
    ax = fig.add_subplot()
    ax.plot(run.steps, run.kl, ".", ms=3, color="0.5", label="logged KL")
    t = np.linspace(0, run.steps[-1], 400)
    ax.plot(t, fit.c0_least_squares * (1 - np.exp(-fit.a_least_squares * t)), color="C0",
            label=f"C0·(1 − exp(−a·t)): a = {fit.a_least_squares:.3g}, C0 = {fit.c0_least_squares:.3g}")
    ax.axvline(fit.t_star, color="C1", ls="--",
               label=f"63.2 % rise t* = {fit.t_star:.4g} → a = {fit.a_rise_time:.3g}")
    ax.axhline(RISE_FRACTION * fit.c0_converged, color="C1", ls=":", lw=0.8)
    ax.set(xlabel="training step", ylabel="KL (nats)",
           title=f"open-loop KL response at β = {fit.beta:g}")
    ax.legend(fontsize=8, loc="lower right")
    return save_png(fig, path)


def plot_kl_map_fit(kl_map, beta_stars, path) -> Path:
    """Converged KL vs constant β, the fitted A·exp(−b·β) and the operating point(s)."""
    fig = new_figure()
    ax = fig.add_subplot()
    ax.plot(kl_map.betas, kl_map.kls, "o", color="0.3", label="converged KL of constant-β runs")
    lo = min(kl_map.betas + list(beta_stars))
    hi = max(kl_map.betas + list(beta_stars))
    pad = 0.05 * (hi - lo)
    beta = np.linspace(max(lo - pad, 0.0), hi + pad, 400)
    ax.plot(beta, kl_map.g(beta), color="C0",
            label=f"g(β) = {kl_map.A:.4g}·exp(−{kl_map.b:.4g}·β)")
    for i, bs in enumerate(beta_stars):
        ax.plot([bs], [kl_map.g(bs)], "x", color="C3", ms=9,
                label="operating point β*" if i == 0 else None)
    ax.set(xlabel="β", ylabel="converged KL (nats)", title="KL map g(β)")
    ax.legend(fontsize=8)
    return save_png(fig, path)
