"""The stable region in the (Kp, Ki) plane for a plant (a, g'), exact and per the paper.

The exact boundary is the spectral-radius-1 contour of A over a log-spaced grid (one
batched ``eigvals``); the paper's is where its Eq. 19 stops holding. The band between
them is stable although Eq. 19 says otherwise (docs/stability.md: sufficient, not necessary).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .analysis import paper_condition_values, spectral_radius, validate_loop
from .figures import new_figure, save_png


def gain_scales(a: float, g_prime: float) -> tuple[float, float]:
    """Where the exact boundary meets the axes: Kp → 4(1+a)/(a|g'|) as Ki → 0, Ki → 1/|g'|
    as Kp → 0 (the ``b2 > 0`` and ``b1·b2 > b0·b3`` conditions; analysis module docstring)."""
    g = abs(g_prime)
    return 4 * (1 + a) / (a * g), min(1 / g, 4 * (1 + a) / (a * g))


@dataclass
class RegionGrid:
    kp: np.ndarray  # (n,) log-spaced
    ki: np.ndarray  # (m,) log-spaced
    radius: np.ndarray  # (m, n) spectral radius
    paper_value: np.ndarray  # (m, n) > 0 where all of Eq. 19 holds


def region_grid(a, g_prime, kp=None, ki=None, n=240, decades_below=4, decades_above=1):
    """Spectral radius and paper verdict on a log grid around the boundary (and the gains)."""
    kp_scale, ki_scale = gain_scales(a, g_prime)
    # the Ki boundary is flat for Kp below about Ki's scale: start the Kp axis under both
    kp_lo = min(kp_scale * 10.0**-decades_below, ki_scale * 10.0**-2)
    kp_hi = kp_scale * 10.0**decades_above
    ki_lo, ki_hi = ki_scale * 10.0**-decades_below, ki_scale * 10.0**decades_above
    if kp:  # show the chosen gains, with half a decade to spare
        kp_lo, kp_hi = min(kp_lo, kp / 3), max(kp_hi, kp * 3)
    if ki:
        ki_lo, ki_hi = min(ki_lo, ki / 3), max(ki_hi, ki * 3)
    kp_axis = np.geomspace(kp_lo, kp_hi, n)
    ki_axis = np.geomspace(ki_lo, ki_hi, n)
    KP, KI = np.meshgrid(kp_axis, ki_axis)
    values = paper_condition_values(KP, KI, a, g_prime)
    # each condition scaled to O(1) so their minimum is a smooth level set at 0
    paper = np.minimum(values["kp_plus_ki_bound"] / kp_scale, values["quadratic"] / (8 * (1 + a)))
    return RegionGrid(kp_axis, ki_axis, spectral_radius(KP, KI, a, g_prime), paper)


def plot_region(a: float, g_prime: float, path, kp=None, ki=None, n=240):
    """Draw the region to ``path`` (PNG, atomically); returns (path, grid)."""
    validate_loop(kp if kp is not None else 0.0, ki if ki is not None else 1.0, a, g_prime)
    grid = region_grid(a, g_prime, kp, ki, n)
    stable = grid.radius < 1
    paper = grid.paper_value > 0
    fig = new_figure(6.5, 5.0)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    # 0 unstable, 1 stable but Eq. 19 fails, 2 stable and Eq. 19 holds
    shade = np.where(stable, np.where(paper, 2, 1), 0)
    ax.pcolormesh(grid.kp, grid.ki, shade, shading="nearest", vmin=0, vmax=2,
                  cmap=ListedColormap(["#f4d6d6", "#fbeaa5", "#cfe8cf"]), rasterized=True)
    ax.contour(grid.kp, grid.ki, grid.radius, levels=[1.0], colors="k", linewidths=1.8)
    ax.contour(grid.kp, grid.ki, grid.paper_value, levels=[0.0], colors="C0", linewidths=1.5,
               linestyles="--")
    handles = [Line2D([], [], color="k", lw=1.8, label="exact boundary (spectral radius = 1)"),
               Line2D([], [], color="C0", lw=1.5, ls="--", label="paper Eq. 19 boundary"),
               Patch(color="#cfe8cf", label="stable, Eq. 19 holds"),
               Patch(color="#fbeaa5", label="stable, Eq. 19 fails"),
               Patch(color="#f4d6d6", label="unstable")]
    if kp is not None and ki is not None:
        shown_kp = kp if kp > 0 else grid.kp[0]  # Kp = 0 has no place on a log axis
        ax.plot([shown_kp], [ki], marker="*", color="C3", ms=14, ls="none", clip_on=False)
        edge = "" if kp > 0 else " (at the left edge)"
        handles.append(Line2D([], [], marker="*", color="C3", ms=10, ls="none",
                              label=f"Kp = {kp:g}, Ki = {ki:g}{edge}"))
    ax.set(xlabel="Kp", ylabel="Ki", title=f"Stable region of the PI loop, a = {a:.3g}, g' = {g_prime:.3g}")
    ax.legend(handles=handles, fontsize=8, loc="lower left")
    return save_png(fig, path), grid
