"""``disbench compare``: many models × seeds under one protocol, then tables and figures.

Exit status: 0 when every run is complete and evaluated, 1 when some run
failed or did not finish (the tables are written first and list it), 2 for
bad input (nothing is trained).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from ..config import config_notes
from ..errors import DisbenchError
from ..runner import check_configured_loggers, check_output_dir
from .common import add_progress_option, option_list
from .train_cmd import add_config_options, sources_from_args


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="train, evaluate and tabulate many models × seeds under one protocol",
        description="Run every (model, seed) not yet complete in OUT/runs/MODEL/seedS (resuming interrupted "
                    "ones), evaluate them, and write OUT/table.md, OUT/table.csv, OUT/figures and "
                    "OUT/compare.json. Re-running the same command does no finished work again.")
    p.add_argument("--models", required=True, help="comma-separated model names, e.g. dynamicvae,factorvae,vae")
    p.add_argument("--seeds", required=True, help="seeds: '1-5', '1,3,7', '2' (or a mix, '1-3,7')")
    p.add_argument("--protocol", required=True, help="a protocol name (gin/protocols/NAME.gin) or a .gin file")
    p.add_argument("--out", required=True, help="the compare directory")
    p.add_argument("--metrics", help="comma-separated metrics to evaluate (default: the protocol's); "
                                     "NAME@sampled scores NAME on the sampled representation")
    p.add_argument("--representation", help="mean, sampled or mean,sampled: score each metric on each "
                                            "(default: mean, the encoder means)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at a time, each in its own worker process with cpu_count/JOBS threads "
                        "(default 1: in this process)")
    p.add_argument("--fuse", metavar="K|auto",
                   help="train up to K runs of one model as one fused group (default 1); 'auto' measures "
                        "the device and chooses")
    add_config_options(p)
    p.add_argument("--retry-failed", action="store_true",
                   help="run failed runs again (from their last good checkpoint); by default they are reported")
    p.add_argument("--no-figures", action="store_true", help="write the tables only (`disbench report` draws later)")
    p.add_argument("--device", default="auto",
                   help="cpu, cuda:N (all runs on one device), cuda/auto (worker w on GPU w mod #GPUs) "
                        "or a list such as cuda:0,cuda:1 (default: auto)")
    add_progress_option(p)
    p.set_defaults(func=run_compare)


def command_line(args, models: list[str]) -> str:
    """The command, rebuilt from its options (recorded in compare.json)."""
    parts = ["disbench", "compare", "--models", ",".join(models), "--seeds", args.seeds,
             "--protocol", args.protocol, "--out", args.out]
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
    parts += ["--jobs", str(args.jobs), "--device", args.device]
    parts += ["--retry-failed"] * args.retry_failed + ["--no-figures"] * args.no_figures
    return shlex.join(parts)


def run_compare(args) -> int:
    from ..compare.execute import group_units, run_jobs, worker_devices
    from ..compare.fuse import choose_fuse, parse_fuse
    from ..compare.manifest import run_entry, write_manifest
    from ..compare.plan import EVALUATE, RESUME, RETRY, SKIP_FAILED, TRAIN, parse_models, parse_seeds, plan_runs
    from ..compare.report import write_compare_report
    from ..progress import progress_bar

    if args.jobs < 1:
        raise DisbenchError(f"--jobs must be at least 1, got {args.jobs}")
    fuse = parse_fuse(args.fuse)
    seeds = parse_seeds(args.seeds)
    models = parse_models(args.models)
    metrics = option_list(args.metrics, "--metrics", "metric names")
    out = Path(args.out)
    check_output_dir(out)

    from ..metrics import parse_representations

    representations = parse_representations(args.representation) if args.representation is not None else None
    plan = plan_runs(out, models, seeds, sources_from_args(args), metrics, args.retry_failed, representations)
    check_configured_loggers()  # the loggers the plan's configuration names (--logger, Run.loggers)
    for note in config_notes():
        print(f"note: {note}", file=sys.stderr)
    todo = plan.todo
    devices = worker_devices(args.device, max(1, args.jobs))
    group_size, why = choose_fuse(fuse, todo, devices[0])
    units = group_units(todo, group_size)
    workers = max(1, min(args.jobs, len(units)))
    devices = worker_devices(args.device, workers)
    progress = False if args.no_progress else None

    header = {"command": command_line(args, models), "models": models, "seeds": seeds,
              "protocol": args.protocol, "metrics": list(plan.metrics),
              "jobs": args.jobs, "devices": devices, "fuse": group_size}
    outcomes: dict = {}

    def record() -> dict:
        return write_manifest(out, header, [run_entry(out, j, outcomes.get((j.model, j.seed))) for j in plan.jobs])

    out.mkdir(parents=True, exist_ok=True)
    record()
    counts = [f"{plan.count(a)} {what}" for a, what in ((TRAIN, "to train"), (RESUME, "to resume"),
                                                      (RETRY, "to retry"), (EVALUATE, "to evaluate"),
                                                      (SKIP_FAILED, "failed (not retried)")) if plan.count(a)]
    where = f"{workers} worker process{'es' if workers > 1 else ''}" if workers > 1 else "this process"
    print(f"compare: {len(plan.jobs)} runs in {out}: {', '.join(counts) or 'all complete'}"
          + (f"; in {where} on {', '.join(devices)}" if todo else ""))
    if todo and (fuse == "auto" or group_size > 1):
        print(f"compare: {why}; {len(units)} unit(s) of work")

    bar = progress_bar(total=len(todo), desc="compare", unit="run",
                       disable=None if progress is None else not progress)

    def on_done(job, outcome) -> None:
        outcomes[(job.model, job.seed)] = outcome
        bar.update(1)
        what = outcome["status"] + (f" — {outcome['error']}" if outcome.get("error") else "")
        bar.write(f"  {job.model} seed {job.seed}: {job.action} -> {what} ({outcome.get('seconds', 0):.1f} s)")
        if outcome.get("traceback"):
            print(outcome["traceback"], file=sys.stderr)
        record()

    try:
        run_jobs(units, workers=workers, devices=devices, progress=progress, on_done=on_done)
    finally:
        bar.close()
        manifest = record()

    report = write_compare_report(out, figures=not args.no_figures, device=devices[0], progress=progress)
    print((out / "table.md").read_text())
    for note in report.notes:
        print(f"compare: figure not drawn: {note}", file=sys.stderr)
    print(f"tables: {', '.join(map(str, report.tables))}" + (f"; figures: {out / 'figures'}" if report.figures else ""))

    bad = [e for e in manifest["runs"] if e["status"] != "complete" or e.get("error")]
    if bad:
        listing = ", ".join(f"{e['model']} seed {e['seed']} ({e['status']})" for e in bad)
        print(f"compare: {len(bad)} of {len(plan.jobs)} runs not complete or not evaluated: {listing}", file=sys.stderr)
        return 1
    return 0
