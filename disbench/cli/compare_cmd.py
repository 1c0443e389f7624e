"""``disbench compare``: many models × seeds under one protocol, then tables and figures.

Exit status: 0 when every run is complete and evaluated, 1 when some run
failed or did not finish (the tables are written first and list it), 2 for
bad input (nothing is trained).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import torch

from ..compare.dry_run import Estimate, describe, measure, plan_size
from ..compare.execute import group_units, run_jobs, settled_outcome, worker_devices
from ..compare.fuse import choose_fuse, parse_fuse
from ..compare.manifest import run_entry, write_manifest
from ..compare.plan import (EVALUATE, RESUME, RETRY, SKIP_FAILED, TRAIN, parse_models, parse_seeds, plan_runs,
                            refresh_job)
from ..compare.ray_backend import (DEFAULT_CPUS_PER_RUN, DEFAULT_MAX_RETRIES, RaySession, check_ray_options,
                                   import_ray)
from ..compare.report import write_compare_report
from ..compare.shared import SharedFolder
from ..compare.sweep import check_grid, grid_points
from ..config import config_notes
from ..errors import DisbenchError
from ..execution import ExecutionRequest, check_threads, default_threads
from ..locks import wait_for_locks
from ..metrics import parse_representations
from ..progress import progress_bar
from ..runner import check_configured_loggers, check_output_dir
from .common import add_progress_option, add_same_execution_option, add_threads_option, option_list
from .train_cmd import add_config_options, sources_from_args


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="train, evaluate and tabulate many models × seeds under one protocol",
        description="Run every (model, seed) not yet complete in OUT/runs/MODEL/seedS (resuming interrupted "
                    "ones), evaluate them, and write OUT/table.md, OUT/table.csv, OUT/figures and "
                    "OUT/compare.json. Re-running the same command does no finished work again.")
    add_grid_options(p, "the compare directory")
    add_execution_options(p)
    p.set_defaults(func=run_compare)


def add_grid_options(p, out_help: str) -> None:
    """What a compare or sweep runs: models, seeds, protocol, output folder, metrics."""
    p.add_argument("--models", required=True, help="comma-separated model names, e.g. dynamicvae,factorvae,vae")
    p.add_argument("--seeds", required=True, help="seeds: '1-5', '1,3,7', '2' (or a mix, '1-3,7')")
    p.add_argument("--protocol", required=True, help="a protocol name (gin/protocols/NAME.gin) or a .gin file")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--metrics", help="comma-separated metrics to evaluate (default: the protocol's); "
                                     "NAME@sampled scores NAME on the sampled representation")
    p.add_argument("--representation", help="mean, sampled or mean,sampled: score each metric on each "
                                            "(default: mean, the encoder means)")


def add_execution_options(p) -> None:
    """How and where the runs are executed (compare and sweep)."""
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at a time, each in its own worker process (default 1: in this process; "
                        "--backend local only)")
    add_threads_option(p, "--backend local: the cores this process may use ÷ --jobs; --backend ray: "
                          "--cpus-per-run")
    p.add_argument("--fuse", metavar="K|auto",
                   help="train up to K runs as one fused group (default 1): runs of any models whose forward pass "
                        "is the same (one architecture); "
                        "'auto': 1 on a CPU, on a GPU the most (up to 8) whose memory estimate fits half the GPU")
    add_same_execution_option(p)
    add_config_options(p)
    p.add_argument("--retry-failed", action="store_true",
                   help="run failed runs again (from their last good checkpoint); by default they are reported")
    p.add_argument("--no-figures", action="store_true", help="write the tables only (`disbench report` draws later)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the runs and run-steps the command would do and a time estimate from a few steps "
                        "timed here; write nothing")
    p.add_argument("--device", default="auto",
                   help="cpu, cuda:N (all runs on one device), cuda/auto (worker w on GPU w mod #GPUs) "
                        "or a list such as cuda:0,cuda:1 (default: auto; --backend local only)")
    ray = p.add_argument_group("distributed execution")
    ray.add_argument("--backend", choices=("local", "ray"), default="local",
                     help="local: this process or --jobs worker processes (default); ray: one Ray task per run "
                          "or fused group, on the cluster at --address (needs the 'ray' extra)")
    ray.add_argument("--address", help="--backend ray: the cluster, 'auto' (the last `ray start` here) or "
                                       "HOST:PORT (default: $RAY_ADDRESS if set, else a fresh local Ray "
                                       "instance); --out must be on storage every node sees")
    ray.add_argument("--gpus-per-run", type=float, default=0.0,
                     help="--backend ray: GPUs per run, fractions share a GPU (default 0: train on CPUs)")
    ray.add_argument("--cpus-per-run", type=float, default=DEFAULT_CPUS_PER_RUN,
                     help="--backend ray: CPUs per task, also its torch threads (default 1)")
    ray.add_argument("--max-retries", type=int, default=DEFAULT_MAX_RETRIES,
                     help="--backend ray: times a task whose worker died is retried, each retry resuming from "
                          "the last checkpoint (default 2); a run that fails by itself is never retried")
    add_progress_option(p)


def command_line(args, models: list[str], command: str = "compare", extra: list[str] = ()) -> str:
    """The command, rebuilt from its options (recorded in compare.json)."""
    parts = ["disbench", command, "--models", ",".join(models), "--seeds", args.seeds,
             "--protocol", args.protocol, "--out", args.out, *extra]
    for flag, value in (("--metrics", args.metrics), ("--representation", args.representation),
                        ("--dataset", args.dataset), ("--data-root", args.data_root), ("--steps", args.steps)):
        if value is not None:
            parts += [flag, str(value)]
    for f in args.gin_file:
        parts += ["--gin_file", f]
    for b in args.gin_param:
        parts += ["--gin_param", b]
    parts += ["--deterministic"] * args.deterministic
    for name in args.logger:
        parts += ["--logger", name]
    parts += ["--fuse", args.fuse] if args.fuse else []
    parts += ["--threads", str(args.threads)] if args.threads is not None else []
    if args.backend == "ray":
        parts += ["--backend", "ray"] + (["--address", args.address] if args.address else [])
        parts += ["--gpus-per-run", f"{args.gpus_per_run:g}", "--cpus-per-run", f"{args.cpus_per_run:g}",
                  "--max-retries", str(args.max_retries)]
    else:
        parts += ["--jobs", str(args.jobs), "--device", args.device]
    parts += ["--retry-failed"] * args.retry_failed + ["--no-figures"] * args.no_figures
    parts += ["--same-execution"] * args.same_execution
    return shlex.join(parts)


def check_execution_options(args) -> None:
    """The backend's options, checked before anything is planned."""
    if args.jobs < 1:
        raise DisbenchError(f"--jobs must be at least 1, got {args.jobs}")
    if args.threads is not None:
        check_threads(args.threads)
    if args.backend == "ray":
        if args.jobs != 1:
            raise DisbenchError("--jobs is for --backend local: Ray runs as many tasks at once as the cluster's "
                                "resources allow (--cpus-per-run, --gpus-per-run)")
        if args.fuse == "auto":
            raise DisbenchError("--fuse auto reads the training device's memory, which the Ray driver cannot see: "
                                "give --fuse K")
        check_ray_options(gpus_per_run=args.gpus_per_run, cpus_per_run=args.cpus_per_run,
                          max_retries=args.max_retries, device=args.device)
        import_ray()
    elif (args.address or args.gpus_per_run or args.cpus_per_run != DEFAULT_CPUS_PER_RUN
          or args.max_retries != DEFAULT_MAX_RETRIES):
        raise DisbenchError("--address, --gpus-per-run, --cpus-per-run and --max-retries need --backend ray")


def execution_request(args) -> ExecutionRequest:
    """The threads, backend and command every run of the plan is executed with
    (the rule of :mod:`disbench.execution`)."""
    if args.threads is not None:
        threads = args.threads
    elif args.backend == "ray":
        threads = max(1, int(args.cpus_per_run))
    else:
        threads = default_threads(args.jobs)
    return ExecutionRequest(threads=threads, backend=args.backend, command=getattr(args, "command_line", None))


def run_compare(args) -> int:
    return plan_and_execute(args, "compare")


def plan_and_execute(args, command: str, grid: dict | None = None, grid_options: list[str] = ()) -> int:
    """Check the options, plan every (model, grid point, seed) and execute the plan."""
    check_execution_options(args)
    parse_fuse(args.fuse)
    seeds = parse_seeds(args.seeds)
    models = parse_models(args.models)
    metrics = option_list(args.metrics, "--metrics", "metric names")
    out = Path(args.out)
    check_output_dir(out)
    representations = parse_representations(args.representation) if args.representation is not None else None
    sources = sources_from_args(args)
    if args.backend == "ray":  # a Ray worker's working folder is not the driver's: every path absolute
        out, sources = absolute(out), absolute_paths(sources)
    header = {"command": command_line(args, models, command, [x for g in grid_options for x in ("--grid", g)]),
              "kind": command, "models": models, "seeds": seeds, "protocol": args.protocol}
    points = None
    if grid is not None:
        points = grid_points(grid)
        check_grid(grid, models, sources)
        # lists of pairs, not objects: compare.json's keys are sorted, the grid's order matters
        header.update(grid=[[name, list(values)] for name, values in grid.items()],
                      points=[{"name": p.name, "bindings": [list(b) for b in p.bindings],
                               **({"label": p.text} if p.text else {})} for p in points])
    plan = plan_runs(out, models, seeds, sources, metrics, args.retry_failed, representations, points)
    return execute_plan(args, out, plan, header)


def absolute(path) -> Path:
    """``path`` made absolute without resolving symbolic links: the driver's links (a home
    folder linked to /mnt/shared, say) may not exist on the workers, the path they mount may."""
    return Path(os.path.abspath(Path(path).expanduser()))


def absolute_paths(sources):
    """``sources`` with its gin files, a protocol given as a file, and --data-root made absolute."""
    protocol = sources.protocol
    if protocol and Path(protocol).is_file():
        protocol = str(absolute(protocol))
    overrides = dict(sources.overrides)
    if overrides.get("Protocol.data_root"):
        overrides["Protocol.data_root"] = str(absolute(overrides["Protocol.data_root"]))
    return replace(sources, protocol=protocol, gin_files=[str(absolute(f)) for f in sources.gin_files],
                   overrides=overrides)


def execute_plan(args, out: Path, plan, header: dict) -> int:
    """Run a plan's pending units on the chosen backend, keep OUT/compare.json current,
    then write the tables and figures. Exit status as the module docstring says."""
    name = header["kind"]
    fuse = parse_fuse(args.fuse)
    check_configured_loggers()  # the loggers the plan's configuration names (--logger, Run.loggers)
    for note in config_notes():
        print(f"note: {note}", file=sys.stderr)
    todo = plan.todo
    on_ray = args.backend == "ray"
    devices = ["ray"] if on_ray else worker_devices(args.device, max(1, args.jobs))
    group_size, fuse_rule = choose_fuse(fuse, todo, "cpu" if on_ray else devices[0])
    execution = execution_request(args)
    units = group_units(todo, group_size)
    workers = max(1, min(args.jobs, len(units)))
    if not on_ray:
        devices = worker_devices(args.device, workers)
    if args.dry_run:
        return dry_run(args, name, out, todo, plan, group_size, execution, workers, devices)
    progress = False if args.no_progress else None

    header = {**header, "metrics": list(plan.metrics), "jobs": args.jobs, "devices": devices, "fuse": group_size,
              "fuse_rule": fuse_rule, "backend": args.backend, "threads": execution.threads,
              "same_execution": bool(args.same_execution)}
    outcomes: dict = {}

    def record() -> dict:
        return write_manifest(out, header, [run_entry(out, j, outcomes.get(j.key)) for j in plan.jobs])

    counts = [f"{plan.count(a)} {what}" for a, what in ((TRAIN, "to train"), (RESUME, "to resume"),
                                                      (RETRY, "to retry"), (EVALUATE, "to evaluate"),
                                                      (SKIP_FAILED, "failed (not retried)")) if plan.count(a)]
    if on_ray:
        where = f"Ray tasks ({args.cpus_per_run:g} CPU, {args.gpus_per_run:g} GPU per run)"
    else:
        where = f"{workers} worker process{'es' if workers > 1 else ''}" if workers > 1 else "this process"
        where += f" on {', '.join(devices)}"
    where += f", {execution.threads} thread{'s' if execution.threads > 1 else ''} per run"

    with contextlib.ExitStack() as stack:
        ray_session = None
        if on_ray and units:  # connect and check the cluster first: a refusal leaves nothing behind
            ray_session = stack.enter_context(RaySession(
                units, address=args.address, gpus_per_run=args.gpus_per_run, cpus_per_run=args.cpus_per_run,
                max_retries=args.max_retries, execution=execution))
        out.mkdir(parents=True, exist_ok=True)
        shared = None
        if ray_session is not None:  # every task checks it sees this folder (compare.shared)
            shared = SharedFolder.create(out)
            stack.callback(shared.remove)
        record()
        print(f"{name}: {len(plan.jobs)} runs in {out}: {', '.join(counts) or 'all complete'}"
              + (f"; in {where}" if todo else ""))
        if todo and (fuse == "auto" or group_size > 1):
            print(f"{name}: {fuse_rule['why']}; {len(units)} unit(s) of work")
        bar = progress_bar(total=len(todo), desc=name, unit="run", disable=None if progress is None else not progress)

        def on_done(job, outcome) -> None:
            if job.key not in outcomes:
                bar.update(1)
            outcomes[job.key] = outcome
            what = outcome["status"] + (f" — {outcome['error']}" if outcome.get("error") else "")
            bar.write(f"  {job.label} seed {job.seed}: {job.action} -> {what} ({outcome.get('seconds', 0):.1f} s)")
            if outcome.get("traceback"):
                print(outcome["traceback"], file=sys.stderr)
            record()

        def execute(pending_units) -> None:
            if ray_session is not None:
                ray_session.run(pending_units, shared, on_done, on_wait=bar.write)
            elif pending_units:
                run_jobs(pending_units, workers=workers, devices=devices, execution=execution, progress=progress,
                         on_done=on_done)

        try:
            execute(units)
            # runs another process held (a second driver, a straggler): wait for it, then do what is left
            held = [job for job in todo if (outcomes.get(job.key) or {}).get("locked")]
            while held:
                bar.write(f"  waiting for {len(held)} run(s) that other processes train, to read or finish them")
                wait_for_locks([Path(job.run_dir) for job in held], on_wait=bar.write)
                again = [refresh_job(job) for job in held]
                for job in again:
                    if not job.todo:
                        on_done(job, settled_outcome(job))
                left = [job for job in again if job.todo]
                execute(group_units(left, group_size))
                held = [job for job in left if (outcomes.get(job.key) or {}).get("locked")]
            if ray_session is not None:
                bar.write(f"  ran on the {ray_session.where}")
        finally:
            bar.close()
            manifest = record()
    return _report(args, name, out, plan, manifest, "cpu" if on_ray else devices[0], progress)


def dry_run(args, name, out, todo, plan, group_size, execution, workers, devices) -> int:
    """``--dry-run``: the plan's size and a measured time estimate; nothing written."""
    runs, run_steps = plan_size(plan.jobs)
    estimate = Estimate(runs, run_steps, group_size=group_size)
    trainable = [job for job in todo if job.action != EVALUATE]
    if trainable:
        if args.backend == "ray":
            device = "cuda" if args.gpus_per_run > 0 and torch.cuda.is_available() else "cpu"
        else:
            device = devices[0]
        estimate.group_size = min(group_size, len(trainable))
        estimate.steps_per_s = measure(trainable[0], device, estimate.group_size, execution.threads)
        estimate.timed_on = f"{device}, {execution.threads} thread{'s' if execution.threads > 1 else ''}"
    for line in describe(estimate, name=name, out=out, backend=args.backend, workers=workers):
        print(line)
    return 0


def _report(args, name, out, plan, manifest, figure_device, progress) -> int:
    report = write_compare_report(out, figures=not args.no_figures, device=figure_device, progress=progress,
                                  same_execution=args.same_execution)
    print((out / "table.md").read_text())
    for note in report.notes:
        print(f"{name}: figure not drawn: {note}", file=sys.stderr)
    print(f"tables: {', '.join(map(str, report.tables))}" + (f"; figures: {out / 'figures'}" if report.figures else ""))

    bad = [e for e in manifest["runs"] if e["status"] != "complete" or e.get("error")]
    if bad:
        listing = ", ".join(f"{e.get('label', e['model'])} seed {e['seed']} ({e['status']})" for e in bad)
        print(f"{name}: {len(bad)} of {len(plan.jobs)} runs not complete or not evaluated: "
              f"{listing}", file=sys.stderr)
        return 1
    return 0
