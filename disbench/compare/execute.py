"""Run a comparison's jobs: in this process (``--jobs 1``) or in worker processes.

Workers are started with the ``spawn`` method (a forked child would inherit
CUDA and gin state it must not share) and load plugins through entry points
like any fresh ``disbench`` process. Every unit runs with the threads its
:class:`disbench.execution.ExecutionRequest` names (``--threads``; by default
the cores ÷ ``--jobs``, so that N runs side by side do not oversubscribe the
CPU), in this process, a worker or a Ray task alike.

Devices (``--device``):

* ``cpu``: every worker on the CPU.
* ``cuda:K``: every worker on device K (runs share it).
* ``cuda`` or ``auto`` with CUDA available: worker w uses ``cuda:(w mod #GPUs)``, so
  ``--jobs`` = number of GPUs puts one run on each device.
* a list, ``cuda:0,cuda:2``: worker w uses the (w mod length)-th entry.

In-process (``--jobs 1``) runs use the first device of the list.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import torch

from ..builders import resolve_device
from ..errors import DisbenchError
from ..execution import ExecutionRequest, torch_threads
from ..locks import RunLocked, run_lock, run_locks
from ..registry import plugin_host
from ..runner import prepare_new_run, prepare_resume, train_and_evaluate_group
from ..runs import update_results
from ..trained import evaluate_run
from .plan import EVALUATE, TRAIN, RunJob, read_status, refresh_job
from .shared import SharedFolder


def execute_job(job: RunJob, *, device, execution: ExecutionRequest, progress: bool | None = None,
                shared: SharedFolder | None = None) -> dict:
    """Train/resume/evaluate one run (a unit of one)."""
    return execute_unit([job], device=device, execution=execution, progress=progress, shared=shared)[0]


def execute_unit(jobs: list[RunJob], *, device, execution: ExecutionRequest, progress: bool | None = None,
                 shared: SharedFolder | None = None) -> list[dict]:
    """Evaluate one run, or train/resume a unit of runs as one fused group (see
    :func:`group_units`), with the threads ``execution`` names (restored after).
    Errors are returned, not raised: one unit failing must not stop the others.
    KeyboardInterrupt still stops everything.

    With ``shared`` (a driver elsewhere), the unit first checks that it sees the
    driver's output folder (:mod:`.shared`). It then takes its runs' locks
    (:mod:`.locks`) and re-reads what each run needs (:func:`refresh_job`): a
    run another process holds is left to it, one finished meanwhile is not
    trained again, and a retried attempt resumes from the checkpoint the killed
    one left. Nothing here writes a run's results.json without its lock."""
    try:
        if shared is not None:
            shared.check()
        with run_locks([Path(job.run_dir) for job in jobs]), torch_threads(execution.threads):
            refreshed = [refresh_job(job) for job in jobs]
            by_run = {job.run_dir: settled_outcome(job) for job in refreshed if not job.todo}
            for unit in group_units([job for job in refreshed if job.todo], len(jobs)):
                by_run.update({job.run_dir: outcome
                               for job, outcome in zip(unit, _run_unit(unit, device, execution, progress))})
            return [by_run[job.run_dir] for job in jobs]
    except RunLocked as exc:
        return unit_outcomes(jobs, str(exc), locked=True)
    except DisbenchError as exc:  # an unsafe lock file, no locks, a folder the driver does not share
        return unit_outcomes(jobs, str(exc))


def unit_outcomes(jobs: list[RunJob], error: str, **extra) -> list[dict]:
    """The outcome of each run of a unit that stopped before touching its runs."""
    return [{"model": job.model, "seed": job.seed, "action": job.action, "error": error, **extra,
             "status": (read_status(job.run_dir) or {}).get("status", "missing"), "seconds": 0.0}
            for job in jobs]


def settled_outcome(job: RunJob) -> dict:
    """The outcome of a run that needed nothing when its turn came."""
    results = read_status(job.run_dir) or {}
    return {"model": job.model, "seed": job.seed, "action": job.action, "status": results.get("status", "missing"),
            "error": results.get("error") if results.get("status") == "failed" else None, "seconds": 0.0}


def _run_unit(jobs: list[RunJob], device, execution: ExecutionRequest, progress: bool | None) -> list[dict]:
    started = time.perf_counter()
    run_dirs = [Path(job.run_dir) for job in jobs]
    outcomes = [{"model": job.model, "seed": job.seed, "action": job.action, "error": None} for job in jobs]
    if len(jobs) > 1:
        for outcome in outcomes:
            outcome["fused"] = len(jobs)
    training = False  # a run is marked failed only for what happened once its training began
    try:
        if jobs[0].action == EVALUATE:
            evaluate_run(run_dirs[0], list(jobs[0].metrics), device=device, progress=progress)
        else:
            resume = False
            for job, run_dir in zip(jobs, run_dirs):
                if job.action == TRAIN:
                    prepare_new_run(run_dir, job.sources, job.model)
                    if job.point.name:  # which grid point of a sweep this run is
                        update_results(run_dir, grid_point=dict(job.point.bindings))
                else:  # resume an interrupted run, or retry a failed one from its last good checkpoint
                    resume = prepare_resume(run_dir, job.sources, job.model) is not None
            training = True
            train_and_evaluate_group(run_dirs, device=device, resume=resume, metrics=jobs[0].metrics,
                                     progress=progress, execution=execution)
    except DisbenchError as exc:
        for outcome in outcomes:
            outcome["error"] = str(exc)
    except Exception as exc:  # a crash in one unit (out of memory, a plugin bug) is that unit's failure
        for outcome in outcomes:
            outcome["error"] = f"{type(exc).__name__}: {exc}"
            outcome["traceback"] = traceback.format_exc()
    for run_dir, outcome in zip(run_dirs, outcomes):
        if outcome["error"] and training:  # a configuration this driver could not resume with is not a failure
            mark_failed(run_dir, outcome["error"])
        results = read_status(run_dir) or {}
        outcome["status"] = results.get("status", "missing")
        if outcome["status"] == "failed" and not outcome["error"]:
            outcome["error"] = results.get("error")
        outcome["seconds"] = round(time.perf_counter() - started, 3)
    return outcomes


def group_units(jobs: list[RunJob], fuse: int) -> list[list[RunJob]]:
    """The units of work: runs to evaluate alone; runs to train in fused groups of at
    most ``fuse`` — runs whose models share a forward pass (the plan has one
    protocol; models and their settings may differ: :mod:`disbench.training.parts`),
    and for resumed runs the same checkpoint step, since a group continues from one
    step. Runs keep their order (a compare's: model by model)."""
    units, pending = [], {}
    for job in jobs:
        if job.action == EVALUATE or fuse <= 1:
            units.append([job])
            continue
        step = None if job.action == TRAIN else (read_status(job.run_dir) or {}).get("checkpoint_step")
        pending.setdefault((job.fuse_key, job.action == TRAIN, step), []).append(job)
    for group in pending.values():
        units += [group[i:i + fuse] for i in range(0, len(group), fuse)]
    return units


def mark_failed(run_dir: Path, error: str) -> None:
    """A run that stopped mid-training is failed (not retried without --retry-failed);
    a complete run whose evaluation failed stays complete. The caller holds the run's lock."""
    results = read_status(run_dir)
    if results is not None and results.get("status") in ("created", "running"):
        update_results(run_dir, status="failed", error=error)


def mark_failed_unless_held(run_dir: Path, error: str) -> bool:
    """:func:`mark_failed` from a process that does not hold the run's lock (a driver whose
    task died): under the lock, or not at all when another process holds it (a straggler
    or another driver still trains the run). Whether it was marked."""
    try:
        with run_lock(run_dir):
            mark_failed(run_dir, error)
            return True
    except (RunLocked, DisbenchError):
        return False


# -- devices and workers ------------------------------------------------------

def worker_devices(spec: str, workers: int) -> list[str]:
    """The device of each worker slot (see the module docstring)."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise DisbenchError(f"--device {spec!r}: expected cpu, cuda, cuda:N, auto or a comma-separated list")
    devices = [str(resolve_device(n)) for n in names]
    if len(names) == 1 and names[0] in ("cuda", "auto") and devices[0] == "cuda" and workers > 1:
        devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return devices


_WORKER: dict = {}


def _init_worker(slots, devices: list[str]) -> None:
    slot = slots.get()
    os.environ["DISBENCH_NO_PROGRESS"] = "1"  # N bars in one terminal would garble it
    device = torch.device(devices[slot % len(devices)])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    _WORKER.update(slot=slot, device=str(device), pid=os.getpid())
    plugin_host()  # load the plugins (entry points) once per worker


def _worker_execute(jobs: list[RunJob], execution: ExecutionRequest) -> list[dict]:
    outcomes = execute_unit(jobs, device=torch.device(_WORKER["device"]), execution=execution, progress=False)
    for outcome in outcomes:
        outcome["worker"] = {**{k: _WORKER[k] for k in ("pid", "slot", "device")}, "threads": execution.threads}
    return outcomes


def run_jobs(units: list[list[RunJob]], *, workers: int, devices: list[str], execution: ExecutionRequest,
             progress: bool | None, on_done) -> None:
    """Run the units (see :func:`group_units`); ``on_done(job, outcome)`` is called
    in this process for each run after its unit."""
    if workers <= 1:
        device = torch.device(devices[0])
        for unit in units:
            for job, outcome in zip(unit, execute_unit(unit, device=device, execution=execution,
                                                       progress=progress)):
                on_done(job, outcome)
        return

    context = multiprocessing.get_context("spawn")
    slots = context.Queue()
    for slot in range(workers):
        slots.put(slot)
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                   initargs=(slots, devices))
    try:
        futures = {executor.submit(_worker_execute, unit, execution): unit for unit in units}
        for future in as_completed(futures):
            unit = futures[future]
            try:
                outcomes = future.result()
            except BrokenProcessPool as exc:  # a worker was killed (e.g. out of memory): resumable later
                outcomes = [{"model": job.model, "seed": job.seed, "action": job.action,
                             "error": f"worker process died ({exc})",
                             "status": (read_status(job.run_dir) or {}).get("status", "missing")} for job in unit]
            for job, outcome in zip(unit, outcomes):
                on_done(job, outcome)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
