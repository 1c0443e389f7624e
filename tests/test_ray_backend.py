"""`--backend ray` on a local Ray cluster the tests start (2 CPUs, no dashboard).

The drivers run as `disbench` subprocesses connected with --address, as a user
on a cluster would run them; the toy plugin reaches the cluster's workers as an
installed entry point (PYTHONPATH of the cluster's processes).
"""

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from tests.test_training import _toy_entry_point

ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed (.ci/run installs it)")

TOY = str(Path(__file__).parent / "gin" / "toy.gin")
CLUSTER = """
import sys, time, ray
ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False)
open(sys.argv[1] + ".tmp", "w").write(ray.get_runtime_context().gcs_address)
import os; os.replace(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(1)
"""


def test_without_an_address_the_driver_starts_and_stops_its_own_ray(tmp_path):
    """Runs before the module's cluster exists; a stale pointer left by an old `ray start`
    (which Ray's own default would follow) must not capture it."""
    env = _toy_entry_point(tmp_path)
    env.pop("RAY_ADDRESS", None)
    ray_tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # short: Ray's socket paths live under it
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray/ray_current_cluster").write_text("127.0.0.1:9")  # long gone
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=str(ray_tmp))
    Path("toy.gin").write_text(Path(TOY).read_text())  # relative --out and gin file: found by the workers too
    relative = [a if a != TOY else "toy.gin" for a in compare_cmd("out", models="vae")]
    done = disbench(env, *relative, "--backend", "ray", "--cpus-per-run", "2")
    assert done.returncode == 0, done.stderr
    assert "ran on the Ray cluster (local)" in done.stdout and "in Ray tasks (2 CPU, 0 GPU per run)" in done.stdout
    assert manifest(tmp_path / "out")["runs"][0]["worker"]["threads"] == 2
    too_big = disbench(env, *compare_cmd(tmp_path / "big", models="vae"), "--backend", "ray", "--cpus-per-run", "64")
    assert too_big.returncode == 2 and "--cpus-per-run: a task needs 64 CPU and 0 GPU on one node" in too_big.stderr
    assert not (tmp_path / "big").exists()  # refused before the folder was made
    shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A 2-CPU Ray instance kept alive by a helper process; its address and environment."""
    root = tmp_path_factory.mktemp("ray")
    env = _toy_entry_point(root)
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")  # a private test cluster: no token
    address_file = root / "address"
    proc = subprocess.Popen([sys.executable, "-c", CLUSTER, str(address_file)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not address_file.exists():
        assert proc.poll() is None, f"the Ray cluster did not start: {proc.stderr.read()}"
        assert time.time() < deadline, "the Ray cluster did not start within 180 s"
        time.sleep(0.2)
    yield address_file.read_text(), env
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def disbench(env, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "disbench", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def compare_cmd(out, *extra, models="vae,betavae_h", seeds="1"):
    return ["compare", "--models", models, "--seeds", seeds, "--protocol", TOY, "--out", str(out),
            "--no-progress", "--no-figures", *extra]


def on_ray(cluster, *extra):
    return ["--backend", "ray", "--address", cluster[0], *extra]


def manifest(out):
    return json.loads((Path(out) / "compare.json").read_text())


def without_backend(table_csv: str, table_md: str) -> tuple[list, str]:
    """The tables with what may differ between backends left out: table.csv's exec_backend
    column and table.md's line on how the runs were executed."""
    rows = [row[:-2] + row[-1:] for row in csv.reader(io.StringIO(table_csv))]  # exec_backend: second to last
    md = "\n".join(line for line in table_md.splitlines() if not line.startswith("Executed alike:"))
    return rows, md


def test_compare_and_sweep_on_ray_give_the_local_tables(cluster, tmp_path):
    """The local compare is told --threads 1; the Ray tasks get the rule's 1 thread (--cpus-per-run 1).
    Nothing pins OMP_NUM_THREADS: the thread count is the command's, in both."""
    address, env = cluster
    for command, extra in ((compare_cmd, ()), (compare_cmd, ("--grid", "BetaVAEH.beta=2,8"))):
        args = command(tmp_path / "local", *extra, models="betavae_h" if extra else "vae,betavae_h")
        if extra:
            args[0] = "sweep"
        local = disbench(env, *args, "--threads", "1")
        assert local.returncode == 0, local.stderr
        ray_args = [a if a != str(tmp_path / "local") else str(tmp_path / "ray") for a in args]
        remote = disbench(env, *ray_args, *on_ray(cluster))
        assert remote.returncode == 0, remote.stderr
        assert "in Ray tasks (1 CPU, 0 GPU per run), 1 thread per run" in remote.stdout
        tables = {f: [(tmp_path / where / f).read_text() for where in ("local", "ray")]
                  for f in ("table.csv", "table.md")}
        assert tables["table.csv"][0] != tables["table.csv"][1]  # exec_backend: local vs ray
        assert without_backend(tables["table.csv"][0], tables["table.md"][0]) == \
            without_backend(tables["table.csv"][1], tables["table.md"][1])
        assert {r["exec_backend"] for r in csv.DictReader(io.StringIO(tables["table.csv"][1]))} == {"ray"}
        workers = [e["worker"] for e in manifest(tmp_path / "ray")["runs"]]
        assert all(w["backend"] == "ray" and w["threads"] == 1 and w["device"] == "cpu" for w in workers)
        run = next((tmp_path / "ray" / "runs").rglob("results.json"))
        execution = json.loads(run.read_text())["execution"]
        assert execution["backend"] == "ray" and execution["threads"]["intra_op"] == 1
        assert execution["command"].startswith(f"disbench {args[0]} --models")  # the driver's, not Ray's
        # a Ray-trained run verifies here, bit for bit
        verified = disbench(env, "verify", str(run.parent), "--no-progress")
        assert verified.returncode == 0 and "bit for bit" in verified.stdout and "differently" not in verified.stdout
        # a re-run finds every run complete and starts no task
        again = disbench(env, *ray_args, *on_ray(cluster))
        assert again.returncode == 0 and "all complete" in again.stdout and "Ray tasks" not in again.stdout
        for folder in ("local", "ray"):
            subprocess.run(["rm", "-rf", str(tmp_path / folder)], check=True)


LONG_RUN = ("--steps", "400", "--gin_param", "Protocol.checkpoint_every = 20", "--gin_param",
            "Protocol.log_every = 20")


@pytest.fixture(scope="module")
def uninterrupted(cluster, tmp_path_factory):
    """The long toy run trained on Ray without interruption: what a killed one must end as."""
    out = tmp_path_factory.mktemp("whole") / "whole"
    named_by_env = {**cluster[1], "RAY_ADDRESS": cluster[0]}  # as on a Ray job's node: no --address
    whole = disbench(named_by_env, *compare_cmd(out, *LONG_RUN, models="vae"), "--backend", "ray")
    assert whole.returncode == 0, whole.stderr
    assert f"ran on the Ray cluster at {cluster[0]}" in whole.stdout
    return out


def kill_mid_run(driver, out, victim) -> int:
    """SIGKILL ``victim(lock holder pid)`` once the run has a checkpoint at step >= 40; its pid."""
    checkpoint, lock = out / "runs/vae/seed1/checkpoint.pt", out / "runs/vae/.seed1.lock"
    deadline = time.time() + 300
    while time.time() < deadline and driver.poll() is None:
        if checkpoint.exists() and lock.exists():
            step = torch.load(checkpoint, weights_only=True)["step"]
            if 40 <= step < 300:
                pid = victim(int(lock.read_text().split(" pid ")[1].split()[0]))
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.05)
    raise AssertionError("the run ended before it could be killed")


def assert_same_run(out, reference):
    resumed = torch.load(out / "runs/vae/seed1/checkpoint.pt", weights_only=True)["model"]
    whole = torch.load(reference / "runs/vae/seed1/checkpoint.pt", weights_only=True)["model"]
    assert resumed.keys() == whole.keys() and all(torch.equal(resumed[k], whole[k]) for k in whole)
    assert (out / "table.csv").read_text() == (reference / "table.csv").read_text()


def start_driver(cluster, out):
    return subprocess.Popen([sys.executable, "-m", "disbench", *compare_cmd(out, *LONG_RUN, models="vae"),
                             *on_ray(cluster)], env=cluster[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_a_worker_killed_mid_run_is_retried_and_ends_bit_identical(cluster, uninterrupted, tmp_path):
    out = tmp_path / "killed"
    driver = start_driver(cluster, out)
    killed = kill_mid_run(driver, out, victim=lambda worker: worker)
    stdout, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr
    entry = manifest(out)["runs"][0]
    assert entry["status"] == "complete" and entry["error"] is None
    assert entry["worker"]["pid"] != killed  # the retry ran in a new worker
    assert_same_run(out, uninterrupted)


def test_a_killed_driver_is_rerun_and_its_run_resumed_bit_identical(cluster, uninterrupted, tmp_path):
    from disbench.locks import RunLocked, run_lock

    out = tmp_path / "driver"
    driver = start_driver(cluster, out)
    kill_mid_run(driver, out, victim=lambda worker: driver.pid)
    driver.communicate(timeout=60)
    deadline = time.time() + 120  # Ray stops a dead driver's tasks: the run's lock comes free
    while True:
        try:
            with run_lock(out / "runs/vae/seed1"):
                break
        except RunLocked:
            assert time.time() < deadline, "the dead driver's task kept running"
            time.sleep(0.5)
    assert json.loads((out / "runs/vae/seed1/results.json").read_text())["status"] != "complete"
    again = disbench(cluster[1], *compare_cmd(out, *LONG_RUN, models="vae"), *on_ray(cluster))
    assert again.returncode == 0, again.stderr
    assert "1 to resume" in again.stdout
    assert_same_run(out, uninterrupted)


def test_a_run_that_fails_by_itself_is_recorded_failed_once(cluster, tmp_path):
    address, env = cluster
    out = tmp_path / "div"
    first = disbench(env, *compare_cmd(out, models="vae,toy_diverging"), *on_ray(cluster, "--max-retries", "3"))
    assert first.returncode == 1
    runs = {e["model"]: e for e in manifest(out)["runs"]}
    assert runs["vae"]["status"] == "complete"
    assert runs["toy_diverging"]["status"] == "failed" and "non-finite" in runs["toy_diverging"]["error"]
    assert runs["toy_diverging"]["worker"]["backend"] == "ray"  # the task returned the failure: no retry
    again = disbench(env, *compare_cmd(out, models="vae,toy_diverging"), *on_ray(cluster))
    assert again.returncode == 1 and "1 failed (not retried)" in again.stdout and "Ray tasks" not in again.stdout


def test_a_study_runs_on_ray_in_one_group_across_models(cluster, tmp_path):
    """A study is a sweep per dataset underneath: on Ray, runs of two models and a grid share
    one fused group (one task), and a re-run starts no task."""
    study = tmp_path / "tiny.toml"
    study.write_text(f'''protocol = "{Path(TOY).parent}/{{dataset}}.gin"
datasets = ["toy"]
seeds = "1"
[[model]]
name = "betavae_h"
grid = {{ "BetaVAEH.beta" = [2.0, 8.0] }}
[[model]]
name = "vae"
''')
    out = tmp_path / "st"
    args = ["study", str(study), "--out", str(out), "--no-progress", "--no-figures", "--fuse", "3"]
    done = disbench(cluster[1], *args, *on_ray(cluster))
    assert done.returncode == 0, done.stderr
    assert "in Ray tasks" in done.stdout and "1 unit(s) of work" in done.stdout
    runs = manifest(out / "toy")["runs"]
    assert [r["status"] for r in runs] == ["complete"] * 3 and {r["worker"]["backend"] for r in runs} == {"ray"}
    groups = {tuple(json.loads(Path(d).read_text())["execution"]["fused_group"]["members"])
              for d in (out / "toy" / "runs").rglob("results.json")}
    assert len(groups) == 1 and len(next(iter(groups))) == 3
    again = disbench(cluster[1], *args, *on_ray(cluster))
    assert again.returncode == 0 and "all complete" in again.stdout and "Ray tasks" not in again.stdout
