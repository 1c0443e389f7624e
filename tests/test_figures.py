"""Log axes of the curve figures carry values that can be read (not just 1, 10, 100)."""

from pathlib import Path

import numpy as np
import pytest

import disbench.figures.curves as curves


def drawn_beta_axis(monkeypatch, tmp_path, low, high):
    """Draw the β(t) figure for one model whose β runs from ``high`` down to ``low``;
    return its axis after rendering, and the y tick labels inside the view."""
    figures = {}
    monkeypatch.setattr(curves, "save_figure", lambda fig, stem: figures.setdefault(Path(stem).name, fig) and [stem])
    steps = np.arange(100, 16_100, 100)
    betas = np.geomspace(high, low, len(steps))
    series = {"dynamicvae": [[{"step": int(s), "beta": float(b)} for s, b in zip(steps, betas)]]}
    curves.plot_seed_curves(series, "beta", tmp_path / "beta_vs_steps", ylabel="β(t)", title="β",
                            colors={"dynamicvae": "C0"}, log_y=True)
    fig = figures["beta_vs_steps"]
    fig.canvas.draw()
    ax = fig.axes[0]
    low_view, high_view = ax.get_ylim()
    labels = [t.get_text() for t, y in zip(ax.get_yticklabels(), ax.get_yticks()) if low_view <= y <= high_view]
    return ax, labels


def test_beta_log_axis_labels_values_between_the_decades(monkeypatch, tmp_path):
    ax, labels = drawn_beta_axis(monkeypatch, tmp_path, 0.1, 150)
    assert ax.get_yscale() == "log"
    # 20 and 50 make β ≈ 50 readable; plain numbers, not 10^x mathtext
    assert {"0.1", "0.2", "0.5", "1", "2", "5", "10", "20", "50", "100"} <= set(labels)
    assert all(label and "$" not in label and "e" not in label for label in labels)


def test_beta_log_axis_stays_readable_over_many_decades(monkeypatch, tmp_path):
    _, labels = drawn_beta_axis(monkeypatch, tmp_path, 1e-4, 1e4)
    assert {"0.001", "0.01", "0.1", "1", "10", "100", "1000"} <= set(labels)
    assert len(labels) <= 12  # one per decade, not 1-2-5 of every decade


def test_beta_log_axis_over_one_decade_is_labelled_densely(monkeypatch, tmp_path):
    _, labels = drawn_beta_axis(monkeypatch, tmp_path, 6.7, 60)  # the smoke protocol's β
    assert {"8", "10", "15", "20", "30", "40", "50", "60"} <= set(labels)


@pytest.mark.parametrize("low, high", [(3.9, 4.1), (0.95, 1.05), (40.0, 60.0)])
def test_beta_log_axis_over_a_narrow_range_still_has_labels(monkeypatch, tmp_path, low, high):
    _, labels = drawn_beta_axis(monkeypatch, tmp_path, low, high)
    assert len([label for label in labels if label]) >= 2
    values = [float(label) for label in labels]
    assert min(values) >= low * 0.9 and max(values) <= high * 1.1


def drawn_curve(monkeypatch, tmp_path, steps, values):
    figures = {}
    monkeypatch.setattr(curves, "save_figure", lambda fig, stem: figures.setdefault(Path(stem).name, fig) and [stem])
    series = {"vae": [[{"step": int(s), "recon": float(v)} for s, v in zip(steps, values)]]}
    curves.plot_seed_curves(series, "recon", tmp_path / "recon_vs_steps", ylabel="recon", title="recon",
                            colors={"vae": "C0"})
    fig = figures["recon_vs_steps"]
    fig.canvas.draw()
    return fig.axes[0]


def test_a_short_run_draws_markers_and_axes_show_plain_values(monkeypatch, tmp_path):
    """One or a few log rows are points, not an invisible line; values near 1,176.6 are labelled
    as such, not as an offset ("+1.1766e3") above the axis."""
    ax = drawn_curve(monkeypatch, tmp_path, [50], [1176.6])
    assert ax.get_lines()[0].get_marker() == "o"
    ax = drawn_curve(monkeypatch, tmp_path, [10, 20, 30], [1176.61, 1176.62, 1176.63])
    assert ax.yaxis.get_offset_text().get_text() == ""
    assert ax.get_lines()[0].get_marker() == "o"
    ax = drawn_curve(monkeypatch, tmp_path, np.arange(1, 200), np.linspace(900, 500, 199))
    assert ax.get_lines()[0].get_marker() in ("None", None, "")
