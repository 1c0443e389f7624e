"""`disbench report` and the figure modules: redrawn from saved results, never retrained."""

import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from disbench.cli import main
from disbench.figures.curves import band
from disbench.models.traversal import TRAVERSAL_VALUES, latent_order, traverse
from tests.conftest import TOY_PROTOCOL
from tests.compare_helpers import FIGURES

pytest_plugins = ["tests.compare_fixtures"]

RUN_FIGURES = ("recon_vs_steps", "beta_vs_steps", "kl_per_latent", "traversal_vae")


def written(folder, names):
    return all((Path(folder) / f"{n}.{ext}").stat().st_size > 1000 for n in names for ext in ("png", "pdf"))


def test_report_redraws_a_compare_dir_without_training(compared_copy, train_calls, toy_host, capsys):
    table = (compared_copy / "table.md").read_text()
    csv_text = (compared_copy / "table.csv").read_text()
    shutil.rmtree(compared_copy / "figures")
    (compared_copy / "table.md").unlink()
    (compared_copy / "table.csv").unlink()
    assert main(["report", str(compared_copy), "--no-progress"]) == 0
    assert train_calls == []
    assert (compared_copy / "table.md").read_text() == table and (compared_copy / "table.csv").read_text() == csv_text
    assert written(compared_copy / "figures", FIGURES)
    assert str(compared_copy / "figures" / "recon_vs_steps.png") in capsys.readouterr().out

    # --out writes elsewhere and leaves the compare dir alone
    assert main(["report", str(compared_copy), "--out", "elsewhere", "--no-progress"]) == 0
    assert Path("elsewhere/table.md").read_text() == table and written("elsewhere/figures", FIGURES)


def test_report_without_compare_json_finds_the_runs(compared_copy, toy_host):
    (compared_copy / "compare.json").unlink()
    assert main(["report", str(compared_copy), "--out", "found", "--no-progress"]) == 0
    md = Path("found/table.md").read_text()
    assert "| betavae_h | 2 |" in md and "| vae | 2 |" in md  # models found under runs/ (sorted)


def test_report_on_a_single_run_dir(compared_copy, train_calls, toy_host):
    run = compared_copy / "runs" / "vae" / "seed1"
    assert main(["report", str(run), "--no-progress"]) == 0
    assert train_calls == []
    assert written(run / "figures", RUN_FIGURES)
    assert sorted(p.stem for p in (run / "figures").glob("*.png")) == sorted(RUN_FIGURES)


def test_metric_curves_when_metrics_were_evaluated_during_training(toy_host):
    assert main(["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--out", "run", "--device", "cpu",
                 "--no-progress", "--no-eval", "--gin_param", "Protocol.eval_every = 10"]) == 0
    assert Path("run/metrics.jsonl").is_file()
    assert main(["report", "run", "--out", "drawn", "--no-progress"]) == 0
    assert written("drawn/figures", RUN_FIGURES + ("metrics_vs_steps",))


def test_report_refuses_a_folder_that_holds_no_run(toy_host, capsys):
    Path("empty").mkdir()
    assert main(["report", "empty"]) == 2
    err = capsys.readouterr().err
    assert "neither a compare directory" in err and "Traceback" not in err


def test_kl_panel_draws_every_latent_the_total_and_the_set_point(monkeypatch, tmp_path):
    import disbench.figures.curves as curves

    drawn = {}
    monkeypatch.setattr(curves, "save_figure", lambda fig, stem: drawn.setdefault(Path(stem).name, fig) and [stem])
    rows = [{"step": t, "kl": 1.0 + t, "kl_per_dim": [0.5 * t, 0.5, 0.5], "setpoint": 0.5 + 0.01 * t}
            for t in range(10, 60, 10)]
    no_setpoint = [{k: v for k, v in r.items() if k != "setpoint"} for r in rows]
    curves.plot_kl_per_latent({"controlled": rows, "plain": no_setpoint}, tmp_path / "kl_per_latent")
    axes = [ax for ax in drawn["kl_per_latent"].axes if ax.get_visible()]
    labels = [[line.get_label() for line in ax.get_lines()] for ax in axes]
    assert labels == [["z0", "z1", "z2", "total KL", "set point C(t)"], ["z0", "z1", "z2", "total KL"]]  # as elsewhere
    # the legend beside the axes, never over the curves
    fig = drawn["kl_per_latent"]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in axes:
        legend, plot = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
        assert legend.x0 >= plot.x1
    setpoint = axes[0].get_lines()[-1]
    assert list(setpoint.get_ydata()) == [r["setpoint"] for r in rows]
    assert [ax.get_title() for ax in axes] == ["controlled", "plain"] and axes[0].get_ylabel() == "KL (nats)"


def test_band_is_mean_and_sample_std_over_runs_at_shared_steps():
    runs = [[{"step": 1, "recon": 1.0}, {"step": 2, "recon": 3.0}, {"step": 3, "recon": 9.0}],
            [{"step": 1, "recon": 2.0}, {"step": 2, "recon": 5.0}]]
    steps, mean, std, n = band(runs, "recon")
    assert list(steps) == [1, 2] and n == 2
    assert np.allclose(mean, [1.5, 4.0]) and np.allclose(std, [np.std([1, 2], ddof=1), np.std([3, 5], ddof=1)])
    assert band([[{"step": 1, "beta": 2.0}]], "beta")[2] is None and band([[{"step": 1}]], "beta") is None


def test_traversal_rows_follow_kl_and_vary_one_latent(compared_copy, toy_host):
    from disbench.trained import load_trained

    assert latent_order([0.1, 2.0, 0.5, 2.0]) == [1, 3, 2, 0]
    trained = load_trained(compared_copy / "runs" / "vae" / "seed1")
    image = trained.dataset.images[5]
    order = latent_order(trained.results["final"]["kl_per_dim"])
    tiles = traverse(trained.model, image, order)
    assert tiles.shape == (4, len(TRAVERSAL_VALUES), 1, 64, 64) and tiles.min() >= 0 and tiles.max() <= 1
    with torch.no_grad():  # row 0, last column: the largest-KL latent set to +3, the others at the mean
        mu, _ = trained.model.encode(image.float().div(255)[None])
        mu[0, order[0]] = 3.0
        expected = torch.sigmoid(trained.model.decode(mu))[0].numpy()
    assert np.allclose(tiles[0, -1], expected, atol=1e-6)
    assert not np.allclose(tiles[0, 0], tiles[0, -1])


def test_figures_leave_matplotlib_state_alone(compared_copy, toy_host):
    import matplotlib

    def rc():  # reading rcParams["backend"] would itself import pyplot
        return {k: matplotlib.rcParams[k] for k in matplotlib.rcParams if k != "backend"}

    had_pyplot = "matplotlib.pyplot" in sys.modules
    rc_before = rc()
    assert main(["report", str(compared_copy / "runs" / "vae" / "seed1"), "--no-progress"]) == 0
    assert rc() == rc_before
    assert had_pyplot or "matplotlib.pyplot" not in sys.modules
