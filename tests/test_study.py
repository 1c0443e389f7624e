"""``disbench study``: study files, the shipped disentanglement_lib studies, and a tiny
study end to end (resumed, then re-run without work)."""

import json
import re
import shutil
from pathlib import Path

import pytest

from disbench.cli import main
from disbench.compare.study import load_study
from disbench.compare.sweep import check_grid
from disbench.config import ConfigSources
from disbench.errors import DisbenchError
from tests.compare_helpers import md_table, results
from tests.conftest import TOY_PROTOCOL

pytest_plugins = ["tests.compare_fixtures"]

# unsupervised_study_v1's sweep.py: model -> (swept binding, values), in disbench's names
STUDY_V1 = {
    "betavae_h": ("BetaVAEH.beta", [1.0, 2.0, 4.0, 6.0, 8.0, 16.0]),
    "betavae_b": ("BetaVAEB.c_max", [5.0, 10.0, 25.0, 50.0, 75.0, 100.0]),
    "factorvae": ("FactorVAE.gamma", [10.0, 20.0, 30.0, 40.0, 50.0, 100.0]),
    "dipvae_i": ("DIPVAEI.lambda_od", [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]),
    "dipvae_ii": ("DIPVAEII.lambda_od", [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]),
    "betatcvae": ("BetaTCVAE.beta", [1.0, 2.0, 4.0, 6.0, 8.0, 10.0]),
}
DATASETS = ["dsprites_full", "color_dsprites", "noisy_dsprites", "scream_dsprites", "smallnorb", "cars3d", "shapes3d"]


def test_the_shipped_study_is_unsupervised_study_v1():
    study = load_study("dlib_unsupervised_v1")
    assert {m.name: tuple(m.grid.items())[0] for m in study.models} == {k: v for k, v in STUDY_V1.items()}
    assert len(study.configurations()) == 36
    assert list(study.datasets) == DATASETS and study.protocol_for("shapes3d") == "dlib/shapes3d"
    runs = len(study.configurations()) * len(range(50)) * len(study.datasets)
    assert study.seeds == "0-49" and runs == 12_600
    fixed = {m.name: m.bindings for m in study.models}
    assert fixed["betavae_b"] == {"BetaVAEB.gamma": 1000.0, "BetaVAEB.c_stop": 100000}
    assert fixed["dipvae_i"] == {"DIPVAEI.lambda_d_factor": 10.0} and fixed["dipvae_ii"] == {
        "DIPVAEII.lambda_d_factor": 1.0}


def test_the_dynamicvae_study_adds_the_controlled_models():
    base, extended = load_study("dlib_unsupervised_v1"), load_study("dlib_unsupervised_v1_dynamicvae")
    assert extended.models[:6] == base.models
    added = {m.name: m for m in extended.models[6:]}
    assert list(added) == ["dynamicvae", "dynamicvae_p", "dynamicvae_step", "dynamicvae_t", "controlvae"]
    assert all(list(m.grid.values()) == [[5.0, 10.0, 15.0, 20.0, 25.0, 30.0]] for m in added.values())
    assert len(extended.configurations()) == 66


@pytest.mark.parametrize("name", ["dlib_unsupervised_v1", "dlib_unsupervised_v1_dynamicvae"])
def test_every_binding_of_the_shipped_studies_is_read_by_its_model(full_host, name):
    """Each model's swept and fixed bindings, checked as --grid axes are (on the study's trial
    protocol: the real datasets' files are not here): a binding the model never reads, or
    one that changes the protocol, would be refused."""
    for model in load_study(name).models:
        sources = ConfigSources(protocol="dlib/trial", overrides=dict(model.bindings))
        axes = {**{k: v[:1] for k, v in model.grid.items()}, **{k: [v] for k, v in model.bindings.items()}}
        check_grid(axes, [model.name], sources)


@pytest.mark.parametrize("text, message", [
    ('protocol = "p"\ndatasets = ["a"]\n', "no [[model]] tables"),
    ('protocol = "p"\ndatasets = ["a", "b"]\n[[model]]\nname = "vae"\n', "must contain {dataset}"),
    ('protocol = "p/{dataset}"\ndatasets = []\n[[model]]\nname = "vae"\n', "'datasets' must be a non-empty list"),
    ('protocol = "p"\ndatasets = ["a"]\nsteps = 3\n[[model]]\nname = "vae"\n', "unknown key(s) steps"),
    ('protocol = "p"\ndatasets = ["a"]\n[[model]]\nname = "vae"\n[[model]]\nname = "vae"\n', "listed twice"),
    ('protocol = "p"\ndatasets = ["a"]\n[[model]]\nname = "vae"\ngrid = { "A.b" = 1 }\n', "non-empty list"),
    ('protocol = "p"\ndatasets = ["a"]\n[[model]]\nname = "vae"\ngrid = { "Ab" = [1] }\n', "not 'Configurable"),
    ('protocol = "p"\ndatasets = ["../a"]\n[[model]]\nname = "vae"\n', "is not allowed"),
    ('protocol = "p"\ndatasets = ["a"\n', "not valid TOML"),
])
def test_a_bad_study_file_is_one_line_naming_it(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(DisbenchError, match=re.escape(message)):
        load_study(str(path))
    assert main(["study", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(path) in err
    assert not (tmp_path / "out").exists()


def tiny_study(tmp_path, monkeypatch) -> Path:
    """2 models x 2 values x 2 seeds on two copies of the toy protocol, found through the gin path."""
    gin_dir = tmp_path / "gin"
    (gin_dir / "protocols" / "toystudy").mkdir(parents=True)
    for dataset in ("squares_a", "squares_b"):
        shutil.copy(TOY_PROTOCOL, gin_dir / "protocols" / "toystudy" / f"{dataset}.gin")
    monkeypatch.setenv("DISBENCH_GIN_PATH", str(gin_dir))
    path = tmp_path / "tiny.toml"
    path.write_text('''description = "a tiny study"
protocol = "toystudy/{dataset}"
datasets = ["squares_a", "squares_b"]
seeds = "1-2"

[[model]]
name = "betavae_h"
grid = { "BetaVAEH.beta" = [2.0, 8.0] }

[[model]]
name = "betavae_b"
grid = { "BetaVAEB.c_max" = [5.0, 10.0] }
bindings = { "BetaVAEB.gamma" = 50.0 }
''')
    return path


def test_a_tiny_study_runs_resumes_and_reruns_without_work(toy_host, tmp_path, monkeypatch, capsys, train_calls):
    path = tiny_study(tmp_path, monkeypatch)
    import disbench.compare.execute as execute

    real, calls = execute.execute_unit, []

    def interrupted_after_three(jobs, **kwargs):
        calls.append(jobs)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(jobs, **kwargs)

    monkeypatch.setattr(execute, "execute_unit", interrupted_after_three)
    args = ["study", str(path), "--out", "st", "--no-progress", "--no-figures", "--device", "cpu",
            "--datasets", "squares_a"]
    assert main(args) == 130  # interrupted: three runs done, the rest not started
    done = sorted(call for call, _ in train_calls)
    assert len(done) == 3
    monkeypatch.setattr(execute, "execute_unit", real)
    train_calls.clear()
    assert main(args) == 0
    assert len(train_calls) == 5 and not set(done) & {call for call, _ in train_calls}  # nothing trained twice
    for model, binding, values in (("betavae_h", "BetaVAEH.beta", (2.0, 8.0)), ("betavae_b", "BetaVAEB.c_max",
                                                                              (5.0, 10.0))):
        for value in values:
            point = f"{binding.rsplit('.', 1)[1]}={value}"
            for seed in (1, 2):
                run = Path(f"st/squares_a/runs/{model}/{point}/seed{seed}")
                assert results(run)["status"] == "complete" and results(run)["grid_point"] == {binding: value}
    assert "BetaVAEB.gamma = 50.0" in Path("st/squares_a/runs/betavae_b/c_max=5.0/seed1/config.gin").read_text()
    rows = md_table(Path("st/squares_a/table.md").read_text(), "TOY_METRIC (mean representation)")
    assert [r[:2] for r in rows[1:]] == [["betavae_h [beta=2.0]", "2"], ["betavae_h [beta=8.0]", "2"],
                                         ["betavae_b [c_max=5.0]", "2"], ["betavae_b [c_max=10.0]", "2"]]
    # the study's shape: each row's scores over seeds as box plots summarise them, and a figure per metric
    boxes = md_table(Path("st/squares_a/table.md").read_text(), "Scores over seeds: median [Q1, Q3]")
    runs = [results(f"st/squares_a/runs/betavae_h/beta=2.0/seed{seed}")["metrics"]["toy_metric"]["score"]
            for seed in (1, 2)]
    low, high = sorted(runs)
    assert boxes[1][:2] == ["betavae_h [beta=2.0]", "2"]
    assert boxes[1][2] == f"{(low + high) / 2:.3f} [{low + (high - low) / 4:.3f}, {low + 3 * (high - low) / 4:.3f}]"
    manifest = json.loads(Path("st/squares_a/compare.json").read_text())
    assert manifest["kind"] == "study" and manifest["dataset"] == "squares_a"
    study = json.loads(Path("st/study.json").read_text())
    assert study["study"] == "tiny" and study["datasets"] == ["squares_a"] and study["seeds"] == [1, 2]

    train_calls.clear()
    capsys.readouterr()
    assert main([a for a in args if a != "--no-figures"]) == 0  # a re-run does no finished work; figures drawn
    assert train_calls == [] and "8 runs in st/squares_a: all complete" in capsys.readouterr().out
    assert not Path("st/squares_b").exists()
    assert Path("st/squares_a/figures/box_toy_metric.png").stat().st_size > 0


def test_a_study_checks_every_dataset_before_training(toy_host, tmp_path, monkeypatch, capsys, train_calls):
    path = tiny_study(tmp_path, monkeypatch)
    (tmp_path / "gin" / "protocols" / "toystudy" / "squares_b.gin").write_text("Protocol.dataset = 'no_such'\n")
    assert main(["study", str(path), "--out", "st", "--no-progress", "--device", "cpu"]) == 2
    assert "unknown dataset 'no_such'" in capsys.readouterr().err
    assert train_calls == [] and not Path("st").exists()
    assert main(["study", str(path), "--out", "st", "--datasets", "squares_c", "--no-progress"]) == 2
    assert "not in study tiny" in capsys.readouterr().err


def test_dry_run_counts_and_times_and_writes_nothing(toy_host, tmp_path, monkeypatch, capsys, train_calls):
    """compare, sweep and study: the runs, the run-steps left (a resumed run from its
    checkpoint) and a measured estimate; no folder, no file."""
    args = ["--protocol", TOY_PROTOCOL, "--device", "cpu", "--no-progress", "--dry-run"]
    assert main(["compare", "--models", "vae,betavae_h", "--seeds", "1-3", "--out", "c", *args]) == 0
    out = capsys.readouterr().out
    assert "compare --dry-run: 6 runs in c: 6 to train; 180 run-steps to train; nothing written" in out
    assert "run-steps/s for a group of 1 on cpu" in out and "of training with 1 worker" in out
    assert main(["sweep", "--models", "betavae_h", "--seeds", "1-2", "--grid", "BetaVAEH.beta=2,8", "--out", "s",
                 "--fuse", "4", *args]) == 0
    out = capsys.readouterr().out
    assert "4 to train; 120 run-steps" in out and "for a group of 4 on cpu" in out
    assert train_calls == [] and not Path("c").exists() and not Path("s").exists()

    # a run interrupted at its step-10 checkpoint has 20 of its 30 steps left
    assert main(["compare", "--models", "vae", "--seeds", "1", "--out", "c", "--protocol", TOY_PROTOCOL,
                 "--device", "cpu", "--no-progress", "--no-figures"]) == 0
    results_path = Path("c/runs/vae/seed1/results.json")
    done = json.loads(results_path.read_text())
    results_path.write_text(json.dumps({**done, "status": "interrupted", "checkpoint_step": 10}))
    before = sorted(str(p) for p in Path("c").rglob("*"))
    stamps = {p: p.stat().st_mtime_ns for p in Path("c").rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["compare", "--models", "vae", "--seeds", "1-2", "--out", "c", *args]) == 0
    assert "2 runs in c: 1 to train, 1 to resume; 50 run-steps" in capsys.readouterr().out
    assert sorted(str(p) for p in Path("c").rglob("*")) == before
    assert {p: p.stat().st_mtime_ns for p in Path("c").rglob("*") if p.is_file()} == stamps

    path = tiny_study(tmp_path, monkeypatch)
    assert main(["study", str(path), "--out", "st", "--device", "cpu", "--no-progress", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("8 to train; 240 run-steps") == 2 and not Path("st").exists()
