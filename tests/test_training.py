import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from disbench.cli import main
from disbench.training.scalars import read_scalars
from disbench.training.group import RunGroup
from tests.conftest import TESTS, TOY_PROTOCOL

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels

REPO = TESTS.parent


def train_args(out, *extra):
    return ["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--out", str(out), "--device", "cpu",
            "--no-progress", *extra]


def load(run_dir):
    return json.loads((Path(run_dir) / "results.json").read_text())


def final_weights(run_dir):
    return torch.load(Path(run_dir) / "checkpoint.pt", weights_only=True)["model"]


@contextlib.contextmanager
def interrupted_at_step(monkeypatch, step: int):
    """Ctrl-C as the ``step``-th step of the block begins (counted over every group trained)."""
    original, count = RunGroup.step, {"n": 0}

    def interrupting_step(self):
        count["n"] += 1
        if count["n"] == step:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(RunGroup, "step", interrupting_step)
    try:
        yield
    finally:
        monkeypatch.setattr(RunGroup, "step", original)


def test_train_then_evaluate_end_to_end(toy_host, capsys):
    assert main(train_args("run", "--seed", "2")) == 0
    out = capsys.readouterr().out
    assert "toy_metric" in out and "results: run/results.json" in out
    results = load("run")
    assert results["status"] == "complete" and results["steps"] == 30 and results["seed"] == 2
    assert results["model"] == "vae" and results["scheduler"] == {"name": "constant", "beta": 1.0}
    assert results["dataset"]["name"] == "toy_squares" and results["dataset"]["source"].startswith("generated")
    assert len(results["protocol_fingerprint"]) == 16
    assert {"python", "torch", "disbench", "plugins"} <= set(results["environment"])
    assert set(results["final"]) >= {"recon", "kl", "beta", "kl_per_dim"}
    assert set(results["metrics"]["toy_metric"]["per_factor"]) == {"pos_x", "pos_y", "size"}
    rows = read_scalars(Path("run/scalars.jsonl"))
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30]
    assert rows[-1]["recon"] < rows[0]["recon"]  # it learns
    assert all(len(r["kl_per_dim"]) == 4 and r["beta"] == 1.0 for r in rows)
    config = Path("run/config.gin").read_text()
    assert "Run.model = 'vae'" in config and "Run.seed = 2" in config
    assert "Protocol.dataset" in Path("run/operative_config.gin").read_text()

    # evaluate again, by name, merges into the same results
    assert main(["evaluate", "run", "--metrics", "toy_metric", "--device", "cpu", "--no-progress"]) == 0
    assert load("run")["metrics"]["toy_metric"]["score"] == results["metrics"]["toy_metric"]["score"]


def test_same_seed_same_run_and_other_seed_differs(toy_host):
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert main(train_args(name, "--seed", seed, "--no-eval")) == 0
    a, b, c = (final_weights(n) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_after_interrupt_is_bit_identical(toy_host, monkeypatch):
    assert main(train_args("whole", "--no-eval")) == 0

    with interrupted_at_step(monkeypatch, 17):  # between the checkpoints at steps 10 and 20
        assert main(train_args("cut", "--no-eval")) == 130
    assert load("cut")["status"] == "interrupted" and load("cut")["steps"] == 10
    assert main(["train", "--resume", "--out", "cut", "--device", "cpu", "--no-progress", "--no-eval"]) == 0

    whole, cut = final_weights("whole"), final_weights("cut")
    assert all(torch.equal(whole[k], cut[k]) for k in whole)
    assert read_scalars(Path("whole/scalars.jsonl")) == read_scalars(Path("cut/scalars.jsonl"))
    assert load("cut")["status"] == "complete"


def _toy_entry_point(tmp_path):
    site = tmp_path / "site"
    dist = site / "toyplugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[disbench]\ntoy = tests.toy_plugin\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]), DISBENCH_NO_PROGRESS="1")
    return env


def kill_after_checkpoint(cmd, env, checkpoint: Path, *, at_least: int, total: int) -> None:
    """Start ``cmd``, SIGKILL it once ``checkpoint`` holds step >= ``at_least``, check it was cut short."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if checkpoint.exists() and torch.load(checkpoint, weights_only=True)["step"] >= at_least:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "it finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert torch.load(checkpoint, weights_only=True)["step"] < total


def test_killed_process_resumes_bit_identical(tmp_path):
    env = _toy_entry_point(tmp_path)
    cmd = [sys.executable, "-m", "disbench", "train", "--model", "vae", "--protocol", TOY_PROTOCOL,
           "--device", "cpu", "--no-eval", "--steps", "150", "--gin_param", "Protocol.batch_size = 4"]
    subprocess.run(cmd + ["--out", "whole"], env=env, check=True, capture_output=True)

    kill_after_checkpoint(cmd + ["--out", "killed"], env, Path("killed/checkpoint.pt"), at_least=30, total=150)
    subprocess.run([sys.executable, "-m", "disbench", "train", "--resume", "--out", "killed", "--device", "cpu",
                    "--no-eval"], env=env, check=True, capture_output=True)
    whole, killed = final_weights("whole"), final_weights("killed")
    assert all(torch.equal(whole[k], killed[k]) for k in whole)
    assert read_scalars(Path("whole/scalars.jsonl")) == read_scalars(Path("killed/scalars.jsonl"))


def test_nan_loss_stops_run_and_keeps_last_good_checkpoint(toy_host, capsys):
    args = ["train", "--model", "toy_diverging", "--protocol", TOY_PROTOCOL, "--out", "nan", "--device", "cpu",
            "--no-progress", "--gin_param", "DivergingVAE.at = 14"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "non-finite" in err and "Traceback" not in err
    results = load("nan")
    assert results["status"] == "failed" and "non-finite" in results["error"]
    assert "metrics" not in results
    ckpt = torch.load("nan/checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 10 and all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert all(r["step"] <= 10 for r in read_scalars(Path("nan/scalars.jsonl")))


def test_results_are_written_atomically(toy_host, monkeypatch):
    import disbench.io as io

    assert main(train_args("run", "--no-eval")) == 0
    before = Path("run/results.json").read_text()

    def failing_dumps(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(io.json, "dumps", failing_dumps)
    with pytest.raises(RuntimeError):
        io.atomic_write_json(Path("run/results.json"), {"status": "broken"})
    assert Path("run/results.json").read_text() == before
    assert not [p for p in Path("run").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("args, message", [
    (["train", "--model", "vea", "--protocol", TOY_PROTOCOL], "unknown model 'vea'"),
    (["train", "--model", "vae", "--protocol", "no_such_protocol"], "unknown protocol 'no_such_protocol'"),
    (["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--dataset", "toy_squarez"], "did you mean 'toy_squares'"),
    (["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--gin_file", "missing.gin"], "missing.gin does not exist"),
    (["train", "--resume", "--out", "nowhere"], "nowhere is not a directory"),
    (["train", "--resume"], "--resume needs --out"),
    (["evaluate", "."], "is not a disbench run directory"),
    (["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--gin_param", "Protocol.metrics = ['nope']"],
     "unknown metric 'nope'"),
])
def test_bad_input_one_line_errors(toy_host, capsys, args, message):
    assert main(args + ["--device", "cpu"] if args[0] == "train" else args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_existing_run_is_not_overwritten_and_checkpoint_of_other_protocol_refused(toy_host, capsys):
    assert main(train_args("run", "--no-eval")) == 0
    assert main(train_args("run", "--no-eval")) == 2
    assert "already holds a run" in capsys.readouterr().err
    results = load("run")
    results["status"] = "interrupted"
    Path("run/results.json").write_text(json.dumps(results))
    assert main(train_args("run", "--resume", "--steps", "40")) == 2
    err = capsys.readouterr().err
    assert "configured differently" in err and "Protocol.steps: 30 -> 40" in err
    assert main(["train", "--resume", "--out", "run", "--device", "cpu", "--no-progress", "--no-eval"]) == 0


def test_metrics_refuse_datasets_without_factors(toy_host, capsys):
    args = train_args("plain", "--dataset", "toy_unlabelled")
    assert main(args) == 2
    assert "need ground-truth factors" in capsys.readouterr().err
    assert not Path("plain").exists()  # refused before anything was created or trained


def test_evaluate_refuses_unfinished_runs(toy_host, capsys):
    assert main(train_args("run", "--no-eval")) == 0
    results = load("run")
    results["status"] = "failed"
    Path("run/results.json").write_text(json.dumps(results))
    assert main(["evaluate", "run", "--device", "cpu"]) == 2
    assert "not a finished run" in capsys.readouterr().err


def test_atomic_files_get_normal_permissions(tmp_path):
    from disbench.io import atomic_write_json

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
