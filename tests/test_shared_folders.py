"""A compare folder on shared storage: lock files and probes opened safely, names read
back checked, one writer per results.json, two drivers on one folder (no Ray needed;
tests/test_ray_cluster.py runs the same on a simulated cluster)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from disbench.cli import main
from disbench.compare.execute import execute_unit, mark_failed_unless_held
from disbench.locks import RunLocked, holder_of, lock_path, run_lock
from disbench.compare.plan import TRAIN, RunJob
from disbench.compare.shared import SharedFolder
from disbench.compare.sweep import grid_points
from disbench.config import ConfigSources
from disbench.execution import ExecutionRequest
from tests.compare_helpers import compare_args, results
from tests.conftest import TOY_PROTOCOL
from tests.test_training import _toy_entry_point

pytest_plugins = ["tests.compare_fixtures"]

VICTIM_TEXT = "precious: not a lock\n"
HOLD_LOCK = """
import sys, time
from pathlib import Path
from disbench.locks import run_lock
with run_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def victim(tmp_path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text(VICTIM_TEXT)
    return path


def one_line_error(outcome_error: str) -> bool:
    return bool(outcome_error) and "\n" not in outcome_error


@pytest.mark.parametrize("plant", ["symlink", "hardlink", "foreign"])
def test_a_planted_lock_file_is_refused_and_its_target_untouched(toy_host, tmp_path, capsys, plant):
    target = victim(tmp_path)
    lock = lock_path(Path("out/runs/vae/seed1"))
    lock.parent.mkdir(parents=True)
    if plant == "symlink":
        lock.symlink_to(target)
    elif plant == "hardlink":
        os.link(target, lock)
    else:
        lock.write_text(VICTIM_TEXT)
    assert main(compare_args("out", "--no-figures", models="vae", seeds="1")) == 1
    entry = json.loads(Path("out/compare.json").read_text())["runs"][0]
    expected = {"symlink": "is a symbolic link, not a run lock", "hardlink": "is a hard link to another file",
                "foreign": "holds something other than a run lock"}[plant]
    assert expected in entry["error"] and str(lock) in entry["error"] and one_line_error(entry["error"])
    assert entry["status"] == "missing" and not Path("out/runs/vae/seed1").exists()
    assert target.read_text() == VICTIM_TEXT and (plant == "symlink" or lock.read_text() == VICTIM_TEXT)
    assert holder_of(Path("out/runs/vae/seed1")) == ""  # never read through a link or from a foreign file


def test_the_write_probe_never_opens_a_planted_file(toy_host, tmp_path):
    target = victim(tmp_path)
    Path("run").mkdir()
    Path("run/.disbench-write-test").symlink_to(target)  # the probe's old, fixed name
    assert main(["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--out", "run", "--device", "cpu",
                 "--no-progress", "--no-eval", "--steps", "5"]) == 0
    assert target.read_text() == VICTIM_TEXT
    assert not [p for p in Path("run").iterdir() if p.name.startswith(".disbench-write-test-")]


def test_a_file_system_without_locks_is_one_line(toy_host, monkeypatch):
    import errno

    import disbench.locks as locks

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locks.fcntl, "flock", no_locks)
    assert main(compare_args("out", "--no-figures", models="vae", seeds="1")) == 1
    error = json.loads(Path("out/compare.json").read_text())["runs"][0]["error"]
    assert "does not support file locks (No locks available)" in error and one_line_error(error)
    assert not Path("out/runs/vae/seed1").exists()  # nothing trained unprotected


def test_names_read_back_from_compare_json_are_checked(compared_copy, capsys):
    manifest_path = compared_copy / "compare.json"
    manifest = json.loads(manifest_path.read_text())
    for field, value, message in (("models", ["../../etc"], "model name '../../etc' is not allowed"),
                                  ("seeds", ["1/.."], "seed '1/..' is not a non-negative integer"),
                                  ("points", [{"name": "../up", "bindings": []}],
                                   "grid point '../up' cannot be a folder name")):
        manifest_path.write_text(json.dumps({**manifest, field: value}))
        assert main(["report", str(compared_copy), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert message in err and "compare.json" in err and len(err.strip().splitlines()) == 1


def test_long_grid_values_get_short_stable_folders_and_full_labels():
    value = "x" * 300
    first, again = grid_points({"PIBetaScheduler.anti_windup": [value, "latch"]}), \
        grid_points({"PIBetaScheduler.anti_windup": [value, "latch"]})
    assert first == again  # stable: the same grid, the same folders
    long, short = first
    assert len(long.name.encode()) <= 120 and long.name.startswith("anti_windup=xxxxxxxxxxxx~")
    assert long.label == f"anti_windup={value}" and short.name == "anti_windup=latch" and short.label == \
        "anti_windup=latch"
    many = grid_points({f"A{i}.p{i}": ["v" * 20] for i in range(12)})[0]
    assert len(many.name.encode()) <= 120 and "~" in many.name and "p11=" + "v" * 20 in many.label


def test_a_driver_never_marks_failed_a_run_it_could_not_resume(toy_host, capsys):
    """Another driver's interrupted run, met by a driver with other options: refused, not failed."""
    assert main(compare_args("out", "--no-figures", "--steps", "10", models="vae", seeds="1")) == 0
    state = results("out/runs/vae/seed1")
    Path("out/runs/vae/seed1/results.json").write_text(json.dumps({**state, "status": "running"}))
    assert main(compare_args("out", "--no-figures", "--steps", "10", "--gin_param", "BetaVAEH.beta = 3",
                             models="vae", seeds="1")) in (1, 2)
    assert results("out/runs/vae/seed1")["status"] == "running"


def test_a_driver_marks_failed_only_under_the_run_lock(tmp_path):
    run_dir = tmp_path / "runs/vae/seed1"
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps({"status": "running"}))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True,
                              env=_toy_entry_point(tmp_path))
    try:
        assert holder.stdout.readline().strip() == "held"
        assert mark_failed_unless_held(run_dir, "its worker died") is False
        assert json.loads((run_dir / "results.json").read_text())["status"] == "running"
    finally:
        holder.kill()
        holder.wait()
    assert mark_failed_unless_held(run_dir, "its worker died") is True
    assert json.loads((run_dir / "results.json").read_text())["status"] == "failed"


def test_a_task_that_does_not_see_the_drivers_folder_touches_nothing(toy_host, tmp_path):
    out = tmp_path / "out"
    shared = SharedFolder.create(out)
    shared.check()  # the driver's own folder: fine
    job = RunJob("vae", 1, str(out / "runs/vae/seed1"), TRAIN, ConfigSources(protocol=TOY_PROTOCOL))
    shared.remove()  # as a node that mounts another folder at this path sees it
    outcome = execute_unit([job], device=torch.device("cpu"), execution=ExecutionRequest(threads=1),
                           shared=shared)[0]
    assert "is not the driver's here (its marker" in outcome["error"] and "is missing" in outcome["error"]
    assert f"node {os.uname().nodename}" in outcome["error"] and str(out) in outcome["error"]
    assert not (out / "runs").exists()


def test_two_drivers_on_one_folder_both_finish_with_a_correct_manifest(tmp_path):
    env = _toy_entry_point(tmp_path)
    cmd = [sys.executable, "-m", "disbench", *compare_args("out", "--no-figures", "--threads", "1",
                                                           "--steps", "60", models="vae", seeds="1-2")]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for driver in (first, second):
        out, err = driver.communicate(timeout=300)
        assert driver.returncode == 0, (out, err)
    entries = json.loads(Path("out/compare.json").read_text())["runs"]
    assert [(e["status"], e["error"]) for e in entries] == [("complete", None)] * 2
    for seed in (1, 2):  # each run trained once, by one of them
        assert [r["step"] for r in map(json.loads, Path(f"out/runs/vae/seed{seed}/scalars.jsonl").open())][-1] == 60


def test_run_lock_still_excludes_a_second_holder(tmp_path):
    run_dir = tmp_path / "runs/vae/seed1"
    with run_lock(run_dir):
        with pytest.raises(RunLocked, match="being trained by another process"):
            with run_lock(run_dir):
                pass
    assert holder_of(run_dir).split(" pid ")[1].split()[0] == str(os.getpid())


def test_tasks_waiting_a_minute_are_reported_with_what_they_ask(monkeypatch):
    """The driver's loop, with a stand-in for Ray whose first wait times out."""
    from types import SimpleNamespace

    from disbench.compare import ray_backend

    job = RunJob("vae", 1, "out/runs/vae/seed1", TRAIN, ConfigSources(protocol=TOY_PROTOCOL))
    waits = iter([([], ["ref"]), (["ref"], [])])

    class Remote:
        def options(self, **resources):
            assert resources["num_cpus"] == 1 and resources["num_gpus"] == 0.5
            return SimpleNamespace(remote=lambda *args: "ref")

    fake = SimpleNamespace(remote=lambda *a, **k: (lambda fn: Remote()) if not a else Remote(),
                           wait=lambda refs, num_returns, timeout: next(waits),
                           available_resources=lambda: {"CPU": 0.0, "GPU": 1.0},
                           get=lambda ref: [{"status": "complete", "error": None}], cancel=lambda ref, force: None)
    session = ray_backend.RaySession.__new__(ray_backend.RaySession)
    session.ray, session.gpus_per_run, session.cpus_per_run, session.max_retries = fake, 0.5, 1.0, 0
    session.execution = ExecutionRequest(threads=1)
    lines, done = [], []
    session.run([[job]], None, lambda j, outcome: done.append(outcome), on_wait=lines.append)
    assert done == [{"status": "complete", "error": None}]
    assert len(lines) == 1 and "1 task(s) still running or waiting after" in lines[0]
    assert "each asks 1 CPU + 0.5 GPU; free on the cluster now: 0 CPU, 1 GPU" in lines[0]
