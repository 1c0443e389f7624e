"""``--backend ray``: a comparison's units of work as Ray tasks.

Every unit (one run to train, resume or evaluate, or one fused group) becomes
one Ray task that calls :func:`disbench.compare.execute.execute_unit` — the
function the local backend calls — so a task writes exactly the run
directories a local worker writes. The output folder is the shared storage:
every node must see it at the same path (and the gin files and data roots the
plan names). The driver collects each task's outcome and writes compare.json,
the tables and the figures as the local backend does.

Resources: a task asks for ``--cpus-per-run`` CPUs and ``--gpus-per-run``
GPUs, and runs with the threads the driver's
:class:`disbench.execution.ExecutionRequest` names (``--threads``, by default
``--cpus-per-run``), as a local worker does; a fused group of K runs asks for K × that GPU share
(at most one GPU: a group runs on one device) and the same CPUs as one run.
A task given a GPU trains on it (Ray sets ``CUDA_VISIBLE_DEVICES``); one given
none trains on the CPU.

Faults:

* a worker that dies in a task (SIGKILL, out of memory, a lost node) is retried
  up to ``--max-retries`` times; the retry re-reads the run (its lock is free,
  since the dead process held it) and resumes from its last checkpoint, so the
  run ends as if it had never been killed. Past the retries, the run is
  recorded failed with the reason (``--retry-failed`` runs it again later).
* a run that fails inside the task (bad configuration, divergence) is recorded
  failed by the task and returned, not raised: Ray does not retry it.
* a driver that dies takes its tasks with it (Ray cancels a job's tasks when
  its driver exits); the same command again finds finished runs on disk and
  resumes the others. A straggling task of the dead driver still holds its
  run's lock, so a new driver's task skips that run instead of training it twice.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DisbenchError
from ..execution import ExecutionRequest
from .plan import RunJob, read_status

INSTALL_HINT = 'pip install -e ".[ray]"  (or: pip install "disbench[ray]")'
DEFAULT_CPUS_PER_RUN, DEFAULT_MAX_RETRIES = 1.0, 2
FORWARDED_ENV_PREFIX = "DISBENCH_"  # the driver's DISBENCH_* variables (data root, disabled plugins, gin path)


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
    if cpus_per_run <= 0:
        raise DisbenchError(f"--cpus-per-run must be > 0, got {cpus_per_run}")
    if max_retries < 0:
        raise DisbenchError(f"--max-retries must be >= 0, got {max_retries}")
    if device != "auto":
        raise DisbenchError(f"--device {device!r} is for --backend local: with --backend ray a task trains "
                            "on the GPU Ray gives it (--gpus-per-run) or on the CPU")


def unit_resources(unit: list[RunJob], gpus_per_run: float, cpus_per_run: float) -> dict:
    return {"num_cpus": cpus_per_run, "num_gpus": min(1.0, gpus_per_run * len(unit)) if gpus_per_run else 0}


def _task(unit: list[RunJob], execution: ExecutionRequest) -> list[dict]:
    """What a Ray worker runs: one unit, on the GPU Ray assigned or on the CPU."""
    import socket

    import ray
    import torch

    from ..plugins import get_host
    from .execute import execute_unit

    get_host()
    gpus = ray.get_gpu_ids()
    device = torch.device("cuda", 0) if gpus and torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    outcomes = execute_unit(unit, device=device, execution=execution, progress=False)
    context = ray.get_runtime_context()
    for outcome in outcomes:
        outcome["worker"] = {"pid": os.getpid(), "host": socket.gethostname(), "device": str(device),
                             "threads": execution.threads, "node": context.get_node_id(),
                             "backend": "ray"}
    return outcomes


class RaySession:
    """A connection to a Ray cluster for one compare: opened (and the units checked
    against the cluster's resources) before the output folder is touched, so a refused
    command leaves nothing behind; closed — a local instance shut down — at the end."""

    def __init__(self, units: list[list[RunJob]], *, address: str | None, gpus_per_run: float,
                 cpus_per_run: float, max_retries: int, execution: ExecutionRequest):
        self.units, self.address, self.execution = units, address, execution
        self.gpus_per_run, self.cpus_per_run, self.max_retries = gpus_per_run, cpus_per_run, max_retries
        self.ray = import_ray()
        self.started_here = False
        self.where = ""

    def __enter__(self) -> "RaySession":
        ray = self.ray
        if not ray.is_initialized():
            env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIX)}
            env["DISBENCH_NO_PROGRESS"] = "1"
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         configure_logging=False, runtime_env={"env_vars": env})
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = f"--address {self.address}" if self.address else "a local Ray instance"
                raise DisbenchError(f"--backend ray: cannot connect to {where}: {exc}") from None
            self.started_here = True
        try:
            resources = ray.cluster_resources()
            self.where = (f"Ray cluster {'at ' + self.address if self.address else '(local)'}: "
                          f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs")
            _check_fits(self.units, resources, self.gpus_per_run, self.cpus_per_run)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.started_here:
            self.ray.shutdown()
            self.started_here = False

    def run(self, on_done) -> None:
        """Submit every unit as a task; ``on_done(job, outcome)`` for each run as its task ends."""
        ray = self.ray
        task = ray.remote(_task)
        pending = {}
        for unit in self.units:
            ref = task.options(**unit_resources(unit, self.gpus_per_run, self.cpus_per_run),
                               max_retries=self.max_retries, retry_exceptions=False
                               ).remote(unit, self.execution)
            pending[ref] = unit
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                unit = pending.pop(ready[0])
                for job, outcome in zip(unit, _outcomes(ray, ready[0], unit, self.max_retries)):
                    on_done(job, outcome)
        except BaseException:  # interrupted: stop the tasks; their runs resume next time
            for ref in pending:
                ray.cancel(ref, force=True)
            raise


def _check_fits(units, resources: dict, gpus_per_run: float, cpus_per_run: float) -> None:
    """A task no node can ever hold would wait forever: refuse it now."""
    biggest = max((unit_resources(u, gpus_per_run, cpus_per_run) for u in units),
                  key=lambda r: (r["num_gpus"], r["num_cpus"]), default=None)
    if biggest is None:
        return
    if biggest["num_gpus"] > resources.get("GPU", 0):
        raise DisbenchError(f"--gpus-per-run {gpus_per_run}: a task needs {biggest['num_gpus']:g} GPU(s) but the "
                            f"Ray cluster has {resources.get('GPU', 0):g}")
    if biggest["num_cpus"] > resources.get("CPU", 0):
        raise DisbenchError(f"--cpus-per-run {cpus_per_run:g}: more than the Ray cluster's "
                            f"{resources.get('CPU', 0):g} CPUs")


def _outcomes(ray, ref, unit: list[RunJob], max_retries: int) -> list[dict]:
    try:
        return ray.get(ref)
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
            ray.exceptions.OutOfMemoryError) as exc:
        error = (f"its Ray worker died {max_retries + 1} time(s) ({type(exc).__name__}); the last checkpoint "
                 "is kept (--retry-failed resumes it)")
    except ray.exceptions.RayError as exc:
        error = f"Ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    from .execute import mark_failed

    outcomes = []
    for job in unit:
        mark_failed(Path(job.run_dir), error)
        outcomes.append({"model": job.model, "seed": job.seed, "action": job.action, "error": error,
                         "status": (read_status(job.run_dir) or {}).get("status", "missing")})
    return outcomes
