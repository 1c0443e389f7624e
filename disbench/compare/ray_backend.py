"""``--backend ray``: a comparison's units of work as Ray tasks.

Every unit (one run to train, resume or evaluate, or one fused group) becomes
one Ray task that calls :func:`disbench.compare.execute.execute_unit` — the
function the local backend calls — so a task writes exactly the run
directories a local worker writes. The output folder is the shared storage:
every node must see it at the same path (and the gin files and data roots the
plan names); each task checks the driver's marker there first
(:mod:`.shared`) and is refused, naming its node, where it does not. The driver
collects each task's outcome and writes compare.json, the tables and the
figures as the local backend does.

Resources: a task asks for ``--cpus-per-run`` CPUs and ``--gpus-per-run``
GPUs (at most 1: a run trains on one GPU), and runs with the threads the
driver's :class:`disbench.execution.ExecutionRequest` names (``--threads``, by
default ``--cpus-per-run``), as a local worker does; a fused group of K runs
asks for K × that GPU share (at most one GPU: a group runs on one device) and
the same CPUs as one run. A task given a GPU trains on it (Ray sets
``CUDA_VISIBLE_DEVICES``) in a fresh worker process (``max_calls=1``: an idle
worker would keep its CUDA context, PyTorch's cached memory and the dataset on
the GPU); a task given a GPU whose PyTorch has no CUDA fails at once. One given
no GPU trains on the CPU. Before anything starts, every task must fit on one
node (not on the cluster's sum), and an unreachable ``--address`` is one line;
a task that waits for resources longer than a minute is reported by the driver
with what it waits for.

Faults:

* a worker that dies in a task (SIGKILL, out of memory, a lost node) is retried
  up to ``--max-retries`` times; the retry re-reads the run (its lock is free,
  since the dead process held it) and resumes from its last checkpoint, so the
  run ends as if it had never been killed. Past the retries, the driver records
  the run failed with the reason — under the run's lock, so never over a run
  another process still trains (``--retry-failed`` runs it again later).
* a run that fails inside the task (bad configuration, divergence) is recorded
  failed by the task and returned, not raised: Ray does not retry it.
* a driver that dies takes its tasks with it (Ray cancels a job's tasks when
  its driver exits); the same command again finds finished runs on disk and
  resumes the others. A straggling task of the dead driver still holds its
  run's lock, so a new driver's task skips that run instead of training it twice.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import torch

from ..errors import DisbenchError
from ..execution import ExecutionRequest
from ..registry import plugin_host
from .execute import execute_unit, mark_failed_unless_held, unit_outcomes
from .plan import RunJob
from .shared import SharedFolder

INSTALL_HINT = 'pip install -e ".[ray]"  (or: pip install "disbench[ray]")'
DEFAULT_CPUS_PER_RUN, DEFAULT_MAX_RETRIES = 1.0, 2
FORWARDED_ENV_PREFIX = "DISBENCH_"  # the driver's DISBENCH_* variables (data root, disabled plugins, gin path)
CONNECT_TIMEOUT_SECONDS = 10.0   # an --address that does not answer in this time is unreachable
WAIT_REPORT_SECONDS = 60.0       # tasks waiting this long with none finishing are reported


def import_ray():
    try:
        import ray
    except ImportError:
        raise DisbenchError(f"--backend ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def check_ray_options(*, gpus_per_run: float, cpus_per_run: float, max_retries: int, device: str) -> None:
    """Every check of the Ray options that needs no cluster (before anything starts)."""
    if gpus_per_run < 0:
        raise DisbenchError(f"--gpus-per-run must be >= 0 (a fraction shares a GPU), got {gpus_per_run}")
    if gpus_per_run > 1:
        raise DisbenchError(f"--gpus-per-run {gpus_per_run:g}: a run trains on one GPU; give at most 1 "
                            "(a fraction shares a GPU between runs)")
    if cpus_per_run <= 0:
        raise DisbenchError(f"--cpus-per-run must be > 0, got {cpus_per_run}")
    if max_retries < 0:
        raise DisbenchError(f"--max-retries must be >= 0, got {max_retries}")
    if device != "auto":
        raise DisbenchError(f"--device {device!r} is for --backend local: with --backend ray a task trains "
                            "on the GPU Ray gives it (--gpus-per-run) or on the CPU")


def cluster_address(flag: str | None) -> tuple[str | None, str]:
    """The cluster and what named it: --address, else RAY_ADDRESS (set on Ray's own job
    nodes), else (None, ...): a fresh local instance. Never Ray's own default, which
    joins whatever cluster the last `ray start` on this machine recorded, even one long gone."""
    if flag:
        return flag, f"--address {flag}"
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"], f"RAY_ADDRESS={os.environ['RAY_ADDRESS']}"
    return None, "a local Ray instance"


def check_reachable(address: str | None, named: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """A HOST:PORT address answers a TCP connection within ``timeout`` (Ray itself
    would retry for minutes); 'auto', none and non-TCP forms are left to Ray."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise DisbenchError(f"{named}: expected 'auto' or HOST:PORT (e.g. 10.0.0.1:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise DisbenchError(f"--backend ray: cannot reach {named} within {timeout:g} s "
                            f"({exc.strerror or exc}); is the Ray head running there?") from None


def unit_resources(unit: list[RunJob], gpus_per_run: float, cpus_per_run: float) -> dict:
    return {"num_cpus": cpus_per_run, "num_gpus": min(1.0, gpus_per_run * len(unit)) if gpus_per_run else 0}


def _task(unit: list[RunJob], execution: ExecutionRequest, shared: SharedFolder) -> list[dict]:
    """What a Ray worker runs: one unit, on the GPU Ray assigned or on the CPU."""
    import ray

    plugin_host()  # load the plugins (entry points) in this worker
    gpus = ray.get_gpu_ids()
    context = ray.get_runtime_context()
    worker = {"pid": os.getpid(), "host": socket.gethostname(), "threads": execution.threads,
              "node": context.get_node_id(), "backend": "ray"}
    if gpus and not torch.cuda.is_available():
        outcomes = unit_outcomes(unit, f"node {worker['host']} gave this task GPU {', '.join(map(str, gpus))}, but "
                                       f"its PyTorch ({torch.__version__}) has no CUDA: install a CUDA build of "
                                       "torch there, or use --gpus-per-run 0")
        return [{**o, "worker": {**worker, "device": "none"}} for o in outcomes]
    device = torch.device("cuda", 0) if gpus else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    outcomes = execute_unit(unit, device=device, execution=execution, progress=False, shared=shared)
    return [{**o, "worker": {**worker, "device": str(device)}} for o in outcomes]


class RaySession:
    """A connection to a Ray cluster for one compare: opened (and the units checked
    against the nodes' resources) before the output folder is touched, so a refused
    command leaves nothing behind; closed — a local instance shut down — at the end."""

    def __init__(self, units: list[list[RunJob]], *, address: str | None, gpus_per_run: float,
                 cpus_per_run: float, max_retries: int, execution: ExecutionRequest):
        self.units, self.execution = units, execution
        self.address, self.named = cluster_address(address)
        self.gpus_per_run, self.cpus_per_run, self.max_retries = gpus_per_run, cpus_per_run, max_retries
        self.ray = import_ray()
        self.started_here = False
        self.where = ""

    def __enter__(self) -> "RaySession":
        ray = self.ray
        if not ray.is_initialized():
            check_reachable(self.address, self.named)
            env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)}
            env["DISBENCH_NO_PROGRESS"] = "1"
            try:
                ray.init(address=self.address or "local", include_dashboard=False, log_to_driver=False,
                         configure_logging=False, runtime_env={"env_vars": env})
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise DisbenchError(f"--backend ray: cannot connect to {self.named}: {exc}") from None
            self.started_here = True
        try:
            resources = ray.cluster_resources()
            nodes = [n.get("Resources") or {} for n in ray.nodes() if n.get("Alive")]
            self.where = (f"Ray cluster {'at ' + self.address if self.address else '(local)'}: {len(nodes)} "
                          f"node{'s' if len(nodes) != 1 else ''}, {resources.get('CPU', 0):g} CPUs, "
                          f"{resources.get('GPU', 0):g} GPUs")
            check_fits(self.units, nodes, self.gpus_per_run, self.cpus_per_run)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.started_here:
            self.ray.shutdown()
            self.started_here = False

    def run(self, units: list[list[RunJob]], shared: SharedFolder, on_done, on_wait=print) -> None:
        """Submit every unit as a task; ``on_done(job, outcome)`` for each run as its task
        ends; ``on_wait(line)`` when tasks have waited a minute with none finishing."""
        ray = self.ray
        # a GPU task gets a fresh worker: only the decorator's options make Ray end it after the task
        task = ray.remote(max_calls=1)(_task) if self.gpus_per_run else ray.remote(_task)
        pending = {}
        for unit in units:
            ref = task.options(**unit_resources(unit, self.gpus_per_run, self.cpus_per_run),
                               max_retries=self.max_retries, retry_exceptions=False
                               ).remote(unit, self.execution, shared)
            pending[ref] = unit
        try:
            quiet_since = time.monotonic()
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_REPORT_SECONDS)
                if not ready:
                    on_wait(self._waiting(pending, time.monotonic() - quiet_since))
                    continue
                quiet_since = time.monotonic()
                unit = pending.pop(ready[0])
                for job, outcome in zip(unit, _outcomes(ray, ready[0], unit, self.max_retries)):
                    on_done(job, outcome)
        except BaseException:  # interrupted: stop the tasks; their runs resume next time
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def _waiting(self, pending: dict, seconds: float) -> str:
        needs = sorted({(r["num_cpus"], r["num_gpus"]) for r in
                        (unit_resources(u, self.gpus_per_run, self.cpus_per_run) for u in pending.values())})
        free = self.ray.available_resources()
        asked = ", ".join(f"{cpu:g} CPU + {gpu:g} GPU" for cpu, gpu in needs)
        return (f"  {len(pending)} task(s) still running or waiting after {seconds:.0f} s with none finished "
                f"(each asks {asked}; free on the cluster now: {free.get('CPU', 0):g} CPU, "
                f"{free.get('GPU', 0):g} GPU)")


def check_fits(units, nodes: list[dict], gpus_per_run: float, cpus_per_run: float) -> None:
    """A task no single node can hold would wait forever: refuse it now, naming what it needs."""
    for need in {tuple(unit_resources(u, gpus_per_run, cpus_per_run).values()) for u in units}:
        cpus, gpus = need
        if not any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
            largest = ", ".join(f"{n.get('CPU', 0):g} CPU + {n.get('GPU', 0):g} GPU" for n in nodes) or "none"
            option = "--gpus-per-run" if gpus and not any(n.get("GPU", 0) >= gpus for n in nodes) else "--cpus-per-run"
            raise DisbenchError(f"{option}: a task needs {cpus:g} CPU and {gpus:g} GPU on one node, and no node of "
                                f"the Ray cluster has that (nodes: {largest})")


def _outcomes(ray, ref, unit: list[RunJob], max_retries: int) -> list[dict]:
    try:
        return ray.get(ref)
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
            ray.exceptions.OutOfMemoryError) as exc:
        error = (f"its Ray worker died {max_retries + 1} time(s) ({type(exc).__name__}); the last checkpoint "
                 "is kept (--retry-failed resumes it)")
    except ray.exceptions.RayError as exc:
        error = f"Ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    for job in unit:
        mark_failed_unless_held(Path(job.run_dir), error)
    return unit_outcomes(unit, error)
