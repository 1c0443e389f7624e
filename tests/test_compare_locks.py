"""Run-directory locks, re-reading a run before it runs, and the backend options (no Ray needed)."""

import json
import sys
import threading
from pathlib import Path

import pytest
import torch

from disbench.cli import main
from disbench.compare.execute import execute_unit
from disbench.locks import RunLocked, holder_of, run_lock
from disbench.compare.plan import DONE, RESUME, TRAIN, refresh_job
from disbench.execution import ExecutionRequest
from tests.compare_helpers import compare_args, results

ONE_THREAD = ExecutionRequest(threads=1)

pytest_plugins = ["tests.compare_fixtures"]


def test_a_held_lock_refuses_a_second_holder_and_is_freed_after(tmp_path):
    run = tmp_path / "runs/vae/seed1"
    with run_lock(run):
        assert " pid " in holder_of(run)
        with pytest.raises(RunLocked, match="being trained by another process"):
            with run_lock(run):
                pass
    with run_lock(run):  # released: taken again
        pass
    assert not run.exists()  # the lock lives beside the run, which it does not create


def test_a_run_locked_by_another_driver_is_left_to_it(toy_host, train_calls, capsys):
    from disbench.compare.plan import plan_runs
    from disbench.config import ConfigSources
    from tests.conftest import TOY_PROTOCOL

    job = plan_runs(Path("out"), ["vae"], [1], ConfigSources(protocol=TOY_PROTOCOL)).jobs[0]
    with run_lock(Path(job.run_dir)):
        outcome = execute_unit([job], device=torch.device("cpu"), execution=ONE_THREAD, progress=False)[0]
    assert outcome["locked"] and "another process" in outcome["error"] and outcome["status"] == "missing"
    assert train_calls == [] and not Path(job.run_dir).exists()

    # a compare whose run another process holds waits for it, then does what is left
    held = run_lock(Path(job.run_dir))
    held.__enter__()
    release = threading.Timer(3.0, held.__exit__, (None, None, None))
    release.start()
    try:
        assert main(compare_args("out", "--no-figures", models="vae", seeds="1")) == 0
    finally:
        release.join()
    out = capsys.readouterr().out
    assert "being trained by another process" in out and "waiting for 1 run(s) that other processes train" in out
    assert train_calls == [("out/runs/vae/seed1", False)]  # the holder left it untrained: trained once, here
    assert json.loads(Path("out/compare.json").read_text())["runs"][0]["error"] is None


def test_a_job_is_reread_from_disk_before_it_runs(compared_copy, toy_host, train_calls):
    from disbench.compare.plan import plan_runs
    from disbench.config import ConfigSources
    from disbench.runs import update_results
    from tests.conftest import TOY_PROTOCOL

    job = plan_runs(Path("fresh"), ["vae"], [1], ConfigSources(protocol=TOY_PROTOCOL)).jobs[0]
    assert job.action == TRAIN
    finished = job.__class__(**{**job.__dict__, "run_dir": str(compared_copy / "runs/vae/seed1")})
    assert refresh_job(finished).action == DONE  # another driver finished it meanwhile
    assert execute_unit([finished], device=torch.device("cpu"), execution=ONE_THREAD, progress=False)[0]["status"] == "complete"
    assert train_calls == []
    update_results(compared_copy / "runs/vae/seed1", status="running")
    assert refresh_job(finished).action == RESUME  # an attempt died: its retry resumes


@pytest.mark.parametrize("extra, message", [
    (["--backend", "ray", "--jobs", "2"], "--jobs is for --backend local"),
    (["--backend", "ray", "--device", "cuda"], "--device 'cuda' is for --backend local"),
    (["--backend", "ray", "--fuse", "auto"], "--fuse auto reads the training device's memory"),
    (["--backend", "ray", "--gpus-per-run", "-1"], "--gpus-per-run must be >= 0"),
    (["--backend", "ray", "--cpus-per-run", "0"], "--cpus-per-run must be > 0"),
    (["--backend", "ray", "--max-retries", "-1"], "--max-retries must be >= 0"),
    (["--address", "auto"], "need --backend ray"),
    (["--gpus-per-run", "0.5"], "need --backend ray"),
])
def test_backend_options_are_checked_before_anything_starts(toy_host, train_calls, capsys, extra, message):
    assert main(without_device(compare_args("out", "--no-figures")) + extra) == 2
    assert message in capsys.readouterr().err
    assert train_calls == [] and not Path("out").exists()


def without_device(args: list) -> list:
    """compare_args' options less its ``--device cpu``."""
    i = args.index("--device")
    return args[:i] + args[i + 2:]


def test_without_ray_the_backend_says_how_to_install_it(toy_host, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    args = without_device(compare_args("out")) + ["--backend", "ray"]
    assert main(args) == 2
    assert 'needs Ray, which is not installed: pip install -e ".[ray]"' in capsys.readouterr().err
    assert not Path("out").exists()


def test_a_unit_runs_what_each_run_needs_when_its_turn_comes(compared_copy, toy_host, train_calls):
    """A fused unit whose runs changed state since planning splits into what each needs."""
    from disbench.compare.plan import plan_runs
    from disbench.config import ConfigSources
    from tests.conftest import TOY_PROTOCOL

    jobs = plan_runs(Path("new"), ["vae"], [1, 2], ConfigSources(protocol=TOY_PROTOCOL)).jobs
    done = jobs[0].__class__(**{**jobs[0].__dict__, "run_dir": str(compared_copy / "runs/vae/seed1")})
    outcomes = execute_unit([done, jobs[1]], device=torch.device("cpu"), execution=ONE_THREAD, progress=False)
    assert [o["status"] for o in outcomes] == ["complete", "complete"]
    assert train_calls == [("new/runs/vae/seed2", False)]
    assert results("new/runs/vae/seed2")["status"] == "complete"
