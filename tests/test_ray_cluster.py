"""`--backend ray` on a simulated cluster: two nodes of 1 CPU and 1 pretend GPU each
(ray.cluster_utils.Cluster, kept alive by a helper process), and, for the shared-folder
check, a worker node in its own mount namespace that sees another folder at OUT's path.

The drivers run as `disbench` subprocesses connected with --address, as on a cluster.
This machine's PyTorch has no CUDA, so a task given a (pretend) GPU must fail at once —
which also shows, by its process id, that each GPU task got a fresh worker.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_ray_backend import compare_cmd, disbench, manifest
from tests.test_training import _toy_entry_point

ray = pytest.importorskip("ray", reason="the 'ray' extra is not installed (.ci/run installs it)")

CLUSTER = """
import os, signal, sys, time
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1, "include_dashboard": False})
cluster.add_node(num_cpus=1, num_gpus=1)
cluster.wait_for_nodes()
signal.signal(signal.SIGTERM, lambda *a: (cluster.shutdown(), sys.exit(0)))
open(sys.argv[1] + ".tmp", "w").write(cluster.address)
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    time.sleep(1)
"""


def start(script_args, env, ready: Path, what: str, timeout=180):
    proc = subprocess.Popen(script_args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while not ready.exists():
        assert proc.poll() is None, f"{what} did not start: {proc.stderr.read()}"
        assert time.time() < deadline, f"{what} did not start within {timeout} s"
        time.sleep(0.2)
    return proc


def stop(proc, timeout=60):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    env = _toy_entry_point(root)
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")  # a private test cluster: no token
    proc = start([sys.executable, "-c", CLUSTER, str(root / "address")], env, root / "address", "the cluster")
    yield (root / "address").read_text(), env
    stop(proc)


def on(cluster, *extra):
    return ["--backend", "ray", "--address", cluster[0], *extra]


def test_each_gpu_task_gets_a_fresh_worker_and_fails_at_once_without_cuda(two_nodes, tmp_path):
    done = disbench(two_nodes[1], *compare_cmd(tmp_path / "out", models="vae", seeds="1-4"),
                    *on(two_nodes, "--gpus-per-run", "1"))
    assert done.returncode == 1, done.stderr
    runs = manifest(tmp_path / "out")["runs"]
    assert all("has no CUDA" in r["error"] and "--gpus-per-run 0" in r["error"] for r in runs)
    assert all(r["status"] == "missing" for r in runs)  # nothing trained on the CPU while holding a GPU
    pids = [r["worker"]["pid"] for r in runs]
    assert len(set(pids)) == 4  # two GPUs, four tasks one after another: never a reused worker


def test_a_task_no_single_node_holds_is_refused_before_anything_starts(two_nodes, tmp_path):
    """The cluster has 2 CPUs in all, but 1 per node: a task asking 2 would wait forever."""
    done = disbench(two_nodes[1], *compare_cmd(tmp_path / "big", models="vae"), *on(two_nodes, "--cpus-per-run", "2"))
    assert done.returncode == 2
    assert "--cpus-per-run: a task needs 2 CPU and 0 GPU on one node, and no node of the Ray cluster has that " \
           "(nodes: 1 CPU + 1 GPU, 1 CPU + 1 GPU)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "big").exists()
    too_many = disbench(two_nodes[1], *compare_cmd(tmp_path / "big", models="vae"), *on(two_nodes, "--gpus-per-run", "2"))
    assert too_many.returncode == 2 and "a run trains on one GPU" in too_many.stderr


def test_two_drivers_on_one_folder_both_finish_with_a_correct_manifest(two_nodes, tmp_path):
    cmd = [sys.executable, "-m", "disbench", *compare_cmd(tmp_path / "out", "--steps", "60", models="vae",
                                                          seeds="1-2"), *on(two_nodes)]
    drivers = [subprocess.Popen(cmd, env=two_nodes[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for driver in drivers:
        out, err = driver.communicate(timeout=600)
        assert driver.returncode == 0, (out, err)
    assert [(r["status"], r["error"]) for r in manifest(tmp_path / "out")["runs"]] == [("complete", None)] * 2


def test_a_planted_lock_symlink_is_refused_on_the_cluster(two_nodes, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    lock = tmp_path / "out/runs/vae/.seed1.lock"
    lock.parent.mkdir(parents=True)
    lock.symlink_to(victim)
    done = disbench(two_nodes[1], *compare_cmd(tmp_path / "out", models="vae"), *on(two_nodes))
    assert done.returncode == 1
    error = manifest(tmp_path / "out")["runs"][0]["error"]
    assert f"{lock} is a symbolic link, not a run lock" in error and victim.read_text() == "precious\n"


def test_an_unreachable_address_is_one_line_within_30_seconds(tmp_path):
    env = _toy_entry_point(tmp_path)
    started = time.monotonic()
    done = disbench(env, *compare_cmd(tmp_path / "out", models="vae"), "--backend", "ray", "--address",
                    "127.0.0.1:1", timeout=60)
    assert time.monotonic() - started < 30
    assert done.returncode == 2 and "cannot reach --address 127.0.0.1:1" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _can_unshare_mounts() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", "mount -t tmpfs none /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare_mounts(), reason="needs mount namespaces (unshare -m, as root) to give a "
                                                      "worker node its own view of the output folder")
def test_workers_that_see_another_folder_are_refused(tmp_path):
    """A head with no CPUs and a worker node in its own mount namespace, where OUT's parent
    is an empty tmpfs: the folder exists at the same path, but it is not the driver's."""
    env = _toy_entry_point(tmp_path)
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    ray_cli, port, hidden = str(Path(sys.executable).parent / "ray"), _free_port(), tmp_path / "shared"
    hidden.mkdir()
    common = ["--disable-usage-stats", "--block"]
    head = subprocess.Popen([ray_cli, "start", "--head", "--port", str(port), "--num-cpus", "0",
                             "--include-dashboard", "false", *common], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    worker = None
    try:
        wait_for_nodes(f"127.0.0.1:{port}", 1, env)
        worker = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                   f"mount -t tmpfs none {hidden} && exec {ray_cli} start --address "
                                   f"127.0.0.1:{port} --num-cpus 1 {' '.join(common)}"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        wait_for_nodes(f"127.0.0.1:{port}", 2, env)
        done = disbench(env, *compare_cmd(hidden / "out", models="vae"), "--backend", "ray", "--address",
                        f"127.0.0.1:{port}")
        assert done.returncode == 1, done.stderr
        error = manifest(hidden / "out")["runs"][0]["error"]
        assert f"the output folder {hidden / 'out'} is not the driver's here" in error and "is missing" in error
        assert error.startswith("node ") and "\n" not in error
        assert not (hidden / "out/runs").exists()  # the driver's folder: untouched by the task
    finally:
        for proc in (worker, head):
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def wait_for_nodes(address: str, count: int, env, timeout=180) -> None:
    script = ("import ray, sys; ray.init(address=sys.argv[1], configure_logging=False, log_to_driver=False); "
              "print(sum(n['Alive'] for n in ray.nodes()))")
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = subprocess.run([sys.executable, "-c", script, address], env=env, capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster at {address} did not reach {count} node(s) within {timeout} s")
